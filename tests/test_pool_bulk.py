"""Large pools by bulk + residual (formulations/pool.md, "Large pools (bulk + residual)", BR0-BR4).

Checked against independent computation: the LP bound BR1 against scipy's LP solver on the
pieces' ends; single-class plans against the exact reference (tests/reference_solver.py, built
from the profile table alone) and the pool MILP at gap 1e-9; mixed plans against the pool MILP;
every plan through check_plan.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import InfeasibleError
from dynaplan.formulations import pool_bulk
from dynaplan.formulations.pool_bulk import PoolLPBound, bulk_instances
from dynaplan.planning import Planner, PlannerOptions
from dynaplan.planning.check import check_plan
from dynaplan.planning.plan import Allotment
from dynaplan.profiles import Profile
from dynaplan.solvers import Backend, SolveReport, Status
from test_pool_exact import HW, default_profile, reference  # noqa: F401 (default_profile is a fixture)

CLASSES = ["SS", "SM", "SL", "MS", "MM", "ML", "LS", "LM", "LL"]
# stated tolerances (formulations/pool.md, "Large pools", measured): single class, no excess over
# the optimum on 9-20 servers, 1.3e-3 at worst on 20-400; mixed, 2e-4 on 9-20 servers and
# 6.2e-3 at worst on 20-64 (against the MILP's plan)
SINGLE_RTOL = 5e-3
MIXED_RTOL = 1e-2


def solved_by_bulk(pp) -> bool:
    return "bulk + residual" in pp.report.message


@pytest.fixture(scope="module")
def planners(default_profile):
    inv = {HW: 40}
    return {
        "bulk": Planner(default_profile, inv, DEFAULT_SLOS, options=PlannerOptions(large_pool="bulk")),
        "exact": Planner(default_profile, inv, DEFAULT_SLOS,
                         options=PlannerOptions(large_pool="exact", pool_mip_rel_gap=1e-9)),
        "auto": Planner(default_profile, inv, DEFAULT_SLOS),
    }


@pytest.fixture(scope="module")
def capacity(planners):
    """Per class, the most req/s one server can carry (the planner's SLO-feasible points)."""
    ml = planners["exact"].ops
    ml = ml[ml["max_load_rps"] > 0]
    return (8 // ml["tp"] * ml["max_load_rps"]).groupby(ml["request_class"]).max().to_dict()


def _lp_value(tp, lo, hi, a, b, idle_w, gpus, load):
    """The pool's LP relaxation over its pieces' ends, by scipy (independent of BR1's closed form)."""
    t = np.r_[tp, tp].astype(float)
    l = np.r_[lo, hi]
    c = np.r_[a + b * lo, a + b * hi] - idle_w * t
    res = linprog(c, A_ub=np.vstack([-l, t]), b_ub=[-load, gpus], bounds=(0, None), method="highs")
    assert res.status in (0, 2)
    return res.fun + idle_w * gpus if res.status == 0 else np.inf


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), servers=st.integers(1, 30), frac=st.floats(0.0, 1.0))
def test_lp_bound_equals_the_lp_relaxation(seed, servers, frac):
    """BR1 is the LP relaxation's value (scipy) on random pieces: a valid bound, and tight."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    tp = rng.choice([2, 4, 8], n)
    lo = rng.uniform(0, 5, n) * (rng.random(n) < 0.7)
    hi = lo + rng.uniform(0.1, 5, n)
    a = rng.uniform(50, 400, n) * tp / 2
    b = rng.uniform(0, 60, n)
    idle = 45.0
    gpus = 8 * servers
    cap = float(np.max(hi / tp)) * gpus
    load = frac * cap
    want = _lp_value(tp, lo, hi, a, b, idle, gpus, load)
    got = PoolLPBound(tp, lo, hi, a, b, idle).bound(load, gpus)
    assert got <= want + 1e-7 * max(1.0, abs(want))
    assert got == pytest.approx(want, rel=1e-7, abs=1e-6)


def test_lp_bound_hand_case():
    """One TP8 piece on [0, 10] req/s drawing 100 + 10 l W, idle GPU 5 W, 2 servers (16 GPUs):
    LP optimum at 15 req/s is 1.5 instances at 10 req/s (1.5 x 200 W) + 4 idle GPUs (20 W)."""
    lpb = PoolLPBound([8], [0.0], [10.0], [100.0], [10.0], 5.0)
    assert lpb.bound(15.0, 16) == pytest.approx(1.5 * 200.0 + 4 * 5.0, rel=1e-12)
    assert lpb.bound(0.0, 16) == pytest.approx(80.0, rel=1e-12)  # idle pool


def test_bulk_instances_whole_servers_and_room():
    """BR2: whole servers per piece, never above the LP, leaving the residual its servers and
    R - 1 servers of the LP's instances."""
    n_lp = np.array([700.4, 8.7, 0.0, 3.2])
    tp = np.array([8, 2, 4, 4])
    n = bulk_instances(n_lp, tp, 8, 1000, residual_servers=8)
    per = 8 // tp
    assert np.all(n % per == 0) and np.all(n <= n_lp)
    servers_lp = (n_lp / per).sum()
    assert (n / per).sum() <= 1000 - 8
    assert servers_lp - (n / per).sum() >= 8 - 1
    # a pool barely larger than the residual keeps only what the residual leaves (10 - 8 servers)
    assert bulk_instances(np.array([9.5]), np.array([8]), 8, 10, residual_servers=8).tolist() == [2]
    # ... and one the LP fills to 7.5 servers keeps none (7.5 - (8 - 1) < 1)
    assert bulk_instances(np.array([7.5]), np.array([8]), 8, 10, residual_servers=8).tolist() == [0]
    # a piece the LP gives fewer than min_servers servers stays out
    assert bulk_instances(np.array([500.0, 3.0]), np.array([8, 8]), 8, 600, 8, min_servers=8).tolist() == [496, 0]  # 503 - 7


