"""The replay engine: step a trace through a policy at the hierarchy's time scales and account for it.

    inp = prepare(trace, inventory={"h100-80gb": 40})          # load, profile tables, grid series
    result = replay(inp, DynamoLLM())                           # or any Policy
    result.summary.energy_kwh, result.summary.slo_attainment, result.windows

Time scales (``ReplayOptions``): windows of ``window_s`` (5 s, the instance level), pool epochs
of ``pool_epoch_s`` (5 min) and cluster epochs of ``cluster_epoch_s`` (30 min). At the start of
every pool epoch the policy sees the history (never the future, unless clairvoyant) and returns a
deployment or keeps its own; the engine applies it with the transition costs of
:mod:`dynaplan.domain.transitions` (:mod:`dynaplan.replay.state`) and serves the epoch's
windows in one vectorised pass (:mod:`dynaplan.replay.evaluate`).

Accounting per window ``w`` of length ``dt`` (``ReplayResult.windows``):

* energy (J) = ``dt x (sum_g n_eff P_inst + idle GPUs x P_idle + booting GPUs x P_start +
  draining GPUs x P_transition) + re-shard/re-clock energy``, where idle GPUs are GPUs of running
  servers that hold no serving instance;
* requests, requests within SLO, unserved requests, by true class;
* servers: active servers (running, booting or draining); cost = server-hours x
  ``HardwareType.price_usd_per_server_h`` + energy x electricity price; carbon = energy x grid
  intensity, both hourly series mapped onto the trace by UTC hour of day (:mod:`dynaplan.replay.grid`).

Totals (``ReplayResult.summary``): energy (kWh; serving, idle, transitions), SLO attainment
overall and per class, P50/P99 TTFT and TBT (:mod:`dynaplan.replay.latency`), average and peak
servers, carbon (kgCO2), cost (USD), transitions, wall time.
"""

from __future__ import annotations

import math
import time
from typing import Literal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from dynaplan.domain.slo import DEFAULT_SLOS, SLOTable
from dynaplan.errors import ValidationError
from dynaplan.limits import REPLAY_EPOCHS
from dynaplan.planning.problem import Inventory
from dynaplan.planning.validate import check_inputs
from dynaplan.profiles.profile import Profile
from dynaplan.domain.transitions import TransitionCosts, clock_cost, start_power_w, transition_power_w
from dynaplan.replay.deployment import Deployment
from dynaplan.replay.evaluate import Groups, evaluate
from dynaplan.replay.grid import GridSeries
from dynaplan.replay.latency import LatencyHistogram
from dynaplan.replay.load import WindowLoad, window_load
from dynaplan.replay.policy import Observation, PeakLoad, Policy, ReplayContext
from dynaplan.replay.state import ReplayState
from dynaplan.replay.tables import ProfileTables
from dynaplan.validation import InputModel, checked

IdlePowerMode = Literal["busy-fraction", "linear", "hold"]  # replay.tables.IDLE_POWER_MODES
GridMode = Literal["hour_of_day", "calendar"]               # replay.grid.MAPPING_MODES
from dynaplan.workload.aggregate import check_window_count
from dynaplan.workload.classify import classify_trace
from dynaplan.workload.trace import Trace


