"""Cluster level: the whole-server recipe MILP (formulations/cluster.md) on every backend.

Build: ``cluster.build(ops, routes, demand, inventory, hardware, pools)`` and ``model.arrays()``
for the point's forecast and inventory. Solve: the backend call. Check: the solution satisfies
the model (demand, capacity, inventory, integrality).

Cluster sizes start at 10 servers: with ``spill='next'`` every class needs its own pool or the
next one, so 9 classes need at least 5 pools of at least one server each, and the scaled
forecast of a 1- or 4-server cluster is infeasible (single pools of 1 .. 12,500 servers are in
the ``pool`` sweep).
"""

from __future__ import annotations

from dynaplan.formulations import cluster as cluster_f

from benchmarks import inputs
from benchmarks.registry import Point, register_sweep
from benchmarks.scenarios.common import SHAPE_SWEEP, MILP_BACKENDS, milp_case

SWEEP = {
    "servers": (10, 40, 400, 4000, 12500),
    **SHAPE_SWEEP,
    "n_loads": (4, 6, 12, 24, 48),
}
QUICK = {"servers": (40,)}


@register_sweep("cluster", sweep=SWEEP, quick=QUICK, backends=MILP_BACKENDS, repeats=7, time_limit_s=10.0)
def build(point: Point):
    """Cluster level MILP: servers per pool and hardware, and spill (formulations/cluster.md)."""
    st = inputs.setting(point)
    pl = inputs.planner(st)
    demand = {c: v for c, v in st.forecast.items() if v > 0}
    model, _, _ = cluster_f.build(pl.ops, pl.routes, demand, st.inventory, pl.hardware, pl.classes,
                                  routed_ops=pl.routed_ops)
    return milp_case(model, info={"servers": st.servers, "classes": len(pl.classes), "load_rps": sum(demand.values())})
