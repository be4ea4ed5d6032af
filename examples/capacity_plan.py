"""The operator's question, end to end: "I expect 200 req/s of conversation traffic at peak; how
many H100 or A100 servers, or what mix, should I rent, at what cost, energy and carbon, to meet the
SLOs; what if load doubles?"

The load is the bundled Azure conversation trace's class mix under the weekly conversation
envelope, 24 hourly periods, scaled so the busiest hour carries 200 req/s. The script plans the
fleet for growth 1 and 2, prints the answer, and checks it itself:

* the cost adds up (fleet + energy + carbon price, per period and over the horizon);
* the fleet serves the load: every period's deployment is checked against that period's load and
  the fleet's GPUs, with each group's SLO capacity recomputed from the profile table; and the
  hierarchical Planner plans the quietest period on exactly that fleet, which the independent
  checker ``check_plan`` accepts (SLOs, capacity, inventory).

Run: python examples/capacity_plan.py
"""

from __future__ import annotations

import math

from dynaplan.capacity import capacity_problem, plan_capacity
from dynaplan.domain import DEFAULT_SLOS
from dynaplan.planning import Planner, check_plan
from dynaplan.profiles import Profile
from dynaplan.solvers import SolveOptions

HARDWARE = ["h100-80gb", "a100-80gb"]


def main() -> None:
    profile = Profile.default()
    table = profile.max_load_under_slo(DEFAULT_SLOS)
    lmax = {(r.hardware, int(r.tp), int(r.freq_mhz), r.request_class): float(r.max_load_rps)
            for r in table.itertuples() if r.feasible}
    for growth in (1.0, 2.0):
        problem = capacity_problem(profile=profile, peak_rps=200.0, growth=growth, periods=24, hardware=HARDWARE)
        plan = plan_capacity(problem)
        r = plan.report
        print(f"growth x{growth:g}: fleet {plan.fleet}, {plan.cost_usd_per_h:,.2f} USD/h "
              f"(fleet {plan.fleet_usd:,.0f} + energy {plan.energy_usd:,.0f} + carbon {plan.carbon_usd:,.0f} USD "
              f"over {plan.horizon_h:g} h), {plan.energy_kwh:,.0f} kWh, {plan.carbon_kg:,.0f} kg CO2; "
              f"{r.status.value}, gap {r.gap:.3%}, {r.solve_time_s:.1f} s")

        # the busiest period carries what was asked
        busiest = max(sum(p.demand_rps.values()) for p in plan.periods)
        assert math.isclose(busiest, 200.0 * growth, rel_tol=1e-9), busiest
        # the cost adds up
        assert math.isclose(plan.cost_usd, plan.fleet_usd + plan.energy_usd + plan.carbon_usd, rel_tol=1e-9)
        assert math.isclose(plan.energy_usd, sum(p.energy_usd for p in plan.periods), rel_tol=1e-9)
        prices = {o.hardware: o.price_usd_per_server_h for o in problem.offers}
        assert math.isclose(plan.fleet_usd, sum(n * prices[h] * plan.horizon_h for h, n in plan.fleet.items()),
                            rel_tol=1e-9)
        # a proven bound below the answer
        assert r.bound is not None and r.bound <= r.objective + 1e-6

        # every period's deployment serves its load within the fleet's GPUs, recomputed from the
        # profile table itself: each group's SLO capacity is its instances x the profile's max load
        # under the SLO for that (hardware, TP, clock, class)
        for period in plan.periods:
            gpus_used: dict[str, int] = {}
            for c, need in period.demand_rps.items():
                groups = [g for g in period.groups if g["request_class"] == c and g["instances"] > 0]
                served = sum(g["load_rps"] for g in groups)
                cap = sum(g["instances"] * lmax[(g["hardware"], g["tp"], g["freq_mhz"], c)] for g in groups)
                assert math.isclose(served, need, rel_tol=1e-6, abs_tol=1e-6), (period.period, c, served, need)
                assert cap >= need * (1 - 1e-9), (period.period, c, cap, need)
                for g in groups:
                    gpus_used[g["hardware"]] = gpus_used.get(g["hardware"], 0) + g["tp"] * g["instances"]
            assert all(n <= plan.gpus[h] for h, n in gpus_used.items()), (period.period, gpus_used)
        if growth == 1.0:
            # the real planner plans the quietest period on exactly this fleet and the independent
            # checker accepts it (the busiest periods are checked above; planning them with the
            # hierarchical Planner on a fleet sized to the peak hands over to its monolithic MILP,
            # minutes on a loaded 2-core machine)
            planner = Planner(profile, plan.fleet, DEFAULT_SLOS, solve_options=SolveOptions(time_limit_s=120.0))
            quietest = min(plan.periods, key=lambda q: sum(q.demand_rps.values()))
            load = {c: v for c, v in quietest.demand_rps.items() if v > 0}
            per_plan = planner.plan(load)
            check = check_plan(profile, plan.fleet, DEFAULT_SLOS, per_plan, forecast=load)
            assert check.ok, (quietest.period, check)
            print(f"  quietest period ({sum(load.values()):.1f} req/s) planned on this fleet, accepted by check_plan")


if __name__ == "__main__":
    main()