class ReplayOptions(InputModel):
    """Time scales and modelling choices of a replay."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_s: float = Field(5.0, gt=0, description="Window of the instance level and of the accounting (s).")
    pool_epoch_s: float = Field(300.0, gt=0, description="Pool-level period: the policy decides this often (s).")
    cluster_epoch_s: float = Field(1800.0, gt=0, description="Cluster-level period (s); a multiple of the pool epoch.")
    rate_window_s: float = Field(30.0, gt=0, description="Trailing window of the rate that sets latency and "
                                 "power (s); see dynaplan.replay.load.")
    instance_headroom: float = Field(0.05, ge=0, description="The instance level keeps its utilisation at the "
                                     "observed load below 1/(1+headroom) (fraction).")
    prehistory_s: float | None = Field(None, ge=0, description="Seconds of the trace's start shown to policies, "
                                       "mirrored in time, as the time before it (s); None: one cluster epoch.")
    predictor_accuracy: float = Field(0.81, ge=0, le=1, description="Output-length predictor accuracy (fraction).")
    predictor_over_fraction: float = Field(0.5, ge=0, le=1, description="Share of mis-predictions to the larger "
                                           "output bin (fraction).")
    predictor_seed: int = Field(0, description="Seed of the simulated predictor.")
    idle_power: IdlePowerMode = Field("busy-fraction", description="Power below the lightest profiled load: "
                                      "busy-fraction, linear or hold (dynaplan.replay.tables).")
    grid_mode: GridMode = Field("hour_of_day", description="Mapping of trace time onto the grid series: "
                                "hour_of_day or calendar.")

    # Per-field checks, so that an error carries the field's location (``loc``) and its message
    # starts with the field's name. Each compares with an earlier field, skipped if that one failed.

    @field_validator("pool_epoch_s", "cluster_epoch_s")
    @classmethod
    def _whole_multiple(cls, value: float, info: ValidationInfo) -> float:
        unit = {"pool_epoch_s": "window_s", "cluster_epoch_s": "pool_epoch_s"}[info.field_name]
        small = info.data.get(unit)
        if small is not None:
            r = value / small
            if r < 1 or abs(r - round(r)) > 1e-9:
                raise ValueError(f"{info.field_name} must be a whole multiple of {unit} ({small:g} s); "
                                 f"got {value:g} s")
        return value

    @field_validator("rate_window_s")
    @classmethod
    def _rate_window(cls, value: float, info: ValidationInfo) -> float:
        window = info.data.get("window_s")
        if window is not None and value < window:
            raise ValueError(f"rate_window_s must be >= window_s ({window:g} s); got {value:g} s")
        return value


@dataclass(frozen=True, eq=False)
class ReplayInput:
    """A trace prepared once for any number of policies (see :func:`prepare`)."""

    load: WindowLoad
    profile: Profile
    tables: ProfileTables
    slos: SLOTable
    inventory: Mapping[str, int]
    options: ReplayOptions
    transition_costs: TransitionCosts
    carbon_g_per_kwh: np.ndarray
    price_usd_per_mwh: np.ndarray
    model: str
    grid: GridSeries
    out_of_profile: np.ndarray | None = None  # (W, C) requests beyond the classes' token range, by true class


class ReplaySummary(BaseModel):
    """Totals of one replay."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: str
    trace: str = Field(description="The trace's label (SYNTHETIC: ... or measured: ...).")
    synthetic: bool
    duration_s: float = Field(description="Replayed time (s).")
    requests: int = Field(description="Requests in the trace (count).")
    energy_kwh: float = Field(description="GPU energy, all states and transitions (kWh).")
    serving_kwh: float = Field(description="Energy of serving instances (kWh).")
    idle_kwh: float = Field(description="Energy of idle GPUs on running servers (kWh).")
    transition_kwh: float = Field(description="Energy of boots, drains, re-shards and clock changes (kWh).")
    slo_attainment: float = Field(description="Share of requests served within their TTFT and TBT SLO (fraction).")
    slo_attainment_by_class: dict[str, float] = Field(description="Same, by true class (fraction; NaN if none).")
    unserved_requests: float = Field(description="Requests whose pool had no instance up (count).")
    out_of_profile_requests: int = Field(
        default=0, description="Requests longer than the profile's classes cover (ClassScheme.out_of_profile): "
        "served and counted, never as within SLO (count).")
    ttft_p50_ms: float
    ttft_p99_ms: float
    tbt_p50_ms: float
    tbt_p99_ms: float
    avg_servers: float = Field(description="Time-averaged active servers (count).")
    peak_servers: float = Field(description="Most active servers in any window (count).")
    avg_power_kw: float
    peak_power_kw: float = Field(description="Highest window-average power (kW).")
    carbon_kg: float = Field(description="Operational carbon of the GPU energy (kgCO2).")
    cost_usd: float = Field(description="Server-hours x price + energy x electricity price (USD).")
    server_cost_usd: float
    energy_cost_usd: float
    transitions: dict[str, float] = Field(description="Counts of servers started/released/moved, re-shards, "
                                          "re-clocks; transition energy (J).")
    decisions: int = Field(description="Policy calls (count).")
    deployments_applied: int = Field(description="Decisions that changed the deployment (count).")
    decide_time_s: float = Field(description="Wall time spent in the policy (s).")
    wall_time_s: float = Field(description="Wall time of the replay (s).")


