"""check_plan catches every corruption of a valid plan, one field at a time.

Each case takes a plan the planner made (and check_plan accepts), changes one figure with
``model_copy(update=...)`` — which skips pydantic's validation, as a buggy planner or a hand-edited
JSON file would — and asserts that the check fails and names what is wrong.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dynaplan.domain import DEFAULT_SLOS
from dynaplan.domain.classes import ClassScheme, TokenBins
from dynaplan.errors import ValidationError
from dynaplan.planning import Planner, PlannerOptions, check_plan
from dynaplan.planning.check import allowed_pools
from dynaplan.planning.problem import spill_targets
from dynaplan.profiles import Profile
from dynaplan.solvers import Status

HW = "h100-80gb"
INV = {HW: 6}
FORECAST = {"SS": 10.0, "SM": 3.0, "MM": 2.0, "LL": 1.0}


@pytest.fixture(scope="module")
def profile():
    return Profile.default()


@pytest.fixture(scope="module")
def plan(profile):
    return Planner(profile, INV, DEFAULT_SLOS).plan(FORECAST)


def check(profile, plan, **kw):
    return check_plan(profile, kw.pop("inventory", INV), DEFAULT_SLOS, plan, **kw)


def pool_index(plan, pred) -> int:
    return next(i for i, pp in enumerate(plan.pools) if pred(pp))


def with_pool(plan, i: int, **update):
    pools = list(plan.pools)
    pools[i] = pools[i].model_copy(update=update)
    return plan.model_copy(update={"pools": tuple(pools)})


def with_group(plan, i: int, j: int, **update):
    groups = list(plan.pools[i].groups)
    groups[j] = groups[j].model_copy(update=update)
    return with_pool(plan, i, groups=tuple(groups))


def fails(res, *needles: str) -> None:
    assert not res.ok, "the corrupted plan passed"
    text = "\n".join(res.violations)
    for n in needles:
        assert n in text, f"{n!r} not named in:\n{text}"


def test_the_uncorrupted_plan_passes_and_has_the_shape_the_cases_need(profile, plan):
    res = check(profile, plan, forecast=FORECAST)
    assert res.ok, res.violations
    assert res.model == "llama2-70b" and res.power_w == pytest.approx(plan.power_w, rel=1e-9)
    assert sum(res.served_rps.values()) == pytest.approx(sum(FORECAST.values()))
    # the cases below need: a group serving two classes, and a pool with idle GPUs
    assert any(len(g.load_rps_per_instance) == 2 for pp in plan.pools for g in pp.groups)
    assert any(sum(pp.idle_gpus.values()) > 0 for pp in plan.pools)


# ---------------------------------------------------------------- instance groups
@pytest.mark.parametrize("field, change, needle", [
    ("power_w_per_instance", lambda g: g.power_w_per_instance * 0.9, "W per instance"),
    ("power_w", lambda g: g.power_w - 50.0, "group power"),
    ("energy_j", lambda g: g.energy_j * 1.01, "group energy"),
    ("utilisation", lambda g: g.utilisation / 2, "claims utilisation"),
    ("slo_margin", lambda g: g.slo_margin + 0.1, "slo_margin"),
    ("load_share", lambda g: g.load_share + 0.2, "load share"),
    ("power_w_per_instance", lambda g: math.nan, "W per instance"),
])
def test_group_figures_are_recomputed(profile, plan, field, change, needle):
    g = plan.pools[0].groups[0]
    fails(check(profile, with_group(plan, 0, 0, **{field: change(g)})), needle)


def test_count_change_breaks_power_and_served_load(profile, plan):
    g = plan.pools[0].groups[0]
    res = check(profile, with_group(plan, 0, 0, count=g.count + 1))
    fails(res, "group power", f"claims it serves")


def test_zero_or_fractional_count_is_refused(profile, plan):
    fails(check(profile, with_group(plan, 0, 0, count=0)), "instance count 0")
    fails(check(profile, with_group(plan, 0, 0, count=1.5)), "instance count 1.5")


def test_overload_breaks_the_slo(profile, plan):
    i = pool_index(plan, lambda pp: pp.pool == "LL")
    g = plan.pools[i].groups[0]
    fails(check(profile, with_group(plan, i, 0, load_rps_per_instance={"LL": g.load_rps_per_instance["LL"] * 3})),
          "utilisation", "> 1 (SLO broken)")


def test_overload_hidden_by_a_negative_load_is_refused(profile, plan):
    """An instance carrying 150% of its SS capacity next to a negative SM load that brings the
    utilisation back to the claimed figure, with the pool's totals left as they were."""
    i = pool_index(plan, lambda pp: any(len(g.load_rps_per_instance) == 2 for g in pp.groups))
    j = next(j for j, g in enumerate(plan.pools[i].groups) if len(g.load_rps_per_instance) == 2)
    g = plan.pools[i].groups[j]
    loads = dict(g.load_rps_per_instance)
    extra = 5.0
    loads["SS"] += extra
    loads["SM"] -= 2 * extra  # SM's capacity is smaller: this cancels more than SS's extra share
    fails(check(profile, with_group(plan, i, j, load_rps_per_instance=loads)),
          "class SM load", "expected a finite value >= 0")


