"""Tiny hand-solvable planning instances with exact expected decisions."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from dynaplan.errors import InfeasibleError, SolverError, ValidationError
from dynaplan.planning import Plan, Planner, PlannerOptions, check_plan
from dynaplan.solvers import SolveOptions, Status
from toy_models import SLOS, linear_profile

# TP8 @ 1000 MHz: 1000 W + 50 W per req/s, meets the SLO up to 10 req/s.
# TP8 @ 2000 MHz: 1400 W + 60 W per req/s, meets the SLO up to 14 req/s.
# TP4 @ both clocks: cannot meet the SLO at any load (TTFT too high).
CURVES = {(8, 1000): (1000.0, 50.0, 10), (8, 2000): (1400.0, 60.0, 14), (4, 1000): (600.0, 40.0, 0),
          (4, 2000): (800.0, 45.0, 0)}


def toy_profile():
    return linear_profile(CURVES, range(2, 21, 2))


@pytest.fixture(scope="module")
def prof():
    return toy_profile()


def planner(prof, servers, **opts):
    return Planner(prof, {"toy": servers}, SLOS, options=PlannerOptions(**opts) if opts else None)


def groups(plan: Plan):
    return sorted((g.tp, g.freq_mhz, g.count) for p in plan.pools for g in p.groups)


def test_two_slow_instances_cover_twenty(prof):
    # 2 x TP8@1000: 2*1000 + 50*20 = 3000 W; TP8@1000 + TP8@2000: 2400 + 500 + 600 = 3500 W
    pl = planner(prof, 2)
    for plan in (pl.plan({"AA": 20.0}), pl.plan_monolithic({"AA": 20.0})):
        assert groups(plan) == [(8, 1000, 2)]
        assert plan.power_w == pytest.approx(3000.0)
        assert plan.energy_j == pytest.approx(3000.0 * 300)
        assert plan.report.status is Status.OPTIMAL
        assert check_plan(prof, {"toy": 2}, SLOS, plan).ok


def test_load_above_two_slow_instances_needs_a_fast_one(prof):
    # 21 req/s: slow+fast = 2400 + 50*10 + 60*11 = 3560 W beats 2 fast (2800 + 1260) and 3 slow (needs 3 servers)
    for servers in (2, 3):
        plan = planner(prof, servers).plan_monolithic({"AA": 21.0})
        assert groups(plan) == [(8, 1000, 1), (8, 2000, 1)]
        assert plan.power_w == pytest.approx(3560.0)
        assert check_plan(prof, {"toy": servers}, SLOS, plan).ok


def test_infeasible_names_class_and_limit(prof):
    pl = planner(prof, 2)
    with pytest.raises(InfeasibleError, match=r"class AA: 40 req/s needs at least 3 TP8 instances \(24 GPUs"):
        pl.plan({"AA": 40.0})
    with pytest.raises(InfeasibleError, match=r"the inventory has 16 GPUs \(2 toy servers\)"):
        pl.plan_monolithic({"AA": 40.0})


@pytest.mark.parametrize("servers, pools", [(1, 5), (4, 5)])
def test_infeasible_names_the_pools_whole_servers_need(servers, pools):
    """Nine loaded classes with spill="next" need five pools of one whole server each, however
    light the load: the reason given is that, not a capacity shortfall."""
    from dynaplan.domain import DEFAULT_SLOS
    from dynaplan.profiles import Profile

    pl = Planner(Profile.default(), {"h100-80gb": servers}, DEFAULT_SLOS)
    f = {c: 0.3 for c in pl.classes}
    msg = rf"need at least {pools} pools of one whole server each \(spill='next'\); the inventory has {servers} servers"
    assert any(re.search(msg, r) for r in pl.diagnose(f))
    for call in (pl.plan, pl.plan_monolithic):
        with pytest.raises(InfeasibleError, match=msg):
            call(f)
    assert Planner(Profile.default(), {"h100-80gb": 5}, DEFAULT_SLOS).diagnose(f) == []


def test_best_effort_serves_most_and_reports_rest(prof):
    plan = planner(prof, 2, best_effort=True).plan_monolithic({"AA": 40.0})
    assert groups(plan) == [(8, 2000, 2)]
    assert plan.unserved_rps == pytest.approx({"AA": 12.0})
    assert check_plan(prof, {"toy": 2}, SLOS, plan, options=PlannerOptions(best_effort=True)).ok
    assert any("best-effort" in m for m in check_plan(prof, {"toy": 2}, SLOS, plan).violations)


def test_zero_load_plans_nothing(prof):
    plan = planner(prof, 2).plan({"AA": 0.0})
    assert plan.pools == () and plan.power_w == 0.0


def test_bad_forecast_and_inventory_are_named(prof):
    pl = planner(prof, 2)
    with pytest.raises(ValidationError, match="unknown request class"):
        pl.plan({"ZZ": 1.0})
    with pytest.raises(ValidationError, match="class AA load -1"):
        pl.plan({"AA": -1.0})
    with pytest.raises(ValidationError, match="unknown hardware"):
        Planner(prof, {"h100-80gb": 3}, SLOS)
    with pytest.raises(ValidationError, match="expected >= 0"):
        Planner(prof, {"toy": -1}, SLOS)


def test_plan_round_trips_through_json(prof):
    plan = planner(prof, 3).plan({"AA": 21.0})
    text = plan.to_json()
    assert Plan.from_json(text) == plan
    assert json.loads(text)["report"]["backend"] == "highs"


def test_check_plan_catches_tampering(prof):
    plan = planner(prof, 2).plan({"AA": 20.0})
    pool = plan.pools[0]
    g = pool.groups[0]
    over = g.model_copy(update={"load_rps_per_instance": {"AA": 12.0}})
    bad = plan.model_copy(update={"pools": (pool.model_copy(update={"groups": (over,)}),)})
    res = check_plan(prof, {"toy": 2}, SLOS, bad)
    assert not res.ok and any("utilisation" in m for m in res.violations)
    res = check_plan(prof, {"toy": 1}, SLOS, plan)
    assert not res.ok and any("inventory has 1" in m for m in res.violations)
    cheap = plan.model_copy(update={"power_w": plan.power_w - 10})
    assert any("recomputed" in m for m in check_plan(prof, {"toy": 2}, SLOS, cheap).violations)


def test_instance_level_takes_least_power_clock_meeting_slo(prof):
    pl = planner(prof, 2)
    loads = pd.DataFrame({"instance": [0, 1, 2], "pool": "AA", "hardware": "toy", "tp": 8,
                          "request_class": "AA", "load_rps": [6.0, 12.0, 16.0]})
    out = pl.clocks(loads).set_index("instance")
    assert out.loc[0, "freq_mhz"] == 1000 and out.loc[0, "meets_slo"]
    assert out.loc[0, "power_w"] == pytest.approx(1300.0)
    assert out.loc[1, "freq_mhz"] == 2000 and out.loc[1, "meets_slo"]
    assert out.loc[2, "freq_mhz"] == 2000 and not out.loc[2, "meets_slo"]  # flagged, at max clock


def test_time_limit_returns_best_found_or_says_none_was_found(prof):
    pl = Planner(prof, {"toy": 3}, SLOS, solve_options=SolveOptions(time_limit_s=1e-4))
    try:
        plan = pl.plan_monolithic({"AA": 21.0})
    except SolverError as exc:
        assert "no plan found within the time limit" in str(exc)
    else:
        assert plan.report.status in (Status.OPTIMAL, Status.FEASIBLE)
        assert plan.report.gap is not None and plan.report.bound is not None
        assert check_plan(prof, {"toy": 3}, SLOS, plan).ok


def test_pool_level_reuses_a_cluster_allotment(prof):
    pl = planner(prof, 3)
    # the cluster level's recipe is TP8@1000 (150 J/request at capacity vs 160 for TP8@2000):
    # 21 req/s at 10 req/s per server takes 3 whole servers
    allot = pl.allot({"AA": 21.0})
    assert allot.servers == {"AA": {"toy": 3}} and allot.routing == {"AA": {"AA": 1.0}}
    lighter = pl.plan({"AA": 18.0}, allotment=allot)  # 5 minutes later, less load, same servers
    assert groups(lighter) == [(8, 1000, 2)]  # 2000 + 50*18 W + 8 idle GPUs * 50 W
    assert lighter.power_w == pytest.approx(2000 + 900 + 400)
    assert lighter.cluster_report is None and lighter.servers == {"toy": 3}
    assert check_plan(prof, {"toy": 3}, SLOS, lighter).ok
    with pytest.raises(InfeasibleError, match="do not fit on its servers"):
        pl.plan({"AA": 45.0}, allotment=allot)  # beyond 3 x 14 req/s


def test_mixed_instance_power_is_share_weighted_class_curves():
    """AA spills into the BA pool's single TP8 instance. AA: 1000 + 50 W per req/s, SLO up to
    10 req/s (Q_AA(u) = 1000 + 500 u); BA: 1000 + 200 W per req/s up to 5 req/s
    (Q_BA(u) = 1000 + 1000 u). With AA 4 and BA 2 req/s, u_AA = u_BA = 0.4, U = 0.8, and the
    instance draws 0.5 Q_AA(0.8) + 0.5 Q_BA(0.8) = 0.5 * 1400 + 0.5 * 1800 = 1600 W (the pool
    class's curve alone would say 1800 W). The MILP prices the same: Q_BA(0.8) plus the
    surcharge (Q_AA(1) - Q_BA(1)) u_AA = -500 * 0.4."""
    from dynaplan.domain import ClassScheme, TokenBins
    from dynaplan.domain.slo import SLO, SLOTable
    from dynaplan.profiles import Profile
    from toy_models import TOY

    two = ClassScheme(input_bins=TokenBins(names=("A", "B"), edges_tokens=(256,)),
                      output_bins=TokenBins(names=("A",), edges_tokens=()))
    slos = SLOTable(per_class={"AA": SLO(ttft_ms=100, tbt_ms=50), "BA": SLO(ttft_ms=100, tbt_ms=50)})
    rows = []
    for cls, slope, lmax in (("AA", 50.0, 10.0), ("BA", 200.0, 5.0)):
        for load in range(1, 13):
            rows.extend(dict(model="m", hardware="toy", tp=8, freq_mhz=f, request_class=cls, load_rps=float(load),
                             power_w=1000.0 + slope * load, ttft_p99_ms=60.0 if load <= lmax else 200.0,
                             tbt_p99_ms=20.0, throughput_rps=float(load)) for f in (1000, 2000))
    prof = Profile(pd.DataFrame(rows), hardware={"toy": TOY}, classes=two)
    pl = Planner(prof, {"toy": 1}, slos, options=PlannerOptions(spill="next"))
    for plan in (pl.plan({"AA": 4.0, "BA": 2.0}), pl.plan_monolithic({"AA": 4.0, "BA": 2.0})):
        (pool,) = plan.pools
        (g,) = pool.groups
        assert pool.pool == "BA" and (g.tp, g.count) == (8, 1)
        assert g.utilisation == pytest.approx(0.8)
        assert g.power_w_per_instance == pytest.approx(1600.0)
        assert plan.power_w == pytest.approx(1600.0)
        assert plan.report.objective == pytest.approx(1600.0, rel=1e-6)
        check = check_plan(prof, {"toy": 1}, slos, plan)
        assert check.ok, check.violations
        assert check.power_w == pytest.approx(1600.0)


@pytest.mark.parametrize("inventory, forecast, message", [
    ({}, {"AA": 1.0}, r"the inventory has no servers \(\{\}\) for 1 req/s"),
    ({"toy": 0}, {"AA": 1.0}, r"the inventory has no servers \(\{'toy': 0\}\) for 1 req/s"),
    # far beyond any inventory: the solver may reject the coefficients; the reason is still named
    ({"toy": 2}, {"AA": 1e12}, r"class AA: 1e\+12 req/s needs at least 71428571429 TP8 instances \(571428571432 GPUs"),
])
def test_impossible_forecasts_name_the_reason_not_the_solver(prof, inventory, forecast, message):
    pl = Planner(prof, inventory, SLOS)
    for call in (pl.plan, pl.plan_monolithic):
        with pytest.raises(InfeasibleError, match=message):
            call(forecast)


def test_solve_options_reject_infinite_time_limit():
    from dynaplan.errors import InputError

    with pytest.raises(InputError, match="SolveOptions.time_limit_s"):
        SolveOptions(time_limit_s=float("inf"))