@dataclass(frozen=True, eq=False)
class ReplayResult:
    """Summary plus per-window accounting (index ``window_start_s``), servers per pool over time
    (columns = pools) and instance-hours by configuration."""

    summary: ReplaySummary
    windows: pd.DataFrame
    pool_servers: pd.DataFrame
    config_hours: pd.DataFrame

    @property
    def policy(self) -> str:
        return self.summary.policy


@checked
def prepare(trace: Trace, *, profile: Profile | None = None, slos: SLOTable = DEFAULT_SLOS,
            inventory: Mapping[str, int] | None = None, options: ReplayOptions | None = None,
            grid: GridSeries | None = None, transition_costs: TransitionCosts | None = None,
            model: str | None = None) -> ReplayInput:
    """Classify the trace (true and predicted classes), build the per-window load, the profile's
    lookup tables and the per-window carbon intensity and price."""
    options = options or ReplayOptions()
    if len(trace) == 0:
        raise ValidationError(f"trace {trace.name!r} holds no requests: nothing to replay (SLO attainment and "
                              "energy per request are undefined)")
    check_window_count(trace, options.window_s, f"options.window_s={options.window_s:g} s")
    REPLAY_EPOCHS.check(trace.duration_s / options.pool_epoch_s, f"options.pool_epoch_s={options.pool_epoch_s:g} s",
                        f"cuts the {trace.duration_s:g} s of trace {trace.name!r} into")
    profile = profile or Profile.default()
    inventory = dict(inventory or {"h100-80gb": 40})
    if not inventory:
        raise ValidationError(f"inventory {inventory}: expected server counts >= 0 of known hardware "
                              f"{sorted(profile.hardware)}")
    inventory, model = check_inputs(profile, inventory, slos, model)  # the Planner's checks
    inventory = dict(inventory.servers)
    cls = classify_trace(trace, profile.classes, accuracy=options.predictor_accuracy,
                         over_fraction=options.predictor_over_fraction, seed=options.predictor_seed)
    load = window_load(trace, cls, window_s=options.window_s, rate_window_s=options.rate_window_s)
    oop = _out_of_profile(trace, cls.true_class, profile.classes, load.n_windows, load.window_s)
    tables = ProfileTables.build(profile, slos, hardware=tuple(inventory), model=model, idle_power=options.idle_power)
    grid = grid or GridSeries.default()
    if grid.mode != options.grid_mode:
        grid = GridSeries(grid.carbon, grid.price, options.grid_mode)
    carbon, price = grid.per_window(load.start, load.n_windows, load.window_s)
    return ReplayInput(load=load, profile=profile, tables=tables, slos=slos, inventory=inventory, options=options,
                       transition_costs=transition_costs or TransitionCosts(), carbon_g_per_kwh=carbon,
                       price_usd_per_mwh=price, model=model, grid=grid, out_of_profile=oop)


def _out_of_profile(trace: Trace, true_class: np.ndarray, scheme, n_windows: int, window_s: float) -> np.ndarray:
    """(W, C) requests longer than ``scheme`` covers, by window and true class."""
    beyond = scheme.out_of_profile(trace.input_tokens, trace.output_tokens)
    c = scheme.n_classes
    w = np.minimum(np.floor_divide(trace.arrival_s[beyond], window_s).astype(np.int64), n_windows - 1)
    key = w * c + true_class[beyond].astype(np.int64)
    return np.bincount(key, minlength=n_windows * c).reshape(n_windows, c).astype(np.float64)


