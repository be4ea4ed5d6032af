"""Pareto fronts of cost against energy or carbon, by epsilon constraint (capacity.md (cap.energy_cap),
(cap.carbon_cap))."""

from __future__ import annotations

import numpy as np

from dynaplan.capacity.problem import CapacityProblem
from dynaplan.capacity.solve import CapacityPlan, plan_capacity
from dynaplan.errors import InfeasibleError, ValidationError


def pareto_front(problem: CapacityProblem, *, against: str = "energy", points: int = 5,
                 time_limit_s: float = 60.0, mip_rel_gap: float = 1e-3) -> tuple[CapacityPlan, ...]:
    """Least-cost plans under caps on energy (kWh) or carbon (kg) spread evenly between the
    cost-optimal plan's value and the least achievable one. Every plan carries its own report
    (status, bound, gap); points found infeasible within the time limit are left out."""
    if against not in ("energy", "carbon"):
        raise ValidationError(f"against={against!r}; expected 'energy' or 'carbon'")
    if not 2 <= points <= 50:
        raise ValidationError(f"points={points}; expected 2..50")
    metric = "energy_kwh" if against == "energy" else "carbon_kg"
    cap_field = "energy_cap_kwh" if against == "energy" else "carbon_cap_kg"
    base = problem.model_copy(update={"objective": "cost", "energy_cap_kwh": None, "carbon_cap_kg": None})
    cheapest = plan_capacity(base, time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap)
    greenest = plan_capacity(base.model_copy(update={"objective": against}), time_limit_s=time_limit_s,
                             mip_rel_gap=mip_rel_gap)
    hi, lo = getattr(cheapest, metric), getattr(greenest, metric)
    out = [cheapest]
    for cap in np.linspace(hi, lo, points)[1:-1]:
        try:
            out.append(plan_capacity(base.model_copy(update={cap_field: float(cap)}), time_limit_s=time_limit_s,
                                     mip_rel_gap=mip_rel_gap, method="monolithic"))
        except InfeasibleError:
            continue
    out.append(greenest)
    return tuple(out)
