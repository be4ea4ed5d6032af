"""The two-class pool search (formulations/pool.md, "Two-class pools"; dynaplan/formulations/pool_mix.py).

Its plan is a point of the pool model (rows, bounds and integrality checked on the model's own
arrays) priced as the model prices it, so it is never below the model's optimum; on the
structures it searches it is that optimum. The reference is scipy's ``milp`` on the same arrays
(tests/model_milp.py: a separate, cold HiGHS instance). Its building blocks are checked against
brute force: the free-instance cost tables (:class:`FreeCost`) against the formula piece by
piece, the DP's batch queries against its one-query answer (DP4)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import InfeasibleError
from dynaplan.formulations.pool_dp import FreeCost, FreeCosts, PoolDP
from dynaplan.planning import Planner, PlannerOptions
from dynaplan.planning.check import check_plan
from dynaplan.planning.registry import ModelKind
from dynaplan.profiles import Profile
from model_milp import model_optimum

HW = "h100-80gb"
PAIRS = [("SM", "SS"), ("LS", "ML"), ("LM", "LS"), ("MS", "SL"), ("LL", "LM"), ("SL", "SM"), ("ML", "MM")]
SEARCH = PlannerOptions(mixed_pool="search")


def _brute_free(lo, hi, a, b, r):
    return np.array([min((min(a[i] + b[i] * max(x, lo[i]), a[i] + b[i] * hi[i]) for i in range(len(lo))
                          if hi[i] >= x), default=np.inf) for x in r])


pieces = st.integers(1, 7).flatmap(lambda n: st.tuples(
    st.lists(st.floats(0.0, 3.0), min_size=n, max_size=n), st.lists(st.floats(0.05, 3.0), min_size=n, max_size=n),
    st.lists(st.floats(-50.0, 200.0), min_size=n, max_size=n), st.lists(st.floats(-20.0, 60.0), min_size=n, max_size=n)))


@settings(max_examples=150, deadline=None)
@given(p=pieces, r=st.lists(st.floats(0.001, 7.0), min_size=1, max_size=30))
def test_free_cost_table_is_the_formula(p, r):
    lo, width, a, b = (np.array(v) for v in p)
    hi = lo + width
    r = np.array(r)
    want = _brute_free(lo, hi, a, b, r)
    got = FreeCost(lo, hi, a, b)(r)
    assert np.array_equal(np.isinf(want), np.isinf(got))
    fin = np.isfinite(want)
    assert np.allclose(got[fin], want[fin], rtol=1e-9, atol=1e-7)
    # several tables at once give each its own answer
    other = FreeCost(lo * 0.5, hi * 0.5, a + 10.0, b)
    which = np.arange(r.size) % 2
    both = FreeCosts([FreeCost(lo, hi, a, b), other])(r, which)
    want2 = np.where(which == 0, want, _brute_free(lo * 0.5, hi * 0.5, a + 10.0, b, r))
    assert np.array_equal(np.isinf(both), np.isinf(want2))
    assert np.allclose(both[np.isfinite(want2)], want2[np.isfinite(want2)], rtol=1e-9, atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_batch_queries_are_the_single_query(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 8))
    lo = rng.uniform(0, 2, n) * (rng.random(n) < 0.5)
    dp = PoolDP(rng.choice([2, 4, 8], n), lo, lo + rng.uniform(0.2, 3, n), rng.uniform(100, 900, n),
                rng.uniform(0, 80, n), 8, 60.0)
    L, U = rng.uniform(0, 12, 40), rng.integers(0, 9, 40)
    one = np.array([0.0 if l <= 0 else (np.inf if (g := dp.solve_units(l, u)) is None else g[0])
                    for l, u in zip(L, U)])
    many = dp.values(L, U)
    assert np.array_equal(np.isinf(one), np.isinf(many))
    assert np.allclose(many[np.isfinite(one)], one[np.isfinite(one)], rtol=1e-12, atol=1e-9)
    by_budget = dp.values_by_budget(L[0], 8)
    ref = [0.0 if L[0] <= 0 else (np.inf if (g := dp.solve_units(L[0], u)) is None else g[0]) for u in range(9)]
    assert np.allclose(np.where(np.isinf(ref), 1e30, ref), np.where(np.isinf(by_budget), 1e30, by_budget),
                       rtol=1e-12, atol=1e-9)
    low = dp.lower_values(L, 8)
    assert np.all(low <= np.where(np.isfinite(one), one, np.inf) + 1e-9)


@pytest.fixture(scope="module")
def planners():
    prof = Profile.default()
    return {n: Planner(prof, {HW: n}, DEFAULT_SLOS, options=SEARCH) for n in (1, 2, 3)}


def _searched(pl, pool, loads, servers):
    """The search's solution of the pool model (None when it finds none), its price, and the
    model's arrays for the request; the solution is checked here against the arrays."""
    cm = pl._model(ModelKind.POOL, pool)
    srv = {HW: servers}
    arrays = pl._problem(cm, loads, srv)
    try:
        got = pl._search_solution(cm, pool, loads, srv)
    except InfeasibleError:  # beyond the pool's capacity even split fractionally: the model agrees
        assert model_optimum(arrays) is None
        return None, None, arrays
    if got is None:
        return None, None, arrays
    x, found = got
    assert arrays.violation(x) <= 1e-6 * max(1.0, float(np.abs(x).max()))
    price = float(arrays.cost @ x + arrays.offset)
    assert price == pytest.approx(found.value_w, rel=1e-9)
    return x, price, arrays


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=st.sampled_from(PAIRS), servers=st.sampled_from([1, 2, 3]),
       own=st.one_of(st.just(0.0), st.floats(0.01, 16.0)), spilled=st.floats(0.05, 8.0))