def test_load_outside_the_spill_policy(profile, plan):
    i = pool_index(plan, lambda pp: pp.pool == "LL")
    g = plan.pools[i].groups[0]
    # SS may spill to SM only (spill='next'); here the LL pool claims an SS load
    loads = {**g.load_rps_per_instance, "SS": 0.01}
    fails(check(profile, with_group(plan, i, 0, load_rps_per_instance=loads)),
          "class SS routed to pool LL, outside its spill targets ['SM', 'SS']")


def test_same_plan_passes_under_the_policy_that_allows_it(profile):
    f = {"SS": 3.0, "LL": 1.0}
    plan = Planner(profile, INV, DEFAULT_SLOS, options=PlannerOptions(spill="larger")).plan(f)
    foreign = [(pp.pool, c) for pp in plan.pools for g in pp.groups for c in g.load_rps_per_instance if c != pp.pool]
    res = check(profile, plan, forecast=f, options=PlannerOptions(spill="larger"))
    assert res.ok, res.violations
    if foreign:  # loads served outside their own pool are refused under spill='none'
        fails(check(profile, plan, options=PlannerOptions(spill="none")), "outside its spill targets")


def test_unknown_class_and_tp_degree(profile, plan):
    fails(check(profile, with_group(plan, 0, 0, load_rps_per_instance={"ZZ": 1.0})), "unknown class 'ZZ'")
    fails(check(profile, with_group(plan, 0, 0, tp=3)), "TP degree 3")
    fails(check(profile, with_group(plan, 0, 0, hardware="b200")), "unknown hardware 'b200'")


def test_configuration_missing_from_the_profile(profile, plan):
    fails(check(profile, with_group(plan, 0, 0, freq_mhz=1234)), "no profile for class")


# ---------------------------------------------------------------- pools
@pytest.mark.parametrize("field, change, needle", [
    ("served_rps", lambda pp: {c: v * 1.1 for c, v in pp.served_rps.items()}, "claims it serves"),
    ("served_rps", lambda pp: {}, "claims it serves 0.0"),
    ("idle_gpus", lambda pp: {h: n + 1 for h, n in pp.idle_gpus.items()}, "idle h100-80gb GPUs"),
    ("idle_power_w", lambda pp: pp.idle_power_w + 75.0, "idle power"),
    ("power_w", lambda pp: pp.power_w - 1.0, "recomputed"),
    ("energy_j", lambda pp: pp.energy_j + 1e3, " J, recomputed"),
])
def test_pool_figures_are_recomputed(profile, plan, field, change, needle):
    i = pool_index(plan, lambda pp: sum(pp.idle_gpus.values()) > 0)
    fails(check(profile, with_pool(plan, i, **{field: change(plan.pools[i])})), f"pool {plan.pools[i].pool}", needle)


def test_too_few_servers_for_the_instances(profile, plan):
    i = pool_index(plan, lambda pp: sum(pp.idle_gpus.values()) == 0)
    res = check(profile, with_pool(plan, i, servers={HW: 0}))
    fails(res, "need 1 servers, plan gives 0")


def test_duplicate_and_unknown_pools(profile, plan):
    fails(check(profile, plan.model_copy(update={"pools": plan.pools + plan.pools[:1]})), "appears twice")
    fails(check(profile, with_pool(plan, 0, pool="QQ")), "pool QQ: not a request class")


# ---------------------------------------------------------------- the plan
@pytest.mark.parametrize("update, needle", [
    (lambda p: {"power_w": p.power_w * 0.99}, "plan claims"),
    (lambda p: {"energy_j": p.energy_j / 2}, " J over"),
    (lambda p: {"servers": {HW: p.servers[HW] - 1}}, "servers, its pools hold"),
    (lambda p: {"gpus": {HW: p.gpus[HW] + 8}}, "GPUs in use"),
    (lambda p: {"mode": "magic"}, "plan mode 'magic'"),
    (lambda p: {"epoch_s": -1.0}, "epoch_s -1.0"),
    (lambda p: {"approx_error_bound_w": -1.0}, "approx_error_bound_w"),
    (lambda p: {"report": p.report.model_copy(update={"status": Status.NO_SOLUTION})}, "status no_solution"),
    (lambda p: {"report": p.report.model_copy(update={"bound": p.report.objective + 10})}, "above objective"),
    (lambda p: {"report": p.report.model_copy(update={"gap": -0.5})}, "gap -0.5"),
])
def test_plan_figures_are_recomputed(profile, plan, update, needle):
    fails(check(profile, plan.model_copy(update=update(plan))), needle)


