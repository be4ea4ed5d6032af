"""Scenario kinds: what one scenario of a sweep is and how it runs.

A kind is a small record (:class:`ScenarioKind`): the input model of its options (every option a
sweep may set in ``base`` or vary on an axis), the metrics it returns, the large inputs its
scenarios share, and ``run(options, shared) -> metrics``, a plain function of the resolved options
(a JSON-like dict) and the loaded shared inputs. The sweep engine (:mod:`dynaplan.sweep.engine`)
knows nothing else about a kind, so a new kind is one :func:`register` call.

Bundled kinds:

* ``replay``: one policy replayed over a trace (:mod:`dynaplan.replay`), with its load scaled,
  its SLOs scaled and its inventory, time scales and grid series set per scenario;
* ``capacity``: one capacity plan (:func:`dynaplan.capacity.plan_capacity`), with every option of
  :func:`dynaplan.capacity.capacity_problem`.

Shared inputs are named by a key, a tuple of plain values (``("profile", None)``, ``("trace",
"azure-conv-2023", 1800.0)``); :func:`load_shared` loads a key once, in the process that drives
the sweep, and the engine sends each loaded input to every worker once.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from dynaplan.errors import ValidationError
from dynaplan.validation import InputModel

MetricType = Literal["float", "int", "str"]


@dataclass(frozen=True)
class ScenarioKind:
    """One kind of scenario: options model, metrics, shared inputs and the run function."""

    name: str
    options: type[InputModel]
    metrics: Mapping[str, MetricType]  # every metric run() returns, with its column type
    run: Callable[[dict, Mapping[str, Any]], dict]
    shared: Callable[[dict], dict[str, tuple]]  # resolved options -> {input name: key of load_shared}
    path_options: tuple[str, ...] = ()  # options naming files, resolved against the spec's folder
    description: str = ""
    requires: tuple[str, ...] = ()  # modules run() imports; checked before a sweep starts
    # inputs derived from the shared ones, computed once per sweep (on a worker) and shared like them:
    # resolved options -> {input name: key}; derive(key, shared inputs of a scenario) -> value. A
    # derived input that fails is None in run()'s ``shared``: run() then computes it itself.
    derived: Callable[[dict], dict[str, tuple]] | None = None
    derive: Callable[[tuple, Mapping[str, Any]], Any] | None = None

    def check_available(self) -> None:
        """A ValidationError naming the first module of :attr:`requires` that is not installed."""
        import importlib.util
        import sys

        for mod in self.requires:
            if mod in sys.modules:  # imported already (or blocked: None)
                found = sys.modules[mod] is not None
            else:
                try:
                    found = importlib.util.find_spec(mod) is not None
                except (ModuleNotFoundError, ValueError):
                    found = False
            if not found:
                raise ValidationError(f"scenario kind {self.name!r} needs {mod}, which is not installed")


KINDS: dict[str, ScenarioKind] = {}


def register(kind: ScenarioKind) -> ScenarioKind:
    """Add ``kind`` to :data:`KINDS` (a name registered twice is a programming error)."""
    if kind.name in KINDS and KINDS[kind.name] is not kind:
        raise ValueError(f"scenario kind {kind.name!r} registered twice")
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> ScenarioKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValidationError(f"unknown scenario kind {name!r}; known: {', '.join(KINDS)}") from None


# ---------------------------------------------------------------------------------- shared inputs
_LOADERS: dict[str, Callable[..., Any]] = {}


def loader(name: str):
    """Decorator: ``fn(*key[1:])`` loads shared inputs whose key starts with ``name``."""

    def deco(fn):
        _LOADERS[name] = fn
        return fn

    return deco


def load_shared(key: tuple) -> Any:
    """The shared input named by ``key`` (loaded from disk or the bundled data)."""
    return _LOADERS[key[0]](*key[1:])


@loader("profile")
def _load_profile(path: str | None):
    from dynaplan.profiles.profile import Profile

    return Profile.default() if path is None else Profile.read(path)


@loader("trace")
def _load_trace(source: str, duration_s: float | None):
    """A trace, cut to its first ``duration_s`` seconds (None: whole)."""
    from dynaplan.workload.loading import load_trace

    tr = load_trace(source)
    if duration_s is None or duration_s >= tr.duration_s:
        return tr
    keep = tr.arrival_s < duration_s
    return dataclasses.replace(tr, arrival_s=tr.arrival_s[keep], input_tokens=tr.input_tokens[keep],
                               output_tokens=tr.output_tokens[keep], duration_s=float(duration_s),
                               label=f"{tr.label} (first {duration_s:g} s)")


@loader("grid")
def _load_grid(carbon: str | None, carbon_column: str, price: str | None, price_column: str, mode: str):
    from dynaplan.replay.grid import GridSeries, caiso_carbon_intensity, caiso_price, read_hourly_series

    c = read_hourly_series(carbon, carbon_column, unit="gCO2/kWh") if carbon else caiso_carbon_intensity()
    p = read_hourly_series(price, price_column, unit="USD/MWh") if price else caiso_price()
    return GridSeries(c, p, mode)


@loader("catalogue")
def _load_catalogue():
    from dynaplan.capacity import default_catalogue

    return default_catalogue()


def scaled_slos(slos, scale: float):
    """``slos`` with every TTFT and TBT target multiplied by ``scale``."""
    return slos.scaled(scale)


# ---------------------------------------------------------------------------------- replay
class ReplayScenario(InputModel):
    """Options of one ``replay`` scenario (one policy over one trace)."""

    trace: str = Field("azure-conv-2023", description="Bundled trace name or trace file.")
    trace_duration_s: float | None = Field(None, gt=0, description="Replay only the trace's first seconds "
                                           "(s); None: all of it.")
    profile: str | None = Field(None, description="Profile file; None: the bundled one.")
    policy: str = Field("DynamoLLM", description="One replay policy (dynaplan.replay.policies).")
    hardware: str = Field("h100-80gb", description="Hardware type of the inventory.")
    servers: int = Field(40, ge=1, le=100_000, description="Servers in the inventory (count).")
    inventory: dict[str, int] | None = Field(None, description="Servers per hardware type (count): a set of "
                                             "types and their availability; None: {hardware: servers}.")
    load_scale: float = Field(1.0, gt=0, le=1000, description="Multiplies the trace's arrival rate (factor).")
    slo_scale: float = Field(1.0, gt=0, le=1000, description="Multiplies every TTFT and TBT target (factor).")
    peak_scale: float = Field(1.0, gt=0, le=1000, description="Static policies are sized for this multiple "
                              "of the trace's peak (factor).")
    seed: int = Field(0, ge=0, description="Seed of rate scaling and of the simulated predictor.")
    window_s: float = Field(5.0, gt=0, description="Instance-level window (s).")
    pool_epoch_s: float = Field(300.0, gt=0, description="Pool-level period (s).")
    cluster_epoch_s: float = Field(1800.0, gt=0, description="Cluster-level period (s).")
    rate_window_s: float = Field(30.0, gt=0, description="Trailing window of the rate (s).")
    carbon: str | None = Field(None, description="Hourly carbon-intensity CSV (gCO2/kWh); None: bundled CAISO.")
    carbon_column: str = "avg_CI"
    price: str | None = Field(None, description="Hourly electricity price CSV (USD/MWh); None: bundled CAISO.")
    price_column: str = "US-CAL-CISO"
    grid_mode: Literal["hour_of_day", "calendar"] = "hour_of_day"
    instance_headroom: float = Field(0.05, ge=0, description="Utilisation margin of the instance level (fraction).")
    prehistory_s: float | None = Field(None, ge=0, description="Trace start shown to policies as the time before "
                                       "it (s); None: one cluster epoch.")
    predictor_accuracy: float = Field(0.81, ge=0, le=1, description="Output-length predictor accuracy (fraction).")
    predictor_over_fraction: float = Field(0.5, ge=0, le=1, description="Share of mis-predictions to the larger "
                                           "output bin (fraction).")
    idle_power: Literal["busy-fraction", "linear", "hold"] = "busy-fraction"

    @field_validator("inventory")
    @classmethod
    def _some_servers(cls, value):
        if value is not None:
            if not value:
                raise ValueError("give servers for at least one hardware type")
            bad = {h: n for h, n in value.items() if not 0 <= n <= 100_000}
            if bad:
                raise ValueError(f"server counts must be 0 to 100000; got {bad}")
            if sum(value.values()) < 1:
                raise ValueError(f"no server in {value}")
        return value

    @model_validator(mode="after")
    def _one_inventory_and_valid_time_scales(self) -> "ReplayScenario":
        if self.inventory is not None:
            both = sorted({"hardware", "servers"} & self.model_fields_set)
            if both:
                raise ValueError(f"give inventory or {' and '.join(both)}, not both")
        replay_options(self.model_dump())  # the time scales' cross-checks (whole multiples), now
        return self

    @field_validator("policy")
    @classmethod
    def _one_policy(cls, value: str) -> str:
        from dynaplan.replay.policies import POLICIES

        lookup = {k.lower(): k for k in POLICIES}
        if value.strip().lower() not in lookup:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)} (one per scenario; vary it on an axis)")
        return lookup[value.strip().lower()]


REPLAY_METRICS: dict[str, MetricType] = {
    "energy_kwh": "float", "cost_usd": "float", "carbon_kg": "float", "slo_attainment": "float",
    "ttft_p99_ms": "float", "tbt_p99_ms": "float", "avg_servers": "float", "peak_servers": "float",
    "avg_power_kw": "float", "peak_power_kw": "float", "unserved_requests": "float", "requests": "int",
    "duration_s": "float", "replay_wall_time_s": "float",
}


def _replay_shared(o: dict) -> dict[str, tuple]:
    return {"profile": ("profile", o["profile"]), "trace": ("trace", o["trace"], o["trace_duration_s"]),
            "grid": ("grid", o["carbon"], o["carbon_column"], o["price"], o["price_column"], o["grid_mode"])}


def replay_options(o: dict):
    """The :class:`~dynaplan.replay.engine.ReplayOptions` of resolved replay options ``o``."""
    from dynaplan.replay.engine import ReplayOptions

    return ReplayOptions(window_s=o["window_s"], pool_epoch_s=o["pool_epoch_s"], cluster_epoch_s=o["cluster_epoch_s"],
                         rate_window_s=o["rate_window_s"], predictor_seed=o["seed"], grid_mode=o["grid_mode"],
                         instance_headroom=o["instance_headroom"], prehistory_s=o["prehistory_s"],
                         predictor_accuracy=o["predictor_accuracy"],
                         predictor_over_fraction=o["predictor_over_fraction"], idle_power=o["idle_power"])


def replay_inventory(o: dict) -> dict[str, int]:
    """Servers per hardware type of resolved replay options ``o``."""
    return dict(o["inventory"]) if o["inventory"] is not None else {o["hardware"]: o["servers"]}


def run_replay(o: dict, shared: Mapping[str, Any]) -> dict:
    """Replay ``o['policy']`` over the shared trace, scaled by ``load_scale``; the summary's metrics."""
    from dynaplan.domain.slo import DEFAULT_SLOS
    from dynaplan.replay.engine import prepare, replay
    from dynaplan.replay.load import scale_trace
    from dynaplan.replay.policies import make_policies

    prof, tr = shared["profile"], shared["trace"]
    inventory = replay_inventory(o)
    unknown = sorted(set(inventory) - set(prof.hardware))
    if unknown:
        raise ValidationError(f"hardware {unknown[0]!r}: unknown; the profile knows {sorted(prof.hardware)}")
    if o["load_scale"] != 1.0:
        tr = scale_trace(tr, o["load_scale"], seed=o["seed"], label=f"load_scale {o['load_scale']:g}")
    inp = prepare(tr, profile=prof, slos=scaled_slos(DEFAULT_SLOS, o["slo_scale"]), inventory=inventory,
                  options=replay_options(o), grid=shared["grid"])
    (policy,) = make_policies([o["policy"]], peak_scale=o["peak_scale"])
    s = replay(inp, policy).summary
    row = {m: getattr(s, m) for m in REPLAY_METRICS if m != "replay_wall_time_s"}
    row["replay_wall_time_s"] = s.wall_time_s
    return row


