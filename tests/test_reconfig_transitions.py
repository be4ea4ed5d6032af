"""Transition costs: DynamoLLM's published numbers (arXiv 2408.00741), weight-transfer bytes and times, amortised MILP terms."""

from __future__ import annotations

import pytest

from dynaplan.domain import A100_80GB, DEFAULT_SLOS, H100_80GB, LLAMA2_70B
from dynaplan.errors import ValidationError
from dynaplan.domain.transitions import (TransitionCosts, TransitionParams, amortised_cost, amortised_cost_table,
                                           clock_cost, move_cost, release_cost, reshard_cost, start_cost,
                                           transfer_bytes)
from dynaplan.testing import synthetic_profile

P = TransitionParams()
W = LLAMA2_70B.weight_bytes  # 138 GB


def test_transfer_bytes_keep_nested_shards_in_place():
    # TP4 -> TP8 in place: the 4 old GPUs keep half their shard, 4 new GPUs receive W/8 each
    moved, peak = transfer_bytes(W, range(4), range(8))
    assert moved == pytest.approx(W / 2) and peak == pytest.approx(W / 8)
    # TP8 -> TP2 in place: the 2 kept GPUs each receive W/2 - W/8
    moved, peak = transfer_bytes(W, range(8), range(2))
    assert moved == pytest.approx(W * 3 / 4) and peak == pytest.approx(W / 2 - W / 8)
    # TP2 -> TP8: each old GPU sends 3 of its 4 new shards
    assert transfer_bytes(W, range(2), range(8))[1] == pytest.approx(3 * W / 8)
    # a move to disjoint GPUs moves everything
    assert transfer_bytes(W, range(4), range(4, 8))[0] == pytest.approx(W)
    assert transfer_bytes(W, range(4), range(4)) == (0.0, 0.0)


def test_reshard_tp4_to_tp8_on_dgx_h100_takes_about_50_ms_and_keeps_serving():
    c = reshard_cost(P, H100_80GB, LLAMA2_70B, range(4), range(8), 3.0, 5.0)
    assert c.duration_s == pytest.approx(0.050, abs=0.002)  # DynamoLLM: about 50 ms
    assert c.gpus_unavailable == (4, 5, 6, 7)
    assert c.capacity_during_rps == 3.0 and c.capacity_after_rps == 5.0 and c.lost_capacity_rps_s == 0.0
    assert c.bytes_moved == pytest.approx(69e9)
    assert c.energy_j == pytest.approx(c.duration_s * 4 * H100_80GB.idle_power_w)
    assert c.capacity_added_rps == 2.0 and c.capacity_removed_rps == 0.0
    # slower interconnect, slower transfer
    assert reshard_cost(P, A100_80GB, LLAMA2_70B, range(4), range(8), 3, 5).duration_s > c.duration_s


def test_naive_reload_stops_the_instance_for_one_to_two_minutes():
    p = P.model_copy(update={"reshard_mode": "reload"})
    c = reshard_cost(p, H100_80GB, LLAMA2_70B, range(8), range(4), 5.0, 3.0)
    assert 60 <= c.duration_s <= 120
    assert c.gpus_unavailable == tuple(range(8)) and c.capacity_during_rps == 0.0
    assert c.lost_capacity_rps_s == pytest.approx(5.0 * c.duration_s)
    assert c.capacity_removed_rps == 2.0


def test_start_release_clock_and_move():
    s = start_cost(P, H100_80GB, LLAMA2_70B, (0, 1, 2, 3), 4.0)
    assert 360 <= s.duration_s <= 480  # DynamoLLM: 6-8 min for Llama2-70B
    assert s.energy_j == pytest.approx(s.duration_s * 4 * 75.0)  # idle power meanwhile
    assert (s.capacity_before_rps, s.capacity_during_rps, s.capacity_after_rps) == (0.0, 0.0, 4.0)
    hot = P.model_copy(update={"start_gpu_power_w": 150.0})
    assert start_cost(hot, H100_80GB, LLAMA2_70B, (0, 1, 2, 3), 4.0).energy_j == pytest.approx(2 * s.energy_j)
    r = release_cost(P, H100_80GB, (0, 1), 2.0)
    assert r.capacity_during_rps == 0.0 and r.capacity_after_rps == 0.0 and r.gpus_unavailable == (0, 1)
    k = clock_cost(P, H100_80GB, (0, 1), 2.0, 1.5)
    assert 0.05 <= k.duration_s <= 0.08  # DynamoLLM: 50-80 ms
    assert k.capacity_during_rps == 1.5 and k.lost_capacity_rps_s == pytest.approx(2.0 * k.duration_s)
    m = move_cost(P, H100_80GB, (0, 1), 2.0, 3.0)
    assert m.duration_s == 0.0 and m.energy_j == 0.0 and m.gpus_unavailable == ()


