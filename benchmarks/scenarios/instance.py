"""Instance level: the clock of every instance from its load (formulations/instance.md).

No solver: a vectorised argmin over instances x clock levels. The instances are those of the
HiGHS hierarchical plan at the point (15 at 40 servers, ~4,100 at 12,500 in the latest run).
Build: ``Planner.instances_of(plan)`` (the long per-instance load frame). Solve:
``Planner.clocks(frame)``. Check: every instance meets its SLO and the chosen clocks never draw
more than the plan's own instance power.
"""

from __future__ import annotations

from dynaplan.planning import Planner

from benchmarks import inputs
from benchmarks.registry import Case, Outcome, Point, register_sweep

SWEEP = {
    "servers": (10, 40, 400, 4000, 12500),
    "classes": (9, 16, 25, 36),
    "hardware": (1, 2, 3),
    "clocks": (7, 10, 14),
}
QUICK = {"servers": (40,)}


@register_sweep("instance", sweep=SWEEP, quick=QUICK, backends=("numpy",), repeats=7)
def build(point: Point) -> Case:
    """Instance level: clocks of every instance of the plan (vectorised, no solver)."""
    plan = inputs.hierarchical_plan(point)
    pl = inputs.planner(inputs.setting(point))
    frame = Planner.instances_of(plan)
    planned_w = sum(g.power_w for pp in plan.pools for g in pp.groups)

    def run(backend: str, opts):
        return pl.clocks(frame)

    def read(clocks) -> Outcome:
        return Outcome(status="done", objective=float(clocks["power_w"].sum()),
                       metrics={"instances": len(clocks), "planned_instance_power_w": planned_w})

    def check(clocks) -> tuple[bool, str]:
        if len(clocks) != frame["instance"].nunique():
            return False, f"{len(clocks)} clock rows for {frame['instance'].nunique()} instances"
        if not clocks["meets_slo"].all():
            return False, f"{int((~clocks['meets_slo']).sum())} instance(s) miss the SLO at every clock"
        chosen = float(clocks["power_w"].sum())
        if chosen > planned_w * (1 + 1e-6) + 1e-6:
            return False, f"chosen clocks draw {chosen:.6g} W > the plan's {planned_w:.6g} W"
        return True, ""

    return Case(run=run, read=read, check=check, info={"instances": int(frame["instance"].nunique()),
                                                        "rows": len(frame), "servers": sum(plan.servers.values())})
