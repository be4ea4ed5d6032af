"""An independent plan checker.

:func:`check_plan` recomputes every figure a :class:`~dynaplan.planning.plan.Plan` reports from
the raw profile table alone and compares it with the plan's claim. It is an *independent copy of
the physics on purpose*: it reads :attr:`Profile.table` with its own grouping, its own SLO scan and
``numpy.interp``, and never imports the planner's formulations, operating points or the
:class:`Profile` query methods the planner uses, so a bug there cannot hide itself here.

What is recomputed and compared (``formulations/pool.md``, "Instance power" and "Packing"):

* per instance group: the configuration exists on a known hardware type, its TP degree is one the
  server can hold, every load is a known class, finite and >= 0, and routed to the pool the group
  is in by the spill policy (``PlannerOptions.spill``); utilisation ``U = sum_c l_c / l^max_c``
  (at most 1, the SLO), ``slo_margin = 1 - U``, power per instance
  ``P = sum_c (u_c / U) P_c(min(U, 1) l^max_c)`` (the pool class's lightest-load power when idle),
  group power and energy, load share;
* per pool: served load by class, GPUs held, servers needed to pack the instances (first-fit
  decreasing over groups; with TP degrees that are powers of two dividing the server, FFD packs
  perfectly, so the count is ``ceil(GPUs / GPUs per server)`` — arithmetic, not a loop over
  instances), idle GPUs and their power, pool power and energy;
* per plan: servers and GPUs by hardware type within the inventory, power, energy, the forecast
  (against the caller's ``forecast`` when given), served plus unserved load covering it, the
  unserved figure itself (``forecast - served``, to ``rtol`` of the forecast: a solver's
  feasibility tolerance leaves a served load short by ~1e-7 of it; unserved load only when
  ``options.best_effort``), and the solve
  reports (a solution exists, bound <= objective, gap >= 0, times finite and >= 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import ValidationError as PydanticValidationError

from dynaplan.domain.classes import ClassScheme
from dynaplan.domain.slo import SLOTable
from dynaplan.errors import ValidationError
from dynaplan.planning.plan import Plan, PoolPlan
from dynaplan.planning.problem import Inventory, PlannerOptions
from dynaplan.profiles.profile import Profile

_SAT_RTOL = 1e-6   # a point whose throughput is below its load by more than this fraction is saturated
_LOAD_ATOL_RPS = 1e-6  # absolute slack on load balances (the planner plans loads below 1e-9 as zero)
_UTIL_ATOL = 1e-6  # slack on utilisation <= 1 and on claimed utilisation / margin / shares
_MODES = ("hierarchical", "monolithic", "pool")
_SOLVED = ("optimal", "feasible")


@dataclass(frozen=True)
class PlanCheck:
    """The verdict: ``ok`` when no violation was found, with the figures recomputed."""

    ok: bool
    violations: tuple[str, ...]
    power_w: float = field(metadata={"unit": "W"})
    served_rps: dict = field(default_factory=dict, metadata={"unit": "req/s"})
    model: str = ""

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise AssertionError("plan check failed:\n  " + "\n  ".join(self.violations))


@dataclass(frozen=True)
class _Curve:
    """One (hardware, TP, clock, class) of the profile: load points, power, max load under the SLO."""

    load_rps: np.ndarray
    power_w: np.ndarray
    max_load_rps: float

    def power_at(self, load_rps: float) -> float:
        """Linear interpolation, held at the first point below the lightest load."""
        return float(np.interp(load_rps, self.load_rps, self.power_w))


class _Curves:
    """The profile table of one model, grouped once; curves built on first use."""

    def __init__(self, profile: Profile, model: str, slos: SLOTable) -> None:
        tab = profile.table
        self.tab = tab[tab["model"] == model].reset_index(drop=True)
        self.slos = slos
        self.rows = self.tab.groupby(["hardware", "tp", "freq_mhz", "request_class"], sort=False).indices
        self._cache: dict[tuple, _Curve | None] = {}

    def get(self, hardware: str, tp: int, freq_mhz: int, cls: str) -> _Curve | None:
        key = (hardware, tp, freq_mhz, cls)
        if key not in self._cache:
            idx = self.rows.get(key)
            self._cache[key] = None if idx is None else self._build(idx, self.slos[cls])
        return self._cache[key]

    def _build(self, idx: np.ndarray, slo) -> _Curve:
        g = self.tab.iloc[idx].sort_values("load_rps")
        load = g["load_rps"].to_numpy(dtype=float)
        ok = ((g["ttft_p99_ms"].to_numpy() <= slo.ttft_ms) & (g["tbt_p99_ms"].to_numpy() <= slo.tbt_ms)
              & (g["throughput_rps"].to_numpy() >= load * (1 - _SAT_RTOL)))
        n_ok = int(np.argmin(ok)) if not ok.all() else len(ok)  # the SLO-meeting prefix of the load points
        return _Curve(load, g["power_w"].to_numpy(dtype=float), float(load[n_ok - 1]) if n_ok else 0.0)


def allowed_pools(classes: ClassScheme, spill: str) -> dict[str, frozenset[str]]:
    """For each class, the pools (named by class) its load may be served in under ``spill``.

    Restated from the definition of ``PlannerOptions.spill``, not taken from the planner:
    'none' — its own pool; 'next' — its own and the next class's in input-major order;
    'larger' — every pool whose input bin and output bin are both at least the class's.
    """
    names = classes.names
    n_out = len(classes.output_bins.names)
    out = {}
    for i, c in enumerate(names):
        ri, ci = divmod(i, n_out)
        if spill == "none":
            pools = {c}
        elif spill == "next":
            pools = {c} | ({names[i + 1]} if i + 1 < len(names) else set())
        elif spill == "larger":
            pools = {d for j, d in enumerate(names) if divmod(j, n_out)[0] >= ri and divmod(j, n_out)[1] >= ci}
        else:
            raise ValidationError(f"check_plan: spill policy {spill!r}; expected 'none', 'next' or 'larger'")
        out[c] = frozenset(pools)
    return out


def _far(claim, truth: float, rtol: float, atol: float) -> bool:
    """True when ``claim`` is not within ``rtol`` (relative) + ``atol`` of ``truth``; a claim that
    is not a finite number is always far (inf would otherwise be "within inf of" anything)."""
    try:
        claim = float(claim)
    except (TypeError, ValueError):
        return True
    if not math.isfinite(claim):
        return True
    return not abs(claim - truth) <= rtol * max(abs(claim), abs(truth)) + atol


def _is_count(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_load(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def _servers_needed(gpus_by_tp: Mapping[int, int], gpus_per_server: int) -> int:
    """Servers first-fit decreasing needs for instances of the given TP degrees (GPUs by TP).

    Every TP degree is a power of two dividing ``gpus_per_server`` (checked by the caller), so the
    degrees divide one another: placed largest first, every server's free GPUs stay a multiple of
    the current degree, an instance fits in any server not yet full, and FFD fills servers one
    after another — ``ceil(total GPUs / gpus_per_server)`` servers, computed for any counts
    without a loop over instances.
    """
    total = sum(int(n) for n in gpus_by_tp.values())
    return -(-total // gpus_per_server)


def _resolve_model(profile: Profile, plan: Plan, model: str | None) -> str:
    """The model the plan is for: ``model``, or the plan's own, or the profile's only model."""
    plan_model = getattr(plan, "model", None)
    if model is not None and plan_model is not None and model != plan_model:
        raise ValidationError(f"check_plan: model={model!r} but the plan is for model {plan_model!r}")
    model = model or plan_model
    if model is None:
        if len(profile.models) != 1:
            raise ValidationError(f"check_plan: the profile holds models {list(profile.models)}; pass model=")
        model = profile.models[0]
    if model not in profile.models:
        raise ValidationError(f"check_plan: unknown model {model!r}; the profile holds {list(profile.models)}")
    return model


def _inventory(inventory) -> dict[str, int]:
    if isinstance(inventory, Inventory):
        return dict(inventory.servers)
    try:
        return dict(Inventory(servers=dict(inventory)).servers)
    except (PydanticValidationError, TypeError, ValueError) as exc:
        why = exc.errors()[0]["msg"] if isinstance(exc, PydanticValidationError) else str(exc)
        shown = repr(inventory)
        shown = shown if len(shown) <= 120 else shown[:117] + "..."
        raise ValidationError(f"check_plan: inventory {shown}: {' '.join(why.split())}; expected servers by "
                              f"hardware type (pass it second, as to Planner)") from None


def _forecast(forecast, names: tuple[str, ...]) -> dict[str, float]:
    f = dict(forecast.items()) if isinstance(forecast, (Mapping, pd.Series)) else None
    if f is None:
        raise ValidationError(f"check_plan: forecast must map request classes to req/s, got {type(forecast).__name__}")
    unknown = sorted(set(f) - set(names))
    if unknown:
        raise ValidationError(f"check_plan: forecast has unknown request class(es) {unknown}")
    out = {}
    for c in names:
        v = f.get(c, 0.0)
        if not _is_load(v):
            raise ValidationError(f"check_plan: forecast class {c} load {v!r} req/s; expected a finite value >= 0")
        out[c] = float(v)
    return out


def check_plan(profile: Profile, inventory: Inventory | Mapping[str, int], slos: SLOTable, plan: Plan, *,
               forecast: Mapping[str, float] | pd.Series | None = None, model: str | None = None,
               options: PlannerOptions | None = None, rtol: float = 1e-6) -> PlanCheck:
    """Check every figure ``plan`` claims against the profile, inventory and SLOs.

    Arguments come in :class:`~dynaplan.planning.Planner`'s order. ``forecast``: the load the plan
    was asked for (req/s by class); when given, ``plan.forecast_rps`` must equal it. ``model``: the
    profile's model the plan is for; needed when the profile holds several (and the plan does not
    say). ``options``: the planner options the plan was made with (spill policy, best effort;
    default ``PlannerOptions()``). ``rtol``: relative tolerance of every recomputed figure.

    Never trusts the plan's own numbers; returns a :class:`PlanCheck` listing each violation.
    Bad arguments (not a bad plan) raise :class:`~dynaplan.errors.ValidationError`.
    """
    if isinstance(inventory, SLOTable) or not isinstance(slos, SLOTable):
        raise ValidationError("check_plan: arguments are (profile, inventory, slos, plan), as to Planner; got "
                              f"{type(inventory).__name__} as inventory and {type(slos).__name__} as slos")
    try:
        slos.covers(profile.classes)
    except ValueError as exc:
        raise ValidationError(f"check_plan: SLO table: {exc}") from None
    model = _resolve_model(profile, plan, model)
    options = options or PlannerOptions()
    inv = _inventory(inventory)
    names = profile.classes.names
    routes = allowed_pools(profile.classes, options.spill)
    want = _forecast(forecast, names) if forecast is not None else None
    curves = _Curves(profile, model, slos)
    v: list[str] = []

    if plan.mode not in _MODES:
        v.append(f"plan mode {plan.mode!r}; expected one of {list(_MODES)}")
    epoch_s = plan.epoch_s
    if not (_is_load(epoch_s) and epoch_s > 0):
        v.append(f"plan epoch_s {epoch_s!r}; expected a finite value > 0")
        epoch_s = float("nan")

    served: dict[str, float] = {}
    power = 0.0
    servers: dict[str, int] = {}
    gpus: dict[str, int] = {}
    seen: set[str] = set()
    for pp in plan.pools:
        if pp.pool in seen:
            v.append(f"pool {pp.pool}: appears twice in the plan")
        seen.add(pp.pool)
        p_power, p_servers, p_gpus = _check_pool(pp, profile, curves, routes, epoch_s, rtol, served, v)
        power += p_power
        for h, n in p_servers.items():
            servers[h] = servers.get(h, 0) + n
        for h, n in p_gpus.items():
            gpus[h] = gpus.get(h, 0) + n

    # cluster totals and the inventory
    for h in sorted(set(servers) | set(plan.servers)):
        if plan.servers.get(h, 0) != servers.get(h, 0):
            v.append(f"{h}: plan claims {plan.servers.get(h, 0)} servers, its pools hold {servers.get(h, 0)}")
    for h in sorted(set(gpus) | set(plan.gpus)):
        if plan.gpus.get(h, 0) != gpus.get(h, 0):
            v.append(f"{h}: plan claims {plan.gpus.get(h, 0)} GPUs in use, its instances hold {gpus.get(h, 0)}")
    for h, n in servers.items():
        if n > inv.get(h, 0):
            v.append(f"{h}: plan uses {n} servers, inventory has {inv.get(h, 0)}")
    if _far(plan.power_w, power, rtol, 1e-6):
        v.append(f"plan claims {plan.power_w!r} W, recomputed {power:.6g} W")
    if _far(plan.energy_j, power * epoch_s, rtol, 1e-3):
        v.append(f"plan claims {plan.energy_j!r} J over {plan.epoch_s} s, recomputed {power * epoch_s:.6g} J")
    if not (_is_load(plan.approx_error_bound_w)):
        v.append(f"plan approx_error_bound_w {plan.approx_error_bound_w!r}; expected a finite value >= 0")
    if not _is_load(plan.wall_time_s):
        v.append(f"plan wall_time_s {plan.wall_time_s!r}; expected a finite value >= 0")

    _check_demand(plan, names, want, served, options.best_effort, rtol, v)
    _check_reports(plan, v)
    return PlanCheck(ok=not v, violations=tuple(v), power_w=power, served_rps=served, model=model)


def _check_pool(pp: PoolPlan, profile: Profile, curves: _Curves, routes: Mapping[str, frozenset[str]],
                epoch_s: float, rtol: float, served: dict[str, float], v: list[str]):
    """Recompute one pool; add its served load to ``served``; returns (power W, servers, GPUs)."""
    where = f"pool {pp.pool}"
    if pp.pool not in routes:
        v.append(f"{where}: not a request class of the profile ({list(routes)})")
    pool_served: dict[str, float] = {}
    group_power = 0.0
    gpus_by_tp: dict[str, dict[int, int]] = {}
    loads_per_group: list[float] = []
    for g in pp.groups:
        cfg = f"{where}: {g.hardware}/TP{g.tp}@{g.freq_mhz}"
        hw = profile.hardware.get(g.hardware)
        if hw is None:
            v.append(f"{cfg}: unknown hardware {g.hardware!r}")
            loads_per_group.append(0.0)
            continue
        if not _is_count(g.count) or g.count < 1:
            v.append(f"{cfg}: instance count {g.count!r}; expected an integer >= 1")
            loads_per_group.append(0.0)
            continue
        if not _is_count(g.tp) or g.tp not in hw.tp_degrees() or hw.gpus_per_server % g.tp:
            v.append(f"{cfg}: TP degree {g.tp!r} is not one a {hw.gpus_per_server}-GPU server holds "
                     f"({list(hw.tp_degrees())})")
            loads_per_group.append(0.0)
            continue
        util = 0.0
        shares: list[tuple[float, _Curve]] = []
        for c, load in g.load_rps_per_instance.items():
            if c not in routes:
                v.append(f"{cfg}: load of unknown class {c!r}")
                continue
            if not _is_load(load):
                v.append(f"{cfg}: class {c} load {load!r} req/s per instance; expected a finite value >= 0")
                continue
            if pp.pool not in routes[c]:
                v.append(f"{cfg}: class {c} routed to pool {pp.pool}, outside its spill targets {sorted(routes[c])}")
            cur = curves.get(g.hardware, g.tp, g.freq_mhz, c)
            if load > 0 and cur is None:
                v.append(f"{cfg}: no profile for class {c}")
                continue
            if load > 0 and cur.max_load_rps <= 0:
                v.append(f"{cfg}: cannot meet class {c}'s SLO at any profiled load")
                continue
            if load > 0:
                u = load / cur.max_load_rps
                util += u
                shares.append((u, cur))
            pool_served[c] = pool_served.get(c, 0.0) + load * g.count
        loads_per_group.append(sum(x for x in g.load_rps_per_instance.values() if _is_load(x)) * g.count)
        if util > 1 + _UTIL_ATOL:
            v.append(f"{cfg}: utilisation {util:.6f} > 1 (SLO broken)")
        if _far(g.utilisation, util, rtol, _UTIL_ATOL):
            v.append(f"{cfg}: claims utilisation {g.utilisation!r}, recomputed {util:.6g}")
        if _far(g.slo_margin, 1.0 - util, rtol, _UTIL_ATOL):
            v.append(f"{cfg}: claims slo_margin {g.slo_margin!r}, recomputed {1.0 - util:.6g}")
        if util > 0:
            p_inst = sum(u / util * cur.power_at(min(util, 1.0) * cur.max_load_rps) for u, cur in shares)
        else:
            own = curves.get(g.hardware, g.tp, g.freq_mhz, pp.pool)
            if own is None:
                v.append(f"{cfg}: idle instance with no profile for the pool class {pp.pool}")
                p_inst = float("nan")
            else:
                p_inst = float(own.power_w[0])
        if _far(g.power_w_per_instance, p_inst, rtol, 1e-6):
            v.append(f"{cfg}: claims {g.power_w_per_instance!r} W per instance, profile gives {p_inst:.6g} W")
        if _far(g.power_w, p_inst * g.count, rtol, 1e-6):
            v.append(f"{cfg}: claims group power {g.power_w!r} W, recomputed {p_inst * g.count:.6g} W")
        if _far(g.energy_j, p_inst * g.count * epoch_s, rtol, 1e-3):
            v.append(f"{cfg}: claims group energy {g.energy_j!r} J, recomputed {p_inst * g.count * epoch_s:.6g} J")
        group_power += p_inst * g.count
        gpus_by_tp.setdefault(g.hardware, {})
        gpus_by_tp[g.hardware][g.tp] = gpus_by_tp[g.hardware].get(g.tp, 0) + g.tp * g.count

    total = sum(loads_per_group)
    for g, load in zip(pp.groups, loads_per_group):
        share = load / total if total > 0 else 0.0
        if _far(g.load_share, share, rtol, _UTIL_ATOL):
            v.append(f"{where}: {g.hardware}/TP{g.tp}@{g.freq_mhz} claims load share {g.load_share!r}, "
                     f"recomputed {share:.6g}")
    for c in sorted(set(pool_served) | set(pp.served_rps)):
        truth = pool_served.get(c, 0.0)
        if _far(pp.served_rps.get(c, 0.0), truth, rtol, _LOAD_ATOL_RPS):
            v.append(f"{where}: claims it serves {pp.served_rps.get(c, 0.0)!r} req/s of class {c}, "
                     f"its instances carry {truth:.6g}")
        served[c] = served.get(c, 0.0) + truth

    servers: dict[str, int] = {}
    for h, n in pp.servers.items():
        if h not in profile.hardware:
            v.append(f"{where}: servers of unknown hardware {h!r}")
        elif not _is_count(n) or n < 0:
            v.append(f"{where}: {h} server count {n!r}; expected an integer >= 0")
        else:
            servers[h] = int(n)
    gpus = {h: sum(by_tp.values()) for h, by_tp in gpus_by_tp.items()}
    idle_w = 0.0
    for h in sorted(set(servers) | set(gpus) | set(pp.idle_gpus)):
        hw = profile.hardware.get(h)
        if hw is None:
            continue
        n = servers.get(h, 0)
        need = _servers_needed(gpus_by_tp.get(h, {}), hw.gpus_per_server)
        if need > n:
            v.append(f"{where}: instances hold {gpus.get(h, 0)} {h} GPUs and need {need} servers, plan gives {n}")
        idle = n * hw.gpus_per_server - gpus.get(h, 0)
        if pp.idle_gpus.get(h, 0) != idle:
            v.append(f"{where}: claims {pp.idle_gpus.get(h, 0)!r} idle {h} GPUs, recomputed {idle}")
        idle_w += max(idle, 0) * hw.idle_power_w
    if _far(pp.idle_power_w, idle_w, rtol, 1e-6):
        v.append(f"{where}: claims idle power {pp.idle_power_w!r} W, recomputed {idle_w:.6g} W")
    pool_power = group_power + idle_w
    if _far(pp.power_w, pool_power, rtol, 1e-6):
        v.append(f"{where}: claims {pp.power_w!r} W, recomputed {pool_power:.6g} W")
    if _far(pp.energy_j, pool_power * epoch_s, rtol, 1e-3):
        v.append(f"{where}: claims {pp.energy_j!r} J, recomputed {pool_power * epoch_s:.6g} J")
    return pool_power, servers, gpus


def _check_demand(plan: Plan, names: tuple[str, ...], want: dict[str, float] | None, served: dict[str, float],
                  best_effort: bool, rtol: float, v: list[str]) -> None:
    """The forecast, its coverage by served plus unserved load, and the unserved figure."""
    claimed: dict[str, float] = {}
    for c, x in plan.forecast_rps.items():
        if c not in names:
            v.append(f"plan forecast has unknown class {c!r}")
        elif not _is_load(x):
            v.append(f"plan forecast class {c} load {x!r} req/s; expected a finite value >= 0")
        else:
            claimed[c] = float(x)
    if want is not None:
        for c in names:
            if _far(claimed.get(c, 0.0), want[c], rtol, 1e-12):
                v.append(f"class {c}: plan made for {claimed.get(c, 0.0):.6g} req/s, the forecast is {want[c]:.6g} req/s")
    demand = want if want is not None else claimed
    unserved: dict[str, float] = {}
    for c, x in plan.unserved_rps.items():
        if c not in names:
            v.append(f"plan reports unserved load of unknown class {c!r}")
        elif not _is_load(x):
            v.append(f"class {c}: unserved {x!r} req/s; expected a finite value >= 0")
        else:
            unserved[c] = float(x)
    if any(x > 0 for x in unserved.values()) and not best_effort:
        v.append(f"plan leaves {unserved} req/s unserved but was not made in best-effort mode")
    for c in names:
        f, got, un = demand.get(c, 0.0), served.get(c, 0.0), unserved.get(c, 0.0)
        if got + un < f * (1 - rtol) - _LOAD_ATOL_RPS:
            v.append(f"class {c}: forecast {f:.6g} req/s, plan serves {got:.6g} and reports {un:.6g} unserved")
        # the recomputed figure is a difference of two loads of the forecast's size: it is known
        # to rtol of the forecast (as the coverage above), not to rtol of itself
        elif abs(un - max(0.0, f - got)) > rtol * f + _LOAD_ATOL_RPS:
            v.append(f"class {c}: reports {un:.6g} req/s unserved, recomputed {max(0.0, f - got):.6g} "
                     f"(forecast {f:.6g}, served {got:.6g})")


def _check_reports(plan: Plan, v: list[str]) -> None:
    """Every solve report the plan carries has a solution, bound <= objective and gap >= 0."""
    reports = [("plan", plan.report), ("cluster level", plan.cluster_report)]
    reports += [(f"pool {pp.pool}", pp.report) for pp in plan.pools]
    for what, r in reports:
        if r is None:
            continue
        if r.status.value not in _SOLVED:
            v.append(f"{what} report: status {r.status.value} but the plan has a solution")
        obj, bnd = r.objective, r.bound
        if obj is None or not math.isfinite(obj):
            v.append(f"{what} report: objective {obj!r}; a plan's solve has a finite objective")
        elif bnd is not None and math.isfinite(bnd) and bnd > obj + 1e-6 * max(1.0, abs(obj)):
            v.append(f"{what} report: bound {bnd:.9g} above objective {obj:.9g}")
        if r.gap is not None and not (r.gap >= 0):
            v.append(f"{what} report: gap {r.gap!r}; expected >= 0")
        for name in ("solve_time_s", "build_time_s"):
            if not _is_load(getattr(r, name)):
                v.append(f"{what} report: {name} {getattr(r, name)!r}; expected a finite value >= 0")
