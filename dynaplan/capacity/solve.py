"""Solve a :class:`CapacityProblem` with HiGHS and return a frozen :class:`CapacityPlan`."""

from __future__ import annotations

import time
from dataclasses import replace

import highspy
import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from dynaplan.capacity.problem import CapacityProblem
from dynaplan.capacity.share import lattice_search, round_slices, share_data, share_solution
from dynaplan.errors import InfeasibleError, NoSolutionError, ValidationError
from dynaplan.formulations.capacity import (build_capacity_model, build_share_model, energy_objective_per_kwh,
                                            objective_weights)
from dynaplan.formulations.capacity_hull import add_class_hull
from dynaplan.solvers.highs import _make_highs, _pass, _report, solve_arrays
from dynaplan.solvers.highs_blocks import BlockLP
from dynaplan.solvers.model import INF
from dynaplan.solvers.result import Backend, Solution, SolveOptions, SolveReport, Status, StopReason, relative_gap


class PeriodDeployment(BaseModel):
    """What runs in one period: instances per (hardware, TP, clock, class) and their load."""

    model_config = ConfigDict(frozen=True)

    period: int
    demand_rps: dict[str, float] = Field(description="Load to serve per class (req/s).")
    groups: tuple[dict, ...] = Field(description="hardware, tp, freq_mhz, request_class, instances, load_rps, "
                                     "capacity_rps (whole SLO capacity of those instances).")
    gpus_used: dict[str, int] = Field(description="GPUs running instances per type (count).")
    on_demand_servers: dict[str, int] = Field(default_factory=dict, description="Servers rented on demand in this "
                                              "period on top of the fleet, per type (count; r_{t,h}).")
    on_demand_usd: float = Field(default=0.0, description="On-demand rent of this period (USD).")
    it_power_w: float = Field(description="IT power of the fleet in this period (W).")
    energy_kwh: float = Field(description="Facility energy (PUE applied) in this period (kWh).")
    energy_usd: float
    carbon_kg: float
    carbon_usd: float


class CapacityPlan(BaseModel):
    """The answer: fleet, costs, energy, carbon, per-period deployment and how it was solved."""

    model_config = ConfigDict(frozen=True)

    fleet: dict[str, int] = Field(description="Servers per hardware type held over the whole horizon (count; "
                                  "reserved when the plan also rents on demand).")
    gpus: dict[str, int] = Field(description="GPUs of the fleet per hardware type (count).")
    objective: str
    load_basis: str
    horizon_h: float
    cost_usd: float = Field(description="Fleet + energy + carbon price over the horizon (USD).")
    fleet_usd: float = Field(description="Servers over the horizon (USD): reserved_usd + on_demand_usd.")
    reserved_usd: float = Field(default=0.0, description="The fleet held over the whole horizon (USD; reserved "
                                "rent, on-demand rent held throughout, or amortised purchase).")
    on_demand_usd: float = Field(default=0.0, description="Servers rented on demand per period (USD).")
    on_demand_peak_servers: dict[str, int] = Field(
        default_factory=dict, description="Most servers rented on demand in any one period, per type (count).")
    on_demand_server_h: dict[str, float] = Field(
        default_factory=dict, description="Server-hours rented on demand over the horizon, per type (h).")
    energy_usd: float
    carbon_usd: float
    cost_usd_per_h: float
    energy_kwh: float
    carbon_kg: float
    peak_power_w: float = Field(description="Highest facility power over the periods (W, PUE applied).")
    power_model_error_kwh: float = Field(
        description="How far the reported energy may be from the profile's own interpolation for this "
        "deployment (kWh, over the horizon): 0 when every instance's power is the profile's (problems built "
        "from a profile, capacity.md (R2)); the power pieces' error where there is no profile curve.")
    headroom: dict[str, float] = Field(description="Per class, the smallest over periods of "
                                       "1 - load / SLO capacity of the instances serving it (fraction).")
    binding: tuple[str, ...] = Field(description="What limits the answer: availability, slo, budget (epsilon caps).")
    periods: tuple[PeriodDeployment, ...]
    report: SolveReport
    replay: dict | None = Field(default=None, description="Replay of the source trace on the fleet with the "
                                "DynamoLLM policy, when asked (dynaplan.capacity.replay).")
    verdict: str = Field(default="not replayed", description="'meets SLOs in replay', 'MISSES SLOs IN REPLAY: "
                         "<classes>' or 'not replayed'.")
    period_plans: tuple[dict, ...] | None = Field(default=None, description="On request: each period planned on the fleet "
                                       "with the Planner (dynaplan.capacity.deploy.PeriodPlan), as dicts.")

    def to_json(self) -> str:
        return self.model_dump_json()


def plan_capacity(problem: CapacityProblem, *, time_limit_s: float = 60.0, mip_rel_gap: float = 1e-3,
                  threads: int = 1, method: str = "auto", replay: bool = False, replay_trace=None,
                  profile=None, replay_target: float = 0.99, progress=None,
                  period_plans: bool = False) -> CapacityPlan:
    """Minimise the problem's objective (``formulations/capacity.md``) with HiGHS.

    ``method``: "monolithic" solves the whole MILP at once; "decomposed" (what "auto" picks
    unless an energy or carbon cap couples the periods) generates the fleet-setting periods and
    cuts on the fleet (capacity.md, "Decomposition"): the bound is valid for the whole problem
    and the gap honest.

    ``replay=True`` replays the source trace (or ``replay_trace``), scaled to the busiest period,
    on the chosen fleet with the DynamoLLM policy (:func:`dynaplan.capacity.replay.replay_fleet`)
    and sets ``plan.replay`` and ``plan.verdict``: a class under ``replay_target`` of its requests
    within the SLOs marks the plan as missing its SLOs.

    ``period_plans=True`` plans every period's load on the chosen fleet with the Planner and
    attaches the Plans (:mod:`dynaplan.capacity.deploy`), each with its power next to the model's.

    Raises InfeasibleError when the offered hardware (recipes, availability) cannot serve some
    period; NoSolutionError when the time limit ends before any plan is found. Replay and period
    plans take one fleet for all periods and are refused for a problem that rents servers on demand."""
    if (replay or period_plans) and isinstance(problem, CapacityProblem) and any(
            o.rents_on_demand for o in problem.offers):
        raise ValidationError(f"{'replay' if replay else 'period_plans'}: the plan rents servers on demand per "
                              "period (price reserved+on_demand) and the fleet changes between periods; replay "
                              "and period plans take one fleet for every period")
    plan = _plan(problem, time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap, threads=threads, method=method)
    if period_plans:
        from dynaplan.capacity.deploy import with_period_plans

        plan = with_period_plans(plan, problem, profile=profile)
    if not replay:
        return plan
    from dynaplan.capacity.replay import with_replay

    return with_replay(plan, problem, trace=replay_trace, profile=profile, target=replay_target, progress=progress)


