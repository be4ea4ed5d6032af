"""Pieces shared by the scenarios: a MILP case over every backend, plan wrappers and checks."""

from __future__ import annotations

import math
from collections.abc import Callable

from dynaplan.planning import check_plan
from dynaplan.planning.plan import Plan, PoolPlan, plan_totals
from dynaplan.solvers import LinearModel
from dynaplan.solvers.result import SolveReport, Status

from benchmarks.backends import ALL_BACKENDS, PLANNER_BACKENDS, MilpResult, check_milp, solve_model
from benchmarks.registry import Case, Outcome

MILP_BACKENDS = ALL_BACKENDS
HIER_BACKENDS = PLANNER_BACKENDS
# The problem-shape dimensions every MILP sweep moves (inputs.py builds a point from each)
SHAPE_SWEEP = {"classes": (9, 16, 25, 36), "hardware": (1, 2, 3), "clocks": (7, 10, 14)}


def model_info(model: LinearModel, arrays) -> dict:
    return {"n_vars": int(arrays.n_cols), "n_int": int(arrays.integer.sum()), "n_cons": int(len(arrays.row_lo)),
            "nnz": int(arrays.A.nnz)}


def milp_case(model: LinearModel, extra_check: Callable[[MilpResult], tuple[bool, str]] | None = None,
              info: dict | None = None, heuristics: bool | None = None) -> Case:
    """A built LinearModel as a :class:`Case`: ``run`` solves it with the named backend.

    ``heuristics``: HiGHS's primal heuristics for this model, as the planner sets them for its
    kind (on for the monolithic MILP); None leaves the options as they are (off for a bare solve).
    """
    arrays = model.arrays()

    def run(backend: str, opts) -> MilpResult:
        if heuristics is not None and opts.highs_heuristics is None:
            opts = opts.model_copy(update={"highs_heuristics": heuristics})
        return solve_model(model, backend, opts, arrays)

    def read(res: MilpResult) -> Outcome:
        return Outcome(status=res.status, objective=res.objective, bound=res.bound, gap=res.gap,
                       parts_s={"translate_s": res.translate_s, "solver_s": res.solver_s})

    def check(res: MilpResult) -> tuple[bool, str]:
        ok, msg = check_milp(res)
        if ok and extra_check is not None:
            ok, msg = extra_check(res)
        return ok, msg

    return Case(run=run, read=read, check=check, info={**model_info(model, arrays), **(info or {})})


def pool_plan_as_plan(pp: PoolPlan, loads_rps: dict[str, float], epoch_s: float = 300.0) -> Plan:
    """A one-pool :class:`Plan`, so :func:`check_plan` can check a pool-level result."""
    return Plan(mode="pool", epoch_s=epoch_s, forecast_rps=dict(loads_rps), pools=(pp,), power_w=pp.power_w,
                energy_j=pp.power_w * epoch_s, servers=dict(pp.servers), gpus=pp.gpus, approx_error_bound_w=0.0,
                report=pp.report, wall_time_s=0.0)


def plan_of_pools(pools: list[PoolPlan], forecast_rps: dict[str, float], mode: str, epoch_s: float) -> Plan:
    """A :class:`Plan` of pools read off a bare MILP solution (no planner report), so
    :func:`check_plan` can recompute its power from the profile: its report claims only the
    plan's own power (status ``feasible``, no bound)."""
    servers, gpus, power = plan_totals(pools)
    report = SolveReport(status=Status.FEASIBLE, backend=None, objective=power, bound=None, gap=None, solve_time_s=0.0,
                         message="read off a MILP solution")
    return Plan(mode=mode, epoch_s=epoch_s, forecast_rps=dict(forecast_rps), pools=tuple(pools), power_w=power,
                energy_j=power * epoch_s, servers=servers, gpus=gpus, approx_error_bound_w=0.0, report=report,
                wall_time_s=0.0)


def check_plans(profile, slos, inventory, plan: Plan) -> tuple[bool, str]:
    """check_plan, a solved status and a finite objective."""
    if not plan.report.has_solution:
        return False, f"plan status {plan.report.status.value}: {plan.report.message}"
    if plan.report.objective is None or not math.isfinite(plan.report.objective):
        return False, "plan objective not finite"
    chk = check_plan(profile, inventory, slos, plan)
    if not chk.ok:
        return False, "check_plan: " + "; ".join(chk.violations[:3])
    return True, ""


def mix_aware_power_w(profile, slos, plan: Plan) -> tuple[float, float]:
    """The plan's power re-priced class by class, and the share of its load served in a foreign pool.

    The planner prices an instance serving several classes as the *pool class's* power at the
    equivalent load ``U * lmax_pool`` (formulations/pool.md), which is the profile's power only
    for single-class instances. Here an instance at utilisation ``U = sum_c l_c / lmax_c`` draws
    ``sum_c (u_c / U) * P_c(U * lmax_c)``: each class's own curve at the same utilisation,
    weighted by its share. Identical to the planner's figure for single-class instances; idle
    GPUs draw idle power as in the plan. Returns ``(power_w, foreign_load_share)``.
    """
    import numpy as np

    tab = profile.table
    tab = tab[tab["model"] == profile.models[0]]
    curves = {k: (g["load_rps"].to_numpy(), g["power_w"].to_numpy())
              for k, g in tab.groupby(["hardware", "tp", "freq_mhz", "request_class"], sort=False)}
    ml = profile.max_load_under_slo(slos)
    lmax = {(h, int(t), int(f), c): float(v) for h, t, f, c, v in
            ml[["hardware", "tp", "freq_mhz", "request_class", "max_load_rps"]].itertuples(index=False, name=None)}
    total, foreign, served = 0.0, 0.0, 0.0
    for pp in plan.pools:
        total += pp.idle_power_w
        for g in pp.groups:
            parts = {c: l / lmax[(g.hardware, g.tp, g.freq_mhz, c)] for c, l in g.load_rps_per_instance.items() if l > 0}
            u = sum(parts.values())
            if u <= 0:  # an idle instance: its pool class's lightest-load power, as the plan prices it
                total += g.power_w
                continue
            p = 0.0
            for c, uc in parts.items():
                x, y = curves[(g.hardware, g.tp, g.freq_mhz, c)]
                p += uc / u * float(np.interp(u * lmax[(g.hardware, g.tp, g.freq_mhz, c)], x, y))
            total += p * g.count
            for c, l in g.load_rps_per_instance.items():
                served += l * g.count
                if c != pp.pool:
                    foreign += l * g.count
    return total, (foreign / served if served > 0 else 0.0)


def record_milp_reports(planner) -> list:
    """Wrap ``planner``'s cached-model solve so that every MILP report it gets is appended to the
    returned list (a plan's own report is against the global bound, formulations/bound.md; this
    keeps the MILP's status, objective and dual bound)."""
    reports: list = []
    solve = planner._solve_cached

    def spy(*a, **k):
        x, rep = solve(*a, **k)
        reports.append(rep)
        return x, rep

    planner._solve_cached = spy
    return reports


def biggest_pool(plan: Plan) -> PoolPlan:
    """The pool with the most servers (ties: the most instances)."""
    return max(plan.pools, key=lambda pp: (sum(pp.servers.values()), sum(g.count for g in pp.groups)))
