"""PlannerOptions.workers: worker threads change where solves run, never the plan.

With 2 workers the global bound runs alongside the cluster and pool levels and the pools of one
allotment are solved side by side (formulations/cluster.md, "Threads"). Checked against the same
planner run in the calling thread alone: equal plans (groups, loads, power, bound), the same
error for a forecast no plan meets, and plans that pass the independent ``check_plan``."""

from __future__ import annotations

import threading

import pytest

from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import DynaplanError
from dynaplan.planning import Planner, PlannerOptions, check_plan
from dynaplan.profiles import Profile

H100 = "h100-80gb"
FORECASTS = [
    {"SS": 12.24, "SM": 3.52, "SL": 61.3, "MS": 4.18, "MM": 1.32, "ML": 20.52, "LS": 5.69, "LM": 6.29, "LL": 0.34},
    {"SL": 2.1938, "MS": 26.1696},
    {"LL": 11.66, "LM": 9.09, "LS": 6.10, "ML": 1.69, "SM": 6.10, "SS": 1.49},
]


@pytest.fixture(scope="module")
def prof():
    return Profile.default()


def _shape(plan):
    return [(pp.pool, dict(pp.servers), dict(pp.served_rps),
             [(g.tp, g.freq_mhz, g.count, dict(g.load_rps_per_instance)) for g in pp.groups]) for pp in plan.pools]


@pytest.mark.parametrize("search", ["ladder", "single"])
def test_plans_are_the_same_with_worker_threads(prof, search):
    inv = {H100: 40}
    one = Planner(prof, inv, DEFAULT_SLOS, options=PlannerOptions(cluster_search=search))
    two = Planner(prof, inv, DEFAULT_SLOS, options=PlannerOptions(cluster_search=search, workers=2))
    used = set()
    real = threading.Thread.start

    def spy(self):  # worker threads really run (their names carry the planner's prefix)
        used.add(self.name.split("_")[0])
        return real(self)
    threading.Thread.start = spy
    try:
        for f in FORECASTS:
            a, b = one.plan(f), two.plan(f)
            assert _shape(a) == _shape(b)
            assert a.power_w == b.power_w
            assert a.report.bound == pytest.approx(b.report.bound, rel=1e-12)
            assert a.report.status == b.report.status
            chk = check_plan(prof, inv, DEFAULT_SLOS, b, forecast=f)
            assert chk.ok, chk.violations
    finally:
        threading.Thread.start = real
    assert "dynaplan" in used


def test_an_unmeetable_forecast_fails_alike_with_worker_threads(prof):
    inv = {H100: 1}
    f = {"LL": 500.0, "SS": 500.0}
    errors = []
    for workers in (1, 2):
        with pytest.raises(DynaplanError) as exc:
            Planner(prof, inv, DEFAULT_SLOS, options=PlannerOptions(workers=workers)).plan(f)
        errors.append((type(exc.value), str(exc.value)))
    assert errors[0] == errors[1]
