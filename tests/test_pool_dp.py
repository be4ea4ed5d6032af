"""The exact pool dynamic programme (formulations/pool.md, DP1-DP5) against independent references.

The reference (tests/reference_solver.py) reads ``Profile.table`` alone; the pool MILP
(``PlannerOptions(pool_dp=False)``) is a second, independent formulation of the same problem.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import InfeasibleError
from dynaplan.formulations import pool_dp
from dynaplan.planning import Planner, PlannerOptions
from dynaplan.planning.check import check_plan
from dynaplan.solvers import Backend, Status
from dynaplan.testing import profiles
from reference_solver import pool_optimum_w
from test_pool_exact import HW, default_profile, reference  # noqa: F401 (default_profile is a fixture)

MILP = PlannerOptions(pool_dp=False)


def solved_by_dp(pp) -> bool:
    return pp.report.backend is None and "dynamic programme" in pp.report.message


def assert_dp_exact(pp, ref, gpus_per_server=8):
    """The DP answered; within 1e-6 relative of the reference, never below it; honest report."""
    assert solved_by_dp(pp)
    assert pp.power_w >= ref * (1 - 1e-9)
    assert pp.power_w <= ref * (1 + 1e-6)
    r = pp.report
    assert r.status is Status.OPTIMAL
    assert r.bound <= ref * (1 + 1e-9)
    assert r.objective == pytest.approx(pp.power_w, rel=1e-12)
    assert r.gap == pytest.approx((r.objective - r.bound) / r.objective, abs=1e-12)
    # the plan's own figures add up: instances' power plus the idle GPUs of its servers
    gpus = sum(g.gpus for g in pp.groups)
    assert sum(pp.idle_gpus.values()) == sum(pp.servers.values()) * gpus_per_server - gpus
    assert pp.power_w == pytest.approx(sum(g.power_w for g in pp.groups) + pp.idle_power_w, rel=1e-12)


@pytest.mark.parametrize("pool, load, servers, want", [
    ("LL", 1.1927037040458488, 1, 1536.1),   # issue 11: was 1774.2 W (TP8@1200)
    ("LL", 0.17715887799571028, 1, 1160.1),  # was 1390.1 W (TP4@1600)
    ("LM", 0.16168443855892217, 2, 1567.7),  # was 1613.3 W (4 x TP2@1400)
])
def test_issue_reproductions_by_dp(default_profile, pool, load, servers, want):
    s = {HW: servers}
    pp = Planner(default_profile, s, DEFAULT_SLOS).plan_pool(pool, {pool: load}, s)
    assert pp.power_w == pytest.approx(want, abs=0.05)
    assert_dp_exact(pp, reference(default_profile, pool, load, servers))
    # the load served is the demand (the flat hold below the lightest load point is not over-served)
    assert pp.served_rps[pool] == pytest.approx(load, rel=1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prof=profiles(), pool=st.sampled_from(["SS", "SM", "ML", "LL"]), servers=st.integers(1, 3),
       frac=st.floats(0.001, 1.0))
def test_dp_matches_reference_on_random_profiles(prof, pool, servers, frac):
    """Random synthetic profiles, pools and loads: the DP within 1e-6 relative of the reference,
    never below it; no plan exactly when the reference finds none."""
    hw = prof.hardware[HW]
    slo = DEFAULT_SLOS[pool]
    t = prof.table
    t = t[(t["request_class"] == pool) & (t["hardware"] == HW)]
    load = float((hw.gpus_per_server * servers / t["tp"] * t["load_rps"]).max()) * frac
    ref = pool_optimum_w(prof.table, prof.models[0], HW, hw.gpus_per_server, hw.idle_power_w, pool,
                         slo.ttft_ms, slo.tbt_ms, load, servers)
    s = {HW: servers}
    try:
        pp = Planner(prof, s, DEFAULT_SLOS).plan_pool(pool, {pool: load}, s)
    except InfeasibleError:
        assert not np.isfinite(ref)
        return
    assert np.isfinite(ref)
    assert_dp_exact(pp, ref, hw.gpus_per_server)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool=st.sampled_from(["SS", "SM", "SL", "MS", "MM", "ML", "LS", "LM", "LL"]), servers=st.integers(1, 4),
       frac=st.floats(0.002, 0.98))
def test_dp_matches_reference_on_default_profile(default_profile, pool, servers, frac):
    load = 100.0 * servers * frac ** 3  # log-ish spread from light to beyond capacity
    ref = reference(default_profile, pool, load, servers)
    assume(np.isfinite(ref))
    s = {HW: servers}
    assert_dp_exact(Planner(default_profile, s, DEFAULT_SLOS).plan_pool(pool, {pool: load}, s), ref)


@pytest.fixture(scope="module")
def planners(default_profile):
    """DP and MILP planners per pool size, built once (the DP's fronts and the models are cached)."""
    return {(s, dp): Planner(default_profile, {HW: s}, DEFAULT_SLOS, options=None if dp else MILP)
            for s in (1, 2, 3) for dp in (True, False)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(pool=st.sampled_from(["SS", "SM", "SL", "MS", "MM", "ML", "LS", "LM", "LL"]), servers=st.integers(1, 3),
       load=st.floats(0.01, 120.0))
def test_dp_equals_pool_milp(planners, pool, servers, load):
    """The DP and the exact pool MILP (HiGHS, gap 1e-7) find the same optimum on random pools."""
    s = {HW: servers}
    try:
        milp = planners[(servers, False)].plan_pool(pool, {pool: load}, s)
    except InfeasibleError:
        with pytest.raises(InfeasibleError):
            planners[(servers, True)].plan_pool(pool, {pool: load}, s)
        return
    dp = planners[(servers, True)].plan_pool(pool, {pool: load}, s)
    assert solved_by_dp(dp) and milp.report.backend is Backend.HIGHS
    assert milp.power_w >= dp.power_w * (1 - 1e-9)  # the DP is the optimum
    assert milp.power_w <= dp.power_w * (1 + 1e-6)  # the MILP proves it to 1e-7
    assert dp.report.bound >= milp.report.bound * (1 - 1e-9)  # the DP's bound is the optimum itself


def test_size_limit_falls_back_to_the_milp(default_profile, monkeypatch):
    """DP5: a pool beyond the size checks is solved by the MILP, and says so."""
    monkeypatch.setattr(pool_dp, "MAX_STEP_CANDIDATES", 50)
    s = {HW: 2}
    pp = Planner(default_profile, s, DEFAULT_SLOS).plan_pool("SM", {"SM": 30.0}, s)
    assert pp.report.backend is Backend.HIGHS and pp.report.status is Status.OPTIMAL
    assert pp.power_w == pytest.approx(reference(default_profile, "SM", 30.0, 2), rel=1e-6)


def test_pool_beyond_max_gpus_goes_to_the_milp(default_profile):
    """DP5: more than MAX_GPUS GPUs is not attempted (no front is built for it)."""
    n = pool_dp.MAX_GPUS // 8 + 1
    s = {HW: n}
    pl = Planner(default_profile, s, DEFAULT_SLOS)
    pp = pl.plan_pool("LL", {"LL": 2.0}, s)
    assert pp.report.backend is Backend.HIGHS
    assert not pl._pool_dps or all(len(dp.f_load) == 1 for dp, *_ in pl._pool_dps.values())


def test_front_store_is_bounded(monkeypatch):
    """DP5: fronts stop growing at the store limit; extend() says it stopped."""
    monkeypatch.setattr(pool_dp, "MAX_FRONT_POINTS", 40)
    dp = pool_dp.PoolDP(tp=[2, 2, 4], lo_rps=[0.0, 1.0, 0.5], hi_rps=[1.0, 2.0, 3.0], a_w=[300.0, 310.0, 500.0],
                        b_w_per_rps=[20.0, 17.0, 9.0], gpus_per_server=8, idle_w=75.0)
    assert not dp.extend(dp.units_of(64))
    assert dp.stored <= 40 and dp.limit is not None
    assert dp.solve(5.0, 64) is None
    assert dp.solve(1.5, 1) is not None  # small pools still answer


def test_dp_small_hand_case():
    """One TP2 line: 3 req/s on 4 GPUs at cap 2 req/s each; the optimum is a full instance plus
    one at 1 req/s (net power is linear, so any split costs the same), idle GPUs none."""
    dp = pool_dp.PoolDP(tp=[2], lo_rps=[0.0], hi_rps=[2.0], a_w=[300.0], b_w_per_rps=[50.0], gpus_per_server=4,
                        idle_w=75.0)
    sol = dp.solve(3.0, 1)
    assert sol.value_w == pytest.approx(2 * 300.0 + 50.0 * 3.0)
    assert sorted(sol.loads_rps) == pytest.approx([1.0, 2.0])
    assert dp.solve(4.5, 1) is None  # beyond two instances' capacity


def test_dp_not_used_where_it_does_not_apply(default_profile):
    """Spilled classes, a current state, another backend or chords: the MILP answers."""
    s = {HW: 1}
    pl = Planner(default_profile, s, DEFAULT_SLOS)
    mixed = pl.plan_pool("SM", {"SM": 5.0, "SS": 2.0}, s)
    assert mixed.report.backend is Backend.HIGHS
    cur = pl.plan_pool("SM", {"SM": 5.0}, s, current={(HW, 8, 800): 1})
    assert cur.report.backend is Backend.HIGHS
    chords = Planner(default_profile, s, DEFAULT_SLOS, options=PlannerOptions(load_segments=3))
    assert chords.plan_pool("SM", {"SM": 5.0}, s).report.backend is Backend.HIGHS


def test_hierarchical_plan_with_dp_pools_passes_check_plan(default_profile):
    inv = {HW: 3}
    f = {"SM": 12.0, "LL": 0.6}
    pl = Planner(default_profile, inv, DEFAULT_SLOS)
    plan = pl.plan(f)
    assert any(solved_by_dp(pp) for pp in plan.pools)
    chk = check_plan(default_profile, inv, DEFAULT_SLOS, plan, forecast=f)
    assert chk.ok, chk.violations


def _table_power(profile, request_class, tp, freq_mhz, load):
    """Power at ``load`` from the table's own rows (held below the lightest point), no dynaplan code."""
    t = profile.table
    d = t[(t["hardware"] == HW) & (t["request_class"] == request_class) & (t["tp"] == tp)
          & (t["freq_mhz"] == freq_mhz) & (t["model"] == profile.models[0])].sort_values("load_rps")
    return float(np.interp(load, d["load_rps"].to_numpy(), d["power_w"].to_numpy()))


@pytest.mark.parametrize("loads", [{"SM": 1.0, "SS": 1.0}, {"SM": 5.0, "SS": 5.0}, {"SM": 15.0, "SS": 8.0}])
def test_mixed_pool_report_claims_no_more_than_it_knows(default_profile, loads):
    """A pool serving a spilled class (MILP path, surcharge at full utilisation): its objective is
    the plan's power recomputed from the table (the share-weighted class curves), its bound the
    DP6 one (below it), and it claims optimality only within the pool gap."""
    from reference_solver import class_curves
    s = {HW: 1}
    pp = Planner(default_profile, s, DEFAULT_SLOS).plan_pool("SM", loads, s)
    r = pp.report
    assert r.backend is Backend.HIGHS and r.bound is not None and r.bound <= r.objective
    assert (r.status is Status.OPTIMAL) == (r.gap <= 1e-7 + 1e-12)
    lmax = {}
    for c in loads:
        slo = DEFAULT_SLOS[c]
        for tp, f, pts, _ in class_curves(default_profile.table, default_profile.models[0], HW, c, slo.ttft_ms,
                                          slo.tbt_ms):
            lmax[(c, tp, f)] = float(pts[-1])
    power = pp.idle_power_w
    for g in pp.groups:
        u = {c: v / lmax[(c, g.tp, g.freq_mhz)] for c, v in g.load_rps_per_instance.items()}
        big_u = sum(u.values())
        p_inst = sum(uc / big_u * _table_power(default_profile, c, g.tp, g.freq_mhz,
                                               big_u * lmax[(c, g.tp, g.freq_mhz)]) for c, uc in u.items())
        power += g.count * p_inst
    assert r.objective == pytest.approx(power, rel=1e-9)
    assert pp.power_w == pytest.approx(power, rel=1e-9)


def _uniform_mixed_plans_w(profile, loads, servers):
    """Power of every plan of n identical instances of one configuration, each carrying 1/n of
    every class's load, from the table alone (``class_curves``; the share-weighted class curves at
    the instance's utilisation, idle GPUs at the hardware's idle power): feasible plans, so each
    is at least the optimum of the mixed pool."""
    from reference_solver import class_curves
    hw = profile.hardware[HW]
    curves = {}
    for c in loads:
        slo = DEFAULT_SLOS[c]
        for tp, f, pts, pw in class_curves(profile.table, profile.models[0], HW, c, slo.ttft_ms, slo.tbt_ms):
            curves.setdefault((tp, f), {})[c] = (pts, pw)
    out = []
    for (tp, f), by_c in curves.items():
        if set(by_c) != set(loads):
            continue
        for n in range(1, hw.gpus_per_server * servers // tp + 1):
            u = {c: loads[c] / n / by_c[c][0][-1] for c in loads}
            big_u = sum(u.values())
            if big_u > 1 + 1e-12:
                continue
            p_inst = sum(uc / big_u * float(np.interp(big_u * by_c[c][0][-1], *by_c[c])) for c, uc in u.items())
            out.append(n * p_inst + hw.idle_power_w * (hw.gpus_per_server * servers - n * tp))
    return out


@pytest.fixture(scope="module")
def mixed_planners(default_profile):
    return {s: Planner(default_profile, {HW: s}, DEFAULT_SLOS) for s in (1, 2)}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(pair=st.sampled_from([("SM", "SS"), ("MM", "MS"), ("LM", "LS"), ("SL", "SM")]), servers=st.integers(1, 2),
       own=st.floats(0.05, 30.0), spilled=st.floats(0.01, 30.0))
def test_mixed_pool_bound_is_valid(default_profile, mixed_planners, pair, servers, own, spilled):
    """pool.md DP6: a mixed pool's bound is never above a feasible plan's power, neither the
    plan's own nor any of the uniform plans built from the table alone; gap and status follow."""
    pool, other = pair
    loads = {pool: own, other: spilled}
    s = {HW: servers}
    try:
        pp = mixed_planners[servers].plan_pool(pool, loads, s)
    except InfeasibleError:
        assume(False)
    r = pp.report
    assert r.objective == pytest.approx(pp.power_w, rel=1e-12)
    assert r.bound is not None and "lower envelope" in r.message
    assert r.bound <= pp.power_w * (1 + 1e-12)
    for power in _uniform_mixed_plans_w(default_profile, loads, servers):
        assert r.bound <= power * (1 + 1e-9)
    assert r.gap == pytest.approx((r.objective - r.bound) / r.objective, abs=1e-12)
    assert (r.status is Status.OPTIMAL) == (r.gap <= 1e-7 + 1e-12)


def test_mix_envelope_is_the_pointwise_minimum():
    """DP6's envelope: on a grid, its pieces give min_c Q_c exactly; one curve gives itself."""
    c1 = (np.array([0.2, 0.5, 1.0]), np.array([300.0, 340.0, 420.0]))
    c2 = (np.array([0.1, 0.6, 1.0]), np.array([320.0, 330.0, 400.0]))
    lo, hi, a, b = pool_dp.mix_envelope([c1, c2], own_lmax_rps=4.0)
    grid = np.linspace(0.0, 1.0, 2001)
    want = np.minimum(np.interp(grid, *c1), np.interp(grid, *c2))
    i = np.clip(np.searchsorted(hi, grid * 4.0, side="left"), 0, len(hi) - 1)
    assert np.allclose(a[i] + b[i] * grid * 4.0, want, rtol=1e-12, atol=1e-9)
    lo1, hi1, a1, b1 = pool_dp.mix_envelope([c1], own_lmax_rps=4.0)
    j = np.clip(np.searchsorted(hi1, grid * 4.0, side="left"), 0, len(hi1) - 1)
    assert np.allclose(a1[j] + b1[j] * grid * 4.0, np.interp(grid, *c1), rtol=1e-12, atol=1e-9)


def test_plan_on_a_given_allotment_names_a_backend(default_profile):
    """A plan whose pools the DP solved still names the backend that ran (the global bound's)."""
    inv = {HW: 2}
    pl = Planner(default_profile, inv, DEFAULT_SLOS)
    allot = pl.allot({"LL": 0.8})
    plan = pl.plan({"LL": 0.7}, allotment=allot)
    assert all(solved_by_dp(pp) for pp in plan.pools)
    assert plan.report.backend is Backend.HIGHS
    assert check_plan(default_profile, inv, DEFAULT_SLOS, plan, forecast={"LL": 0.7}).ok


def test_a_spilled_class_may_use_a_point_its_own_pool_prunes(default_profile):
    """SL spilled into the MS pool on one server: one TP8@1200 instance carries both classes
    (2,197.5 W, from the table alone). SL's own (TP8, 1200 MHz) point is dominated in SL's pool,
    and when the MS pool could only route SL to points the pruning kept it took two TP4
    instances (3,382.4 W, +54%). The pool's plan is now no worse than any uniform plan built from
    the table, and the monolithic model offers the same arcs."""
    loads = {"MS": 17.60181020408568, "SL": 0.1356135212614892}
    s = {HW: 1}
    pl = Planner(default_profile, s, DEFAULT_SLOS)
    key = (pl.ops["request_class"] == "SL") & (pl.ops["tp"] == 8) & (pl.ops["freq_mhz"] == 1200)
    assert not key.any()  # the pruning drops SL's point there ...
    rkey = (pl.routed_ops["request_class"] == "SL") & (pl.routed_ops["tp"] == 8) & (pl.routed_ops["freq_mhz"] == 1200)
    assert rkey.sum() == 1  # ... but it is SLO-feasible, so MS's instances there may serve SL
    uniform = _uniform_mixed_plans_w(default_profile, loads, 1)
    best = min(uniform)
    assert best == pytest.approx(2197.54, abs=0.01)
    pp = pl.plan_pool("MS", loads, s)
    assert pp.power_w <= best * (1 + 1e-9)
    assert [(g.tp, g.freq_mhz, g.count) for g in pp.groups] == [(8, 1200, 1)]
    mono = pl.plan_monolithic(loads)
    assert mono.power_w <= best * (1 + 1e-9)
    chk = check_plan(default_profile, s, DEFAULT_SLOS, mono, forecast=loads)
    assert chk.ok, chk.violations
