"""diff and apply on hand-made cases: make before break, forced dips, staggering, in-flight states."""

from __future__ import annotations

import pytest

from dynaplan.domain import DEFAULT_SLOS, H100_80GB
from dynaplan.errors import ValidationError
from dynaplan.reconfig import (Action, ClusterState, InFlight, Instance, Server, TransitionCosts, apply, begin,
                               diff, plan_of, state_at)
from dynaplan.domain.transitions import assign_cost
from dynaplan.testing import synthetic_profile

from test_reconfig_placement import make_plan

HW = H100_80GB.name
PROF = synthetic_profile(seed=5, tps=(2, 4, 8), n_loads=6, clocks=(1000, 1400, 1980))
_ML = PROF.max_load_under_slo(DEFAULT_SLOS)


def lmax(tp: int, f: int, c: str = "SS") -> float:
    row = _ML[(_ML["tp"] == tp) & (_ML["freq_mhz"] == f) & (_ML["request_class"] == c)]
    return float(row["max_load_rps"].iloc[0])


def cluster(n_servers: int, *insts, time_s: float = 0.0) -> ClusterState:
    """Servers s0..; instances (id, pool, tp, server, gpus, freq, load[, in_flight])."""
    out = []
    for i, p, t, s, g, f, load, *fl in insts:
        out.append(Instance(id=i, pool=p, tp=t, gpus={s: g}, freq_mhz=f, load_rps={p: load},
                            in_flight=fl[0] if fl else None))
    return ClusterState(time_s=time_s, servers=tuple(Server(id=f"s{k}", hardware=HW) for k in range(n_servers)),
                        instances=tuple(out))


def kinds(rp):
    return [(a.kind, a.instance) for a in rp.actions]


def test_scale_out_starts_at_once_and_reports_the_gap_until_the_new_instance_is_up():
    c = lmax(4, 1980)
    st = cluster(2, ("a", "SS", 4, "s0", (0, 1, 2, 3), 1980, 0.9 * c))
    rp = diff(PROF, st, DEFAULT_SLOS, make_plan({"SS": [(4, 1980, 2, 0.75 * c)]}), TransitionCosts())
    start = next(a for a in rp.actions if a.kind == "start")
    assert (start.start_s, start.end_s, start.server, start.gpus_to) == (0.0, 420.0, "s0", (4, 5, 6, 7))
    (dip,) = rp.dips
    assert (dip.pool, dip.start_s, dip.end_s) == ("SS", 0.0, 420.0)
    assert dip.capacity_rps == pytest.approx(c) and dip.shortfall_rps == pytest.approx(0.5 * c)
    assert "until new capacity is up" in dip.cause
    assert rp.summary.target_reached_s == 420.0
    assert rp.summary.transition_energy_j == pytest.approx(420.0 * 4 * 75.0)


def test_make_before_break_waits_for_the_new_instance_before_shrinking():
    c8 = lmax(8, 1980)
    load = 0.8 * c8
    assert lmax(2, 1980) * 2 < load < lmax(4, 1980) * 2  # two TP4 carry it, the re-shard alone cannot
    st = cluster(2, ("a", "SS", 8, "s0", tuple(range(8)), 1980, load))
    rp = diff(PROF, st, DEFAULT_SLOS, make_plan({"SS": [(4, 1980, 2, load / 2)]}), TransitionCosts())
    assert rp.dips == ()
    start = next(a for a in rp.actions if a.kind == "start")
    reshard = next(a for a in rp.actions if a.kind == "reshard")
    assert start.server == "s1" and start.start_s == 0.0  # free GPUs now, not a's
    assert reshard.start_s >= start.end_s  # break only once the new capacity is up
    assert reshard.serves_during and reshard.duration_s == pytest.approx(0.050, abs=0.002)
    assert rp.summary.weight_bytes_moved == pytest.approx(138e9 + 69e9)  # start loads W, re-shard moves W/2


def test_too_small_an_inventory_forces_a_dip_and_says_where_when_and_how_much():
    c4 = lmax(4, 1400)
    load = 1.5 * c4
    assert load <= lmax(8, 1980)
    st = cluster(1, ("a", "SS", 8, "s0", tuple(range(8)), 1980, load))
    rp = diff(PROF, st, DEFAULT_SLOS, make_plan({"SS": [(4, 1400, 2, load / 2)]}), TransitionCosts())
    reshard, start = (next(a for a in rp.actions if a.kind == k) for k in ("reshard", "start"))
    assert reshard.reason.startswith("FORCED")
    assert start.start_s == reshard.end_s  # the GPUs the re-shard frees
    (dip,) = rp.dips
    assert (dip.pool, dip.start_s, dip.end_s) == ("SS", reshard.end_s, start.end_s)
    assert dip.capacity_rps == pytest.approx(c4) and dip.shortfall_rps == pytest.approx(0.5 * c4)
    assert "inventory too small" in dip.cause
    assert rp.summary.shortfall_rps_s == pytest.approx(0.5 * c4 * 420.0)
    final = apply(st, rp.actions)
    assert final.config_counts() == {("SS", HW, 4, 1400): 2}


