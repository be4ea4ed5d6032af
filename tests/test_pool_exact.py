"""The pool level's optimum against an independent exact solver (tests/reference_solver.py).

The reference reads ``Profile.table`` alone (no dynaplan.planning or formulations code): a
dynamic programme over GPUs with every instance but one at a profile load point.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import InfeasibleError
from dynaplan.planning import Planner, PlannerOptions
from dynaplan.profiles.profile import Profile
from dynaplan.solvers import Status
from dynaplan.testing import profiles
from reference_solver import pool_optimum_w

HW = "h100-80gb"


@pytest.fixture(scope="module")
def default_profile():
    return Profile.default()


def reference(profile, pool, load, servers):
    hw = profile.hardware[HW]
    slo = DEFAULT_SLOS[pool]
    return pool_optimum_w(profile.table, profile.models[0], HW, hw.gpus_per_server, hw.idle_power_w, pool,
                          slo.ttft_ms, slo.tbt_ms, load, servers)


def assert_exact(pp, ref):
    """Within 1e-6 relative of the exact optimum, never below it, with an honest report."""
    assert pp.power_w >= ref * (1 - 1e-9)
    assert pp.power_w <= ref * (1 + 1e-6)
    r = pp.report
    assert r.status is Status.OPTIMAL
    assert r.bound <= ref * (1 + 1e-9)  # a valid lower bound on the profile's problem
    assert abs(r.objective - pp.power_w) <= 1e-6 * pp.power_w  # the model's objective is the plan's true power


@pytest.mark.parametrize("pool, load, servers", [
    ("LL", 1.1927037040458488, 1),   # was 1774.2 W (TP8@1200); exact 1536.1 W (TP8@1000)
    ("LL", 0.17715887799571028, 1),  # was 1390.1 W (TP4@1600); exact 1160.1 W (TP8@800)
    ("LM", 0.16168443855892217, 2),  # was 1613.3 W (4 x TP2@1400); exact 1567.7 W (TP8@800)
    ("SM", 25.8438, 1),              # an instance at exactly its SLO capacity
])
def test_issue_reproductions_are_exact(default_profile, pool, load, servers):
    s = {HW: servers}
    pp = Planner(default_profile, s, DEFAULT_SLOS).plan_pool(pool, {pool: load}, s)
    assert_exact(pp, reference(default_profile, pool, load, servers))


def test_reproduction_values_match_the_issue(default_profile):
    """The reference solver reproduces the exact values stated in issue 11 (to 0.1 W)."""
    assert reference(default_profile, "LL", 1.1927037040458488, 1) == pytest.approx(1536.1, abs=0.05)
    assert reference(default_profile, "LL", 0.17715887799571028, 1) == pytest.approx(1160.1, abs=0.05)
    assert reference(default_profile, "LM", 0.16168443855892217, 2) == pytest.approx(1567.7, abs=0.05)


def test_random_default_pools_are_exact(default_profile):
    rng = np.random.default_rng(11)
    planners = {s: Planner(default_profile, {HW: s}, DEFAULT_SLOS) for s in (1, 2, 3)}
    for _ in range(25):
        pool = str(rng.choice(list(default_profile.classes.names)))
        s = int(rng.integers(1, 4))
        load = float(np.exp(rng.uniform(np.log(0.05), np.log(40.0))))
        ref = reference(default_profile, pool, load, s)
        if not np.isfinite(ref):
            with pytest.raises(InfeasibleError):
                planners[s].plan_pool(pool, {pool: load}, {HW: s})
            continue
        assert_exact(planners[s].plan_pool(pool, {pool: load}, {HW: s}), ref)


def test_no_approximation_error_with_every_load_point(default_profile):
    """With the default (every load point) the pieces are the profile's interpolation: no error."""
    pl = Planner(default_profile, {HW: 1}, DEFAULT_SLOS)
    assert float(pl.segments["segment_error_w"].max()) == 0.0
    coarse = Planner(default_profile, {HW: 1}, DEFAULT_SLOS, options=PlannerOptions(load_segments=1))
    assert float(coarse.segments["segment_error_w"].max()) > 0.0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prof=profiles(), pool=st.sampled_from(["SS", "SM", "ML", "LL"]), servers=st.integers(1, 2),
       frac=st.floats(0.002, 1.0), dp=st.booleans())
