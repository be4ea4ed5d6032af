"""Replays of a trace shorter than the cluster epoch (30 min): the policies planning at the
cluster level forecast from a history shorter than one epoch."""

from __future__ import annotations

import numpy as np
import pytest

from dynaplan.profiles import Profile
from dynaplan.replay import ReplayOptions, prepare, replay
from dynaplan.replay.policies import DynamoLLM, ScaleInst
from dynaplan.replay.policies.common import default_cluster_forecaster, forecast_peak
from dynaplan.replay.policy import Observation
from dynaplan.sweep.kinds import load_shared
from dynaplan.workload import Trace
from dynaplan.workload.forecast import LastPeakForecaster

HW = "h100-80gb"


@pytest.fixture(scope="module")
def ten_minutes():
    tr = load_shared(("trace", "azure-conv-2023", 600.0))
    assert tr.duration_s == 600.0
    return len(tr), prepare(tr, profile=Profile.default(), inventory={HW: 16}, options=ReplayOptions())


def test_a_history_shorter_than_one_epoch_forecasts_its_peak_not_zero():
    rng = np.random.default_rng(3)
    hist = rng.uniform(0.0, 4.0, size=(120, 3))  # 600 s of 5-s windows; the epoch is 1800 s
    obs = Observation(now_s=0.0, window=0, level="cluster", history_rps=hist, history_raw_rps=hist, current=None,
                      window_s=5.0)
    assert len(obs.peaks(1800.0)) == 0  # no complete epoch
    fc = forecast_peak(obs, LastPeakForecaster(headroom=0.0), 1800.0, ("a", "b", "c"))
    assert list(fc.values()) == pytest.approx(hist.max(axis=0).tolist())
    # the default cluster forecaster (last peak and the same epoch a day before, +10%)
    ctx_like = type("Ctx", (), {"cluster_epoch_s": 1800.0})()
    fc = forecast_peak(obs, default_cluster_forecaster(ctx_like), 1800.0, ("a", "b", "c"))
    assert list(fc.values()) == pytest.approx((1.1 * hist.max(axis=0)).tolist())
    empty = Observation(now_s=0.0, window=0, level="cluster", history_rps=np.zeros((0, 3)),
                        history_raw_rps=np.zeros((0, 3)), current=None, window_s=5.0)
    assert forecast_peak(empty, LastPeakForecaster(headroom=0.0), 1800.0, ("a", "b", "c")) == \
        {"a": 0.0, "b": 0.0, "c": 0.0}


def test_dynamollm_replays_a_ten_minute_trace(ten_minutes):
    # the cluster level used to forecast zero from the 10-minute history (no complete 30-min
    # epoch), allot no pool and fail with "deployment has no pool"
    n, inp = ten_minutes
    s = replay(inp, DynamoLLM()).summary
    assert s.requests == n
    assert s.avg_servers > 0
    assert s.unserved_requests == 0
    assert s.slo_attainment >= 0.99


def test_scale_inst_gives_every_class_seen_in_a_ten_minute_history_its_pool(ten_minutes):
    # with the zero forecast it ran one pool (of the last class) for every request
    n, inp = ten_minutes
    r = replay(inp, ScaleInst())
    assert r.summary.requests == n
    seen = [c for c, k in zip(inp.load.class_names, inp.load.counts.sum(axis=(0, 2))) if k > 0]
    assert len(seen) > 1
    assert set(seen) <= set(r.pool_servers.columns)


def test_dynamollm_after_an_hour_of_no_traffic_plans_when_requests_come():
    """Nothing arrives for 40 min, then 30 min of conversation traffic. The cluster level first
    forecasts nothing and allots no pool (a deployment with no pool serves nothing: those requests
    are unserved, not an error); the first pool epoch that sees traffic re-plans the cluster level
    at once instead of waiting for the next cluster epoch, and once the instances are up every
    request is served."""
    tr = load_shared(("trace", "azure-conv-2023", 1800.0))
    late = Trace(arrival_s=tr.arrival_s + 2400.0, input_tokens=tr.input_tokens, output_tokens=tr.output_tokens,
                 name="late")
    inp = prepare(late, profile=Profile.default(), inventory={HW: 16}, options=ReplayOptions())
    r = replay(inp, DynamoLLM())
    w = r.windows
    assert r.summary.requests == len(late)
    assert w.loc[:2400.0, "servers"].sum() == 0
    # re-planned at the pool epoch after the first requests (2,700 s), not at the cluster epoch of 3,600 s
    assert w.loc[2700.0:3000.0, "servers"].min() > 0
    after = w.loc[3300.0:]
    assert after["requests"].sum() > 5000 and after["unserved"].sum() == 0
    assert after["met"].sum() >= 0.99 * after["requests"].sum()