def _plan(problem: CapacityProblem, *, time_limit_s: float, mip_rel_gap: float, threads: int,
          method: str) -> CapacityPlan:
    if not isinstance(problem, CapacityProblem):
        raise ValidationError(f"plan_capacity: problem is {type(problem).__name__}; expected CapacityProblem "
                              "(build one with capacity_problem or read_melange)")
    if method not in ("auto", "monolithic", "decomposed"):
        raise ValidationError(f"method={method!r}; expected auto, monolithic or decomposed")
    _check_servable(problem)
    opts = SolveOptions(time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap, threads=threads,
                        highs_heuristics=problem.source == "melange")
    coupled = problem.energy_cap_kwh is not None or problem.carbon_cap_kg is not None
    if _shareable(problem) and method == "auto":
        return _share(problem, opts)
    if method == "monolithic" or (method == "auto" and coupled):
        idx, sol, build_s = _build_and_solve(build_capacity_model, problem, opts)
        return extract_plan(problem, idx, sol.x, sol.report.with_build_time(build_s), opts.mip_rel_gap)
    if coupled:
        raise ValidationError("method='decomposed' cannot take energy_cap_kwh or carbon_cap_kg; use 'monolithic'")
    return _decomposed(problem, opts)


def _build_and_solve(build, p: CapacityProblem, opts: SolveOptions):
    """Build ``build(p)`` (timed apart from the solve), solve it, refuse an unsolved answer;
    returns the model's index, the solution and the build time (s)."""
    t0 = time.perf_counter()
    model, idx = build(p)
    arrays = model.arrays()
    build_s = time.perf_counter() - t0
    sol = solve_arrays(arrays, opts)
    _raise_unsolved(p, sol.report)
    return idx, sol, build_s


def _shareable(p: CapacityProblem) -> bool:
    return (p.n_periods == 1 and p.shared_instances and p.energy_cap_kwh is None and p.carbon_cap_kg is None
            and not any(o.rents_on_demand for o in p.offers)
            and all(r.static_w == 0 and r.w_per_util == 0 for r in p.recipes)
            and len({(r.request_class, r.hardware) for r in p.recipes}) == len(p.recipes))


def _share(p: CapacityProblem, opts: SolveOptions) -> CapacityPlan:
    """Mélange-shaped problems through the load-free model (capacity.md, "Mélange configs").
    When every price is a whole number of cents (or of 10^-k USD, k <= 4), every fleet's cost is
    on that lattice (M1): the fleets are first searched in increasing cost from the bound of (M3)
    ((M4)-(M6), :mod:`dynaplan.capacity.share`), which proves small instances without a MILP.
    Otherwise the divisible MILP is solved in lattice units with an absolute gap under one unit,
    its bound rounded up to the lattice, which proves its exact optimum; sliced, that optimum is a
    lower bound (M2): whole slices on the divisible optimum's fleet (M7) prove it optimal, else
    the sliced MILP runs with a row holding its fleet cost at or above that bound."""
    t0 = time.perf_counter()
    price = np.array([o.price_usd_per_server_h for o in p.offers], dtype=float) * p.fleet_h
    scale = _cost_lattice(price)
    built: list = []
    build_s = [0.0]

    def share_model():  # built on first use: small instances are proven without it
        if not built:
            t1 = time.perf_counter()
            model, ix = build_share_model(p)
            built.extend((model.arrays(), ix))
            build_s[0] += time.perf_counter() - t1
        return built[0], built[1]

    if scale is None:
        arrays, ix = share_model()
        sol = solve_arrays(arrays, opts)
        _raise_unsolved(p, sol.report)
        return _share_plan(p, None, np.rint(sol.x[ix["fleet"]]), sol.x[ix["slices"]], sol.report, opts, build_s[0])
    sd = share_data(p, scale)
    found = lattice_search(sd, share_model, opts)  # (M4)
    if found.proven:
        return _share_plan(p, sd, found.fleet, found.m, _lattice_report(
            found.cost / scale, found.cost / scale, time.perf_counter() - t0 - build_s[0], len(sd.units) + sd.w.size,
            found.lp_checks, "lattice search (M4)"), opts, build_s[0])
    arrays, ix = share_model()
    bound_usd = found.bound / scale  # every fleet below it is infeasible (M3), (M4)
    div_arrays = arrays
    if p.assignment == "sliced":
        t1 = time.perf_counter()
        div_model, _ = build_share_model(p.model_copy(update={"assignment": "divisible"}))
        div_arrays = div_model.arrays()
        build_s[0] += time.perf_counter() - t1
    # four integer counts and a tight LP: HiGHS's primal heuristics cost more than they find here
    div = _lattice_solve(_with_cost_floor(div_arrays, ix, bound_usd, scale), scale,
                         opts.model_copy(update={"highs_heuristics": False}))
    _raise_unsolved(p, div.report)
    if p.assignment == "divisible":
        return _share_plan(p, sd, np.rint(div.x[ix["fleet"]]), div.x[ix["slices"]], div.report, opts, build_s[0])
    bound_usd = max(bound_usd, float(div.report.bound)) if div.report.bound is not None else bound_usd
    y_div = np.rint(div.x[ix["fleet"]]).astype(np.int64)
    if div.report.bound is not None and abs(float(sd.units @ y_div) - div.report.bound * scale) < 0.5:
        # (M7) the divisible optimum's fleet with whole slices: the sliced optimum, proven by (M2)
        m = round_slices(sd, y_div, div.x[ix["slices"]])
        if m is None:
            m = _fixed_fleet_slices(arrays, ix, y_div, sd.units[sd.hw] * sd.w / sd.S, opts)
        if m is not None:
            cost = float(sd.units @ y_div) / scale
            return _share_plan(p, sd, y_div, m, _lattice_report(
                cost, min(cost, bound_usd), time.perf_counter() - t0 - build_s[0], arrays.n_cols, found.lp_checks + 2,
                "divisible optimum (M2) with whole slices on its fleet (M7)"), opts, build_s[0])
    sol = _lattice_solve(_with_cost_floor(arrays, ix, bound_usd, scale), scale, opts)  # (M2)
    _raise_unsolved(p, sol.report)
    return _share_plan(p, sd, np.rint(sol.x[ix["fleet"]]), sol.x[ix["slices"]], sol.report, opts, build_s[0])


def _with_cost_floor(arrays, ix: dict, bound_usd: float, scale: float):
    """(cap.divisible_bound) ``Σ_h π_h y_h >= bound - 1/2 unit`` appended as a row (half a lattice
    unit below, so rounding never cuts off a fleet of cost exactly ``bound``)."""
    if not np.isfinite(bound_usd) or bound_usd <= 0:
        return arrays
    f = ix["fleet"]
    row = sp.csc_matrix((arrays.cost[f], (np.zeros(f.stop - f.start, dtype=np.int64), np.arange(f.start, f.stop))),
                        shape=(1, arrays.n_cols))
    return replace(arrays, A=sp.vstack([arrays.A, row], format="csc"),
                   row_lo=np.r_[arrays.row_lo, bound_usd - 0.5 / scale], row_hi=np.r_[arrays.row_hi, INF])


