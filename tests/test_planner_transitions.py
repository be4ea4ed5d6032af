"""Transition-aware planning: a change pays off only when its saving beats its amortised cost."""

from __future__ import annotations

import pytest

from dynaplan.planning import Planner, check_plan
from dynaplan.reconfig import ClusterState, Instance, Server, TransitionCosts, TransitionParams
from toy_models import SLOS, TOY, linear_profile

# (tp, clock): static W, W per req/s, max load under SLO (req/s). The 2000 MHz points are dominated.
CURVES = {(8, 1000): (1000.0, 50.0, 10), (4, 1000): (700.0, 40.0, 6), (8, 2000): (1400.0, 60.0, 10),
          (4, 2000): (900.0, 50.0, 6)}
# Naive re-shard (stop and reload for 90 s) with GPUs drawing 100 W meanwhile, amortised over the
# 300-s pool epoch: TP8 -> TP4 in place re-shards 4 GPUs' worth at 90 x 100 / 300 = 30 W each: 120 W.
COSTS = TransitionCosts(default=TransitionParams(reshard_mode="reload", reshard_reload_s=90.0,
                                                 transition_gpu_power_w=100.0))


def profile():
    return linear_profile(CURVES, (0.5, 1, 2, 3, 4, 5, 6, 7), model="llama2-70b")


def state_with_one_tp8() -> ClusterState:
    return ClusterState(servers=(Server(id="s0", hardware="toy"),),
                        instances=(Instance(id="i0", pool="AA", tp=8, gpus={"s0": tuple(range(8))}, freq_mhz=1000),),
                        hardware={"toy": TOY})


def configs(plan):
    return sorted((g.tp, g.freq_mhz, g.count) for p in plan.pools for g in p.groups)


@pytest.fixture(scope="module")
def planner():
    return Planner(profile(), {"toy": 1}, SLOS, transition_costs=COSTS)


def test_prices_are_the_documented_amortised_costs(planner):
    assert 4 * planner.transition_prices.reshard_w_per_gpu["toy"] == pytest.approx(120.0)


@pytest.mark.parametrize("load", [1.0, 5.0])
def test_from_scratch_tp4_is_cheapest(planner, load):
    # TP4: 700 + 40 L + 4 idle GPUs x 50 W = 900 + 40 L; TP8: 1000 + 50 L
    plan = planner.plan({"AA": load})
    assert configs(plan) == [(4, 1000, 1)]
    assert plan.power_w == pytest.approx(900 + 40 * load)


def test_saving_below_transition_cost_changes_nothing(planner):
    # at 1 req/s re-sharding saves 100 + 10 x 1 = 110 W < 120 W: keep the TP8 instance
    plan = planner.plan({"AA": 1.0}, state=state_with_one_tp8())
    assert configs(plan) == [(8, 1000, 1)]
    assert check_plan(planner.profile, {"toy": 1}, SLOS, plan).ok


def test_saving_above_transition_cost_changes_the_configuration(planner):
    # at 5 req/s it saves 150 W > 120 W: re-shard to TP4
    plan = planner.plan({"AA": 5.0}, state=state_with_one_tp8())
    assert configs(plan) == [(4, 1000, 1)]


def test_cheap_transfer_reshard_always_takes_the_saving():
    pl = Planner(profile(), {"toy": 1}, SLOS)  # default: weights moved over NVLink, ~free
    assert configs(pl.plan({"AA": 1.0}, state=state_with_one_tp8())) == [(4, 1000, 1)]