def test_parameters_per_model_and_hardware():
    slow = TransitionParams(start_s=600.0)
    costs = TransitionCosts(overrides={"llama2-70b/a100-80gb": slow, "h100-80gb": TransitionParams(start_s=300.0)})
    assert costs.params("llama2-70b", "a100-80gb").start_s == 600.0
    assert costs.params("llama2-70b", "h100-80gb").start_s == 300.0
    assert costs.params("other-model", "a100-80gb").start_s == 420.0
    reload = costs.with_reshard_mode("reload")
    assert {reload.params("llama2-70b", h).reshard_mode for h in ("a100-80gb", "h100-80gb")} == {"reload"}
    assert TransitionCosts.model_validate_json(costs.model_dump_json()) == costs
    with pytest.raises(ValidationError, match="unknown model 'gpt'"):
        costs.model_spec("gpt")


def test_amortised_cost_of_adding_an_instance_per_epoch():
    a = amortised_cost(TransitionCosts(), "add", "llama2-70b", H100_80GB, 4, epoch_s=300.0, capacity_rps=2.0)
    # 420 s x 4 GPUs x 75 W = 126 kJ, spread over a 300 s epoch: 420 W; no capacity all epoch
    assert a.energy_j == pytest.approx(126_000.0)
    assert a.power_w == pytest.approx(420.0)
    assert a.lost_capacity_rps_s == pytest.approx(2.0 * 300.0) and a.lost_load_rps == pytest.approx(2.0)
    longer = amortised_cost(TransitionCosts(), "add", "llama2-70b", H100_80GB, 4, epoch_s=1800.0, capacity_rps=2.0)
    assert longer.power_w == pytest.approx(70.0) and longer.lost_capacity_rps_s == pytest.approx(2.0 * 420.0)


def test_hysteresis_a_change_worth_less_than_its_cost_does_not_pay_off():
    """The term the transition-aware MILP adds: a saving below it leaves the cluster as it is."""
    add = amortised_cost(TransitionCosts(), "add", "llama2-70b", H100_80GB, 4, epoch_s=300.0, capacity_rps=2.0)
    assert not add.pays_off(400.0)  # saves 400 W over the epoch, costs 420 W
    assert add.pays_off(450.0)
    # pricing the capacity withheld makes it dearer still
    assert add.objective_w(lost_load_penalty_w_per_rps=100.0) == pytest.approx(420.0 + 200.0)
    assert not add.pays_off(450.0, lost_load_penalty_w_per_rps=100.0)
    # a transfer re-shard costs next to nothing, a reload re-shard a lot more, a clock change a stall
    rs = amortised_cost(TransitionCosts(), "reshard", "llama2-70b", H100_80GB, 8, 300.0, 5.0, to_tp=4,
                        to_capacity_rps=3.0)
    rl = amortised_cost(TransitionCosts().with_reshard_mode("reload"), "reshard", "llama2-70b", H100_80GB, 8,
                        300.0, 5.0, to_tp=4, to_capacity_rps=3.0)
    ck = amortised_cost(TransitionCosts(), "reclock", "llama2-70b", H100_80GB, 8, 300.0, 5.0, to_capacity_rps=4.0)
    assert rs.power_w < 1.0 and rs.lost_capacity_rps_s == 0.0
    assert rl.power_w == pytest.approx(90.0 * 8 * 75.0 / 300.0) and rl.lost_capacity_rps_s == pytest.approx(450.0)
    assert ck.lost_capacity_rps_s == pytest.approx(5.0 * 0.065)
    rm = amortised_cost(TransitionCosts(), "remove", "llama2-70b", H100_80GB, 2, 300.0, 1.0)
    assert rm.lost_capacity_rps_s == 0.0 and rm.power_w == pytest.approx(60.0 * 2 * 75.0 / 300.0)
    with pytest.raises(ValidationError):
        amortised_cost(TransitionCosts(), "add", "llama2-70b", H100_80GB, 2, epoch_s=0.0)


def test_amortised_cost_table_covers_every_configuration():
    prof = synthetic_profile(seed=1, tps=(2, 4, 8), n_loads=4, clocks=(1000, 1980))
    ml = prof.max_load_under_slo(DEFAULT_SLOS)
    t = amortised_cost_table(TransitionCosts(), ml, prof.hardware, epoch_s=300.0)
    n_cfg = len(ml)
    assert (t["change"] == "add").sum() == n_cfg and (t["change"] == "remove").sum() == n_cfg
    # every other configuration of the same class is reachable: 6 configurations -> 5 targets each
    assert ((t["change"] == "reshard") | (t["change"] == "reclock")).sum() == n_cfg * 5
    row = t[(t["change"] == "add") & (t["tp"] == 8)].iloc[0]
    assert row["power_w"] == pytest.approx(420.0 * 8 * 75.0 / 300.0)
    assert (t["lost_load_rps"] >= 0).all() and (t["duration_s"] >= 0).all()