def _groups(inp: ReplayInput, dep: Deployment,
            hw_names: list[str]) -> tuple[Groups, list[tuple[str, str, int]], list[str]]:
    tab, names = inp.tables, inp.load.class_names
    pools = list(dep.pools)  # none (a policy that runs nothing, e.g. no traffic forecast): all unserved
    pidx = {p: i for i, p in enumerate(pools)}
    c_n = len(names)
    routing = np.zeros((c_n, len(pools)))
    serving = {g.pool for g in dep.groups}  # pools with instances (up or booting)
    for ci, c in enumerate(names):
        shares = {p: v for p, v in (dep.routing.get(c) or {}).items() if p in serving and v > 0}
        if not shares:
            order = [c] + list(names[ci + 1:]) + pools
            first = next((p for p in order if p in serving), None)
            if first is None:
                continue  # no pool has an instance: the class is unserved
            shares = {first: 1.0}
        tot = sum(shares.values())
        for p, v in shares.items():
            routing[ci, pidx[p]] = v / tot
    g_n = len(dep.groups)
    key = np.zeros(g_n, dtype=np.int64)
    fixed = np.full(g_n, -1, dtype=np.int64)
    weight = np.zeros((g_n, c_n))
    idle_w = np.full((g_n, c_n), 1.0 / c_n)
    for j, g in enumerate(dep.groups):
        if g.hardware not in inp.inventory:
            raise ValidationError(f"deployment uses hardware {g.hardware!r}, not in the inventory "
                                  f"{dict(inp.inventory)}")
        key[j] = tab.key_of(g.hardware, g.tp)
        if g.freq_mhz is not None:
            fixed[j] = tab.clock_col(key[j], g.freq_mhz)
        for c, v in g.weight.items():
            if c not in names:
                raise ValidationError(f"group {g.pool}/TP{g.tp}: weight for unknown class {c!r}")
            weight[j, names.index(c)] = v
        if g.pool in names:
            idle_w[j] = 0.0
            idle_w[j, names.index(g.pool)] = 1.0
    pool = np.array([pidx[g.pool] for g in dep.groups], dtype=np.int64)
    count = np.array([g.count for g in dep.groups], dtype=float)
    col = np.where(fixed >= 0, fixed, tab.n_clocks[key] - 1)
    cap = np.maximum(tab.lmax[key, col, :], 1e-9)  # (G, C) capacity at the group's (top) clock
    for p in range(len(pools)):
        m = pool == p
        for ci in range(c_n):
            if routing[ci, p] > 0 and m.any() and (count[m] * weight[m, ci]).sum() <= 0:
                weight[m, ci] = cap[m, ci]
    hw = np.array([hw_names.index(g.hardware) for g in dep.groups], dtype=np.int64)
    tp = np.array([g.tp for g in dep.groups], dtype=np.int64)
    grp = Groups(key=key, tp=tp, hw=hw, fixed_col=fixed, pool=pool, count=count, weight=weight, idle_weight=idle_w,
                 routing=routing)
    return grp, [(g.pool, g.hardware, g.tp) for g in dep.groups], pools


