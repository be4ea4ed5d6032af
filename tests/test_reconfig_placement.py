"""Placement: tiny hand-solvable cases with exact expected decisions."""

from __future__ import annotations

from collections import Counter

import pytest

from dynaplan.domain import H100_80GB
from dynaplan.errors import InfeasibleError, ValidationError
from dynaplan.planning import InstanceGroup, Plan, PoolPlan
from dynaplan.reconfig import ClusterState, Instance, PlacementOptions, Server, TransitionCosts, place
from dynaplan.solvers import Backend, SolveReport, Status

HW = H100_80GB.name


def make_plan(pools: dict[str, list[tuple[int, int, int, float]]], hardware: str = HW) -> Plan:
    """A plan from {pool: [(tp, freq_mhz, count, load per instance)]}; power figures are dummies."""
    pps = []
    for pool, groups in pools.items():
        gs = tuple(InstanceGroup(hardware=hardware, tp=tp, freq_mhz=f, count=n, load_rps_per_instance={pool: load},
                                 load_share=0.0, utilisation=0.0, power_w_per_instance=0.0, power_w=0.0,
                                 energy_j=0.0, slo_margin=0.0) for tp, f, n, load in groups)
        pps.append(PoolPlan(pool=pool, servers={}, groups=gs, served_rps={pool: sum(n * x for _, _, n, x in groups)},
                            idle_gpus={}, idle_power_w=0.0, power_w=0.0, energy_j=0.0))
    rep = SolveReport(status=Status.OPTIMAL, backend=Backend.HIGHS, objective=0.0, bound=0.0, gap=0.0,
                      solve_time_s=0.0)
    return Plan(mode="pool", epoch_s=300.0, forecast_rps={p: pp.served_rps[p] for p, pp in zip(pools, pps)},
                pools=tuple(pps), power_w=0.0, energy_j=0.0, servers={}, gpus={}, approx_error_bound_w=0.0,
                report=rep, wall_time_s=0.0)


def state(n_servers: int, *insts: tuple[str, str, int, str, tuple[int, ...], int]) -> ClusterState:
    """Servers s0..; instances (id, pool, tp, server, gpus, freq)."""
    return ClusterState(servers=tuple(Server(id=f"s{k}", hardware=HW) for k in range(n_servers)),
                        instances=tuple(Instance(id=i, pool=p, tp=t, gpus={s: g}, freq_mhz=f)
                                        for i, p, t, s, g, f in insts))


def by_source(pl):
    return {p.source: p for p in pl.placed}


def test_a_state_already_at_the_plan_is_kept_as_it_is():
    st = state(2, ("a", "SS", 4, "s0", (0, 1, 2, 3), 1980), ("b", "SS", 4, "s0", (4, 5, 6, 7), 1980),
               ("c", "LL", 8, "s1", tuple(range(8)), 1600))
    pl = place(st, make_plan({"SS": [(4, 1980, 2, 1.0)], "LL": [(8, 1600, 1, 0.5)]}))
    assert pl.released == () and pl.method == "cpsat-optimal"
    assert {p.source: (p.server, p.gpus) for p in pl.placed} == {
        "a": ("s0", (0, 1, 2, 3)), "b": ("s0", (4, 5, 6, 7)), "c": ("s1", tuple(range(8)))}


def test_reshard_in_place_beats_a_new_instance_on_an_empty_server():
    st = state(2, ("a", "SS", 4, "s0", (0, 1, 2, 3), 1980))
    for mode in ("transfer", "reload"):
        pl = place(st, make_plan({"SS": [(8, 1980, 1, 1.0)]}), TransitionCosts().with_reshard_mode(mode))
        (p,) = pl.placed
        assert (p.source, p.server, p.gpus) == ("a", "s0", tuple(range(8)))


def test_shrinking_keeps_the_old_gpus_and_pool_moves_need_no_new_instance():
    st = state(1, ("a", "SS", 8, "s0", tuple(range(8)), 1980))
    pl = place(st, make_plan({"SM": [(4, 1400, 1, 1.0)]}))
    (p,) = pl.placed
    assert p.source == "a" and set(p.gpus) <= set(range(8)) and p.pool == "SM" and p.freq_mhz == 1400


def test_new_instances_go_to_free_gpus_on_servers_in_use():
    # s0 half used by a (kept), s1 held by b (re-used: moved to SS and re-sharded), s2 and s3 empty
    st = state(4, ("a", "SS", 4, "s0", (0, 1, 2, 3), 1980), ("b", "LL", 8, "s1", tuple(range(8)), 1980))
    pl = place(st, make_plan({"SS": [(4, 1980, 3, 1.0)]}))
    assert pl.released == ()
    assert by_source(pl)["b"].server == "s1" and set(by_source(pl)["b"].gpus) < set(range(8))
    assert (by_source(pl)[None].server, by_source(pl)[None].gpus) == ("s0", (4, 5, 6, 7))
    # a TP8 cannot share s0: it goes to an empty server rather than wait for GPUs held now
    pl = place(st, make_plan({"SS": [(4, 1980, 1, 1.0), (8, 1980, 2, 1.0)]}))
    assert by_source(pl)["b"].gpus == tuple(range(8))
    assert by_source(pl)[None].server == "s2"
    # with nothing to reuse, the LL instance is released
    pl = place(st, make_plan({"SS": [(4, 1980, 1, 1.0)]}))
    assert pl.released == ("b",) and [p.source for p in pl.placed] == ["a"]


def test_unaligned_instances_may_stay_where_they_are():
    st = state(1, ("a", "SS", 2, "s0", (1, 2), 1400))
    (p,) = place(st, make_plan({"SS": [(2, 1400, 1, 1.0)]})).placed
    assert (p.source, p.gpus) == ("a", (1, 2))


def test_greedy_placement_is_valid():
    st = state(3, ("a", "SS", 4, "s0", (0, 1, 2, 3), 1980), ("b", "SS", 2, "s1", (2, 3), 1980))
    plan = make_plan({"SS": [(4, 1980, 1, 1.0), (2, 1000, 3, 0.5)], "ML": [(8, 1400, 1, 1.0)]})
    for opts in (PlacementOptions(use_solver=False), PlacementOptions()):
        pl = place(st, plan, options=opts)
        used = Counter((p.server, g) for p in pl.placed for g in p.gpus)
        assert max(used.values()) == 1
        got = Counter((p.pool, p.tp, p.freq_mhz) for p in pl.placed)
        assert got == {("SS", 4, 1980): 1, ("SS", 2, 1000): 3, ("ML", 8, 1400): 1}
        assert all(p.gpus[0] % p.tp == 0 for p in pl.placed if p.source is None)
    assert place(st, plan, options=PlacementOptions(use_solver=False)).method == "greedy"


def test_too_few_gpus_and_unknown_hardware_are_errors():
    st = state(2)
    with pytest.raises(InfeasibleError, match="the plan needs 24 GPUs, the state has 16"):
        place(st, make_plan({"SS": [(8, 1980, 3, 1.0)]}))
    with pytest.raises(ValidationError, match="hardware 'a100-80gb' is not in the state|a100-80gb: the plan needs"):
        place(state(1).model_copy(update={"hardware": {HW: H100_80GB}}),
              make_plan({"SS": [(8, 1410, 1, 1.0)]}, hardware="a100-80gb"))
