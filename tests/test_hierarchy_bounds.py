"""The global bound (planning/bounds.py) and the hierarchy against independent computation.

The exact optima come from ``tests/exact_reference.py`` (enumeration over ``Profile.table``
alone, no planner code). Reproductions of issue 11 (hierarchy) and issue 13 (best effort) pin
the regressions.
"""

from __future__ import annotations

import numpy as np
import pytest

from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import NoSolutionError
from dynaplan.planning import Planner, PlannerOptions, check_plan
from dynaplan.profiles import Profile
from dynaplan.solvers import Status
from exact_reference import configurations, exact_power_w
from toy_models import SLOS, TOY, linear_profile, random_curves

H100 = "h100-80gb"
LOADS = [0.5] + list(range(2, 21, 2))


def _honest(plan, tol: float) -> None:
    rep = plan.report
    assert rep.objective == pytest.approx(plan.power_w + 0.0, rel=1e-12)
    assert rep.gap == pytest.approx(max(0.0, rep.objective - rep.bound) / rep.objective, abs=1e-12)
    assert (rep.status is Status.OPTIMAL) == (rep.gap <= tol + 1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("servers", [1, 2])
def test_bound_and_plans_against_exact_optimum(seed, servers):
    prof = linear_profile(random_curves(seed), LOADS)
    cfgs = configurations(prof, "AA", SLOS.per_class["AA"].ttft_ms, SLOS.per_class["AA"].tbt_ms)
    cap = max(c["lmax"] for c in cfgs) * servers * 8 / min(c["tp"] for c in cfgs)
    pl = Planner(prof, {"toy": servers}, SLOS)
    tol = pl.solve_options.mip_rel_gap
    for frac in (0.05, 0.3, 0.7):
        load = float(frac * cap)
        exact = exact_power_w(cfgs, load, servers, TOY.gpus_per_server, TOY.idle_power_w)
        if not np.isfinite(exact):
            continue
        bound = pl.global_bound({"AA": load})
        assert bound <= exact * (1 + 1e-9), (load, bound, exact)
        for plan in (pl.plan({"AA": load}), pl.plan_monolithic({"AA": load})):
            assert plan.power_w >= exact * (1 - 1e-9), (plan.mode, load)
            _honest(plan, tol)
            if plan.report.status is Status.OPTIMAL:
                assert plan.power_w <= exact * (1 + tol) + 1e-6


@pytest.fixture(scope="module")
def prof():
    return Profile.default()


def test_two_class_reproduction_is_close_to_monolithic_and_not_called_optimal(prof):
    """Issue 11: 4,596 W hierarchical vs 3,575 W monolithic, both labelled optimal."""
    pl = Planner(prof, {H100: 5}, DEFAULT_SLOS)
    f = {"SL": 2.1938, "MS": 26.1696}
    hier, mono = pl.plan(f), pl.plan_monolithic(f)
    assert hier.power_w <= 1.03 * mono.power_w
    for plan in (hier, mono):
        assert plan.report.bound <= mono.power_w
        _honest(plan, pl.solve_options.mip_rel_gap)
        assert check_plan(prof, {H100: 5}, DEFAULT_SLOS, plan).ok
    assert hier.report.status is Status.FEASIBLE  # 6% above the global bound here: not proven


def _conversation(total_rps: float) -> dict[str, float]:
    from benchmarks import inputs
    base = inputs.forecast(40)
    s = sum(base.values())
    return {c: v * total_rps / s for c, v in base.items()}


@pytest.mark.parametrize("total_rps", [60.0, 200.0])
def test_larger_inventory_never_plans_worse(prof, total_rps):
    """Issue 11: 200 req/s of the conversation mix planned worse on 40 servers than on 26."""
    f = _conversation(total_rps)
    powers = [Planner(prof, {H100: n}, DEFAULT_SLOS).plan(f).power_w for n in (26, 40)]
    assert powers[1] <= powers[0] * (1 + 1e-6)


def test_best_effort_overload_serves_as_much_as_monolithic(prof):
    """Issue 13: 40 servers, SS at 5,000 req/s: hierarchical 1,956 req/s served, monolithic 3,397."""
    pl = Planner(prof, {H100: 40}, DEFAULT_SLOS, options=PlannerOptions(best_effort=True))
    f = {"SS": 5000.0}
    hier, mono = pl.plan(f), pl.plan_monolithic(f)
    served = [5000.0 - sum(p.unserved_rps.values()) for p in (hier, mono)]
    assert served[0] >= served[1] * (1 - 1e-6)
    pen = pl.options.unserved_penalty_w_per_rps
    for plan in (hier, mono):
        rep = plan.report
        assert rep.objective == pytest.approx(plan.power_w + pen * sum(plan.unserved_rps.values()), rel=1e-9)
        assert rep.bound <= rep.objective * (1 + 1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_hierarchy_vs_monolithic_on_random_small_forecasts(prof, seed):
    from benchmarks import inputs
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 9))
    f = inputs.dirichlet_forecast(seed, n)
    pl = Planner(prof, {H100: n}, DEFAULT_SLOS)
    hier = pl.plan(f)
    bound = pl.global_bound(f)
    assert bound <= hier.power_w * (1 + 1e-9)
    assert hier.report.gap == pytest.approx((hier.power_w - bound) / hier.power_w, abs=1e-9)
    try:
        mono = pl.plan_monolithic(f)
    except NoSolutionError:
        # the time-limited monolithic reference found no plan (a loaded machine): a valid outcome
        # of a time-limited solve, which leaves only the checks above to make
        return
    assert bound <= mono.power_w * (1 + 1e-9)
    # seed 1 (all nine classes at 0.05-9 req/s on 6 servers) is +4.4% to +6.4%, against a
    # monolithic reference that is time-limited and so varies from run to run: the hierarchy's
    # routing differs from the monolithic one in every pool, which no single polishing move
    # mends (benchmarks/RESULTS.md); the random corpus of hier_vs_mono is within 1.4%
    assert hier.power_w <= 1.10 * mono.power_w