@checked
def replay(inp: ReplayInput, policy: Policy, *, progress: Callable[[int, int], None] | None = None) -> ReplayResult:
    """Replay ``inp`` through ``policy`` (see the module docstring)."""
    t_start = time.perf_counter()
    opts, load, tab = inp.options, inp.load, inp.tables
    dt = load.window_s
    n_w = load.n_windows
    pe = int(round(opts.pool_epoch_s / dt))
    ce = int(round(opts.cluster_epoch_s / dt))
    pre_s = opts.cluster_epoch_s if opts.prehistory_s is None else opts.prehistory_s
    n_pre = min(n_w, int(round(pre_s / dt)))
    pred = load.predicted_rps()
    raw = load.counts.sum(axis=2, dtype=np.float64) / dt
    ext_pred = np.concatenate([pred[:n_pre][::-1], pred])  # the start, mirrored, stands for the time before it
    ext_raw = np.concatenate([raw[:n_pre][::-1], raw])
    for a in (ext_pred, ext_raw, pred):
        a.setflags(write=False)
    hardware = {h: inp.profile.hardware[h] for h in inp.inventory}
    hw_names = list(hardware)
    ctx = ReplayContext(profile=inp.profile, tables=tab, slos=inp.slos, inventory=dict(inp.inventory),
                        class_names=load.class_names, window_s=dt, pool_epoch_s=opts.pool_epoch_s,
                        cluster_epoch_s=opts.cluster_epoch_s, duration_s=load.duration_s, n_windows=n_w,
                        prehistory_windows=n_pre, transition_costs=inp.transition_costs, model=inp.model,
                        peak=PeakLoad(load.rates, load.class_names) if (policy.sized_for_peak or policy.clairvoyant)
                        else None)
    policy.reset(ctx)
    free = policy.free_transitions
    state = ReplayState(hardware=hardware, costs=inp.transition_costs, model=inp.model, free=free)

    # per-key transition constants
    stall_frac = np.zeros(tab.n_keys)
    clock_e = np.zeros(tab.n_keys)
    if not free:
        for k, (h, tp) in enumerate(tab.keys):
            c = clock_cost(inp.transition_costs.params(inp.model, h), hardware[h], range(tp), 1.0, 1.0)
            stall_frac[k] = min(c.duration_s / dt, 0.5)
            clock_e[k] = c.energy_j
    hwc = _HardwareConstants.of(inp, hardware)

    c_n = len(load.class_names)
    cols = {k: np.zeros(n_w) for k in ("serving_j", "idle_j", "transition_j", "servers", "server_cost_usd",
                                        "gpus_serving", "max_utilisation", "clock_changes")}
    req = np.zeros((n_w, c_n))
    met = np.zeros((n_w, c_n))
    unserved = np.zeros((n_w, c_n))
    pool_servers: dict[str, np.ndarray] = {}
    hist = LatencyHistogram(c_n)
    instance_s = np.zeros((tab.n_keys, tab.width))
    prev_cols: dict[tuple[str, str, int], int] = {}
    grp = keys = None
    n_epochs = math.ceil(n_w / pe)
    decide_s, applied = 0.0, 0
    for e in range(n_epochs):
        w0, w1 = e * pe, min(n_w, (e + 1) * pe)
        t = w0 * dt
        obs = Observation(now_s=t, window=w0, level="cluster" if w0 % ce == 0 else "pool",
                          history_rps=ext_pred[: n_pre + w0], history_raw_rps=ext_raw[: n_pre + w0],
                          current=state.deployment, window_s=dt, future_rps=pred if policy.clairvoyant else None)
        t0 = time.perf_counter()
        dep = policy.decide(obs)
        decide_s += time.perf_counter() - t0
        if dep is not None and dep != state.deployment:
            if not isinstance(dep, Deployment):
                raise ValidationError(f"policy {policy.label} returned {type(dep).__name__}; expected a Deployment")
            state.apply(dep, t)
            grp, keys, _ = _groups(inp, dep, hw_names)
            applied += 1
        if state.deployment is None:
            raise ValidationError(f"policy {policy.label} gave no deployment at its first decision (t = {t:g} s)")
        state.forget_before(t)
        arr = state.window_arrays(w0, w1, dt, keys, grp.count)
        n_eff = np.maximum(arr["n_avail"] - arr["stall"], 0.0)
        rates = load.rates[w0:w1]
        if policy.clairvoyant:
            obs_rates = rates
        else:
            obs_rates = load.rates[w0 - 1:w1 - 1] if w0 > 0 else np.concatenate([load.rates[:1], load.rates[:w1 - 1]])
        prev = np.array([prev_cols.get(k, -1) for k in keys], dtype=np.int64)
        out = evaluate(tab, grp, n_eff, arr["n_avail"], load.counts[w0:w1], rates, obs_rates,
                       n_hw=len(hw_names), headroom=opts.instance_headroom, stall_frac=stall_frac,
                       clock_energy_j=clock_e, prev_col=prev, window_s=dt, hist=hist, instance_s=instance_s)
        if out.cols.size:
            for j, k in enumerate(keys):
                prev_cols[k] = int(out.cols[-1, j])
        idle_w, trans_w, servers, srv_cost = _gpu_states(arr, out.held_gpus, hwc, dt)
        sl = slice(w0, w1)
        cols["serving_j"][sl] = out.serving_power_w * dt
        cols["idle_j"][sl] = idle_w * dt
        cols["transition_j"][sl] = trans_w * dt + arr["event_energy_j"] + out.clock_energy_j
        cols["servers"][sl] = servers
        cols["server_cost_usd"][sl] = srv_cost
        cols["gpus_serving"][sl] = out.held_gpus.sum(axis=1)
        cols["max_utilisation"][sl] = out.max_util
        cols["clock_changes"][sl] = out.clock_changes
        state.counts.reclocks_instance_level += float(out.clock_changes.sum())
        req[sl], met[sl], unserved[sl] = out.requests, out.met, out.unserved
        for p, v in arr["pool_servers"].items():
            pool_servers.setdefault(p, np.zeros(n_w))[sl] = v
        if progress is not None:
            progress(e + 1, n_epochs)
    return _result(inp, policy, cols, req, met, unserved, pool_servers, hist, instance_s, state,
                   n_epochs, applied, decide_s, time.perf_counter() - t_start)