def test_reshards_are_staggered_largest_saving_first():
    c8 = lmax(8, 1980)
    st = cluster(2, ("a", "SS", 8, "s0", tuple(range(8)), 1980, 0.2 * c8),
                 ("b", "SS", 8, "s1", tuple(range(8)), 1980, 0.6 * c8))
    load = 0.8 * c8
    assert 2 * lmax(4, 1980) >= load
    rp = diff(PROF, st, DEFAULT_SLOS, make_plan({"SS": [(4, 1980, 2, load / 2)]}), TransitionCosts())
    rs = [a for a in rp.actions if a.kind == "reshard"]
    assert [a.instance for a in rs] == ["b", "a"]  # b draws more power now: the larger saving
    assert rs[1].start_s >= rs[0].end_s
    assert rp.dips == ()


def test_naive_reload_takes_the_instance_out_so_it_waits_for_spare_capacity():
    c4 = lmax(4, 1980)
    st = cluster(2, ("a", "SS", 4, "s0", (0, 1, 2, 3), 1400, 0.5 * c4),
                 ("b", "SS", 4, "s1", (0, 1, 2, 3), 1980, 0.5 * c4))
    plan = make_plan({"SS": [(8, 1980, 1, 0.5 * c4), (4, 1980, 1, 0.5 * c4)]})
    rp = diff(PROF, st, DEFAULT_SLOS, plan, TransitionCosts().with_reshard_mode("reload"))
    (rs,) = [a for a in rp.actions if a.kind == "reshard"]
    assert not rs.serves_during and rs.duration_s == pytest.approx(90.0 + 0.065)
    assert rs.cost.capacity_during_rps == 0.0
    assert rp.dips == ()  # the other instance carries the pool meanwhile
    assert apply(st, rp.actions).config_counts() == {("SS", HW, 8, 1980): 1, ("SS", HW, 4, 1980): 1}


def test_in_flight_operations_finish_before_anything_else_touches_the_instance():
    c4 = lmax(4, 1980)
    st = cluster(2, ("a", "SS", 4, "s0", (0, 1, 2, 3), 1980, 0.0, InFlight(kind="booting", until_s=300.0)),
                 ("b", "SS", 4, "s0", (4, 5, 6, 7), 1980, 0.5 * c4, InFlight(kind="draining", until_s=50.0)),
                 ("c", "SS", 4, "s1", (0, 1, 2, 3), 1980, 0.9 * c4), time_s=10.0)
    assert diff(PROF, st, DEFAULT_SLOS, plan_of(PROF, st), None).actions == ()
    assert lmax(4, 1400) >= 0.55 * c4
    rp = diff(PROF, st, DEFAULT_SLOS, make_plan({"SS": [(4, 1400, 2, 0.55 * c4)]}), None)
    assert rp.now_s == 10.0
    clk = {a.instance: a for a in rp.actions if a.kind == "set_clock"}
    assert clk["a"].start_s >= 300.0
    final = apply(st, rp.actions)
    assert final.config_counts() == {("SS", HW, 4, 1400): 2} and {i.id for i in final.instances} == {"a", "c"}
    # the booting instance brings capacity at 300 s, not before
    (dip,) = rp.dips
    assert dip.start_s == 10.0 and dip.end_s == pytest.approx(300.0)
    assert dip.capacity_rps == pytest.approx(c4) and dip.shortfall_rps == pytest.approx(0.1 * c4)
    assert clk["c"].start_s >= 300.0  # c lowers its clock only once a is up


def test_apply_rejects_actions_that_do_not_fit_the_state():
    st = cluster(1, ("a", "SS", 4, "s0", (0, 1, 2, 3), 1980, 1.0))
    rel = Action(seq=0, kind="release", instance="zz", server="s0", hardware=HW, start_s=0.0, end_s=1.0,
                 cost=assign_cost(0.0))
    with pytest.raises(ValidationError, match=r"action 0 \(release zz\): no such instance"):
        begin(st, rel)
    start = Action(seq=1, kind="start", instance="n", server="s0", hardware=HW, start_s=0.0, end_s=5.0,
                   pool_to="SS", tp_to=4, gpus_to=(2, 3, 4, 5), freq_to_mhz=1980, cost=assign_cost(0.0))
    with pytest.raises(ValidationError, match=r"action 1 \(start n\): .*GPU 2 of server s0 is held by both"):
        begin(st, start)
    ok = start.model_copy(update={"gpus_to": (4, 5, 6, 7)})
    mid = begin(st, ok)
    assert mid.instance("n").in_flight.kind == "booting"
    assert state_at(st, [ok], 5.0).instance("n").in_flight is None
    with pytest.raises(ValidationError, match="before the state's time"):
        begin(state_at(st, [ok], 5.0), ok)
