"""The capacity-planning question as typed, validated data (``formulations/capacity.md``).

A :class:`CapacityProblem` holds everything the formulation needs and nothing it must look up:
the load per period and class, the server types on offer with their prices and availability,
the per-instance *recipes* condensed from the profile (one row per operating point and power
piece: how many req/s one instance carries under the SLOs and at which power), the energy and
carbon series and the objective. :func:`dynaplan.capacity.capacity_problem` builds one from a
profile, a trace and the catalogue; :func:`dynaplan.capacity.read_melange` from a Mélange config.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import ConfigDict, Field, model_validator

from dynaplan.limits import INVENTORY_SERVERS
from dynaplan.validation import MAX_DURATION_S, MAX_GPU_POWER_W, InputModel

Objective = Literal["cost", "energy", "carbon", "weighted"]
MAX_PERIODS = 8760
MAX_RECIPES = 200_000


class Offer(InputModel):
    """One server type the fleet may hold, priced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hardware: str = Field(description="Hardware type name.")
    gpus_per_server: int = Field(gt=0, le=1024, description="GPUs per server (count).")
    price_usd_per_server_h: float = Field(ge=0, le=1e6, description="Price of one server-hour of the fleet held for "
                                          "the whole horizon (USD; reserved rent, or amortised if bought).")
    price_kind: str = Field(default="on_demand", description="'on_demand', 'reserved', 'purchase', "
                            "'reserved+on_demand' or 'melange'.")
    on_demand_usd_per_server_h: float | None = Field(
        default=None, ge=0, le=1e6, description="On-demand rent of one server-hour for servers rented per period "
        "on top of the fleet (USD); None: no per-period rent of this type (capacity.md, r_{t,h}).")
    idle_power_w: float = Field(default=0.0, ge=0, le=MAX_GPU_POWER_W, description="Power of one idle GPU (W).")
    min_servers: int = Field(default=0, ge=0, description="Fewest servers of this type in the fleet (count).")
    max_servers: int = Field(default=INVENTORY_SERVERS.value, ge=0, description="Most servers of this type "
                             "in the fleet held over the horizon (count).")
    available_servers: int = Field(default=INVENTORY_SERVERS.value, ge=0, description="Most servers of this type "
                                   "in any one period, fleet plus on-demand (count; capacity.md (cap.available)).")

    @model_validator(mode="after")
    def _check(self) -> "Offer":
        if self.min_servers > self.max_servers:
            raise ValueError(f"{self.hardware}: min_servers {self.min_servers} > max_servers {self.max_servers}")
        INVENTORY_SERVERS.check(self.max_servers, f"availability: {self.hardware}", "has")
        INVENTORY_SERVERS.check(self.available_servers, f"available_servers: {self.hardware}", "has")
        if self.on_demand_usd_per_server_h is not None and self.min_servers > self.available_servers:
            raise ValueError(f"{self.hardware}: min_servers {self.min_servers} > available_servers "
                             f"{self.available_servers}")
        return self

    @property
    def rents_on_demand(self) -> bool:
        """True when servers of this type may be rented per period on top of the fleet."""
        return self.on_demand_usd_per_server_h is not None