@dataclass(frozen=True)
class _HardwareConstants:
    """Per hardware type (inventory order): GPU power when idle, booting, in transition (W); price."""

    names: tuple[str, ...]
    idle_w: np.ndarray
    start_w: np.ndarray
    transition_w: np.ndarray
    price_usd_per_server_h: np.ndarray

    @classmethod
    def of(cls, inp: ReplayInput, hardware: Mapping) -> "_HardwareConstants":
        names = tuple(hardware)
        params = [inp.transition_costs.params(inp.model, h) for h in names]
        idle = np.array([hardware[h].idle_power_w for h in names])
        start = np.array([start_power_w(p, hardware[h]) for h, p in zip(names, params)])
        trans = np.array([transition_power_w(p, hardware[h]) for h, p in zip(names, params)])
        price = np.array([hardware[h].price_usd_per_server_h for h in names])
        return cls(names, idle, start, trans, price)


def _gpu_states(arr: dict, held_gpus: np.ndarray, hwc: _HardwareConstants, dt: float):
    """Per window: idle-GPU power and boot/drain power (W), active servers, server cost (USD).
    Idle GPUs are GPUs of running servers not held by an instance that is up."""
    nw = held_gpus.shape[0]
    idle_w, trans_w, servers, cost = np.zeros(nw), np.zeros(nw), np.zeros(nw), np.zeros(nw)
    for i, h in enumerate(hwc.names):
        idle_w += np.maximum(arr["ready_gpus"][h] - held_gpus[:, i], 0.0) * hwc.idle_w[i]
        trans_w += arr["boot_gpus"][h] * hwc.start_w[i] + arr["drain_gpus"][h] * hwc.transition_w[i]
        servers += arr["servers"][h]
        cost += arr["servers"][h] * hwc.price_usd_per_server_h[i] * dt / 3600.0
    return idle_w, trans_w, servers, cost