REPLAY = register(ScenarioKind(
    name="replay", options=ReplayScenario, metrics=REPLAY_METRICS, run=run_replay, shared=_replay_shared,
    path_options=("trace", "profile", "carbon", "price"),
    description="one replay policy over a trace (dynaplan.replay)"))


# ---------------------------------------------------------------------------------- capacity
class CapacityScenario(InputModel):
    """Options of one ``capacity`` scenario: the arguments of :func:`dynaplan.capacity.capacity_problem`
    and of :func:`dynaplan.capacity.plan_capacity`."""

    profile: str | None = Field(None, description="Profile file; None: the bundled one.")
    trace: str | None = Field("azure-conv-2023", description="Bundled trace name or trace file; None with rates.")
    rates: dict[str, float] | None = Field(None, description="Per-class load of one period (req/s).")
    peak_rps: float | None = Field(None, gt=0, description="Scale the load so its busiest period carries this (req/s).")
    mean_rps: float | None = Field(None, gt=0, description="Scale the load to this mean (req/s).")
    growth: float = Field(1.0, gt=0, description="Multiplies the load after scaling (factor).")
    periods: int | None = Field(None, ge=1, description="Periods of the horizon (count); None: 24 with a trace, "
                                "1 with rates.")
    period_s: float = Field(3600.0, gt=0, description="Length of one period (s).")
    hardware: list[str] | None = Field(None, description="Hardware types to choose from; None: the catalogue's.")
    availability: dict[str, tuple[int, int]] | None = Field(None, description="(min, max) servers per type (count).")
    price: Literal["on_demand", "reserved", "purchase", "reserved+on_demand"] = "on_demand"
    electricity_usd_per_kwh: float | list[float] | None = Field(None, description="Flat or hourly price (USD/kWh).")
    carbon: str | None = Field(None, description="Carbon series name or file; None: the bundled default.")
    carbon_price_usd_per_t: float = Field(0.0, ge=0, description="Carbon price (USD/tCO2).")
    slo_scale: float = Field(1.0, gt=0, description="Multiplies every TTFT and TBT target (factor).")
    objective: Literal["cost", "energy", "carbon"] = "cost"
    idle: Literal["idle", "off"] = "idle"
    load_segments: int = Field(3, ge=1, description="Pieces of each recipe's power curve (count).")
    energy_cap_kwh: float | None = Field(None, gt=0, description="Cap on the horizon's energy (kWh); None: none.")
    carbon_cap_kg: float | None = Field(None, gt=0, description="Cap on the horizon's carbon (kgCO2); None: none.")
    time_limit_s: float = Field(60.0, gt=0, description="Solver time limit per plan (s).")
    mip_rel_gap: float = Field(1e-3, ge=0, le=1, description="Relative MIP gap at which the solver stops.")
    method: Literal["auto", "monolithic", "decomposed"] = Field("auto", description="How plan_capacity solves: "
                                                                 "the whole MILP or period by period.")


