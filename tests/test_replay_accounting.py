"""Replay accounting on hand-made traces with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from dynaplan.domain import DEFAULT_SLOS
from dynaplan.profiles import Profile
from dynaplan.domain.transitions import TransitionCosts, TransitionParams
from dynaplan.replay import Deployment, GroupSpec, Policy, ReplayOptions, prepare, replay
from dynaplan.workload.trace import Trace

HW = "h100-80gb"
OPTS = ReplayOptions(predictor_accuracy=1.0, instance_headroom=0.0)


@pytest.fixture(scope="module")
def profile():
    return Profile.default()


def lmax(profile, tp, freq, cls):
    ml = profile.max_load_under_slo(DEFAULT_SLOS)
    row = ml[(ml.hardware == HW) & (ml.tp == tp) & (ml.freq_mhz == freq) & (ml.request_class == cls)]
    return float(row["max_load_rps"].iloc[0])


def mm_trace(rate_rps: float, duration_s: float) -> Trace:
    """Evenly spaced MM requests (512 input, 200 output tokens): exactly rate x 5 per 5-s window."""
    n = int(round(rate_rps * duration_s))
    t = (np.arange(n) + 0.5) / rate_rps
    return Trace(arrival_s=t, input_tokens=np.full(n, 512), output_tokens=np.full(n, 200), name="mm",
                 duration_s=duration_s, synthetic=True)


class Schedule(Policy):
    """Deployments by time: [(from_s, Deployment), ...]."""

    name = "schedule"

    def __init__(self, plan):
        self.plan = plan

    def decide(self, obs):
        current = [d for t, d in self.plan if t <= obs.now_s][-1]
        return current


def mm_pool(count: int, freq: int | None = 1980) -> Deployment:
    return Deployment(groups=(GroupSpec("MM", HW, 8, count, freq),), routing={"MM": {"MM": 1.0}})


def test_constant_plan_energy_is_power_times_time(profile):
    rate, duration = 10.0, 600.0
    inp = prepare(mm_trace(rate, duration), profile=profile, inventory={HW: 4}, options=OPTS)
    res = replay(inp, Schedule([(0.0, mm_pool(1))]))
    expected_j = float(profile.power_w(HW, 8, 1980, "MM", rate)[0]) * duration
    assert res.summary.energy_kwh * 3.6e6 == pytest.approx(expected_j, rel=1e-4)
    assert res.summary.idle_kwh == 0.0 and res.summary.transition_kwh == 0.0
    assert res.summary.slo_attainment == 1.0
    assert res.summary.requests == int(rate * duration)
    assert res.summary.avg_servers == 1.0
    # two instances share the load: each at rate / 2, one more server, no idle GPUs
    res2 = replay(inp, Schedule([(0.0, mm_pool(2))]))
    expected2 = 2 * float(profile.power_w(HW, 8, 1980, "MM", rate / 2)[0]) * duration
    assert res2.summary.energy_kwh * 3.6e6 == pytest.approx(expected2, rel=1e-4)


def test_idle_gpus_on_allotted_servers_draw_idle_power(profile):
    rate, duration = 5.0, 300.0
    inp = prepare(mm_trace(rate, duration), profile=profile, inventory={HW: 4}, options=OPTS)
    dep = Deployment(groups=(GroupSpec("MM", HW, 4, 1, 1980),), routing={"MM": {"MM": 1.0}}, servers={"MM": {HW: 2}})
    res = replay(inp, Schedule([(0.0, dep)]))
    idle_gpus = 2 * 8 - 4
    assert res.summary.idle_kwh * 3.6e6 == pytest.approx(idle_gpus * 75.0 * duration, rel=1e-9)
    expected = float(profile.power_w(HW, 4, 1980, "MM", rate)[0]) * duration + idle_gpus * 75.0 * duration
    assert res.summary.energy_kwh * 3.6e6 == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("overload", [1.5, 2.0])
def test_load_beyond_capacity_counts_as_misses(profile, overload):
    cap = lmax(profile, 8, 1980, "MM")
    inp = prepare(mm_trace(overload * cap, 300.0), profile=profile, inventory={HW: 4}, options=OPTS)
    res = replay(inp, Schedule([(0.0, mm_pool(1))]))
    assert res.summary.slo_attainment == pytest.approx(1.0 / overload, rel=1e-3)
    assert res.summary.slo_attainment_by_class["MM"] == pytest.approx(1.0 / overload, rel=1e-3)
    # just below the capacity, everything meets the SLO
    inp2 = prepare(mm_trace(0.99 * cap, 300.0), profile=profile, inventory={HW: 4}, options=OPTS)
    assert replay(inp2, Schedule([(0.0, mm_pool(1))])).summary.slo_attainment == 1.0


def test_new_capacity_serves_only_after_its_boot(profile):
    cap = lmax(profile, 8, 1980, "MM")
    boot_s = 100.0
    costs = TransitionCosts(default=TransitionParams(start_s=boot_s))
    inp = prepare(mm_trace(1.5 * cap, 900.0), profile=profile, inventory={HW: 4}, options=OPTS,
                  transition_costs=costs)
    res = replay(inp, Schedule([(0.0, mm_pool(1)), (300.0, mm_pool(2))]))
    w = res.windows
    t = w.index.to_numpy()
    share_met = (w["met"] / w["requests"]).to_numpy()
    before, booting, after = t < 300, (t >= 300) & (t < 300 + boot_s), t >= 300 + boot_s
    np.testing.assert_allclose(share_met[before | booting], 1 / 1.5, rtol=1e-3)
    np.testing.assert_allclose(share_met[after], 1.0)
    # the booting server counts as active and its 8 GPUs draw idle power while they boot
    assert (w["servers"].to_numpy()[booting] == 2).all() and (w["servers"].to_numpy()[before] == 1).all()
    np.testing.assert_allclose(w["transition_j"].to_numpy()[booting], 8 * 75.0 * 5.0)
    assert (w["transition_j"].to_numpy()[after] == 0).all()
    assert res.summary.transitions["servers_started"] == 1


def test_free_transitions_serve_at_once(profile):
    cap = lmax(profile, 8, 1980, "MM")

    class FreeSchedule(Schedule):
        free_transitions = True

    inp = prepare(mm_trace(1.5 * cap, 600.0), profile=profile, inventory={HW: 4}, options=OPTS)
    res = replay(inp, FreeSchedule([(0.0, mm_pool(1)), (300.0, mm_pool(2))]))
    t = res.windows.index.to_numpy()
    share = (res.windows["met"] / res.windows["requests"]).to_numpy()
    np.testing.assert_allclose(share[t >= 300], 1.0)
    assert res.summary.transition_kwh == 0.0


def test_requests_of_a_pool_with_nothing_up_are_unserved(profile):
    """At 300 s MM moves to a new pool X on a new server that boots for 600 s: nothing serves MM."""
    costs = TransitionCosts(default=TransitionParams(start_s=600.0))
    inp = prepare(mm_trace(2.0, 600.0), profile=profile, inventory={HW: 4}, options=OPTS, transition_costs=costs)
    dep_x = Deployment(groups=(GroupSpec("X", HW, 8, 1, 1980),), routing={"MM": {"X": 1.0}},
                       servers={"X": {HW: 1}, "MM": {HW: 1}})
    res = replay(inp, Schedule([(0.0, mm_pool(1)), (300.0, dep_x)]))
    w = res.windows
    late = w.index.to_numpy() >= 300
    assert w["unserved"].to_numpy()[late].sum() == pytest.approx(w["requests"].to_numpy()[late].sum())
    assert w["unserved"].to_numpy()[~late].sum() == 0
    assert res.summary.unserved_requests == pytest.approx(2.0 * 300.0)
    assert res.summary.slo_attainment == pytest.approx(0.5)


def test_requests_are_routed_by_predicted_class(profile):
    """MM requests; 19% are predicted ML (over_fraction 1). ML's own pool boots from 300 s: exactly the
    requests predicted ML after 300 s are unserved, the rest are served by the MM pool."""
    from dynaplan.workload import classify_trace

    opts = ReplayOptions(predictor_accuracy=0.81, predictor_over_fraction=1.0, predictor_seed=7)
    costs = TransitionCosts(default=TransitionParams(start_s=900.0))
    tr = mm_trace(4.0, 600.0)
    inp = prepare(tr, profile=profile, inventory={HW: 4}, options=opts, transition_costs=costs)
    both = Deployment(groups=(GroupSpec("MM", HW, 8, 1, 1980), GroupSpec("ML", HW, 8, 1, 1980)),
                      routing={"MM": {"MM": 1.0}, "ML": {"ML": 1.0}})
    res = replay(inp, Schedule([(0.0, mm_pool(1)), (300.0, both)]))
    pred = classify_trace(tr, accuracy=0.81, over_fraction=1.0, seed=7).predicted_class
    ml = profile.classes.names.index("ML")
    late_ml = int(((tr.arrival_s >= 300) & (pred == ml)).sum())
    assert 0.1 * 1200 < late_ml < 0.3 * 1200
    assert res.summary.unserved_requests == pytest.approx(late_ml)
    assert res.windows["unserved"].to_numpy()[res.windows.index.to_numpy() < 300].sum() == 0


def test_mixed_classes_share_an_instance_by_utilisation(profile):
    """SS and MM on one TP8 instance: utilisation adds, power mixes by utilisation share."""
    cap_ss, cap_mm = lmax(profile, 8, 1980, "SS"), lmax(profile, 8, 1980, "MM")
    rate_ss, rate_mm = 0.3 * cap_ss, 0.3 * cap_mm          # U = 0.6
    n_ss, n_mm = int(rate_ss * 300), int(rate_mm * 300)
    t = np.r_[(np.arange(n_ss) + 0.5) / rate_ss, (np.arange(n_mm) + 0.25) / rate_mm]
    inp_tok = np.r_[np.full(n_ss, 100), np.full(n_mm, 512)]
    out_tok = np.r_[np.full(n_ss, 50), np.full(n_mm, 200)]
    order = np.argsort(t, kind="stable")
    tr = Trace(arrival_s=t[order], input_tokens=inp_tok[order], output_tokens=out_tok[order], name="mix",
               duration_s=300.0)
    inp = prepare(tr, profile=profile, inventory={HW: 4}, options=OPTS)
    dep = Deployment(groups=(GroupSpec("all", HW, 8, 1, 1980),), routing={"SS": {"all": 1.0}, "MM": {"all": 1.0}})
    res = replay(inp, Schedule([(0.0, dep)]))
    u = 0.6
    p = 0.5 * float(profile.power_w(HW, 8, 1980, "SS", u * cap_ss)[0]) + 0.5 * float(
        profile.power_w(HW, 8, 1980, "MM", u * cap_mm)[0])
    w = res.windows.iloc[12:]  # after the first 30-s rate window fills
    np.testing.assert_allclose(w["power_w"].to_numpy(), p, rtol=0.02)
    np.testing.assert_allclose(w["max_utilisation"].to_numpy(), u, rtol=0.02)
    assert res.summary.slo_attainment == 1.0
