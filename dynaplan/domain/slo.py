"""Latency service-level objectives per request class (P99)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from dynaplan.domain.classes import DEFAULT_CLASSES, ClassScheme
from dynaplan.errors import NotFoundError
from dynaplan.validation import InputModel


class SLO(InputModel):
    """P99 latency targets of one request class."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ttft_ms: float = Field(gt=0, description="P99 time to first token (ms).")
    tbt_ms: float = Field(gt=0, description="P99 time between tokens (ms).")


class SLOTable(InputModel):
    """SLOs for every class of a scheme."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_class: dict[str, SLO] = Field(description="SLO of each request class, by class name.")

    def __getitem__(self, name: str) -> SLO:
        try:
            return self.per_class[name]
        except KeyError:
            raise NotFoundError(f"no SLO for request class {name!r}; known: {sorted(self.per_class)}") from None

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.per_class)

    def scaled(self, factor: float) -> "SLOTable":
        """Every TTFT and TBT target multiplied by ``factor`` (itself when ``factor`` is 1)."""
        if factor == 1.0:
            return self
        return SLOTable(per_class={c: SLO(ttft_ms=s.ttft_ms * factor, tbt_ms=s.tbt_ms * factor)
                                   for c, s in self.per_class.items()})

    def covers(self, scheme: ClassScheme) -> "SLOTable":
        missing = [c for c in scheme.names if c not in self.per_class]
        if missing:
            raise ValueError(f"SLO table has no entry for classes {missing}")
        return self

    @classmethod
    def from_input_bins(
        cls, scheme: ClassScheme, ttft_ms_by_input_bin: dict[str, float], tbt_ms: float
    ) -> "SLOTable":
        """TTFT by input bin (prefill dominates TTFT), one TBT for all classes."""
        n_out = len(scheme.output_bins.names)
        table = {}
        for k, name in enumerate(scheme.names):
            ib = scheme.input_bins.names[k // n_out]
            table[name] = SLO(ttft_ms=ttft_ms_by_input_bin[ib], tbt_ms=tbt_ms)
        return cls(per_class=table)



# DynamoLLM's published P99 SLOs: TTFT 250 ms (short input), 400 ms (medium), 2000 ms (long);
# TBT 100 ms for every class.
DEFAULT_SLOS = SLOTable.from_input_bins(
    DEFAULT_CLASSES, {"S": 250.0, "M": 400.0, "L": 2000.0}, tbt_ms=100.0
)