def test_inventory_smaller_than_the_plan(profile, plan):
    fails(check(profile, plan, inventory={HW: 2}), "plan uses 3 servers, inventory has 2")


def test_unserved_load_only_in_best_effort_plans(profile, plan):
    claims = plan.model_copy(update={"unserved_rps": {"LL": 0.5}})
    fails(check(profile, claims), "not made in best-effort mode", "reports 0.5 req/s unserved, recomputed 0")
    # in best-effort mode the figure must still be right
    fails(check(profile, claims, options=PlannerOptions(best_effort=True)), "recomputed 0")
    fails(check(profile, plan.model_copy(update={"unserved_rps": {"LL": -1.0}})), "unserved -1.0")


def test_best_effort_plan_passes_only_in_best_effort_mode(profile):
    f = {"LL": 1e4}
    opts = PlannerOptions(best_effort=True)
    plan = Planner(profile, {HW: 2}, DEFAULT_SLOS, options=opts).plan_monolithic(f)
    assert plan.unserved_rps["LL"] > 0
    res = check(profile, plan, inventory={HW: 2}, forecast=f, options=opts)
    assert res.ok, res.violations
    fails(check(profile, plan, inventory={HW: 2}, forecast=f), "not made in best-effort mode")
    # hiding some of the unserved load leaves the forecast uncovered
    hidden = plan.model_copy(update={"unserved_rps": {"LL": plan.unserved_rps["LL"] - 10}})
    fails(check(profile, hidden, inventory={HW: 2}, options=opts), "class LL: forecast 10000 req/s")


def test_lowered_forecast_fails_against_the_callers_forecast(profile, plan):
    lowered = plan.model_copy(update={"forecast_rps": {**plan.forecast_rps, "SS": 5.0}})
    assert check(profile, lowered).ok  # the plan's own figures agree with one another ...
    fails(check(profile, lowered, forecast=FORECAST),  # ... but not with what it was asked for
          "class SS: plan made for 5 req/s, the forecast is 10 req/s")
    fails(check(profile, plan, forecast={**FORECAST, "SS": 20.0}), "class SS: forecast 20 req/s, plan serves 10")


def test_serving_less_than_the_plans_own_forecast(profile, plan):
    fails(check(profile, plan.model_copy(update={"forecast_rps": {**plan.forecast_rps, "MM": 3.0}})),
          "class MM: forecast 3 req/s, plan serves 2")


# ---------------------------------------------------------------- arguments
def test_arguments_in_planner_order(profile, plan):
    # the old order (profile, slos, inventory, plan) is refused, not misread
    with pytest.raises(ValidationError, match=r"arguments are \(profile, inventory, slos, plan\), as to Planner"):
        check_plan(profile, DEFAULT_SLOS, INV, plan)
    with pytest.raises(ValidationError, match="inventory .*expected servers by hardware type"):
        check_plan(profile, {HW: -1}, DEFAULT_SLOS, plan)


def test_forecast_argument_is_validated(profile, plan):
    with pytest.raises(ValidationError, match="unknown request class"):
        check(profile, plan, forecast={"XX": 1.0})
    with pytest.raises(ValidationError, match="class SS load -1"):
        check(profile, plan, forecast={"SS": -1.0})


def test_model_is_named_never_guessed(profile, plan):
    tab = profile.table.drop(columns=["energy_per_request_j"])
    two = Profile(pd.concat([tab, tab.assign(model="other-70b")]), source="two-models")
    with pytest.raises(ValidationError, match="holds models .*pass model="):
        check_plan(two, INV, DEFAULT_SLOS, plan)
    assert check_plan(two, INV, DEFAULT_SLOS, plan, model="llama2-70b").ok
    with pytest.raises(ValidationError, match="unknown model 'gpt'"):
        check_plan(profile, INV, DEFAULT_SLOS, plan, model="gpt")


def test_spill_targets_restated_independently_agree_with_the_planners():
    small = ClassScheme(input_bins=TokenBins(names=("A", "B"), edges_tokens=(256,)),
                        output_bins=TokenBins(names=("X", "Y", "Z"), edges_tokens=(10, 20)))
    for scheme in (Profile.default().classes, small):
        for policy in ("none", "next", "larger"):
            mine = allowed_pools(scheme, policy)
            theirs = spill_targets(scheme.names, len(scheme.output_bins.names), policy)
            assert mine == {c: frozenset(t) for c, t in theirs.items()}, (scheme, policy)


