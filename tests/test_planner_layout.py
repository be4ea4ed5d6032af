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
