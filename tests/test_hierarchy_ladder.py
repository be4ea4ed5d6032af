"""The hierarchy's inventory ladder and polishing (formulations/cluster.md) against independent
computation: the exact one-class optimum of ``tests/exact_reference.py`` (enumeration over
``Profile.table`` alone), the monolithic MILP solved to proven optimality, and inventory
monotonicity (a plan drawn from a ladder rung is a candidate for every larger inventory).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.planning import Planner, check_plan
from dynaplan.profiles import Profile
from dynaplan.solvers import SolveOptions, Status
from exact_reference import configurations, exact_power_w
from toy_models import SLOS, TOY, linear_profile, random_curves

H100 = "h100-80gb"
LOADS = [0.5] + list(range(2, 21, 2))
SLOW = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def prof():
    return Profile.default()


def _ladder_rung(plan) -> bool:
    """Whether the plan was drawn from one of the ladder's rungs (the monotone case)."""
    return any(n.startswith("inventory ladder: rung") for n in plan.notes)


def _proven_monolithic(prof, servers: int, forecast: dict) -> float:
    """The monolithic MILP's plan, solved to a 1e-6 relative gap (its own proof, not the global
    bound's: the MILP's incumbent within 1e-6 of its dual bound)."""
    pl = Planner(prof, {H100: servers}, DEFAULT_SLOS, solve_options=SolveOptions(mip_rel_gap=1e-6, time_limit_s=120))
    got = {}
    solve = pl._solve_cached

    def spy(*a, **k):
        x, rep = solve(*a, **k)
        got["report"] = rep
        return x, rep

    pl._solve_cached = spy
    mono = pl.plan_monolithic(forecast)
    assert got["report"].status is Status.OPTIMAL, got["report"]
    return mono.power_w


def test_two_class_reproduction_matches_the_monolithic_optimum(prof):
    """Issue 11: ``{"SL": 2.1938, "MS": 26.1696}`` on 5 H100 planned 4,596 W (3 servers) against a
    monolithic 3,575 W (2 servers)."""
    f = {"SL": 2.1938, "MS": 26.1696}
    pl = Planner(prof, {H100: 5}, DEFAULT_SLOS)
    hier = pl.plan(f)
    best = _proven_monolithic(prof, 5, f)
    assert best == pytest.approx(3574.8, abs=1.0)
    assert hier.power_w <= best * (1 + 1e-2)
    assert sum(hier.servers.values()) == 2
    assert check_plan(prof, {H100: 5}, DEFAULT_SLOS, hier).ok
    rep = hier.report
    assert rep.bound <= best and rep.gap == pytest.approx((rep.objective - rep.bound) / rep.objective, abs=1e-12)


def _conversation(total_rps: float) -> dict[str, float]:
    from benchmarks import inputs
    base = inputs.forecast(40)
    s = sum(base.values())
    return {c: v * total_rps / s for c, v in base.items()}


def test_conversation_mix_on_40_servers_is_no_worse_than_on_26(prof):
    """Issue 11: 200 req/s of the conversation mix planned at 74.91 kW on 40 servers, 74.09 kW on
    26. Every inventory from the ladder's smallest rung up plans the same or better."""
    f = _conversation(200.0)
    plans = {n: Planner(prof, {H100: n}, DEFAULT_SLOS).plan(f) for n in (26, 40)}
    assert all(_ladder_rung(p) for p in plans.values())
    assert plans[40].power_w <= plans[26].power_w * (1 + 1e-9)
    assert plans[40].power_w == pytest.approx(plans[26].power_w, rel=1e-9)  # the same rung fits both


forecasts = st.lists(st.tuples(st.sampled_from(["SS", "SM", "SL", "MS", "MM", "LS", "LL"]),
                               st.floats(0.2, 12.0)), min_size=1, max_size=3)


@SLOW
@given(forecasts, st.integers(2, 6), st.integers(1, 4))
def test_larger_inventory_never_plans_worse(prof, items, servers, extra):
    """Monotonicity by construction: a plan drawn from a ladder rung fits every larger inventory,
    whose plan is the best of a candidate set holding it."""
    f = {}
    for c, v in items:
        f[c] = f.get(c, 0.0) + v
    try:
        small = Planner(prof, {H100: servers}, DEFAULT_SLOS).plan(f)
    except Exception as exc:  # an infeasible small inventory says nothing about monotonicity
        assume(False)
        raise AssertionError from exc
    assume(_ladder_rung(small))
    large = Planner(prof, {H100: servers + extra}, DEFAULT_SLOS).plan(f)
    assert large.power_w <= small.power_w * (1 + 1e-9)
    assert _ladder_rung(large)


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(1, 3), st.floats(0.02, 0.9))
def test_hierarchy_against_the_exact_optimum(seed, servers, frac):
    """One class on random linear profiles: the hierarchical plan is never below the exact
    optimum and within 1% of it (issue 11's target on random forecasts)."""
    prof = linear_profile(random_curves(seed), LOADS)
    cfgs = configurations(prof, "AA", SLOS.per_class["AA"].ttft_ms, SLOS.per_class["AA"].tbt_ms)
    cap = max(c["lmax"] * 8 / c["tp"] for c in cfgs) * servers
    load = float(frac * cap)
    exact = exact_power_w(cfgs, load, servers, TOY.gpus_per_server, TOY.idle_power_w)
    assume(np.isfinite(exact))
    plan = Planner(prof, {"toy": servers}, SLOS).plan({"AA": load})
    assert plan.power_w >= exact * (1 - 1e-9)
    assert plan.power_w <= exact * (1 + 1e-2)
    rep = plan.report
    assert rep.bound <= exact * (1 + 1e-9)
    assert (rep.status is Status.OPTIMAL) == (rep.gap <= Planner(prof, {"toy": servers}, SLOS).solve_options.mip_rel_gap + 1e-12)


