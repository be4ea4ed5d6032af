"""A configuration: the knobs of one instance (hardware type, TP degree, GPU clock)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from dynaplan.validation import InputModel


class Configuration(InputModel):
    """Hardware type, tensor-parallel degree and SM clock of one model instance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hardware: str = Field(description="Hardware type name.")
    tp: int = Field(gt=0, description="Tensor-parallel degree (GPUs per instance).")
    freq_mhz: int = Field(gt=0, description="SM clock (MHz).")

    def __str__(self) -> str:
        return f"{self.hardware}/TP{self.tp}@{self.freq_mhz}MHz"