def _fixed_fleet_slices(arrays, ix: dict, y: np.ndarray, slice_cost: np.ndarray, opts: SolveOptions
                        ) -> np.ndarray | None:
    """(M7) Whole slices on the fleet ``y``: the sliced model with the fleet fixed, stopped at its
    first solution (a feasibility MILP; the slices priced at their cost per load ``slice_cost``
    guide it: with no objective HiGHS takes up to 50x longer); None when none fits or none is
    found within the time limit."""
    lb, ub = arrays.lb.copy(), arrays.ub.copy()
    lb[ix["fleet"]] = y
    ub[ix["fleet"]] = y
    cost = np.zeros_like(arrays.cost)
    cost[ix["slices"]] = slice_cost
    fixed = replace(arrays.with_bounds(lb=lb, ub=ub), cost=cost)
    h = _make_highs(opts.model_copy(update={"time_limit_s": min(opts.time_limit_s, 10.0)}))
    h.setOptionValue("mip_max_improving_sols", 1)
    _pass(h, fixed)
    h.run()
    sol = _report(h, fixed, 0.0)
    if not sol.report.has_solution:
        return None
    return np.rint(sol.x[ix["slices"]])


def _lattice_report(obj: float, bound: float, solve_s: float, n_vars: int, lp_checks: int, how: str) -> SolveReport:
    return SolveReport(status=Status.OPTIMAL, backend=Backend.HIGHS if lp_checks else None, objective=obj,
                       bound=bound, gap=relative_gap(obj, bound), solve_time_s=solve_s, n_vars=n_vars,
                       message=f"{how}; bound on the cost lattice (M1)", stop_reason=StopReason.CONVERGED)


def _share_plan(p: CapacityProblem, sd, y, m, report: SolveReport, opts: SolveOptions,
                build_s: float) -> CapacityPlan:
    """The plan of a share-model solution (fleet ``y``, slices ``m``), read without the full model."""
    if sd is None:
        sd = share_data(p, 1.0)
    idx, x = share_solution(p, sd, np.asarray(y, dtype=float), np.asarray(m, dtype=float))
    return extract_plan(p, idx, x, report.with_build_time(build_s), opts.mip_rel_gap)


def _lattice_solve(arrays, scale: float, opts: SolveOptions) -> Solution:
    """(M1) Solve with costs in units of 1/scale USD, an absolute gap under one unit, and the bound
    rounded up to the lattice (every fleet's cost is on it); objective and bound back in USD."""
    scaled = replace(arrays, cost=np.rint(arrays.cost * scale))
    h = _make_highs(opts.model_copy(update={"mip_rel_gap": 0.0}))
    h.setOptionValue("mip_abs_gap", 1.0 - 1e-6)
    _pass(h, scaled)
    t1 = time.perf_counter()
    h.run()
    sol = _report(h, scaled, time.perf_counter() - t1)
    r = sol.report
    if not r.has_solution:
        return sol
    obj = r.objective / scale
    bound = None if r.bound is None else min(np.ceil(r.bound - 1e-6) / scale, obj)
    return sol.model_copy(update={"report": r.model_copy(update={
        "objective": obj, "bound": bound, "gap": relative_gap(obj, bound)})})


def _cost_lattice(cost: np.ndarray) -> float | None:
    """10^k (k <= 4) when every cost times it is a whole number below 1e9, else None."""
    for k in range(5):
        c = cost * 10.0 ** k
        if np.abs(c).max(initial=0.0) > 1e9:
            return None
        if np.all(np.abs(c - np.rint(c)) <= 1e-9 * np.maximum(1.0, np.abs(c))):
            return 10.0 ** k
    return None


def _raise_unsolved(problem: CapacityProblem, rep: SolveReport) -> None:
    if rep.status == Status.INFEASIBLE:
        raise InfeasibleError("capacity: no fleet within the availability serves every period under the SLOs "
                              f"({', '.join(_availability_text(o) for o in problem.offers)})")
    if not rep.has_solution:
        raise NoSolutionError(f"capacity: no plan found ({rep.message}, {rep.solve_time_s:.1f} s)", report=rep)


def _availability_text(o) -> str:
    if o.rents_on_demand:
        return f"{o.hardware} fleet <= {o.max_servers}, fleet + on-demand <= {o.available_servers}"
    return f"{o.hardware} <= {o.max_servers}"


def _subproblem(p: CapacityProblem, periods, *, fleet=None, fleet_cost: bool = True) -> CapacityProblem:
    """The problem restricted to ``periods``; the fleet fixed to ``fleet`` and/or not priced."""
    ts = list(periods)
    offers = p.offers
    if fleet is not None:
        offers = tuple(o.model_copy(update={"min_servers": int(fleet[j]), "max_servers": int(fleet[j])})
                       for j, o in enumerate(offers))
    if not fleet_cost:
        offers = tuple(o.model_copy(update={"price_usd_per_server_h": 0.0}) for o in offers)
    return p.model_copy(update={
        "demand_rps": tuple(p.demand_rps[t] for t in ts), "offers": offers,
        "electricity_usd_per_kwh": tuple(p.electricity_usd_per_kwh[t] for t in ts),
        "carbon_g_per_kwh": tuple(p.carbon_g_per_kwh[t] for t in ts), "fleet_hours_h": p.fleet_h})


def _solve(p: CapacityProblem, opts: SolveOptions, relax: bool = False):
    model, idx = build_capacity_model(p)
    sol = solve_arrays(model.arrays(), opts, relax=relax)
    return sol, idx


def _marginal_energy_lb(p: CapacityProblem, idx, t: int) -> float:
    """(D4) A lower bound on period ``t``'s objective above its fleet's idle power, for any fleet:
    each class at the least energy per request of any recipe's capacity point (the per-instance
    power above idle is convex in the relaxation and >= 0 at zero load, so its ratio to the load
    is least at a vertex)."""
    idle_w = np.array([o.idle_power_w for o in p.offers]) * (p.idle == "idle")
    a = idx.static_w - idx.tp * idle_w[idx.hw_of]
    if (a < 0).any():
        return -np.inf  # an instance below its GPUs' idle power: no bound of this kind
    per_rps = (a + idx.w_per_rps * idx.cap_rps) / idx.cap_rps  # W per req/s at each capacity point
    best = np.full(len(p.classes), np.inf)
    np.minimum.at(best, idx.class_of, per_rps)
    d = p.demand()[t]
    best = np.where(d > 0, best, 0.0)
    return float(energy_objective_per_kwh(p)[t] * idx.kwh_per_w * (d @ best))


def _fixed_fleet_lp(p: CapacityProblem, out: np.ndarray, y: np.ndarray, y_ub: np.ndarray, opts: SolveOptions):
    """(D5) The LP relaxation of the periods ``out`` on the fleet ``y``, fleet unpriced (its idle
    energy kept), every column bound taken from the fleet ``y_ub`` so that none depends on ``y``.
    Returns (x, index, phi(y), g) with ``g`` the reduced costs of the fixed fleet columns: a
    subgradient of the LP's value phi, convex in ``y``, so ``phi(y) + g (y' - y) <= phi(y')`` for
    every fleet ``y' <= y_ub``. None when no fractional deployment of ``y`` serves ``out``."""
    return _PeriodsLP(p, out, y_ub, opts).at(y)