def _result(inp, policy, cols, req, met, unserved, pool_servers, hist, instance_s, state, decisions, applied,
            decide_s, wall_s) -> ReplayResult:
    load, dt, tab = inp.load, inp.load.window_s, inp.tables
    oop = inp.out_of_profile if inp.out_of_profile is not None else np.zeros_like(req)
    met = np.minimum(met, np.maximum(req - oop, 0.0))  # beyond the profile is never within SLO
    energy_j = cols["serving_j"] + cols["idle_j"] + cols["transition_j"]
    kwh = energy_j / 3.6e6
    carbon_kg = kwh * inp.carbon_g_per_kwh / 1e3
    energy_cost = kwh * inp.price_usd_per_mwh / 1e3
    index = pd.Index(np.arange(load.n_windows) * dt, name="window_start_s")
    windows = pd.DataFrame({
        "power_w": energy_j / dt, "energy_j": energy_j, "serving_j": cols["serving_j"], "idle_j": cols["idle_j"],
        "transition_j": cols["transition_j"], "servers": cols["servers"], "gpus_serving": cols["gpus_serving"],
        "requests": req.sum(axis=1), "met": met.sum(axis=1), "unserved": unserved.sum(axis=1),
        "max_utilisation": cols["max_utilisation"], "clock_changes": cols["clock_changes"],
        "carbon_kg": carbon_kg, "server_cost_usd": cols["server_cost_usd"], "energy_cost_usd": energy_cost,
        "carbon_g_per_kwh": inp.carbon_g_per_kwh, "price_usd_per_mwh": inp.price_usd_per_mwh,
    }, index=index)
    ps = pd.DataFrame(pool_servers, index=index)
    ps.columns.name = "pool"
    rows = []
    for k, (h, tp) in enumerate(tab.keys):
        for f in range(tab.n_clocks[k]):
            if instance_s[k, f] > 0:
                rows.append((h, tp, int(tab.clocks_mhz[k, f]), instance_s[k, f] / 3600.0))
    config_hours = pd.DataFrame(rows, columns=["hardware", "tp", "freq_mhz", "instance_hours"])
    names = load.class_names
    per_req = req.sum(axis=0)
    per_met = met.sum(axis=0)
    total = float(per_req.sum())
    trans = state.counts.as_dict()
    summary = ReplaySummary(
        policy=policy.label, trace=load.label, synthetic=load.synthetic, duration_s=load.n_windows * dt,
        requests=int(round(total)), energy_kwh=float(kwh.sum()), serving_kwh=float(cols["serving_j"].sum() / 3.6e6),
        idle_kwh=float(cols["idle_j"].sum() / 3.6e6), transition_kwh=float(cols["transition_j"].sum() / 3.6e6),
        slo_attainment=float(per_met.sum() / total) if total > 0 else float("nan"),
        slo_attainment_by_class={c: (float(per_met[i] / per_req[i]) if per_req[i] > 0 else float("nan"))
                                 for i, c in enumerate(names)},
        unserved_requests=float(unserved.sum()), out_of_profile_requests=int(round(float(oop.sum()))),
        ttft_p50_ms=hist.percentile("ttft", 50), ttft_p99_ms=hist.percentile("ttft", 99),
        tbt_p50_ms=hist.percentile("tbt", 50), tbt_p99_ms=hist.percentile("tbt", 99),
        avg_servers=float(cols["servers"].mean()), peak_servers=float(cols["servers"].max()),
        avg_power_kw=float(energy_j.sum() / (load.n_windows * dt) / 1e3),
        peak_power_kw=float((energy_j / dt).max() / 1e3),
        carbon_kg=float(carbon_kg.sum()), cost_usd=float(cols["server_cost_usd"].sum() + energy_cost.sum()),
        server_cost_usd=float(cols["server_cost_usd"].sum()), energy_cost_usd=float(energy_cost.sum()),
        transitions=trans, decisions=decisions, deployments_applied=applied, decide_time_s=decide_s,
        wall_time_s=wall_s)
    return ReplayResult(summary=summary, windows=windows, pool_servers=ps, config_hours=config_hours)