def _check_pool(profile, planner, pool, loads, servers, pp):
    """The pool's plan inside a one-pool hierarchical plan passes check_plan."""
    al = Allotment(servers={pool: {HW: servers}}, routing={c: {pool: 1.0} for c in loads}, forecast_rps=loads,
                   report=SolveReport.not_solved("test allotment"))
    plan = planner.plan(loads, allotment=al)
    chk = check_plan(profile, {HW: 40}, DEFAULT_SLOS, plan, forecast=loads, options=planner.options)
    assert chk.ok, chk.violations
    return plan


@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(pool=st.sampled_from(CLASSES), servers=st.integers(9, 20), frac=st.floats(0.03, 0.97))
def test_single_class_against_the_reference(default_profile, planners, capacity, pool, servers, frac):
    """A single-class pool beyond the DP's 64 GPUs: valid, never below the exact optimum
    (reference solver), its bound never above it, within the stated gap and SINGLE_RTOL."""
    load = frac * capacity[pool] * servers
    s = {HW: servers}
    pp = planners["bulk"].plan_pool(pool, {pool: load}, s)
    assert solved_by_bulk(pp) and pp.report.backend is Backend.HIGHS
    ref = reference(default_profile, pool, load, servers)
    r = pp.report
    assert pp.power_w >= ref * (1 - 1e-9)
    assert r.bound <= ref * (1 + 1e-9)
    assert r.objective == pytest.approx(pp.power_w, rel=1e-12)
    assert r.gap == pytest.approx((r.objective - r.bound) / r.objective, abs=1e-12)
    assert (pp.power_w - ref) / pp.power_w <= r.gap + 1e-9  # within the stated gap
    assert r.status is (Status.OPTIMAL if r.gap <= 1e-7 else Status.FEASIBLE)
    assert pp.power_w <= ref * (1 + SINGLE_RTOL)
    _check_pool(default_profile, planners["bulk"], pool, {pool: load}, servers, pp)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(pool=st.sampled_from(CLASSES), servers=st.integers(9, 20), frac=st.floats(0.03, 0.97))
def test_single_class_against_the_milp(planners, capacity, pool, servers, frac):
    """The same against the pool MILP solved to a relative gap of 1e-9."""
    load = frac * capacity[pool] * servers
    s = {HW: servers}
    exact = planners["exact"].plan_pool(pool, {pool: load}, s)
    assert exact.report.status is Status.OPTIMAL and not solved_by_bulk(exact)
    pp = planners["bulk"].plan_pool(pool, {pool: load}, s)
    assert pp.power_w >= exact.power_w * (1 - 1e-8)
    assert pp.report.bound <= exact.power_w * (1 + 1e-9)
    assert pp.power_w <= exact.power_w * (1 + SINGLE_RTOL)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(pool=st.sampled_from(CLASSES), servers=st.integers(9, 20), frac=st.floats(0.05, 0.9),
       share=st.floats(0.02, 0.5), pick=st.integers(0, 10))