class Recipe(InputModel):
    """One power piece of one operating point: an instance of ``tp`` GPUs of ``hardware`` at
    ``freq_mhz`` serving ``request_class`` carries up to ``u_hi * max_load_rps`` req/s on this
    piece, drawing ``static_w + w_per_util * load / max_load_rps`` (W)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hardware: str
    request_class: str
    tp: int = Field(gt=0, le=1024, description="GPUs per instance (count).")
    freq_mhz: int = Field(ge=0, le=10_000, description="SM clock (MHz); 0 when unknown (Mélange).")
    segment: int = Field(default=0, ge=0, description="Power piece index.")
    max_load_rps: float = Field(gt=0, le=1e12, description="Highest load meeting the SLOs, one instance (req/s).")
    u_hi: float = Field(default=1.0, gt=0, le=1.0, description="Utilisation at the piece's upper end (fraction).")
    static_w: float = Field(default=0.0, ge=-1e7, le=1e7, description="Piece intercept A (W per instance).")
    w_per_util: float = Field(default=0.0, ge=-1e7, le=1e7, description="Piece slope B (W per unit utilisation).")
    segment_error_w: float = Field(default=0.0, ge=0, le=1e7,
                                   description="Largest distance between the piece-wise curve and the profile (W per instance).")
    curve_load_rps: tuple[float, ...] = Field(
        default=(), description="The profile's load points of this operating point up to max_load_rps (req/s, "
        "increasing); empty when there is no profile (Mélange): the plan's power is then the piece's.")
    curve_power_w: tuple[float, ...] = Field(
        default=(), description="The profile's power at curve_load_rps (W per instance).")

    @model_validator(mode="after")
    def _check_curve(self) -> "Recipe":
        x, y = self.curve_load_rps, self.curve_power_w
        if len(x) != len(y):
            raise ValueError(f"{self.hardware}/{self.request_class} TP{self.tp}@{self.freq_mhz}: curve_load_rps has "
                             f"{len(x)} values, curve_power_w {len(y)}")
        if x and (not all(np.isfinite(x + y)) or min(x) < 0 or min(y) < 0 or any(b <= a for a, b in zip(x, x[1:]))
                  or abs(x[-1] - self.max_load_rps) > 1e-9 * max(1.0, self.max_load_rps)):
            raise ValueError(f"{self.hardware}/{self.request_class} TP{self.tp}@{self.freq_mhz}: curve_load_rps must "
                             "increase from >= 0 to max_load_rps, with finite powers >= 0")
        return self

    def true_power_w(self, load_rps: np.ndarray) -> np.ndarray | None:
        """The profile's power of one instance at ``load_rps`` (its linear interpolation, held at its
        first value below the lightest point); None without a curve."""
        if not self.curve_load_rps:
            return None
        return np.interp(load_rps, self.curve_load_rps, self.curve_power_w)


class CapacityProblem(InputModel):
    """Which fleet serves the load of every period under the SLOs at least cost (or energy, carbon)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    classes: tuple[str, ...] = Field(description="Request classes (columns of demand_rps).")
    period_s: float = Field(gt=0, le=MAX_DURATION_S, description="Length of one period (s).")
    demand_rps: tuple[tuple[float, ...], ...] = Field(description="Peak load per period and class (req/s).")
    load_basis: str = Field(default="", description="How the load was obtained and scaled (printed with every answer).")
    offers: tuple[Offer, ...] = Field(description="Server types the fleet may hold.")
    recipes: tuple[Recipe, ...] = Field(description="Per-instance capacity and power pieces.")
    electricity_usd_per_kwh: tuple[float, ...] = Field(description="Electricity price per period (USD/kWh).")
    carbon_g_per_kwh: tuple[float, ...] = Field(description="Carbon intensity per period (gCO2/kWh).")
    carbon_source: str = Field(default="", description="Where the carbon series comes from.")
    carbon_price_usd_per_t: float = Field(default=0.0, ge=0, le=1e6, description="Carbon price (USD per tonne CO2).")
    pue: float = Field(default=1.0, ge=1.0, le=5.0, description="Facility energy / IT energy (-).")
    objective: Objective = Field(default="cost", description="What to minimise.")
    weights: tuple[float, float, float] = Field(
        default=(1.0, 0.0, 0.0), description="Objective 'weighted': USD per USD of cost, per kWh, per kg CO2.")
    idle: Literal["idle", "off"] = Field(default="idle", description="GPUs no instance uses in a period: idle or powered off.")
    assignment: Literal["divisible", "sliced"] = Field(
        default="divisible", description="'divisible': a class's load splits over types in any fraction; "
        "'sliced': into slice_factor equal slices, each on one type (Mélange's model).")
    slice_factor: int = Field(default=1, ge=1, le=1024, description="Slices per class and period (sliced).")
    shared_instances: bool = Field(
        default=False, description="True: instance counts are continuous (a GPU's time is shared between "
        "classes, as Mélange assumes); False: whole instances.")
    energy_cap_kwh: float | None = Field(default=None, ge=0, description="Epsilon constraint: energy at most (kWh).")
    carbon_cap_kg: float | None = Field(default=None, ge=0, description="Epsilon constraint: carbon at most (kg).")
    source: str = Field(default="profile", description="'profile' or 'melange'.")
    fleet_extra_per_server: tuple[float, ...] | None = Field(
        default=None, description="Extra objective per server of each type (objective units): the idle energy "
        "of periods a sub-problem leaves out (decomposition).")
    trace: str | None = Field(default=None, description="Bundled name or path of the trace the load comes from "
                              "(None: per-class rates), for replay.")
    trace_scale: float | None = Field(default=None, gt=0, description="Rate factor that turns the trace into the "
                                      "busiest period's load (-), for replay.")
    slo_ms: tuple[tuple[str, float, float], ...] = Field(
        default=(), description="The SLOs the recipes meet: (class, P99 TTFT ms, P99 TBT ms), for replay.")
    profile_source: str = Field(default="", description="The profile's source (a path, or 'bundled:...').")
    fleet_hours_h: float | None = Field(
        default=None, gt=0, description="Hours the fleet is paid for (None: the horizon); set when a "
        "sub-problem of some periods carries the whole horizon's fleet cost.")

    @model_validator(mode="after")
    def _check(self) -> "CapacityProblem":
        n_t, n_c = len(self.demand_rps), len(self.classes)
        if not 1 <= n_t <= MAX_PERIODS:
            raise ValueError(f"demand_rps: {n_t} periods; expected 1..{MAX_PERIODS}")
        if len(set(self.classes)) != n_c or n_c == 0:
            raise ValueError(f"classes: {self.classes}; expected distinct names, at least one")
        d = np.asarray(self.demand_rps, dtype=float)
        if d.shape != (n_t, n_c):
            raise ValueError(f"demand_rps: every period needs {n_c} values (one per class)")
        if not np.all(np.isfinite(d)) or (d < 0).any() or d.max(initial=0) > 1e12:
            raise ValueError("demand_rps: loads must be finite, >= 0 and <= 1e12 req/s")
        for name in ("electricity_usd_per_kwh", "carbon_g_per_kwh"):
            v = np.asarray(getattr(self, name), dtype=float)
            if v.shape != (n_t,):
                raise ValueError(f"{name}: {v.size} values for {n_t} periods")
            if not np.all(np.isfinite(v)) or (v < 0).any():
                raise ValueError(f"{name}: values must be finite and >= 0")
        hw = [o.hardware for o in self.offers]
        if not hw or len(set(hw)) != len(hw):
            raise ValueError(f"offers: {hw}; expected distinct hardware names, at least one")
        if len(self.recipes) > MAX_RECIPES:
            raise ValueError(f"recipes: {len(self.recipes)}; at most {MAX_RECIPES}")
        gpus = {o.hardware: o.gpus_per_server for o in self.offers}
        for r in self.recipes:
            if r.hardware not in gpus or r.request_class not in self.classes:
                raise ValueError(f"recipes: {r.hardware}/{r.request_class} is not an offered hardware and class")
            if r.tp > gpus[r.hardware]:
                raise ValueError(f"recipes: TP {r.tp} does not fit a {r.hardware} server of {gpus[r.hardware]} GPUs")
        if min(self.weights) < 0:
            raise ValueError("weights: expected >= 0")
        return self

    @property
    def n_periods(self) -> int:
        return len(self.demand_rps)

    @property
    def horizon_h(self) -> float:
        return self.n_periods * self.period_s / 3600.0

    @property
    def fleet_h(self) -> float:
        return self.horizon_h if self.fleet_hours_h is None else self.fleet_hours_h

    @property
    def hardware(self) -> tuple[str, ...]:
        return tuple(o.hardware for o in self.offers)

    def demand(self) -> np.ndarray:
        """Load per period and class (req/s), shape (periods, classes)."""
        return np.asarray(self.demand_rps, dtype=float).reshape(self.n_periods, len(self.classes))
