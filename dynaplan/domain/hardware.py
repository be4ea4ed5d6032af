"""GPU server types.

Numbers for the defaults are public specifications (see ``docs/profiles.md``, "Hardware types"):
NVIDIA H100-80GB SXM and A100-80GB SXM data sheets and the GPU idle power used by splitwise-sim
(MIT); NVIDIA H200 SXM and HGX/DGX B200 specifications for the two newer types.

Prices are **placeholders** with one home: the on-demand column of the hardware catalogue,
``dynaplan/domain/data/catalogue.csv`` (USD per 8-GPU server-hour, AWS EC2 on-demand, Linux,
us-east-1, with each row's ``price_source`` and ``price_date``), read here so that the planner's
cost objective and the capacity planner price a server alike. They are NOT a quote; providers
differ and prices change often, so set your own
(``model_copy(update={"price_usd_per_server_h": ...})``, or a catalogue of your own for
capacity planning).
"""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import ConfigDict, Field, field_validator, model_validator

from dynaplan.validation import MAX_GPU_POWER_W, InputModel


_CATALOGUE = Path(__file__).resolve().parent / "data" / "catalogue.csv"


def _catalogue_price(name: str) -> dict:
    """``price_usd_per_server_h`` and ``price_source`` of type ``name`` from the catalogue's
    on-demand column (read as a file: the catalogue module itself imports this one)."""
    with _CATALOGUE.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["hardware"] == name:
                est = "an estimate, " if "on_demand" in row["placeholder"].split(";") else ""
                return {"price_usd_per_server_h": float(row["on_demand_usd_per_server_h"]),
                        "price_source": f"placeholder: {row['price_source']} ({est}{row['price_date']}; "
                                        "dynaplan/domain/data/catalogue.csv)"[:300]}
    raise KeyError(f"{name}: no row in {_CATALOGUE}")


class HardwareType(InputModel):
    """One kind of GPU server: what an instance of a configuration runs on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Identifier used in profiles and inventories, e.g. 'h100-80gb'.")
    gpus_per_server: int = Field(gt=0, le=1024, description="GPUs in one server (count).")
    clock_levels_mhz: tuple[int, ...] = Field(
        description="SM clock levels an instance may be set to (MHz), ascending."
    )
    gpu_memory_gb: float = Field(gt=0, le=1e5, description="HBM per GPU (GB, 1e9 bytes).")
    idle_power_w: float = Field(ge=0, le=MAX_GPU_POWER_W, description="Power of one idle GPU (W).")
    max_power_w: float = Field(gt=0, le=MAX_GPU_POWER_W, description="Board power limit (TDP) of one GPU (W).")
    price_usd_per_server_h: float = Field(ge=0, le=1e6, description="Price of one server-hour (USD).")
    price_source: str = Field(default="set by the user", max_length=300,
                              description="Where price_usd_per_server_h comes from, and its date.")
    interconnect_gb_s: float = Field(
        gt=0, le=1e6, description="Intra-server GPU-to-GPU bandwidth per GPU (GB/s), e.g. NVLink."
    )
    peak_tflops_bf16: float = Field(gt=0, le=1e6, description="Dense BF16 tensor throughput per GPU (TFLOP/s).")
    hbm_bandwidth_tb_s: float = Field(gt=0, le=1e4, description="HBM bandwidth per GPU (TB/s).")

    @field_validator("name")
    @classmethod
    def _name_nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("hardware name must not be empty")
        return v

    @model_validator(mode="after")
    def _check(self) -> "HardwareType":
        levels = self.clock_levels_mhz
        if not levels:
            raise ValueError(f"hardware {self.name!r}: clock_levels_mhz must not be empty")
        if any(b <= a for a, b in zip(levels, levels[1:])):
            raise ValueError(f"hardware {self.name!r}: clock_levels_mhz must be strictly ascending")
        if levels[0] <= 0 or levels[-1] > 10_000:
            raise ValueError(f"hardware {self.name!r}: clock levels must be within 1..10000 MHz")
        if self.idle_power_w >= self.max_power_w:
            raise ValueError(f"hardware {self.name!r}: idle_power_w must be below max_power_w")
        return self

    @property
    def max_clock_mhz(self) -> int:
        return self.clock_levels_mhz[-1]

    def tp_degrees(self) -> tuple[int, ...]:
        """Power-of-two TP degrees >= 1 that fit inside one server."""
        out, k = [], 1
        while k <= self.gpus_per_server:
            out.append(k)
            k *= 2
        return tuple(out)


H100_80GB = HardwareType(
    name="h100-80gb",
    gpus_per_server=8,
    # 800..1980 MHz in ~200 MHz steps, as profiled by DynamoLLM.
    clock_levels_mhz=(800, 1000, 1200, 1400, 1600, 1800, 1980),
    gpu_memory_gb=80.0,
    idle_power_w=75.0,
    max_power_w=700.0,
    **_catalogue_price("h100-80gb"),
    interconnect_gb_s=900.0,
    peak_tflops_bf16=989.0,
    hbm_bandwidth_tb_s=3.35,
)

A100_80GB = HardwareType(
    name="a100-80gb",
    gpus_per_server=8,
    clock_levels_mhz=(810, 1005, 1200, 1410),
    gpu_memory_gb=80.0,
    idle_power_w=63.0,
    max_power_w=400.0,
    **_catalogue_price("a100-80gb"),
    interconnect_gb_s=600.0,
    peak_tflops_bf16=312.0,
    hbm_bandwidth_tb_s=2.0,
)

H200_141GB = HardwareType(
    name="h200-141gb",
    gpus_per_server=8,
    # Same GH100 chip as the H100 SXM (max 1,980 MHz): DynamoLLM's H100 clock levels.
    clock_levels_mhz=(800, 1000, 1200, 1400, 1600, 1800, 1980),
    gpu_memory_gb=141.0,  # H200 SXM data sheet: 141 GB HBM3e
    idle_power_w=75.0,  # assumption: the H100's (same chip); no published idle figure
    max_power_w=700.0,  # H200 SXM data sheet: configurable up to 700 W
    **_catalogue_price("h200-141gb"),
    interconnect_gb_s=900.0,  # NVLink 4, as H100
    peak_tflops_bf16=989.0,  # dense; H100's compute
    hbm_bandwidth_tb_s=4.8,  # H200 SXM data sheet
)

B200_180GB = HardwareType(
    name="b200-180gb",
    gpus_per_server=8,
    # Max SM clock 1,965 MHz (as nvidia-smi reports on HGX B200); lower levels in DynamoLLM's
    # ~200 MHz steps from 800 MHz, as for H100.
    clock_levels_mhz=(800, 1000, 1200, 1400, 1600, 1800, 1965),
    gpu_memory_gb=180.0,  # DGX B200 user guide: 1,440 GB total GPU memory over 8 GPUs
    idle_power_w=140.0,  # assumption: public nvidia-smi idle readings of ~140 W; no data sheet value
    max_power_w=1000.0,  # HGX B200: 1,000 W per GPU
    **_catalogue_price("b200-180gb"),
    interconnect_gb_s=1800.0,  # NVLink 5: 1.8 TB/s per GPU (DGX B200: 14.4 TB/s aggregate)
    peak_tflops_bf16=2250.0,  # HGX B200 at 1,000 W: 4.5 PFLOP/s sparse BF16 per GPU, dense is half
    hbm_bandwidth_tb_s=8.0,  # DGX B200: 64 TB/s over 8 GPUs
)

DEFAULT_HARDWARE: dict[str, HardwareType] = {h.name: h for h in (H100_80GB, A100_80GB, H200_141GB, B200_180GB)}