def test_mixed_pool_feasible_and_close_to_the_milp(default_profile, planners, capacity, pool, servers, frac,
                                                  share, pick):
    """A mixed pool (a spilled class, spill 'next'): a valid plan, reported as the MILP's mixed
    pools are (true power, feasible, no bound), within MIXED_RTOL of the MILP's plan."""
    spilled = [c for c in CLASSES if c != pool and pool in planners["bulk"].routes[c]]
    if not spilled:
        return
    c = spilled[pick % len(spilled)]
    total = frac * capacity[pool] * servers
    loads = {pool: (1 - share) * total, c: share * total * capacity[c] / capacity[pool]}
    s = {HW: servers}
    try:
        milp = planners["exact"].plan_pool(pool, loads, s)
    except InfeasibleError:
        return
    pp = planners["bulk"].plan_pool(pool, loads, s)
    assert solved_by_bulk(pp)
    r = pp.report
    assert r.status is Status.FEASIBLE and r.objective == pytest.approx(pp.power_w, rel=1e-12)
    assert pp.power_w <= milp.power_w * (1 + MIXED_RTOL)
    for k, v in loads.items():
        assert pp.served_rps[k] >= v * (1 - 1e-9)
    _check_pool(default_profile, planners["bulk"], pool, loads, servers, pp)


def test_plan_pool_stays_exact_by_default(planners, capacity):
    """'auto': plan_pool solves a large single-class pool by the MILP (proven optimal); the
    hierarchy's pool level by bulk + residual."""
    load = 0.6 * capacity["SS"] * 12
    s = {HW: 12}
    pp = planners["auto"].plan_pool("SS", {"SS": load}, s)
    assert not solved_by_bulk(pp) and pp.report.status is Status.OPTIMAL
    al = Allotment(servers={"SS": s}, routing={"SS": {"SS": 1.0}}, forecast_rps={"SS": load},
                   report=SolveReport.not_solved("test allotment"))
    plan = planners["auto"].plan({"SS": load}, allotment=al)
    assert solved_by_bulk(plan.pools[0])
    assert plan.pools[0].power_w <= pp.power_w * (1 + SINGLE_RTOL)
    assert plan.report.status is not Status.OPTIMAL or plan.report.gap <= planners["auto"].solve_options.mip_rel_gap


def test_not_used_where_it_does_not_apply(default_profile, planners, capacity):
    """BR0: 'exact', pools within the DP's sizes, best effort and other backends keep their paths."""
    load = 0.5 * capacity["LL"] * 12
    s = {HW: 12}
    assert not solved_by_bulk(planners["exact"].plan_pool("LL", {"LL": load}, s))
    small = planners["bulk"].plan_pool("LL", {"LL": 0.5 * capacity["LL"] * 8}, {HW: 8})
    assert small.report.backend is None  # the DP
    be = Planner(default_profile, {HW: 40}, DEFAULT_SLOS, options=PlannerOptions(large_pool="bulk", best_effort=True))
    assert not solved_by_bulk(be.plan_pool("LL", {"LL": load}, s))
    seg = Planner(default_profile, {HW: 40}, DEFAULT_SLOS, options=PlannerOptions(large_pool="bulk", load_segments=3))
    assert not solved_by_bulk(seg.plan_pool("LL", {"LL": load}, s))


def test_hierarchical_plan_with_bulk_pools_passes_check_plan(default_profile):
    """A hierarchical plan whose large pools are solved by bulk + residual is valid and carries
    the global bound."""
    inv = {HW: 60}
    f = {"SS": 900.0, "SM": 300.0, "LL": 30.0}
    pl = Planner(default_profile, inv, DEFAULT_SLOS)
    plan = pl.plan(f)
    assert any(solved_by_bulk(pp) for pp in plan.pools)
    chk = check_plan(default_profile, inv, DEFAULT_SLOS, plan, forecast=f)
    assert chk.ok, chk.violations
    assert plan.report.bound is not None and plan.report.bound <= plan.power_w


