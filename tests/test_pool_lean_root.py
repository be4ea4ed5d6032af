"""SolveOptions.highs_lean_root on small pool MILPs changes time, not answers (pool.md, "Solver settings").

The planner runs pool MILPs of at most 64 GPUs with HiGHS's lean root (no restarts, no cuts below
the root); these tests pin that the setting reaches HiGHS only there, and that pool plans are the
same as with HiGHS's defaults, computed by a planner that forces the lean root off."""

from __future__ import annotations

import highspy
import pytest

import dynaplan.solvers.highs as highs_backend
from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.planning import Planner, PlannerOptions
from dynaplan.profiles import Profile
from dynaplan.solvers import SolveOptions

H = "h100-80gb"
# two-class (mixed) pools of a 40-server hierarchical plan of the conversation mix, and single-class ones
POOLS = [("ML", {"MM": 6.78, "ML": 5.09}, 1), ("LS", {"LS": 12.62, "ML": 5.02}, 4), ("SM", {"SM": 6.24, "SS": 10.44}, 1),
         ("LM", {"LM": 5.05, "LS": 6.24}, 2), ("LL", {"LL": 18.44, "LM": 3.12}, 5), ("LS", {"LS": 3.0}, 8)]


def _option(h, name: str) -> bool:
    value = h.getOptionValue(name)  # highspy returns (status, value)
    return bool(value[1] if isinstance(value, tuple) else value)


def _restart_seen(monkeypatch) -> list[bool]:
    """Per HiGHS solver made: whether it may restart (and, alike, cut below the root)."""
    seen: list[bool] = []
    make = highs_backend._make_highs

    def spy(opts):
        h = make(opts)
        restart, cuts = _option(h, "mip_allow_restart"), _option(h, "mip_allow_cut_separation_at_nodes")
        assert restart == cuts
        seen.append(restart)
        return h
    monkeypatch.setattr(highs_backend, "_make_highs", spy)
    return seen


def test_small_pool_milps_run_with_the_lean_root_unless_forced(monkeypatch):
    seen = _restart_seen(monkeypatch)
    p = Profile.default()
    inv = {H: 20}
    Planner(p, inv, DEFAULT_SLOS).plan_pool("ML", {"MM": 6.78, "ML": 5.09}, {H: 1})
    assert seen and not any(seen)
    seen.clear()
    Planner(p, inv, DEFAULT_SLOS, solve_options=SolveOptions(highs_lean_root=False)).plan_pool(
        "ML", {"MM": 6.78, "ML": 5.09}, {H: 1})
    assert seen and all(seen)
    seen.clear()  # a pool beyond 64 GPUs (9 servers) keeps HiGHS's defaults
    Planner(p, inv, DEFAULT_SLOS).plan_pool("ML", {"MM": 6.78, "ML": 40.0}, {H: 9})
    assert seen and all(seen)
    assert _option(highspy.Highs(), "mip_allow_restart")  # HiGHS's own default


def _milp_objectives(monkeypatch) -> list[float]:
    """The objective of every MILP solve of the pool models (the model's, not the plan's power)."""
    out: list[float] = []
    orig = highs_backend.HighsSession.update_bounds_and_resolve

    def spy(self, arrays, opts, hint=None):
        sol = orig(self, arrays, opts, hint)
        out.append(sol.report.objective)
        return sol
    monkeypatch.setattr(highs_backend.HighsSession, "update_bounds_and_resolve", spy)
    return out


@pytest.mark.parametrize("pool, loads, servers", POOLS)
def test_pool_plans_match_a_solve_with_highs_defaults(pool, loads, servers, monkeypatch):
    """The model's optimum is the same to the pool gap; so is the plan, except where the model
    has tied optima: a mixed pool's tie may differ in true power (the surcharge pricing, "Mixed
    pools: what the report claims"), within the model's pricing error, never in served load."""
    objs = _milp_objectives(monkeypatch)
    p = Profile.default()
    inv = {H: 20}
    fast = Planner(p, inv, DEFAULT_SLOS, options=PlannerOptions(pool_dp=False)).plan_pool(pool, loads, {H: servers})
    ref = Planner(p, inv, DEFAULT_SLOS, options=PlannerOptions(pool_dp=False),
                  solve_options=SolveOptions(highs_lean_root=False)).plan_pool(pool, loads, {H: servers})
    assert len(objs) == 2
    assert objs[0] == pytest.approx(objs[1], rel=1e-7)
    mixed = len(loads) > 1
    assert fast.power_w == pytest.approx(ref.power_w, rel=1e-4 if mixed else 1e-9)
    assert fast.served_rps == pytest.approx(ref.served_rps, rel=1e-9)