class _PeriodsLP:
    """(D5) at any fleet for one set of periods ``out``: the model is built once and, when its
    periods are independent blocks of one matrix (always, without epsilon caps or slices), solved
    period by period in one warm-started HiGHS model (:class:`dynaplan.solvers.highs_blocks.BlockLP`):
    phi is the sum of the periods' values and ``g`` the sum of their reduced costs of the fleet
    columns, the same value and a subgradient of the same function as the whole LP's.
    ``unserved`` lists the periods the last fleet asked about cannot serve."""

    def __init__(self, p: CapacityProblem, out: np.ndarray, y_ub: np.ndarray, opts: SolveOptions) -> None:
        sub = _subproblem(p, out, fleet=y_ub, fleet_cost=False)
        model, ix = build_capacity_model(sub)
        self.p, self.out, self.y_ub, self.ix, self.opts = p, np.asarray(out), y_ub, ix, opts
        self.arr = model.arrays().relaxed()
        self.unserved: list[int] = []
        self.cols, self.rows = _period_blocks(model, ix, len(out), self.arr)
        self.block = None if self.cols is None else BlockLP(self.arr.A[self.rows[0]][:, self.cols[0]], opts)
        self.order = np.argsort(sub.demand().sum(axis=1), kind="stable")

    def at(self, y: np.ndarray):
        arr, ix = self.arr, self.ix
        if self.block is None:
            return self._whole(y)
        H = ix.fleet.stop - ix.fleet.start
        c, r = self.cols, self.rows
        lb, ub, cost = arr.lb[c], arr.ub[c], arr.cost[c]
        lb[:, :H] = y
        ub[:, :H] = y
        cost[:, :H] = 0.0   # a fleet cost (if any) counts once, below
        ok, xk, dk, val = self.block.solve(cost, lb, ub, arr.row_lo[r], arr.row_hi[r], self.order)
        self.unserved = [int(t) for t in self.out[~ok]]
        if not ok.all():
            return None
        x = np.zeros(arr.n_cols)
        x[c[:, H:]] = xk[:, H:]
        x[ix.fleet] = y
        f_cost = arr.cost[ix.fleet]
        return x, ix, float(val.sum() + f_cost @ y + arr.offset), dk[:, :H].sum(axis=0) + f_cost

    def _whole(self, y: np.ndarray):
        arr, ix = self.arr, self.ix
        lb, ub = arr.lb.copy(), arr.ub.copy()
        lb[ix.fleet] = y
        ub[ix.fleet] = y
        a = arr.with_bounds(lb=lb, ub=ub)
        h = _make_highs(self.opts.model_copy(update={"mip_rel_gap": 0.0}))
        _pass(h, a)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            self.unserved = list(map(int, self.out)) if self.out.size == 1 else [
                int(t) for t in self.out if _PeriodsLP(self.p, np.array([t]), self.y_ub, self.opts).at(y) is None]
            return None
        s = h.getSolution()
        x = np.asarray(s.col_value, dtype=float)
        g = np.asarray(s.col_dual, dtype=float)[ix.fleet]
        return x, ix, float(h.getInfo().objective_function_value) + a.offset, g