@checked
def compare(inp: ReplayInput, policies: Iterable[Policy], *,
            progress: Callable[[str, int, int], None] | None = None) -> list[ReplayResult]:
    """Replay the same input through several policies."""
    out = []
    for pol in policies:
        cb = None if progress is None else (lambda i, n, _p=pol: progress(_p.label, i, n))
        out.append(replay(inp, pol, progress=cb))
    return out


def comparison_table(results: Iterable[ReplayResult], baseline: str = "SinglePool") -> pd.DataFrame:
    """One row per policy: energy (kWh and % vs ``baseline``), SLO attainment, P99 TTFT/TBT,
    servers, carbon, cost (and % vs baseline)."""
    rows = [r.summary for r in results]
    df = pd.DataFrame({
        "energy_kwh": [s.energy_kwh for s in rows],
        "slo_attainment": [s.slo_attainment for s in rows],
        "ttft_p99_ms": [s.ttft_p99_ms for s in rows], "tbt_p99_ms": [s.tbt_p99_ms for s in rows],
        "ttft_p50_ms": [s.ttft_p50_ms for s in rows], "tbt_p50_ms": [s.tbt_p50_ms for s in rows],
        "avg_servers": [s.avg_servers for s in rows], "peak_servers": [s.peak_servers for s in rows],
        "carbon_kg": [s.carbon_kg for s in rows], "cost_usd": [s.cost_usd for s in rows],
        "transition_kwh": [s.transition_kwh for s in rows], "idle_kwh": [s.idle_kwh for s in rows],
        "wall_time_s": [s.wall_time_s for s in rows],
    }, index=pd.Index([s.policy for s in rows], name="policy"))
    if baseline in df.index:
        b = df.loc[baseline]
        for col in ("energy_kwh", "carbon_kg", "cost_usd", "ttft_p99_ms", "tbt_p99_ms"):
            df[col.rsplit("_", 1)[0] + "_vs_baseline_pct"] = (df[col] / b[col] - 1.0) * 100.0
    return df


def baseline_peak_instances(inp: ReplayInput, hardware: str | None = None, tp: int = 8) -> float:
    """Peak utilisation of the whole trace in instances of TP ``tp`` at the maximum clock: what
    SinglePool is sized for (fractional)."""
    tab = inp.tables
    hw = hardware or next(iter(inp.inventory))
    k = tab.key_of(hw, tp)
    cap = tab.ref[k, tab.n_clocks[k] - 1, :]
    return float(np.einsum("wct,t->w", inp.load.rates, 1.0 / cap).max())


def scale_to_baseline(trace: Trace, servers: float, *, prepare_kwargs: Mapping | None = None, seed: int = 0,
                      hardware: str | None = None, tp: int = 8, label: str | None = None) -> tuple[Trace, float]:
    """``trace`` with its rate scaled (:func:`scale_trace`) so that SinglePool — TP ``tp`` at the
    maximum clock, sized for the trace's peak — needs ``servers`` servers (fractional: the peak
    utilisation). Returns (trace, factor). A scaled trace beyond
    :data:`dynaplan.limits.MAX_TRACE_REQUESTS` is refused before it is built, naming ``label``."""
    from dynaplan.replay.load import scale_trace

    kw = dict(prepare_kwargs or {})
    inp = prepare(trace, **kw)
    hw = hardware or next(iter(inp.inventory))
    per_server = inp.profile.hardware[hw].gpus_per_server // tp
    target = servers * per_server
    factor = target / max(baseline_peak_instances(inp, hw, tp), 1e-9)
    for _ in range(2):  # superposition is random: correct the factor on the scaled trace
        scaled = scale_trace(trace, factor, seed=seed, label=label)
        got = baseline_peak_instances(prepare(scaled, **kw), hw, tp)
        factor *= target / max(got, 1e-9) * 0.999
    return scale_trace(trace, factor, seed=seed, label=label), factor
