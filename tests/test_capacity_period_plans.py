"""Per-period Plans through the CLI (``dynaplan capacity --period-plans``), and a period the fleet
cannot serve as the Planner plans it: flagged with its reason, never reported as served."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from dynaplan.capacity import capacity_problem, plan_capacity
from dynaplan.capacity.deploy import period_plans
from dynaplan.domain import DEFAULT_SLOS
from dynaplan.planning import Plan, check_plan
from dynaplan.profiles import Profile


def test_period_plans_through_the_cli_each_pass_check_plan(tmp_path):
    res = subprocess.run([sys.executable, "-m", "dynaplan", "capacity", "--peak-rps", "80", "--periods", "2",
                          "--hardware", "h100-80gb", "--period-plans", "--json", "c.json"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr
    plan = json.loads((tmp_path / "c.json").read_text())["plans"][0]
    pps = plan["period_plans"]
    assert [pp["period"] for pp in pps] == [per["period"] for per in plan["periods"]] and len(pps) == 2
    profile = Profile.default()
    for pp, per in zip(pps, plan["periods"]):
        assert pp["served"], pp["message"]
        load = {c: v for c, v in per["demand_rps"].items() if v > 0}
        p = Plan.model_validate(pp["plan"])
        # an independent re-check of the Plan on the capacity plan's fleet, against the period's load
        check = check_plan(profile, plan["fleet"], DEFAULT_SLOS, p, forecast=load)
        assert check.ok, check
        assert sum(p.servers.values()) <= sum(plan["fleet"].values())
        # the Plan's energy uses the period's length and PUE as the model's own figures do (1 h, PUE 1.2 bundled)
        assert abs(pp["plan_energy_kwh"] - p.power_w * 1.2 * (plan["horizon_h"] / 2) / 1e3) < 1e-9 * (1 + p.power_w)
        assert abs(pp["model_energy_kwh"] - pp["model_it_power_w"] * 1.2 / 1e3) < 1e-9 * (1 + p.power_w)


def test_a_period_the_fleet_cannot_serve_is_flagged_not_served():
    profile = Profile.default()
    problem = capacity_problem(profile=profile, rates=pd.DataFrame({"MM": [40.0, 4.0]}), hardware=["h100-80gb"])
    plan = plan_capacity(problem)
    assert plan.fleet["h100-80gb"] >= 2
    # the same periods on one server fewer than the fleet the model chose: the busy period cannot
    # be served by the Planner (the fleet is the least that serves it), the light one still can
    small = plan.model_copy(update={"fleet": {"h100-80gb": 1}})
    out = period_plans(small, problem, profile=profile)
    busy, light = out
    assert not busy.served and busy.message and busy.plan_it_power_w is None and busy.difference_w is None
    assert light.served and light.plan is not None
    p = Plan.model_validate(light.plan)
    assert check_plan(profile, {"h100-80gb": 1}, DEFAULT_SLOS, p, forecast={"MM": 4.0}).ok
