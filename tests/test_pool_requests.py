"""One solve per pool request within a planning call (formulations/cluster.md, routed.reuse).

The pool level of one ``Planner.plan`` call remembers its solves; a request whose loads differ
from a remembered one's by at most ``LOAD_EPS_RPS`` per class gets that plan. Checked here: the
number of pool solves actually run (counted at the solver entry point), that a reused plan still
serves every requested load to within ``LOAD_EPS_RPS`` (read from the plan's own instances), and
that whole plans made this way pass the independent ``check_plan`` for their forecast.
"""

from __future__ import annotations

import pytest

from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import DynaplanError
from dynaplan.planning import Planner, check_plan
from dynaplan.planning.demand import LOAD_EPS_RPS
from dynaplan.profiles import Profile

H100 = "h100-80gb"
SRV = {H100: 1}


@pytest.fixture(scope="module")
def prof():
    return Profile.default()


@pytest.fixture()
def counted(prof):
    """A planner whose pool solves are counted (each call of ``_plan_pool`` is one solve)."""
    pl = Planner(prof, {H100: 4}, DEFAULT_SLOS)
    calls = []
    inner = pl._plan_pool

    def plan_pool(pool, loads, servers, *args, **kwargs):
        calls.append((pool, dict(loads), dict(servers)))
        return inner(pool, loads, servers, *args, **kwargs)

    pl._plan_pool = plan_pool
    return pl, calls


def _served_by_instances(pp) -> dict[str, float]:
    """Load per class summed over the plan's instance groups (count x load per instance)."""
    out: dict[str, float] = {}
    for g in pp.groups:
        for c, v in (g.load_rps_per_instance or {}).items():
            out[c] = out.get(c, 0.0) + g.count * v
    return out


def test_loads_within_eps_are_one_solve(counted):
    pl, calls = counted
    requests = pl._cached_pool_planner()
    first = requests("SM", {"SM": 6.3738, "SS": 1.763}, SRV)
    again = requests("SM", {"SM": 6.3738 + 3e-12, "SS": 1.763 - 4e-13}, SRV)
    assert len(calls) == 1
    assert again is first
    # the reused plan serves each requested load to within LOAD_EPS_RPS
    served = _served_by_instances(again)
    for c, v in {"SM": 6.3738 + 3e-12, "SS": 1.763 - 4e-13}.items():
        assert served.get(c, 0.0) >= v - LOAD_EPS_RPS


def test_loads_beyond_eps_are_solved_again(counted):
    pl, calls = counted
    requests = pl._cached_pool_planner()
    requests("SM", {"SM": 6.3738, "SS": 1.763}, SRV)
    requests("SM", {"SM": 6.3738 + 10 * LOAD_EPS_RPS, "SS": 1.763}, SRV)
    requests("SM", {"SM": 6.3738}, SRV)  # another set of loaded classes
    requests("SM", {"SM": 6.3738, "SS": 1.763}, {H100: 2})  # other servers
    assert len(calls) == 4


def test_each_planning_call_starts_afresh(counted):
    pl, calls = counted
    pl._cached_pool_planner()("SL", {"SL": 0.2712}, SRV)
    pl._cached_pool_planner()("SL", {"SL": 0.2712}, SRV)
    assert len(calls) == 2


def test_errors_are_remembered(counted):
    pl, calls = counted
    requests = pl._cached_pool_planner()
    with pytest.raises(DynaplanError) as first:
        requests("SS", {"SS": 1e4}, SRV)  # far beyond one server's capacity
    with pytest.raises(type(first.value)):
        requests("SS", {"SS": 1e4 + 1e-12}, SRV)
    assert len(calls) == 1


def test_lower_bounds_are_remembered(counted):
    pl, _ = counted
    seen = []
    inner = pl._pool_lower_bound
    pl._pool_lower_bound = lambda *a: seen.append(a) or inner(*a)
    requests = pl._cached_pool_planner()
    b1 = requests.lower_bound("SM", {"SM": 6.3738, "SS": 1.763}, SRV)
    b2 = requests.lower_bound("SM", {"SM": 6.3738, "SS": 1.763}, SRV)
    assert b1 == b2 and len(seen) == 1
    # a bound, when claimed, is no more than the plan's true power
    plan = requests("SM", {"SM": 6.3738, "SS": 1.763}, SRV)
    assert b1 <= plan.power_w * (1 + 1e-9)


@pytest.mark.parametrize("servers, forecast", [
    (40, {"SS": 8.0012, "SM": 13.0189, "SL": 0.2712, "MS": 12.3408, "MM": 11.5271, "ML": 4.6109,
          "LS": 6.2382, "LM": 6.2382, "LL": 12.7477}),
    (10, {"SM": 4.4752, "SS": 0.8137, "MS": 8.6793, "LL": 16.2736, "LM": 2.3835}),
])
def test_plans_with_reuse_pass_check_plan(prof, servers, forecast):
    pl = Planner(prof, {H100: servers}, DEFAULT_SLOS)
    plan = pl.plan(forecast)
    chk = check_plan(prof, {H100: servers}, DEFAULT_SLOS, plan, forecast=forecast)
    assert chk.ok, chk.violations