# ---------------------------------------------------------------- size
def test_twenty_million_instances_are_checked_by_arithmetic(profile):
    """1e9 req/s of SS on 1e9 servers plans about 2e7 identical instances; the packing is counted
    per group, so the check needs no loop over instances, and one server fewer is caught."""
    inv = {HW: 10**9}
    plan = Planner(profile, inv, DEFAULT_SLOS).plan({"SS": 1e9})
    assert sum(g.count for pp in plan.pools for g in pp.groups) > 10**7
    res = check_plan(profile, inv, DEFAULT_SLOS, plan, forecast={"SS": 1e9})
    assert res.ok, res.violations
    i = max(range(len(plan.pools)), key=lambda k: sum(plan.pools[k].servers.values()))
    pp = plan.pools[i]
    fewer = with_pool(plan, i, servers={HW: pp.servers[HW] - 1})
    fails(check_plan(profile, inv, DEFAULT_SLOS, fewer), f"need {pp.servers[HW]} servers, plan gives {pp.servers[HW] - 1}")


# ---------------------------------------------------------------- any one figure, changed
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

GROUP_FIELDS = ("power_w_per_instance", "power_w", "energy_j", "utilisation", "slo_margin", "load_share")
POOL_FIELDS = ("idle_power_w", "power_w", "energy_j")
PLAN_FIELDS = ("power_w", "energy_j", "epoch_s", "wall_time_s")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(["group", "pool", "plan", "count", "load", "served", "servers", "idle_gpus"]),
       field=st.integers(0, 10), pick=st.integers(0, 100),
       delta=st.one_of(st.floats(1e-4, 10.0), st.floats(-10.0, -1e-4), st.just(math.inf), st.just(math.nan)))
def test_any_single_corruption_is_caught(profile, plan, where, field, pick, delta):
    """Whatever figure is changed, by whatever amount beyond the tolerance (or to inf/NaN), the
    check fails; the same plan unchanged passes."""
    i = pick % len(plan.pools)
    pp = plan.pools[i]
    j = pick % len(pp.groups)
    g = pp.groups[j]

    def bump(x: float) -> float:
        return x + delta * max(1.0, abs(x)) if math.isfinite(delta) else delta

    if where == "group":
        name = GROUP_FIELDS[field % len(GROUP_FIELDS)]
        bad = with_group(plan, i, j, **{name: bump(getattr(g, name))})
    elif where == "pool":
        name = POOL_FIELDS[field % len(POOL_FIELDS)]
        bad = with_pool(plan, i, **{name: bump(getattr(pp, name))})
    elif where == "plan":
        name = PLAN_FIELDS[field % len(PLAN_FIELDS)]
        value = bump(getattr(plan, name))
        if name == "wall_time_s" and math.isfinite(value) and value >= 0:
            value = -1.0  # any non-negative wall time is a possible claim
        bad = plan.model_copy(update={name: value})
    elif where == "count":
        bad = with_group(plan, i, j, count=max(0, g.count + (1 if delta > 0 else -1)))
    elif where == "load":
        c = sorted(g.load_rps_per_instance)[field % len(g.load_rps_per_instance)]
        bad = with_group(plan, i, j, load_rps_per_instance={**g.load_rps_per_instance,
                                                            c: bump(g.load_rps_per_instance[c])})
    elif where == "served":
        c = sorted(pp.served_rps)[field % len(pp.served_rps)]
        bad = with_pool(plan, i, served_rps={**pp.served_rps, c: bump(pp.served_rps[c])})
    elif where == "servers":
        bad = with_pool(plan, i, servers={HW: pp.servers[HW] + (1 if delta > 0 else -1)})
    else:
        bad = with_pool(plan, i, idle_gpus={HW: pp.idle_gpus[HW] + (1 if delta > 0 else -1)})
    assert check(profile, plan, forecast=FORECAST).ok
    assert not check(profile, bad, forecast=FORECAST).ok, (where, field, pick, delta)


def test_a_shortfall_at_solver_precision_is_judged_against_the_forecast(profile, plan):
    """A solver's feasibility tolerance leaves a served load short of the forecast by ~1e-7 of
    it: the recomputed unserved figure (forecast - served) is then known only to the forecast's
    precision, so a reported 0 passes; a shortfall beyond check_plan's rtol of the forecast fails
    whatever the plan reports (coverage), and so does a reported figure off by more than it."""
    f = plan.forecast_rps["LL"]
    short = plan.model_copy(update={"forecast_rps": {**plan.forecast_rps, "LL": f * (1 + 1e-7) + 1e-6}})
    assert check(profile, short).ok, check(profile, short).violations
    far = plan.model_copy(update={"forecast_rps": {**plan.forecast_rps, "LL": f * (1 + 1e-4)}})
    fails(check(profile, far), "class LL: forecast")
    off = plan.model_copy(update={"unserved_rps": {**plan.unserved_rps, "LL": 3e-6 * f + 1e-6}})
    fails(check(profile, off, options=PlannerOptions(best_effort=True)), "class LL: reports")
