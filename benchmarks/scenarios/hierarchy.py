"""The whole hierarchy as the scheduler runs it: cluster + every pool + the instance level.

Build: constructing a :class:`~dynaplan.planning.Planner` for the point (operating points,
power pieces, envelope pruning): the one-off cost of a new profile or inventory.
Solve: one planning call in steady state: ``plan(forecast)`` (cluster recipe MILP, then one
MILP per pool) followed by the instance level ``clocks(instances_of(plan))``, on a memoised
planner whose model caches are warm (the warm-up run, ``first_run_s``, includes constructing
that planner and its first call). Parts: the cluster and pool builds and solves as the plan's
reports give them, the instance level, and the rest of the call (``plan_other_s``: reading
solutions into typed plans).

Backends may take different (equally good) cluster decisions, so their pool models differ and
their bounds are not compared. Check: ``check_plan`` on the plan; every instance meets its SLO at the chosen clock and the
instance level never draws more than the plan's own instance power.
"""

from __future__ import annotations

import time

from dynaplan.planning import Planner

from benchmarks import inputs
from benchmarks.registry import Case, Outcome, Point, register_sweep
from benchmarks.scenarios.common import SHAPE_SWEEP, HIER_BACKENDS, check_plans

SWEEP = {
    "servers": (10, 40, 400, 4000, 12500),
    **SHAPE_SWEEP,
    "n_loads": (4, 6, 12, 24, 48),
    "load_segments": (1, 2, 3, 6, 12, 22),
}
QUICK = {"servers": (40,)}


def plan_parts(plan) -> dict[str, float]:
    """Where a planning call's time went (s), from its reports."""
    cr = plan.cluster_report
    pools = [pp.report for pp in plan.pools if pp.report is not None]
    parts = {"cluster_build_s": cr.build_time_s if cr else 0.0, "cluster_solve_s": cr.solve_time_s if cr else 0.0,
             "pool_build_s": sum(r.build_time_s for r in pools), "pool_solve_s": sum(r.solve_time_s for r in pools)}
    parts["plan_other_s"] = max(0.0, plan.wall_time_s - sum(parts.values()))
    return parts


def run_hierarchy(pl: Planner, forecast: dict):
    t0 = time.perf_counter()
    plan = pl.plan(forecast)
    t1 = time.perf_counter()
    clocks = pl.clocks(Planner.instances_of(plan))
    t2 = time.perf_counter()
    return plan, clocks, t1 - t0, t2 - t1


def read_hierarchy(res) -> Outcome:
    plan, clocks, plan_s, inst_s = res
    parts = plan_parts(plan)
    parts["instance_s"] = inst_s
    r = plan.report
    return Outcome(status=r.status.value, objective=r.objective, bound=r.bound, gap=r.gap, parts_s=parts,
                   metrics={"power_w": plan.power_w, "servers": sum(plan.servers.values()), "pools": len(plan.pools),
                            "instances": len(clocks), "instance_power_w": float(clocks["power_w"].sum()),
                            "plan_wall_s": plan.wall_time_s, "notes": " | ".join(plan.notes)})


def check_hierarchy(st, res) -> tuple[bool, str]:
    plan, clocks, _, _ = res
    ok, msg = check_plans(st.profile, st.slos, st.inventory, plan)
    if not ok:
        return ok, msg
    if not clocks["meets_slo"].all():
        return False, f"instance level: {int((~clocks['meets_slo']).sum())} instance(s) miss the SLO at every clock"
    planned = sum(g.power_w for pp in plan.pools for g in pp.groups)
    chosen = float(clocks["power_w"].sum())
    if chosen > planned * (1 + 1e-6) + 1e-6:
        return False, f"instance level draws {chosen:.6g} W > the plan's instances {planned:.6g} W"
    return True, ""


@register_sweep("hierarchy", sweep=SWEEP, quick=QUICK, backends=HIER_BACKENDS, backend_dims=("servers",),
                repeats=5, time_limit_s=10.0, same_model=False)
def build(point: Point) -> Case:
    """Cluster + pool + instance level, one planning call (warm planner)."""
    st = inputs.setting(point)
    Planner(st.profile, st.inventory, st.slos, options=st.options)  # timed: the planner's one-off setup

    def run(backend: str, opts):
        return run_hierarchy(inputs.planner(st, backend, opts), st.forecast)

    return Case(run=run, read=read_hierarchy, check=lambda res: check_hierarchy(st, res),
                info={"servers": st.servers, "classes": len(st.profile.classes.names),
                      "load_rps": sum(st.forecast.values())})