def test_fallback_is_stopped_by_nodes_not_seconds(prof):
    """The monolithic fallback (cluster.md, "Hand-off to the pool level") stops at a node limit
    and keeps the caller's time limit, so its plan is the same whatever time limit is left."""
    from dynaplan.planning import planner as planner_mod
    from dynaplan.planning.demand import check_demand

    f = {"SL": 2.1938, "MS": 26.1696}
    plans = []
    for limit in (20.0, 200.0):
        pl = Planner(prof, {H100: 5}, DEFAULT_SLOS, solve_options=SolveOptions(time_limit_s=limit))
        seen = []
        solve = pl._solve

        def spy(*a, _solve=solve, _pl=pl, _seen=seen, **k):
            _seen.append(_pl.solve_options)
            return _solve(*a, **k)

        pl._solve = spy
        plans.append(pl._fallback_allotment(check_demand(f, pl.classes)))
        opts = seen[0]
        assert opts.mip_max_nodes == planner_mod.FALLBACK_NODES
        assert opts.time_limit_s == limit and opts.mip_rel_gap >= planner_mod.FALLBACK_GAP
        assert pl.solve_options.mip_max_nodes is None  # restored after the fallback
    a, b = ([(pp.pool, pp.servers, pp.served_rps, [g.model_dump() for g in pp.groups]) for pp in p.pools]
            for p in plans)
    assert a == b


def test_single_allotment_search_plans_honestly_and_is_refused_by_name_when_unknown(prof):
    """``cluster_search="single"`` (one allotment on the inventory, then polishing: the faster
    path for a scheduler) gives a plan check_plan accepts, never below the global bound, with a
    gap consistent with it; an unknown value is refused naming the option."""
    from dynaplan.errors import ValidationError
    from dynaplan.planning import PlannerOptions

    f = {"SL": 2.1938, "MS": 26.1696, "LL": 1.5}
    single = Planner(prof, {H100: 8}, DEFAULT_SLOS, options=PlannerOptions(cluster_search="single"))
    ladder = Planner(prof, {H100: 8}, DEFAULT_SLOS)
    ps, pl = single.plan(f), ladder.plan(f)
    for p in (ps, pl):
        check_plan(prof, {H100: 8}, DEFAULT_SLOS, p)
    bound = single.global_bound(f)
    assert ps.report.bound == pytest.approx(bound)
    assert ps.power_w >= bound * (1 - 1e-9)
    assert ps.report.gap == pytest.approx((ps.power_w - bound) / ps.power_w, abs=1e-9)
    assert not any(n.startswith("inventory ladder") for n in ps.notes)
    assert any(n.startswith("inventory ladder") for n in pl.notes)
    with pytest.raises((ValidationError, ValueError), match="cluster_search"):
        PlannerOptions(cluster_search="greedy")


@pytest.mark.parametrize("forecast,servers", [({"SL": 2.1938, "MS": 26.1696}, 5), ({"SM": 3.0, "SS": 8.0, "LL": 0.4}, 6)])
def test_pruned_polish_gives_the_same_plan_as_unpruned(prof, forecast, servers):
    """cluster.md polish.bound: pruning by the pools' DP6 bound never changes the moves taken."""
    pruned = Planner(prof, {H100: servers}, DEFAULT_SLOS).plan(forecast)
    plain = Planner(prof, {H100: servers}, DEFAULT_SLOS)
    plain._pool_lower_bound = lambda *a: -np.inf
    full = plain.plan(forecast)
    assert pruned.power_w == pytest.approx(full.power_w, rel=1e-12)
    assert pruned.notes == full.notes


@pytest.mark.parametrize("pool,loads,n", [("SM", {"SM": 3.0, "SS": 2.0}, 1), ("MS", {"MS": 20.0, "SL": 2.0}, 2),
                                           ("LL", {"LL": 1.19}, 1)])
def test_pool_lower_bound_never_above_a_fresh_pool_solve(prof, pool, loads, n):
    pl = Planner(prof, {H100: 4}, DEFAULT_SLOS)
    lb = pl._pool_lower_bound(pool, loads, {H100: n})
    assert np.isfinite(lb)
    assert lb <= Planner(prof, {H100: 4}, DEFAULT_SLOS).plan_pool(pool, loads, {H100: n}).power_w * (1 + 1e-12)