def test_random_profiles_pools_are_exact(prof, pool, servers, frac, dp):
    """Hypothesis: random synthetic profiles, pools and loads; plan_pool within 1e-6 of the
    reference, never below it; infeasible exactly when the reference finds no plan; by the pool
    DP (the default) and by the pool MILP (``pool_dp=False``)."""
    hw = prof.hardware[HW]
    slo = DEFAULT_SLOS[pool]
    t = prof.table
    t = t[(t["request_class"] == pool) & (t["hardware"] == HW)]
    cap = float((hw.gpus_per_server * servers / t["tp"] * t["load_rps"]).max())
    load = cap * frac
    ref = pool_optimum_w(prof.table, prof.models[0], HW, hw.gpus_per_server, hw.idle_power_w, pool,
                         slo.ttft_ms, slo.tbt_ms, load, servers)
    s = {HW: servers}
    try:
        pp = Planner(prof, s, DEFAULT_SLOS, options=PlannerOptions(pool_dp=dp)).plan_pool(pool, {pool: load}, s)
    except InfeasibleError:
        assert not np.isfinite(ref)
        return
    assert np.isfinite(ref)
    assert (pp.report.backend is None) == dp  # the DP answered exactly when asked to
    assert_exact(pp, ref)


@pytest.mark.parametrize("pool, load", [("SM", 25.8438), ("LL", 1.1927037040458488)])
def test_cpsat_keeps_full_load_plans(default_profile, pool, load):
    """CP-SAT's grid must not lose a plan running an instance at exactly its SLO capacity (issue 11:
    SM 25.8438 req/s was 1,698.9 W against 1,464.1 W): its plan is the exact optimum here, its bound
    is valid for the profile's problem and its status claims no more than its gap."""
    s = {HW: 1}
    ref = reference(default_profile, pool, load, 1)
    pp = Planner(default_profile, s, DEFAULT_SLOS, backend="cpsat").plan_pool(pool, {pool: load}, s)
    assert ref * (1 - 1e-9) <= pp.power_w <= ref * (1 + 1e-6)
    r = pp.report
    assert r.bound <= ref * (1 + 1e-9)
    assert r.status in (Status.OPTIMAL, Status.FEASIBLE)
    assert r.gap == pytest.approx((r.objective - r.bound) / r.objective, abs=1e-9)


def _full_load_cases():
    """Loads at which the best plans run instances exactly at their SLO capacity: one instance, and
    every GPU of the server held at that capacity, of a few configurations (from the table alone)."""
    from reference_solver import class_curves
    prof = Profile.default()
    out = []
    for pool in ("SM", "MS", "LL"):
        slo = DEFAULT_SLOS[pool]
        curves = class_curves(prof.table, prof.models[0], HW, pool, slo.ttft_ms, slo.tbt_ms)
        tp, f, loads, _ = max(curves, key=lambda c: (c[2][-1], -c[0]))  # highest SLO capacity
        out.append((pool, float(loads[-1]), f"{pool} one TP{tp}@{f} at lmax"))
        out.append((pool, float(loads[-1]) * (8 // tp), f"{pool} {8 // tp} x TP{tp}@{f} at lmax"))
    return out


@pytest.mark.parametrize("pool, load, what", _full_load_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_cpsat_within_its_tolerance_at_full_load(default_profile, pool, load, what):
    """CP-SAT (MILP path: the DP serves HiGHS only) at loads that put instances exactly at their
    SLO capacity: never below the exact optimum, within CPSAT_RTOL (2e-3, tests/test_planner_backends.py)
    of it, a bound valid for the profile's problem and a gap that is (objective - bound) / objective."""
    s = {HW: 1}
    ref = reference(default_profile, pool, load, 1)
    assume_finite = np.isfinite(ref)
    assert assume_finite, what
    pp = Planner(default_profile, s, DEFAULT_SLOS, backend="cpsat").plan_pool(pool, {pool: load}, s)
    assert pp.report.backend.value == "cpsat"
    assert ref * (1 - 1e-9) <= pp.power_w <= ref * (1 + 2e-3), what
    r = pp.report
    assert r.bound <= ref * (1 + 1e-9)
    assert r.gap == pytest.approx((r.objective - r.bound) / r.objective, abs=1e-9)
    if r.status is Status.OPTIMAL:
        assert pp.power_w <= ref * (1 + 1e-4 + 1e-9)  # the default mip_rel_gap