CAPACITY_METRICS: dict[str, MetricType] = {
    "cost_usd": "float", "cost_usd_per_h": "float", "energy_kwh": "float", "carbon_kg": "float",
    "peak_power_w": "float", "servers": "int", "fleet": "str", "solve_status": "str", "solve_objective": "float",
    "solve_bound": "float", "solve_gap": "float", "solve_wall_time_s": "float", "solve_backend": "str",
}
"""The plan's totals and its solve report (``solve_wall_time_s`` = build + solve time of the report)."""
_PLAN_OPTIONS = ("time_limit_s", "mip_rel_gap", "method")


def _capacity_shared(o: dict) -> dict[str, tuple]:
    keys = {"profile": ("profile", o["profile"]), "catalogue": ("catalogue",)}
    if o["trace"] is not None and o["rates"] is None:
        keys["trace"] = ("trace", o["trace"], None)
    return keys


def _capacity_derived(o: dict) -> dict[str, tuple]:
    hw = tuple(o["hardware"]) if o["hardware"] else None
    return {"recipes": ("recipes", o["profile"], hw, float(o["slo_scale"]), int(o["load_segments"]))}


def derive_capacity(key: tuple, shared: Mapping[str, Any]):
    """The :class:`~dynaplan.capacity.RecipeSet` of a derived key: one recipe question, asked once per sweep."""
    from dynaplan import capacity

    _, _, hw, slo_scale, load_segments = key
    return capacity.recipe_set(profile=shared["profile"], hardware=hw, catalogue=shared["catalogue"],
                               slo_scale=slo_scale, load_segments=load_segments)