def test_residual_size_is_a_parameter(default_profile, capacity, monkeypatch):
    """A smaller residual still gives a valid plan, never below the reference."""
    monkeypatch.setattr(pool_bulk, "RESIDUAL_SERVERS", 2)
    pl = Planner(default_profile, {HW: 40}, DEFAULT_SLOS, options=PlannerOptions(large_pool="bulk"))
    load = 0.7 * capacity["MM"] * 11
    pp = pl.plan_pool("MM", {"MM": load}, {HW: 11})
    assert solved_by_bulk(pp)
    assert pp.power_w >= reference(default_profile, "MM", load, 11) * (1 - 1e-9)


_SPILL_PAIRS = [("SL", "SM"), ("SM", "SS"), ("LS", "ML"), ("LL", "LM"), ("MS", "SL")]


@pytest.fixture(scope="module")
def spill_planner():
    return Planner(Profile.default(), {"h100-80gb": 20}, DEFAULT_SLOS)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=st.sampled_from(_SPILL_PAIRS), servers=st.sampled_from([1, 2, 4, 8]), load=st.floats(0.05, 60.0))
def test_a_residual_of_one_spilled_class_is_the_models_optimum(spill_planner, pair, servers, load):
    """BR3 for a residual of a spilled class alone (the pool's own class at zero): the DP of
    Planner._spill_dp returns a feasible point of the pool model whose cost is the model's
    optimum (scipy's milp on the same arrays), or nothing exactly when the model is infeasible."""
    import scipy.sparse as sp
    from scipy.optimize import Bounds, LinearConstraint, milp

    from dynaplan.planning import bulk
    from dynaplan.planning.registry import ModelKind
    pool, c = pair
    pl = spill_planner
    cm = pl._model(ModelKind.POOL, pool)
    x, how = bulk._residual(pl, cm, pool, "h100-80gb", {pool: 0.0, c: load}, servers)
    dblock = cm.model.con_blocks["demand"]
    rhs = np.array([load if lab == c else 0.0 for lab in dblock.labels])
    yb = cm.model.var_blocks["y"]
    ys = np.array([float(servers) if h == "h100-80gb" else 0.0 for _, h in yb.labels])
    a = cm.arrays.with_block_bounds(rows={"demand": (rhs, None)}, cols={"y": (ys, ys)})
    res = milp(a.cost, constraints=LinearConstraint(sp.csr_matrix(a.A), a.row_lo, a.row_hi),
               bounds=Bounds(a.lb, a.ub), integrality=a.integer.astype(int), options={"mip_rel_gap": 1e-10})
    if x is None:
        assert res.status != 0  # infeasible: nothing carries the load on these servers
        return
    assert "spilled class" in how
    x = x.copy()
    x[cm.na.y_cols] = a.lb[cm.na.y_cols]
    assert a.violation(x) <= 1e-7 * max(1.0, load)
    assert res.status == 0
    assert float(a.cost @ x) == pytest.approx(float(res.fun), rel=1e-7, abs=1e-6)


def test_a_dp_stopped_by_its_size_checks_does_not_call_a_residual_infeasible(monkeypatch):
    """BR3: the residual DP's None means "nothing carries the load" only where the DP answers
    that size (DP5: GPUs within MAX_GPUS and fronts built that far); a DP whose fronts stop
    short leaves the residual to the MILP."""
    from dynaplan.formulations import pool_dp
    from dynaplan.planning.bulk import _fits_dp

    def dp():
        return pool_dp.PoolDP([1, 2], [0.0, 0.0], [1.0, 2.0], [10.0, 20.0], [1.0, 1.0], 8, 1.0)

    full = dp()
    assert full.solve(100.0, 1) is None and _fits_dp(full, 1)  # answered: nothing carries 100 req/s
    assert not _fits_dp(dp(), pool_dp.MAX_GPUS // 8 + 1)
    monkeypatch.setattr(pool_dp, "MAX_FRONT_POINTS", 3)
    small = dp()
    assert small.solve(100.0, 1) is None and not _fits_dp(small, 1)