def test_search_plan_is_a_point_of_the_model_never_below_its_optimum(planners, pair, servers, own, spilled):
    pool, other = pair
    loads = {pool: own, other: spilled} if own > 0 else {other: spilled}
    pl = planners[servers]
    x, price, arrays = _searched(pl, pool, loads, servers)
    opt = model_optimum(arrays)
    if x is None:  # nothing found: the MILP takes over
        return
    assert opt is not None, "a plan for a request the model says is infeasible"
    assert price >= opt * (1 - 1e-7) - 1e-6
    if own <= 0:  # the spilled class alone: the spilled-class DP is exact in the model's pricing
        assert price <= opt * (1 + 1e-7) + 1e-6
    pp = pl.plan_pool(pool, loads, {HW: servers})
    r = pp.report
    assert r.backend is None and "two-class pool search" in r.message
    # no bound of the search's own; plan_pool adds pool.md DP6's, a bound on the profile's problem
    if r.bound is None:
        assert r.status.value == "feasible" and r.gap is None
    else:
        assert r.bound <= r.objective and "pool DP on the classes' lower envelope" in r.message
    assert r.objective == pytest.approx(pp.power_w, rel=1e-12)
    for c, v in loads.items():
        assert pp.served_rps.get(c, 0.0) >= v * (1 - 1e-9)


# requests of the 40-server conversation case whose model optimum has each structure the search
# covers (the family the search names), with the optimum by scipy's milp in the test
STRUCTURES = [
    ("LS", {"ML": 5.288927329198079, "LS": 7.8655842331663735}, 3, "MM"),
    ("LS", {"ML": 5.017700286675101, "LS": 10.008694895346252}, 2, "MP"),
    ("LM", {"LS": 6.102608456767014, "LM": 4.087844521168343}, 2, "MS"),
    ("LM", {"LS": 7.187516626858928, "LM": 2.991237176591216}, 2, "MS"),
    ("SM", {"SM": 1.0, "SS": 1.0}, 1, None),
    ("LL", {"LM": 6.373835499289992, "LL": 7.323130148120417}, 2, None),
]


@pytest.mark.parametrize("pool,loads,servers,family", STRUCTURES)
def test_search_reaches_the_optimum_of_each_structure(pool, loads, servers, family):
    pl = Planner(Profile.default(), {HW: 6}, DEFAULT_SLOS, options=SEARCH)
    x, price, arrays = _searched(pl, pool, loads, servers)
    assert price == pytest.approx(model_optimum(arrays), rel=1e-7)
    if family is not None:
        assert f"; {family})" in pl.plan_pool(pool, loads, {HW: servers}).report.message


def test_options_choose_search_or_milp():
    prof = Profile.default()
    loads = {"LS": 10.008694895346252, "ML": 5.017700286675101}
    auto = Planner(prof, {HW: 2}, DEFAULT_SLOS)
    assert auto.plan_pool("LS", loads, {HW: 2}).report.backend is not None  # plan_pool: the MILP
    searched = Planner(prof, {HW: 2}, DEFAULT_SLOS, options=SEARCH).plan_pool("LS", loads, {HW: 2})
    assert searched.report.backend is None and "two-class pool search" in searched.report.message
    # inside plan(): the search by default, the MILP with 'exact'; both plans pass the checker
    f = {"LS": 6.0, "ML": 4.0, "MS": 3.0}
    for opts, searched_pools in ((PlannerOptions(), True), (PlannerOptions(mixed_pool="exact"), False)):
        pl = Planner(prof, {HW: 6}, DEFAULT_SLOS, options=opts)
        plan = pl.plan(f)
        check_plan(prof, {HW: 6}, DEFAULT_SLOS, plan, forecast=f, model=pl.model).raise_if_failed()
        mixed = [p for p in plan.pools if len([c for c, v in p.served_rps.items() if v > 0]) == 2]
        assert mixed
        assert all(("two-class pool search" in p.report.message) is searched_pools for p in mixed)


def test_loads_beyond_the_fractional_capacity_are_refused_without_a_milp(highs_solves):
    pl = Planner(Profile.default(), {HW: 1}, DEFAULT_SLOS, options=SEARCH)
    loads = {"LS": 7.187516626858928, "LM": 2.991237176591216}
    arrays = pl._problem(pl._model(ModelKind.POOL, "LM"), loads, {HW: 1})
    assert model_optimum(arrays) is None
    with pytest.raises(InfeasibleError, match=r"pool LM: .* do not fit .*capacity: at most .* GPUs are needed"):
        pl.plan_pool("LM", loads, {HW: 1})
    assert not highs_solves
