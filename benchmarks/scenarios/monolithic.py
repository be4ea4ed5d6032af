"""Monolithic reference: every pool, the inventory and spill in one MILP (formulations/monolithic.md).

Build: ``monolithic.build(ops, segments, routes, demand, inventory, hardware, pools)`` and
``model.arrays()``. Solve: the backend call under a 10 s time limit (5 s with ``--quick``):
monolithic solves take seconds on 9 classes and hit the limit on larger ones, so status, bound
and gap are recorded rather than waited for. One timed run per point (no warm-up): at seconds
per solve, import and cache effects are noise. Every backend runs on the ``servers`` sweep;
the other dimensions run on HiGHS only.
"""

from __future__ import annotations

from dynaplan.formulations import monolithic as mono_f

from benchmarks import inputs
from benchmarks.registry import Point, register_sweep
from benchmarks.scenarios.common import SHAPE_SWEEP, MILP_BACKENDS, milp_case

SWEEP = {
    "servers": (10, 40, 400, 4000, 12500),
    **SHAPE_SWEEP,
    "n_loads": (4, 6, 12, 24),
    "load_segments": (1, 2, 3, 6, 12, 22),
}
QUICK = {"servers": (12500,)}


@register_sweep("monolithic", sweep=SWEEP, quick=QUICK, backends=MILP_BACKENDS, backend_dims=("servers",),
                repeats=1, warmup=False, time_limit_s=10.0, quick_time_limit_s=5.0)
def build(point: Point):
    """Monolithic MILP: all pools, inventory and spill at once (formulations/monolithic.md)."""
    st = inputs.setting(point)
    pl = inputs.planner(st)
    demand = {c: v for c, v in st.forecast.items() if v > 0}
    model, _, _ = mono_f.build(pl.ops, pl.segments, pl.routes, demand, st.inventory, pl.hardware, pl.classes,
                               routed_ops=pl.routed_ops)
    # heuristics on, as Planner.plan_monolithic runs it: without them HiGHS can find no solution at
    # all within the quick run's 5 s on 12,500 servers
    return milp_case(model, info={"servers": st.servers, "classes": len(pl.classes), "load_rps": sum(demand.values())},
                     heuristics=True)
