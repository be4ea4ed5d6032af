"""Plan a 40-server H100 cluster for one hour of the bundled Azure conversation trace.

The per-class peak arrival rate (1-minute windows) of the hour is the forecast, with the trace
scaled to a mean of 45 req/s (the mean rate of the week-long Azure conversation trace of 2024).
The script prints the hierarchical plan, checks it with the independent checker, compares it with
the monolithic optimum, and asserts both pass the checker.

Run: python examples/plan_cluster.py
"""

from __future__ import annotations

from rich.console import Console

from dynaplan.cli.plan import plan_tables
from dynaplan.domain import DEFAULT_SLOS
from dynaplan.planning import Planner, check_plan
from dynaplan.planning.inputs import peak_forecast
from dynaplan.profiles import Profile
from dynaplan.workload import load_trace

INVENTORY = {"h100-80gb": 40}


def main() -> None:
    profile = Profile.default()
    forecast = peak_forecast(load_trace("azure-conv-2023"), window_s="60s", target_mean_rps=45.0)
    planner = Planner(profile, INVENTORY, DEFAULT_SLOS)
    plan = planner.plan(forecast)
    console = Console(width=120)
    for table in plan_tables(plan):
        console.print(table)

    check = check_plan(profile, INVENTORY, DEFAULT_SLOS, plan, forecast=forecast)
    assert check.ok, check.violations
    served = sum(check.served_rps.values())
    assert abs(served - sum(forecast.values())) < 1e-6 * max(1.0, served), (served, forecast)
    assert plan.servers["h100-80gb"] <= 40

    mono = planner.plan_monolithic(forecast)
    assert check_plan(profile, INVENTORY, DEFAULT_SLOS, mono, forecast=forecast).ok
    console.print(f"hierarchical {plan.power_w / 1e3:.2f} kW in {plan.wall_time_s * 1e3:.0f} ms; "
                  f"monolithic {mono.power_w / 1e3:.2f} kW in {mono.wall_time_s * 1e3:.0f} ms "
                  f"(hierarchy / monolithic = {plan.power_w / mono.power_w:.4f})")


if __name__ == "__main__":
    main()