def _period_blocks(model, ix, K: int, arr):
    """Columns (K, n) and rows (K, m) of each period's block of the model of ``K`` periods, the
    fleet columns first in every block; (None, None) unless every row and every non-fleet column
    belongs to one period and every period's block has the same coefficients."""
    H = ix.fleet.stop - ix.fleet.start
    G, P = ix.n_groups, ix.n_recipes
    k = np.arange(K)[:, None]
    cols = np.hstack([np.broadcast_to(np.arange(ix.fleet.start, ix.fleet.stop), (K, H)),
                      ix.groups.start + k * G + np.arange(G), ix.instances.start + k * P + np.arange(P),
                      ix.load.start + k * P + np.arange(P), ix.energy.start + k])
    rows = []
    for b in model.con_blocks.values():
        n_b = len(b.labels)
        if n_b % K:
            return None, None
        rows.append(b.start + k * (n_b // K) + np.arange(n_b // K))
    rows = np.hstack(rows)
    if cols[:, H:].size + H != arr.n_cols or rows.size != arr.n_rows:
        return None, None
    # every coefficient inside its period's block, the same in every block
    blk_r = np.empty(arr.n_rows, dtype=np.int64)
    loc_r = np.empty(arr.n_rows, dtype=np.int64)
    blk_r[rows.ravel()] = np.repeat(np.arange(K), rows.shape[1])
    loc_r[rows.ravel()] = np.tile(np.arange(rows.shape[1]), K)
    blk_c = np.full(arr.n_cols, -1, dtype=np.int64)
    loc_c = np.empty(arr.n_cols, dtype=np.int64)
    blk_c[cols[:, H:].ravel()] = np.repeat(np.arange(K), cols.shape[1] - H)
    loc_c[cols.ravel()] = np.tile(np.arange(cols.shape[1]), K)
    A = arr.A.tocoo()
    br, bc = blk_r[A.row], blk_c[A.col]
    if not ((bc == -1) | (bc == br)).all() or A.nnz % K:
        return None, None
    o = np.lexsort((loc_c[A.col], loc_r[A.row], br))
    key = np.c_[loc_r[A.row][o], loc_c[A.col][o], A.data[o]].reshape(K, -1, 3)
    if not (br[o].reshape(K, -1) == np.arange(K)[:, None]).all() or not (key == key[:1]).all():
        return None, None
    return cols, rows


def _fleet_setting(p: CapacityProblem, S, y_ub: np.ndarray, cuts, marginal, opts: SolveOptions, relax: bool = False,
                   known_ub: float = np.inf):
    """(D1) The MILP of the periods ``S`` with the fleet priced over the whole horizon and one
    variable theta standing for the other periods' energy: theta >= every cut
    ``phi_k + g_k (y - y_k)`` (D5) and theta >= ``marginal = (w, b)``: ``w y + b``, (D4); with
    whole instances, the valid rows (cap.class_hull) for the periods of S."""
    offers = tuple(o.model_copy(update={"max_servers": int(min(o.max_servers, y_ub[j]))})
                   for j, o in enumerate(p.offers))
    sub = _subproblem(p, S).model_copy(update={"offers": offers})
    model, idx = build_capacity_model(sub)
    if not p.shared_instances:
        # (cap.class_hull) per period of S and class: the hull of its whole-instance GPU usages
        g_hw, g_cl, g_tp, kmax, _ = _group_arrays(sub, idx)
        add_class_hull(model, sub.demand(), idx.groups.start, g_hw, g_cl, g_tp, kmax, sub.classes)
    H = len(p.offers)
    th = model.add_vars("outer", ["theta"], lb=-INF, cost=1.0)
    rows = [(marginal[0], marginal[1])] + [(g, phi - float(g @ yk)) for yk, phi, g in cuts]
    k = len(rows)
    # (cap.outer) theta - w_k y >= b_k
    model.add_constraints("cap.outer", range(k), np.repeat(np.arange(k), H + 1),
                          np.tile(np.r_[th.start, idx.fleet.start + np.arange(H)], k),
                          np.concatenate([np.r_[1.0, -np.asarray(w, dtype=float)] for w, _ in rows]),
                          lo=[b for _, b in rows])
    arrays = model.arrays()
    if relax:
        sol = solve_arrays(arrays, opts, relax=True)
    else:
        sol = _solve_checked(arrays, opts, known_ub)
    _raise_unsolved(p, sol.report)
    return sol, idx, arrays


def _solve_checked(arrays, opts: SolveOptions, known_ub: float) -> Solution:
    """Solve the fleet-setting MILP; a dual bound above ``known_ub`` (the objective of a plan
    already found, an upper bound of the MILP's optimum) is wrong: HiGHS 1.x with presolve and
    1e-9 feasibility tolerances has been seen to stop "optimal" above a feasible point. The
    MILP is then solved again without presolve, and its bound is kept only if it passes the same check."""
    sol = solve_arrays(arrays, opts)
    if sol.report.bound is None or sol.report.bound <= known_ub + 1e-9 * max(abs(known_ub), 1.0):
        return sol
    h = _make_highs(opts)
    h.setOptionValue("presolve", "off")
    _pass(h, arrays)
    h.run()
    again = _report(h, arrays, sol.report.solve_time_s)
    if again.report.bound is not None and again.report.bound > known_ub + 1e-9 * max(abs(known_ub), 1.0):
        again = again.model_copy(update={"report": again.report.model_copy(update={"bound": known_ub})})
    return again


def _checked_bound(solved: list, objective: float) -> float:
    """The best bound of the fleet-setting MILPs solved so far that none exceeds ``objective``
    (a plan's, an upper bound of the optimum); one that does is solved again
    (:func:`_solve_checked`) and replaced. Updates ``solved`` in place."""
    out = -np.inf
    for i, (sol, arrays, opts) in enumerate(solved):
        b = sol.report.bound
        if b is not None and b > objective + 1e-9 * max(abs(objective), 1.0):
            sol = _solve_checked(arrays, opts, objective)
            solved[i] = (sol, arrays, opts)
            b = sol.report.bound
        if b is not None:
            out = max(out, b)
    return out


def _group_arrays(p: CapacityProblem, ix):
    g_hw = np.array([k[0] for k in ix.group_keys], dtype=np.int64)
    g_cl = np.array([k[1] for k in ix.group_keys], dtype=np.int64)
    g_tp = np.array([k[2] for k in ix.group_keys], dtype=float)
    lmax = ix.cap_rps
    kmax = np.zeros(ix.n_groups)
    np.maximum.at(kmax, ix.group_of, lmax)
    top = np.full(ix.n_groups, -1, dtype=np.int64)  # the recipe of largest capacity in each group
    for i in np.argsort(lmax, kind="stable"):
        top[ix.group_of[i]] = i
    return g_hw, g_cl, g_tp, kmax, top


def _other_periods(p: CapacityProblem, out: np.ndarray, y: np.ndarray, lp, fleet_sol, opts: SolveOptions,
                   deadline: float, budget: float = 0.0):
    """(D2) Deployments of the periods ``out`` on the fixed fleet ``y`` from the LP ``lp`` of
    :func:`_fixed_fleet_lp`: each group's instance count rounded up (capacity is kept:
    L_g <= kappa_g N_g). A period whose rounded instances do not fit the fleet is repaired from the
    deployment of a fleet-setting period with at least its load in every class (``fleet_sol`` =
    (solution, index, S)): class by class, the rounded instances replace that deployment's while
    they fit. A period with no such fleet-setting period is solved as its own MILP on the fleet.
    Returns ({period: (solution, index, position)}, periods the fleet cannot serve)."""
    per_t: dict[int, tuple] = {}
    if out.size == 0:
        return per_t, []
    x, ix, phi, _ = lp
    x = x.copy()
    G, P, H = ix.n_groups, ix.n_recipes, len(p.offers)
    g_hw, g_cl, g_tp, kmax, top = _group_arrays(p, ix)
    L = np.zeros((len(out), G))
    np.add.at(L, (slice(None), ix.group_of), x[ix.load].reshape(len(out), P))
    Nv = np.minimum(np.ceil(L / kmax[None, :] - 1e-9), np.ceil(x[ix.groups].reshape(len(out), G) - 1e-7))
    x[ix.groups] = Nv.ravel()
    used = np.zeros((len(out), H))
    np.add.at(used, (slice(None), g_hw), Nv * g_tp[None, :])
    room = np.array([o.gpus_per_server for o in p.offers]) * y
    # (cap.gpus), (cap.available): the rounded instances on the fewest on-demand servers r_{t,h} that hold them
    r_od, fits = ondemand_servers(p, used, y)
    R = ix.rent_hw.size
    x[ix.ondemand] = r_od[:, ix.rent_hw].ravel()
    rep = SolveReport(status=Status.FEASIBLE, backend=Backend.HIGHS, objective=phi, bound=phi, gap=0.0,
                      solve_time_s=0.0, n_vars=0, n_cons=0, message="lp")
    d = p.demand()
    sol_s, idx_s, S = fleet_sol
    N_s = np.rint(sol_s.x[idx_s.groups].reshape(len(S), G))
    r_s = np.zeros((len(S), H))  # the fleet-setting periods' on-demand servers
    r_s[:, idx_s.rent_hw] = np.rint(sol_s.x[idx_s.ondemand].reshape(len(S), R))
    todo = []
    for k, t in enumerate(out):
        if not fits[k]:
            cover = [j for j, s in enumerate(S) if (d[s] >= d[t] * (1 - 1e-12)).all()]
            if not cover:
                todo.append(int(t))
                continue
            nb = N_s[cover[0]]
            use_a = np.zeros(len(p.classes), dtype=bool)
            u_b = np.zeros((len(p.classes), H))
            u_a = np.zeros((len(p.classes), H))
            np.add.at(u_b, (g_cl, g_hw), nb * g_tp)
            np.add.at(u_a, (g_cl, g_hw), Nv[k] * g_tp)
            cur = u_b.sum(axis=0)
            room_k = room + np.array([o.gpus_per_server for o in p.offers]) * r_s[cover[0]]  # y + r of the cover
            for c in np.argsort((u_a - u_b).sum(axis=1), kind="stable"):
                nxt = cur - u_b[c] + u_a[c]
                if (nxt <= room_k + 1e-9).all():
                    cur, use_a[c] = nxt, True
            r_k, _ = ondemand_servers(p, cur[None, :], y)  # fewest on-demand servers holding them (D2)
            x[ix.ondemand.start + k * R: ix.ondemand.start + (k + 1) * R] = r_k[0, ix.rent_hw]
            take_b = ~use_a[g_cl]
            n_new = np.where(take_b, nb, Nv[k])
            x[ix.groups.start + k * G: ix.groups.start + (k + 1) * G] = n_new
            lo = ix.load.start + k * P
            for c in np.flatnonzero(~use_a):
                gs = np.flatnonzero(g_cl == c)
                capc = float((kmax[gs] * nb[gs]).sum())
                rec = np.flatnonzero(np.isin(ix.group_of, gs))
                x[lo + rec] = 0.0
                if d[t, c] > 0:
                    x[lo + top[gs]] = d[t, c] * kmax[gs] * nb[gs] / capc
        per_t[int(t)] = (Solution(x=x, report=rep), ix, k)
    bad: list[int] = []
    for t in todo:
        left = max(deadline - time.perf_counter(), 0.25 * opts.time_limit_s)
        est = float(phi) / max(len(out), 1)
        gap_t = float(np.clip(budget / max(len(todo), 1) / max(est, 1e-12), opts.mip_rel_gap, 0.5))
        sol_t, idx_t = _solve(_subproblem(p, [t], fleet=y, fleet_cost=False),
                              opts.model_copy(update={"time_limit_s": left, "mip_rel_gap": gap_t}))
        if sol_t.report.status == Status.INFEASIBLE:
            bad.append(t)
            if len(bad) >= 4:
                break
            continue
        _raise_unsolved(p, sol_t.report)
        per_t[t] = (sol_t, idx_t, 0)
    return per_t, bad


def _assemble(p: CapacityProblem, model, idx, y, pieces, report: SolveReport, tol: float) -> CapacityPlan:
    """The whole deployment from the fleet-setting and the other periods' solutions."""
    x = np.zeros(model.n_cols)
    P, G = idx.n_recipes, idx.n_groups
    x[idx.fleet] = y
    for t, (sol, ix, k) in pieces.items():
        for blk, w in (("groups", G), ("instances", P), ("load", P), ("ondemand", idx.rent_hw.size)):
            src, dst = getattr(ix, blk), getattr(idx, blk)
            x[dst.start + t * w: dst.start + (t + 1) * w] = sol.x[src.start + k * w: src.start + (k + 1) * w]
        x[idx.energy.start + t] = sol.x[ix.energy.start + k]
    return extract_plan(p, idx, x, report, tol)


def _decomposed(p: CapacityProblem, opts: SolveOptions) -> CapacityPlan:
    """Fleet-setting periods S and cuts on the fleet (capacity.md, (D1)-(D5)): rounds until the
    realised plan is within the requested gap of the bound, or no new cut is found."""
    t0 = time.perf_counter()
    rent = any(o.rents_on_demand for o in p.offers)
    deadline = t0 + (0.6 if rent else 1.0) * opts.time_limit_s  # with on-demand rent, 40% for (D7)
    d = p.demand()
    model, idx = build_capacity_model(p)
    y_ub = np.rint(model.arrays().ub[idx.fleet]).astype(int)
    c_t = energy_objective_per_kwh(p)
    idle_kwh = idx.kwh_per_w * np.array([o.idle_power_w * o.gpus_per_server for o in p.offers]) * (p.idle == "idle")
    lb_t = np.array([_marginal_energy_lb(p, idx, t) for t in range(p.n_periods)])
    if not np.isfinite(lb_t).all():
        # some instance draws less than its idle GPUs: more instances save energy, so neither
        # (D4) nor the column bounds of (D5) hold; solve the whole model
        idx_m, sol, build_s = _build_and_solve(build_capacity_model, p, opts)
        return extract_plan(p, idx_m, sol.x, sol.report.with_build_time(build_s), opts.mip_rel_gap)
    tol = opts.mip_rel_gap
    # the requested gap is shared: a quarter to the fleet-setting MILP, a quarter to the other
    # periods' MILPs, the rest left for the other periods' rounding above their LP (capacity.md)
    s_opts = opts.model_copy(update={"mip_rel_gap": 0.25 * tol, "highs_heuristics": True})
    S = [int(np.argmax(d.sum(axis=1)))]
    best, rounds, n_cuts = None, 0, 0
    fleets: dict[tuple, tuple] = {}  # every fleet's best plan so far, for (D7)
    solved: list[tuple] = []  # every fleet-setting MILP: each bound is valid for the whole problem
    while True:
        out = np.setdiff1d(np.arange(p.n_periods), S)
        marginal = (c_t[out].sum() * idle_kwh, float(lb_t[out].sum()))
        cuts: list[tuple[np.ndarray, float, np.ndarray]] = []
        lps: dict[tuple, tuple | None] = {}
        olp = _PeriodsLP(p, out, y_ub, opts) if out.size else None  # (D5) at any fleet, warm-started
        if out.size:
            # a first cut at the fleet of the fleet-setting LP relaxation (D5)
            rel, idx_r, _ = _fleet_setting(p, S, y_ub, cuts, marginal, s_opts, relax=True)
            y_rel = rel.x[idx_r.fleet]
            lp = olp.at(y_rel)
            if lp is not None:
                cuts.append((y_rel, lp[2], lp[3]))
        grow, stalled, here = [], False, None
        for _ in range(8):
            rounds += 1
            left = max(deadline - time.perf_counter(), 0.25 * opts.time_limit_s)
            known = best[0].report.objective if best is not None else np.inf
            s_run = s_opts.model_copy(update={"time_limit_s": left})
            sol_s, idx_s, arr_s = _fleet_setting(p, S, y_ub, cuts, marginal, s_run, known_ub=known)  # (D1)
            y = np.rint(sol_s.x[idx_s.fleet]).astype(int)
            solved.append((sol_s, arr_s, s_run))
            per_t: dict = {}
            lp = None
            if out.size:
                key = tuple(y.tolist())
                if key not in lps:
                    lps[key] = olp.at(y)  # (D5)
                lp = lps[key]
                if lp is None:
                    grow = (olp.unserved if olp.block is not None else [int(t) for t in out if _fixed_fleet_lp(
                        p, np.array([t]), y, y_ub, opts) is None])[:4]
                    break
                budget = 0.25 * tol * max(sol_s.report.objective or 0.0, 0.0)
                per_t, grow = _other_periods(p, out, y, lp, (sol_s, idx_s, S), opts, deadline, budget)  # (D2)
                if grow:
                    break
            pieces = {t: (sol_s, idx_s, k) for k, t in enumerate(S)} | per_t
            rep = SolveReport(status=Status.FEASIBLE, backend=Backend.HIGHS, objective=None, bound=None,
                              gap=None, solve_time_s=time.perf_counter() - t0, n_vars=model.n_cols,
                              n_cons=model.n_rows, message="", stop_reason=StopReason.CONVERGED)
            plan = _assemble(p, model, idx, y, pieces, rep, tol)
            if here is None or plan.report.objective < here[0].report.objective:
                here = (plan, y, pieces, lp)
            if best is None or plan.report.objective < best[0].report.objective:
                best = (plan, y, pieces, lp)
            if rent and plan.report.objective < fleets.get(tuple(y.tolist()), (np.inf,))[0]:
                fleets[tuple(y.tolist())] = (plan.report.objective, y, pieces, tuple(S))
            bound = _checked_bound(solved, best[0].report.objective)
            if relative_gap(best[0].report.objective, bound) <= tol or not out.size or time.perf_counter() > deadline:
                break
            if any(np.array_equal(c[0], y) for c in cuts):
                stalled = True  # theta is exact at y: no cut raises the bound there
                break
            cuts.append((y.astype(float), lp[2], lp[3]))
        n_cuts = max(n_cuts, len(cuts))
        if grow:
            S = sorted(set(S) | set(grow))  # (D3)
            continue
        if not stalled or time.perf_counter() > deadline:
            break
        # (D6) what is left is the other periods' rounding: the periods whose realised objective
        # is furthest above their LP join S (whole instances there), a tenth of them at a time
        plan_h, _, _, lp_h = here
        x_lp, ix_lp = lp_h[0], lp_h[1]
        realised = np.array([c_t[t] * plan_h.periods[t].energy_kwh for t in out])
        relaxed = c_t[out] * x_lp[ix_lp.energy.start + np.arange(out.size)]
        if ix_lp.rent_hw.size:  # with the on-demand rent of each period (r_{t,h} columns of (D5))
            w_usd = objective_weights(p)[0]
            realised = realised + w_usd * np.array([plan_h.periods[t].on_demand_usd for t in out])
            relaxed = relaxed + w_usd * (x_lp[ix_lp.ondemand].reshape(out.size, -1)
                                         @ ix_lp.ondemand_usd_per_server[ix_lp.rent_hw])
        worst = out[np.argsort(relaxed - realised, kind="stable")][:max(1, out.size // 10)]
        S = sorted(set(S) | {int(t) for t in worst})
    plan, y, pieces, _ = best
    if rent:  # (D7) the two best fleets, each period on its own MILP
        for _, y_k, pieces_k, S_k in sorted(fleets.values(), key=lambda v: v[0])[:2]:
            if time.perf_counter() > t0 + opts.time_limit_s:
                break
            pieces_k = _polish_on_demand(p, model, idx, y_k, pieces_k, S_k, opts, t0 + opts.time_limit_s)
            plan_k = _assemble(p, model, idx, y_k, pieces_k, plan.report, tol)
            if plan_k.report.objective < plan.report.objective:
                plan, y, pieces = plan_k, y_k, pieces_k
    bound = _checked_bound(solved, plan.report.objective)
    rep = SolveReport(status=Status.FEASIBLE, backend=Backend.HIGHS, objective=None, bound=float(bound), gap=None,
                      solve_time_s=time.perf_counter() - t0, n_vars=model.n_cols, n_cons=model.n_rows,
                      message=f"decomposed: {len(S)} fleet-setting period(s), {n_cuts} fleet cut(s), {rounds} round(s)",
                      stop_reason=StopReason.CONVERGED)
    plan = _assemble(p, model, idx, y, pieces, rep, tol)
    if plan.report.status != Status.OPTIMAL:
        plan = plan.model_copy(update={"report": plan.report.model_copy(update={"stop_reason": StopReason.OTHER_LIMIT})})
    return plan


def ondemand_servers(p: CapacityProblem, used_gpus: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fewest on-demand servers r_{t,h} (shape (periods, types)) that, with the fleet ``y``,
    hold ``used_gpus`` (GPUs running instances, per period and type) by (cap.gpus); 0 for types
    without an on-demand price. Also whether each period fits: (cap.gpus) for every type and
    (cap.available) ``y + r <= A`` for the types rented on demand."""
    gpus = np.array([o.gpus_per_server for o in p.offers], dtype=float)
    rent = np.array([o.rents_on_demand for o in p.offers], dtype=bool)
    avail = np.array([o.available_servers for o in p.offers], dtype=float)
    used_gpus = np.atleast_2d(used_gpus)
    tol = 1e-7  # GPU shares of time-shared (Mélange) plans carry the solver's and the fill's rounding
    r = np.where(rent[None, :], np.maximum(np.ceil((used_gpus - gpus * y) / gpus - tol), 0.0), 0.0)
    fits = ((used_gpus <= gpus * (y + r) + tol) & (~rent | (y + r <= avail + 1e-9))).all(axis=1)
    return r, fits


def _period_objective(p: CapacityProblem, per) -> float:
    """The objective of one realised period (energy, carbon and on-demand rent; the fleet apart)."""
    w_usd, w_kwh, w_kg = objective_weights(p)
    return w_usd * (per.energy_usd + per.carbon_usd + per.on_demand_usd) + w_kwh * per.energy_kwh + w_kg * per.carbon_kg


def _polish_on_demand(p: CapacityProblem, model, idx, y, pieces: dict, S, opts: SolveOptions, deadline: float) -> dict:
    """(D7) With on-demand rent, rounding the LP of (D2) up group by group can rent a server more per
    type and period. On the fleet ``y`` every period outside ``S`` is solved as its own MILP
    (identical periods once; until the deadline) and its deployment kept where its realised
    objective is lower. Only the plan changes, not the bound."""
    rep = SolveReport(status=Status.FEASIBLE, backend=Backend.HIGHS, objective=None, bound=None, gap=None,
                      solve_time_s=0.0, n_vars=0, n_cons=0, message="")
    before = _assemble(p, model, idx, y, pieces, rep, opts.mip_rel_gap)
    memo: dict[tuple, tuple | None] = {}
    new = dict(pieces)
    for t in sorted(set(range(p.n_periods)) - set(S)):
        if time.perf_counter() > deadline:
            break
        key = (p.demand_rps[t], p.electricity_usd_per_kwh[t], p.carbon_g_per_kwh[t])
        if key not in memo:
            left = max(deadline - time.perf_counter(), 1.0)
            sol_t, idx_t = _solve(_subproblem(p, [t], fleet=y, fleet_cost=False),
                                  opts.model_copy(update={"time_limit_s": left}))
            memo[key] = (sol_t, idx_t, 0) if sol_t.report.has_solution else None
        if memo[key] is not None:
            new[t] = memo[key]
    after = _assemble(p, model, idx, y, new, rep, opts.mip_rel_gap)
    return {t: (new[t] if _period_objective(p, after.periods[t]) < _period_objective(p, before.periods[t]) - 1e-12
                else pieces[t]) for t in pieces}


def _check_servable(p: CapacityProblem) -> None:
    d = p.demand()
    have = {r.request_class for r in p.recipes}
    for c_i, c in enumerate(p.classes):
        if d[:, c_i].max() > 0 and c not in have:
            raise InfeasibleError(f"capacity: class {c} has load but no operating point of "
                                  f"{', '.join(p.hardware)} meets its SLO")


def realise(p: CapacityProblem, idx, x: np.ndarray):
    """The deployment a solution stands for, with its power recomputed (capacity.md, (R1)-(R2)):
    per period and group g, N_g whole instances share the group's load evenly and each runs the
    clock of least power able to carry that load, priced by the profile's own interpolation where
    the recipe carries its curve (R2), else by its piece. Returns (fleet, N, load per group,
    chosen recipe per group, IT power of the instances per group (W))."""
    T, G = idx.n_periods, idx.n_groups
    y = np.rint(x[idx.fleet]).astype(int)
    N = x[idx.groups].reshape(T, G)
    if not p.shared_instances:
        N = np.rint(N)
    load_p = np.clip(x[idx.load].reshape(T, idx.n_recipes), 0.0, None)
    L = np.zeros((T, G))
    np.add.at(L, (slice(None), idx.group_of), load_p)
    lmax = idx.cap_rps  # u_hi * max_load_rps: what a piece carries in (cap.capacity)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(N > 0, L / np.where(N > 0, N, 1.0), 0.0)   # load of one instance (req/s)
    ell = per[:, idx.group_of]   # (T, P): the load of one instance of each recipe's group
    cost = idx.static_w[None, :] + idx.w_per_rps[None, :] * ell
    # a piece carries at most its upper end u_hi * max_load_rps, as in (cap.capacity)
    fits = idx.cap_rps[None, :] >= ell * (1 - 1e-9) - 1e-9
    for i, r in enumerate(p.recipes):
        q = r.true_power_w(ell[:, i])
        if q is not None:  # (R2): the profile's own power at that load, the clock able to carry it up to lmax
            cost[:, i] = q
            fits[:, i] = r.max_load_rps >= ell[:, i] * (1 - 1e-9) - 1e-9
    cost = np.where(fits, cost, np.inf)
    best = np.full((T, G), -1, dtype=np.int64)
    best_w = np.full((T, G), np.inf)
    for i in range(idx.n_recipes):
        g = idx.group_of[i]
        better = cost[:, i] < best_w[:, g]
        best_w[better, g] = cost[better, i]
        best[better, g] = i
    inst_w = np.where(N > 0, N * np.where(np.isfinite(best_w), best_w, 0.0), 0.0)
    return y, N, L, best, inst_w, np.isfinite(best_w) | (N <= 0)


def extract_plan(p: CapacityProblem, idx, x: np.ndarray, report: SolveReport, tol: float = 1e-3) -> CapacityPlan:
    """Read the deployment off the solution (:func:`realise`) and recompute every number from it;
    the report's objective is the realised plan's, its bound the solver's (a valid lower bound)."""
    T, G = idx.n_periods, idx.n_groups
    y, N, L, best, inst_w, servable = realise(p, idx, x)
    gpus = np.array([o.gpus_per_server for o in p.offers])
    idle_w = np.array([o.idle_power_w for o in p.offers]) * (p.idle == "idle")
    H = len(p.offers)
    g_hw = np.array([k[0] for k in idx.group_keys], dtype=np.int64)
    g_cl = np.array([k[1] for k in idx.group_keys], dtype=np.int64)
    g_tp = np.array([k[2] for k in idx.group_keys], dtype=float)
    used = np.zeros((T, H))
    np.add.at(used, (slice(None), g_hw), N * g_tp[None, :])
    # r_{t,h}: the fewest on-demand servers holding the instances with the fleet (cap.gpus); the
    # solution's own r is never fewer, and fewer servers never cost more
    r_od, r_fit = ondemand_servers(p, used, y)
    servable = servable & r_fit[:, None]
    it_w = inst_w.sum(axis=1) + ((gpus * y)[None, :] + gpus[None, :] * r_od - used) @ idle_w
    kwh = it_w * idx.kwh_per_w
    el = np.asarray(p.electricity_usd_per_kwh)
    kg = kwh * np.asarray(p.carbon_g_per_kwh) / 1000.0
    e_usd, c_usd = kwh * el, kg / 1000.0 * p.carbon_price_usd_per_t
    reserved_usd = float(idx.fleet_usd_per_server @ y)
    od_usd_t = r_od @ idx.ondemand_usd_per_server if idx.ondemand_usd_per_server.size else np.zeros(T)
    fleet_usd = reserved_usd + float(od_usd_t.sum())
    # the pieces' error only where a plan's power comes from a piece (no profile curve: Mélange)
    exact = np.array([bool(r.curve_load_rps) for r in p.recipes], dtype=bool)
    err_kwh = float(sum(N[t, g] * idx.error_w[best[t, g]] for t in range(T) for g in range(G) if N[t, g] > 0
                        and best[t, g] >= 0 and not exact[best[t, g]]) * idx.kwh_per_w)
    d = p.demand()
    lmax = idx.cap_rps  # u_hi * max_load_rps: what a piece carries in (cap.capacity)
    gcap = np.zeros(G)
    np.maximum.at(gcap, idx.group_of, lmax)
    cap_c = np.zeros((T, len(p.classes)))
    np.add.at(cap_c, (slice(None), g_cl), N * gcap[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        head = np.where(d > 0, 1.0 - d / np.where(cap_c > 0, cap_c, np.nan), np.nan)
    headroom = {c: (float(np.nanmin(head[:, i])) if np.isfinite(head[:, i]).any() else 1.0)
                for i, c in enumerate(p.classes)}
    periods = []
    for t in range(T):
        groups = []
        for g in np.flatnonzero(N[t] > 1e-9):
            r = p.recipes[best[t, g]] if best[t, g] >= 0 else None
            h, c, tp = idx.group_keys[g]
            groups.append({"hardware": p.hardware[h], "tp": int(tp), "freq_mhz": r.freq_mhz if r else None,
                           "request_class": p.classes[c],
                           "instances": float(N[t, g]) if p.shared_instances else int(N[t, g]),
                           "load_rps": float(L[t, g]), "capacity_rps": float(N[t, g] * gcap[g])})
        periods.append(PeriodDeployment(
            period=t, demand_rps={c: float(d[t, j]) for j, c in enumerate(p.classes)}, groups=tuple(groups),
            gpus_used={h: int(round(used[t, j])) for j, h in enumerate(p.hardware)},
            on_demand_servers={h: int(r_od[t, j]) for j, h in enumerate(p.hardware) if p.offers[j].rents_on_demand},
            on_demand_usd=float(od_usd_t[t]),
            it_power_w=float(it_w[t]), energy_kwh=float(kwh[t]), energy_usd=float(e_usd[t]), carbon_kg=float(kg[t]),
            carbon_usd=float(c_usd[t])))
    binding = []
    if any(y[j] >= o.max_servers for j, o in enumerate(p.offers)) or any(
            y[j] <= o.min_servers and o.min_servers > 0 for j, o in enumerate(p.offers)) or any(
            o.rents_on_demand and (y[j] + r_od[:, j]).max(initial=0) >= o.available_servers
            for j, o in enumerate(p.offers)):
        binding.append("availability")
    if any(v < 0.05 for v in headroom.values()):
        binding.append("slo")
    if (p.energy_cap_kwh is not None and kwh.sum() >= p.energy_cap_kwh * (1 - 1e-6)) or (
            p.carbon_cap_kg is not None and kg.sum() >= p.carbon_cap_kg * (1 - 1e-6)):
        binding.append("budget")
    total = fleet_usd + float(e_usd.sum() + c_usd.sum())
    wc, we, wk = objective_weights(p)
    objective = wc * total + we * float(kwh.sum()) + wk * float(kg.sum())
    if report.has_solution:
        bound = None if report.bound is None else min(report.bound, objective)
        gap = relative_gap(objective, bound)
        proven = servable.all() and gap is not None and gap <= tol + 1e-9
        report = report.model_copy(update={"objective": objective, "bound": bound, "gap": gap,
                                           "status": Status.OPTIMAL if proven else Status.FEASIBLE})
    return CapacityPlan(
        fleet={h: int(y[j]) for j, h in enumerate(p.hardware)},
        gpus={h: int(y[j] * gpus[j]) for j, h in enumerate(p.hardware)},
        objective=p.objective, load_basis=p.load_basis, horizon_h=p.horizon_h, cost_usd=total, fleet_usd=fleet_usd,
        reserved_usd=reserved_usd, on_demand_usd=float(od_usd_t.sum()),
        on_demand_peak_servers={h: int(r_od[:, j].max(initial=0)) for j, h in enumerate(p.hardware)
                                if p.offers[j].rents_on_demand},
        on_demand_server_h={h: float(r_od[:, j].sum() * p.period_s / 3600.0) for j, h in enumerate(p.hardware)
                            if p.offers[j].rents_on_demand},
        energy_usd=float(e_usd.sum()), carbon_usd=float(c_usd.sum()), cost_usd_per_h=total / p.horizon_h,
        energy_kwh=float(kwh.sum()), carbon_kg=float(kg.sum()),
        peak_power_w=float(it_w.max() * p.pue), power_model_error_kwh=err_kwh, headroom=headroom,
        binding=tuple(binding), periods=tuple(periods), report=report)


