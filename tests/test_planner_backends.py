"""The same pool and monolithic models solved through HiGHS, Pyomo and CP-SAT agree."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dynaplan.domain import DEFAULT_SLOS, H100_80GB, ClassScheme, TokenBins
from dynaplan.errors import InfeasibleError
from dynaplan.planning import Planner, PlannerOptions, check_plan
from dynaplan.solvers import Backend, SolveOptions, Status
from dynaplan.testing import synthetic_profile

SCHEME = ClassScheme(input_bins=TokenBins(names=("S", "M"), edges_tokens=(256,)),
                     output_bins=TokenBins(names=("S",), edges_tokens=()))
# CP-SAT works on loads in units of 1e-3 req/s and integer objective weights; its optimum of the
# discretised model may sit above the continuous one by about (load unit x marginal power).
CPSAT_RTOL = 2e-3


def planners(seed: int, servers: int):
    prof = synthetic_profile(seed=seed, classes=SCHEME, tps=(4, 8), n_loads=5, clocks=(1200, 1980))
    opts = SolveOptions(time_limit_s=20)
    return prof, {b: Planner(prof, {H100_80GB.name: servers}, DEFAULT_SLOS, solve_options=opts, backend=b)
                  for b in (x.value for x in Backend)}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), frac=st.floats(0.1, 2.5))
def test_pool_level_backends_agree(seed, frac):
    prof, pls = planners(seed, servers=3)
    cap = float(pls["highs"].ops.loc[pls["highs"].ops["request_class"] == "MS", "max_load_rps"].max())
    load = round(frac * cap, 3)
    try:
        ref = pls["highs"].plan_pool("MS", {"MS": load}, {H100_80GB.name: 3})
    except InfeasibleError:
        assume(False)
    py = pls["pyomo"].plan_pool("MS", {"MS": load}, {H100_80GB.name: 3})
    cp = pls["cpsat"].plan_pool("MS", {"MS": load}, {H100_80GB.name: 3})
    assert py.report.backend.value == "pyomo" and cp.report.backend.value == "cpsat"
    assert py.report.objective == pytest.approx(ref.report.objective, rel=1e-6, abs=1e-6)
    assert cp.report.objective == pytest.approx(ref.report.objective, rel=CPSAT_RTOL)
    assert cp.report.objective >= ref.report.objective * (1 - 1e-6)  # a restriction never beats the optimum


def pl_gap(planner) -> float:
    return planner.solve_options.mip_rel_gap + 1e-12


def test_monolithic_backends_agree_and_plans_check():
    prof, pls = planners(7, servers=4)
    f = {"SS": 2.0, "MS": 1.0}
    plans = {b: pl.plan_monolithic(f) for b, pl in pls.items()}
    for b, plan in plans.items():
        # a plan's status is judged against the global bound of the profile's problem
        # (planning/bounds.py), the same for every backend: optimal only within the gap
        rep = plan.report
        assert rep.status in (Status.OPTIMAL, Status.FEASIBLE), b
        assert rep.bound <= rep.objective * (1 + 1e-9) and rep.objective == pytest.approx(plan.power_w), b
        assert (rep.status is Status.OPTIMAL) == (rep.gap <= pl_gap(pls[b])), b
        assert check_plan(prof, {H100_80GB.name: 4}, DEFAULT_SLOS, plan).ok, b
    ref = plans["highs"].report.objective
    assert plans["pyomo"].report.objective == pytest.approx(ref, rel=1e-6)
    assert plans["cpsat"].report.objective == pytest.approx(ref, rel=CPSAT_RTOL)
    assert plans["cpsat"].report.bound <= ref * (1 + 1e-9)  # a valid bound of the original model


@pytest.mark.parametrize("forced", [None, False, True])
def test_highs_heuristics_per_model_unless_forced(monkeypatch, forced):
    """Default: HiGHS's primal heuristics on for the monolithic MILP only; a forced value wins."""
    import dynaplan.solvers.highs as highs_mod

    seen: list[bool | None] = []
    real = highs_mod._run  # every HiGHS run, fresh or in a bound-update session, goes through it

    def spy(h, arrays, opts):
        seen.append(opts.highs_heuristics)
        return real(h, arrays, opts)

    monkeypatch.setattr(highs_mod, "_run", spy)
    # only the planning MILPs are counted here, not the global bound's solve (planning/bounds.py)
    monkeypatch.setattr(Planner, "_global_bound", lambda self, demand: None)
    prof = synthetic_profile(seed=3, classes=SCHEME, tps=(4, 8), n_loads=5, clocks=(1200, 1980))
    # the pool MILPs too (by default a two-class pool inside plan() is solved by the search)
    pl = Planner(prof, {H100_80GB.name: 3}, DEFAULT_SLOS, solve_options=SolveOptions(highs_heuristics=forced),
                 options=PlannerOptions(mixed_pool="exact"))
    f = {"SS": 1.0, "MS": 0.5}
    pl.plan(f)
    n_hier = len(seen)
    pl.plan_monolithic(f)
    assert n_hier >= 2 and len(seen) == n_hier + 1
    assert seen[:n_hier] == [bool(forced)] * n_hier  # cluster and pool levels
    assert seen[-1] is (True if forced is None else forced)  # monolithic