def _value(x):
    return getattr(x, "value", x)


def run_capacity(o: dict, shared: Mapping[str, Any]) -> dict:
    """One capacity plan of the resolved options; its cost, energy, carbon, fleet and solve report."""
    from dynaplan import capacity

    kw = {k: v for k, v in o.items() if k not in _PLAN_OPTIONS}
    kw["profile"], kw["catalogue"] = shared["profile"], shared["catalogue"]
    if "trace" in shared:
        kw["trace"] = shared["trace"]
    if shared.get("recipes") is not None:  # computed once for the sweep; checked against this problem
        kw["recipes"] = shared["recipes"]
    if kw["availability"] is not None:
        kw["availability"] = {hw: tuple(mm) for hw, mm in kw["availability"].items()}
    plan = capacity.plan_capacity(capacity.capacity_problem(**kw), time_limit_s=o["time_limit_s"],
                                  mip_rel_gap=o["mip_rel_gap"], method=o["method"])
    rep = plan.report
    fleet = {str(k): int(v) for k, v in dict(plan.fleet).items()}
    return {"cost_usd": plan.cost_usd, "cost_usd_per_h": plan.cost_usd_per_h, "energy_kwh": plan.energy_kwh,
            "carbon_kg": plan.carbon_kg, "peak_power_w": plan.peak_power_w, "servers": sum(fleet.values()),
            "fleet": json.dumps(fleet, sort_keys=True), "solve_status": str(_value(rep.status)),
            "solve_objective": rep.objective, "solve_bound": rep.bound, "solve_gap": rep.gap,
            "solve_wall_time_s": rep.solve_time_s + rep.build_time_s, "solve_backend": None if rep.backend is None else str(_value(rep.backend))}


CAPACITY = register(ScenarioKind(
    name="capacity", options=CapacityScenario, metrics=CAPACITY_METRICS, run=run_capacity, shared=_capacity_shared,
    path_options=("profile", "trace", "carbon"), requires=("dynaplan.capacity",),
    derived=_capacity_derived, derive=derive_capacity,
    description="one capacity plan (dynaplan.capacity.plan_capacity)"))


__all__ = ["CAPACITY", "CAPACITY_METRICS", "CapacityScenario", "KINDS", "REPLAY", "REPLAY_METRICS", "ReplayScenario",
           "ScenarioKind", "get_kind", "load_shared", "register", "run_capacity", "run_replay", "scaled_slos"]
