"""Per-period Plans on the capacity plan's fleet (dynaplan.capacity.deploy)."""

from __future__ import annotations

import json

import pandas as pd

from dynaplan.capacity import capacity_problem, plan_capacity
from dynaplan.domain import DEFAULT_SLOS
from dynaplan.planning import Plan, check_plan
from dynaplan.profiles import Profile


def test_every_period_plan_passes_check_plan_and_states_its_difference():
    profile = Profile.default()
    rates = pd.DataFrame({"MM": [6.0, 3.0, 6.0]})  # periods 0 and 2 identical: planned once
    problem = capacity_problem(profile=profile, rates=rates, hardware=["h100-80gb"])
    plan = plan_capacity(problem, period_plans=True, profile=profile)
    assert plan.period_plans is not None and len(plan.period_plans) == 3
    for pp, per in zip(plan.period_plans, plan.periods):
        assert pp["served"], pp["message"]
        p = Plan.model_validate(pp["plan"])
        load = {c: v for c, v in per.demand_rps.items() if v > 0}
        check = check_plan(profile, plan.fleet, DEFAULT_SLOS, p, forecast=load)
        assert check.ok, check
        assert pp["model_it_power_w"] == per.it_power_w
        assert pp["difference_w"] == pp["plan_it_power_w"] - pp["model_it_power_w"]
    assert plan.period_plans[0]["plan"] == plan.period_plans[2]["plan"]
    # JSON round trip
    again = type(plan).model_validate_json(plan.to_json())
    assert again.period_plans == plan.period_plans
    json.dumps(plan.model_dump(mode="json"))
