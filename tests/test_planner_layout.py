"""The planner orchestrates: a forecast is checked once per call, models come from a typed
registry, and diagnosis lives in its own module."""

from __future__ import annotations

import pytest

from dynaplan.errors import InfeasibleError
from dynaplan.planning import Planner, demand, diagnosis
from dynaplan.planning.registry import FORMULATIONS, ModelKind
from dynaplan.profiles import Profile


@pytest.fixture(scope="module")
def planner():
    return Planner(Profile.default(), {"h100-80gb": 4})


@pytest.mark.parametrize("call", ["plan", "allot", "plan_monolithic"])
def test_a_forecast_is_checked_once_per_call(planner, monkeypatch, call):
    calls = []
    real = demand.check_forecast

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(demand, "check_forecast", counting)
    getattr(planner, call)({"SS": 12.0, "MS": 4.0, "LL": 0.5})
    assert len(calls) == 1


def test_every_model_kind_has_a_formulation(planner):
    assert set(FORMULATIONS) == set(ModelKind)
    for kind in ModelKind:
        pool = "SS" if FORMULATIONS[kind].per_pool else None
        cm = planner._model(kind, pool)
        assert cm is planner._model(kind.value, pool)  # the string names the same cached model
        assert ("s" in cm.model.var_blocks) == FORMULATIONS[kind].recipe
        assert any(b in cm.model.var_blocks for b in ("added", "new_servers")) == FORMULATIONS[kind].transitions


def test_diagnosis_module_gives_the_planners_reasons(planner):
    f = {c: 0.0 for c in planner.classes} | {"LL": 1e6}
    reasons = planner.diagnose(f)
    assert reasons and reasons == planner._diagnosis.reasons(f)
    assert "needs at least" in reasons[0]
    with pytest.raises(InfeasibleError, match="needs at least"):
        planner.plan({"LL": 1e6})
    assert diagnosis.fewest_pools(["SS", "MS"], {"SS": ["SS"], "MS": ["MS"]}, limit=1) == 2


def test_every_formulation_reads_its_solution_back_into_typed_results(planner):
    """Each registry entry pairs ``build`` with ``read``: a solution of every kind comes back as
    that kind's typed result (pool plans, or servers and routed load per pool), serving the demand."""
    from dynaplan.planning.plan import PoolPlan

    demand = {"SS": 3.0}
    for kind in ModelKind:
        form = FORMULATIONS[kind]
        cm = planner._model(kind, "SS" if form.per_pool else None)
        x, report = planner._solve_cached(cm, demand, {"h100-80gb": 2} if form.per_pool else None)
        assert report.has_solution, (kind, report)
        out = cm.read(planner, x, 300.0, {})
        if form.recipe:
            servers, routed = out
            assert sum(sum(s.values()) for s in servers.values()) >= 1, kind
            assert sum(r.get("SS", 0.0) for r in routed.values()) == pytest.approx(3.0), kind
        else:
            assert out and all(isinstance(pp, PoolPlan) for pp in out), kind
            assert sum(pp.served_rps.get("SS", 0.0) for pp in out) == pytest.approx(3.0), kind
            assert all(pp.energy_j == pytest.approx(pp.power_w * 300.0) for pp in out), kind
