"""The hardware catalogue: server types one can buy or rent, with prices, source and date.

Prices live in one place, ``dynaplan/domain/data/catalogue.csv`` (with a ``price_source``,
``price_date`` and a ``placeholder`` column naming the prices that are indicative values, not
published list prices). Technical data (GPUs per server, idle power) comes from
:mod:`dynaplan.domain.hardware`.
"""

from __future__ import annotations

import csv
from importlib import resources

from pydantic import ConfigDict, Field, model_validator

from dynaplan.domain.hardware import DEFAULT_HARDWARE
from dynaplan.errors import NotFoundError, ValidationError
from dynaplan.validation import MAX_GPU_POWER_W, InputModel

PRICE_KINDS = ("on_demand", "reserved", "purchase")
MIXED_RENT = "reserved+on_demand"
# how a plan may price its servers: one price kind for a fleet held over the horizon, or
# MIXED_RENT: a reserved fleet plus on-demand servers rented per period (capacity.md, r_{t,h})
PLAN_PRICE_KINDS = PRICE_KINDS + (MIXED_RENT,)
HOURS_PER_YEAR = 8760.0


class CatalogueEntry(InputModel):
    """One server type on offer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hardware: str = Field(description="Hardware type name, as in the profile (e.g. 'h100-80gb').")
    gpus_per_server: int = Field(gt=0, le=1024, description="GPUs in one server (count).")
    idle_power_w: float = Field(ge=0, le=MAX_GPU_POWER_W, description="Power of one idle GPU (W).")
    on_demand_usd_per_server_h: float | None = Field(default=None, ge=0, le=1e6,
                                                     description="On-demand rent (USD per server-hour).")
    reserved_usd_per_server_h: float | None = Field(default=None, ge=0, le=1e6,
                                                    description="Rent reserved for the horizon (USD per server-hour).")
    purchase_usd_per_server: float | None = Field(default=None, ge=0, le=1e9,
                                                  description="Capital cost of one server (USD).")
    life_years: float = Field(default=5.0, gt=0, le=50, description="Amortisation life of a purchase (years).")
    price_date: str = Field(default="", description="Date of the prices (e.g. '2025-06').")
    price_source: str = Field(default="", description="Where the prices come from.")
    placeholder: tuple[str, ...] = Field(default=(), description="Price kinds that are placeholders, not list prices.")

    @model_validator(mode="after")
    def _check(self) -> "CatalogueEntry":
        bad = [k for k in self.placeholder if k not in PRICE_KINDS]
        if bad:
            raise ValueError(f"{self.hardware}: placeholder names unknown price kind(s) {bad}; expected {PRICE_KINDS}")
        return self

    def price_usd_per_server_h(self, kind: str) -> float:
        """Hourly price of one server for ``kind`` (purchase: capex amortised over the life)."""
        if kind == "purchase":
            v = self.purchase_usd_per_server
            v = None if v is None else v / (self.life_years * HOURS_PER_YEAR)
        elif kind in ("on_demand", "reserved"):
            v = getattr(self, f"{kind}_usd_per_server_h")
        else:
            raise ValidationError(f"price={kind!r}; expected one of {', '.join(PRICE_KINDS)}")
        if v is None:
            raise ValidationError(f"catalogue: {self.hardware} has no {kind} price; set "
                                  f"{'purchase_usd_per_server' if kind == 'purchase' else kind + '_usd_per_server_h'}")
        return float(v)

    def offer_prices(self, kind: str) -> tuple[float, float | None]:
        """(price of a server-hour of the fleet held over the horizon, on-demand price of a server-hour
        rented per period or None) for a plan priced by ``kind`` (one of :data:`PLAN_PRICE_KINDS`)."""
        if kind == MIXED_RENT:
            return self.price_usd_per_server_h("reserved"), self.price_usd_per_server_h("on_demand")
        if kind not in PRICE_KINDS:
            raise ValidationError(f"price={kind!r}; expected one of {', '.join(PLAN_PRICE_KINDS)}")
        return self.price_usd_per_server_h(kind), None


class Catalogue(InputModel):
    """Server types on offer plus the site's energy parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entries: tuple[CatalogueEntry, ...] = Field(description="Server types on offer.")
    default_hardware: tuple[str, ...] = Field(default=(), description="Types planned when none are named (empty: all).")
    pue: float = Field(default=1.2, ge=1.0, le=5.0, description="Power usage effectiveness: facility / IT energy (-).")
    electricity_usd_per_kwh: float = Field(
        default=0.10, ge=0, le=100,
        description="Flat electricity price (USD/kWh). Placeholder default: set your tariff.")

    @model_validator(mode="after")
    def _check(self) -> "Catalogue":
        names = [e.hardware for e in self.entries]
        if len(set(names)) != len(names):
            raise ValueError(f"entries: duplicate hardware names in {names}")
        unknown = [h for h in self.default_hardware if h not in names]
        if unknown:
            raise ValueError(f"default_hardware: {unknown} not among the entries {names}")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.hardware for e in self.entries)

    def entry(self, hardware: str) -> CatalogueEntry:
        for e in self.entries:
            if e.hardware == hardware:
                return e
        raise NotFoundError(f"hardware {hardware!r} is not in the catalogue (known: {', '.join(self.names)})")


def _opt(v: str) -> float | None:
    return float(v) if v.strip() else None


def default_catalogue() -> Catalogue:
    """The bundled catalogue: H100, A100, H200 and B200 servers (``data/catalogue.csv``)."""
    text = (resources.files("dynaplan.domain") / "data" / "catalogue.csv").read_text()
    entries = []
    for row in csv.DictReader(text.splitlines()):
        hw = DEFAULT_HARDWARE[row["hardware"]]
        entries.append(CatalogueEntry(
            hardware=hw.name, gpus_per_server=hw.gpus_per_server, idle_power_w=hw.idle_power_w,
            on_demand_usd_per_server_h=_opt(row["on_demand_usd_per_server_h"]),
            reserved_usd_per_server_h=_opt(row["reserved_usd_per_server_h"]),
            purchase_usd_per_server=_opt(row["purchase_usd_per_server"]),
            life_years=float(row["life_years"]), price_date=row["price_date"], price_source=row["price_source"],
            placeholder=tuple(p for p in row["placeholder"].split(";") if p)))
    return Catalogue(entries=tuple(entries), default_hardware=("h100-80gb", "a100-80gb", "h200-141gb", "b200-180gb"))
