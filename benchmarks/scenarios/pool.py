"""Pool level: one pool's MILP (formulations/pool.md) built and solved on every backend.

The pool is the largest pool (most servers) of the HiGHS hierarchical plan at the point's
inputs, with the loads the cluster level routed to it and its servers. On the ``servers``
dimension the 40-server plan's largest pool is scaled: ``servers`` servers and its loads times
``servers / its servers`` (the same pool at any size, 1 .. 12,500 servers).

Build: ``pool.build(ops, segments, pool, loads, servers, hardware)`` and ``model.arrays()``.
Solve: the backend call. Check: the solution satisfies the model, and (HiGHS) the Planner's own
``plan_pool`` on the same inputs passes ``check_plan`` with the same objective (within the gap).
"""

from __future__ import annotations

import math
from functools import lru_cache

from dynaplan.domain.hardware import H100_80GB
from dynaplan.formulations import pool as pool_f

from benchmarks import inputs
from benchmarks.registry import Point, register_sweep
from benchmarks.scenarios.common import SHAPE_SWEEP, MILP_BACKENDS, biggest_pool, check_plans, milp_case, pool_plan_as_plan

SWEEP = {
    "servers": (1, 4, 40, 400, 4000, 12500),
    **SHAPE_SWEEP,
    "n_loads": (4, 6, 12, 24, 48),
    "load_segments": (1, 2, 3, 4, 6, 8, 12, 22),
}
QUICK = {"servers": (4, 40)}


@lru_cache(maxsize=None)
def pool_problem(point: Point):
    """(setting, pool, loads by class in req/s, servers by hardware) of a point."""
    if point.dimension == "servers":
        ref = Point("servers", inputs.BASE_SERVERS)
        pp = biggest_pool(inputs.hierarchical_plan(ref))
        n = int(point.value)
        scale = n / sum(pp.servers.values())
        return inputs.setting(ref), pp.pool, {c: v * scale for c, v in pp.served_rps.items()}, {H100_80GB.name: n}
    pp = biggest_pool(inputs.hierarchical_plan(point))
    return inputs.setting(point), pp.pool, dict(pp.served_rps), dict(pp.servers)


@register_sweep("pool", sweep=SWEEP, quick=QUICK, backends=MILP_BACKENDS, repeats=7, time_limit_s=10.0)
def build(point: Point):
    """Pool level MILP of the largest pool (formulations/pool.md)."""
    st, pool, loads, servers = pool_problem(point)
    pl = inputs.planner(st)
    model, _, _ = pool_f.build(pl.ops, pl.segments, pool, loads, servers, pl.hardware,
                               routed_ops=pl.routed_ops)

    def planner_agrees(res):
        if res.backend != "highs":
            return True, ""
        pp = pl.plan_pool(pool, loads, servers)
        ok, msg = check_plans(st.profile, st.slos, servers, pool_plan_as_plan(pp, loads))
        if not ok:
            return ok, msg
        obj = pp.report.objective
        tol = 2 * max(pl.solve_options.mip_rel_gap, 1e-6) * abs(obj)
        if obj is None or not math.isfinite(obj):
            return False, f"Planner.plan_pool objective {obj}"
        if res.status != "optimal":  # a time-limited incumbent may be worse, never better
            if res.objective < obj - tol - 1e-6:
                return False, f"the built model's incumbent {res.objective} beats Planner.plan_pool's optimum {obj}"
            return True, ""
        if abs(obj - res.objective) > tol + 1e-6:
            return False, f"Planner.plan_pool objective {obj} != the built model's {res.objective}"
        return True, ""

    return milp_case(model, planner_agrees, info={"pool": pool, "servers": sum(servers.values()),
                                                  "classes_routed": len(loads), "load_rps": sum(loads.values())})
