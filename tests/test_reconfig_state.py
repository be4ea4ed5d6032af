"""ClusterState: validation with one-line errors naming the culprit, JSON round trips, from_plan."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from dynaplan.domain import DEFAULT_SLOS, H100_80GB
from dynaplan.errors import ValidationError
from dynaplan.planning import Planner
from dynaplan.reconfig import ClusterState, InFlight, Instance, Server, advance, settle
from dynaplan.testing import synthetic_profile

HW = H100_80GB.name


def good_state() -> dict:
    return {
        "model": "llama2-70b",
        "time_s": 10.0,
        "servers": [{"id": "s0", "hardware": HW}, {"id": "s1", "hardware": HW}],
        "instances": [
            {"id": "a", "pool": "SS", "tp": 2, "gpus": {"s0": [0, 1]}, "freq_mhz": 1400, "load_rps": {"SS": 1.5}},
            {"id": "b", "pool": "LL", "tp": 4, "gpus": {"s0": [4, 5, 6, 7]}, "freq_mhz": 1980,
             "in_flight": {"kind": "resharding", "until_s": 10.05, "target_tp": 8,
                           "target_gpus": [0, 1, 2, 3, 4, 5, 6, 7]}},
            {"id": "c", "pool": "SS", "tp": 8, "gpus": {"s1": [0, 1, 2, 3, 4, 5, 6, 7]}, "freq_mhz": 1200,
             "in_flight": {"kind": "booting", "until_s": 400.0}},
        ],
    }


def fixed(state: dict) -> dict:
    """The good state without the re-shard that overlaps instance a."""
    state["instances"][1].pop("in_flight")
    return state


def parse(d: dict) -> ClusterState:
    return ClusterState.from_json(json.dumps(d), source="state.json")


def test_valid_state_round_trips_through_json():
    st = parse(fixed(good_state()))
    assert ClusterState.from_json(st.to_json()) == st
    assert st.instance("a").server == "s0" and st.instance("a").gpu_indices == (0, 1)
    assert st.config_counts() == {("SS", HW, 2, 1400): 1, ("LL", HW, 4, 1980): 1, ("SS", HW, 8, 1200): 1}
    assert st.config_counts(serving_only=True) == {("SS", HW, 2, 1400): 1, ("LL", HW, 4, 1980): 1}
    assert settle(st).time_s == 400.0 and all(i.in_flight is None for i in settle(st).instances)


def test_resharding_instance_holds_the_union_of_its_gpus():
    # b re-shards onto GPUs 0..7 of s0 while a holds 0 and 1
    with pytest.raises(ValidationError, match=r"GPU 0 of server s0 is held by both instance a and instance b"):
        parse(good_state())


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["instances"][0].update(gpus={"s0": [0, 1], "s1": [0]}),
     r"instance a spans servers \['s0', 's1'\]"),
    (lambda d: d["instances"][0].update(tp=4), r"instance a: TP4 but holds 2 GPU\(s\) \[0, 1\] on server s0"),
    (lambda d: d["instances"][0].update(gpus={"s0": [7, 8]}), r"instance a: GPU index 8 out of range on server s0"),
    (lambda d: d["instances"][0].update(gpus={"s0": [4, 5]}),
     r"GPU 4 of server s0 is held by both instance b and instance a|held by both instance a and instance b"),
    (lambda d: d["servers"][1].update(hardware="tpu-v9"), r"server s1: unknown hardware 'tpu-v9'"),
    (lambda d: d["instances"][0].update(gpus={"s9": [0, 1]}), r"instance a: unknown server 's9'"),
    (lambda d: d["instances"][0].update(freq_mhz=1234), r"instance a: clock 1234 MHz is not a level of h100-80gb"),
    (lambda d: d["instances"][2]["in_flight"].update(until_s=1.0),
     r"instance c: booting finishes at 1 s, before the state's time 10 s"),
    (lambda d: d["instances"].append(dict(d["instances"][0])), r"instance a appears twice"),
    (lambda d: d["servers"].append({"id": "s0", "hardware": HW}), r"server s0 appears twice"),
    (lambda d: d["instances"][0].update(load_rps={"SS": -1.0}), r"instance a: load of class SS is -1.0"),
    (lambda d: d["instances"][0].update(tp="two"), r"state.json: instance a \(instances.0\): tp: .*integer"),
])
def test_impossible_states_are_rejected_with_one_line_naming_the_problem(edit, message):
    d = fixed(good_state())
    edit(d)
    with pytest.raises(ValidationError, match=message) as info:
        parse(d)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("state.json")


def test_direct_construction_raises_the_library_error():
    with pytest.raises(ValidationError, match="instance x: TP2 but holds 1 GPU"):
        ClusterState(servers=(Server(id="s", hardware=HW),),
                     instances=(Instance(id="x", pool="SS", tp=2, gpus={"s": (0,)}, freq_mhz=1400),))
    with pytest.raises(ValidationError, match="resharding to TP4 holds 2 target GPUs"):
        InFlight(kind="resharding", until_s=1.0, target_tp=4, target_gpus=(0, 1))


def test_read_names_the_file(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ValidationError, match="nope.json: state file not found"):
        ClusterState.read(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValidationError, match=r"bad.json: .*(JSON|json)") as info:
        ClusterState.read(bad)
    assert "\n" not in str(info.value)


def test_advance_completes_operations_in_time_order():
    st = parse(fixed(good_state()))
    assert advance(st, 100.0).instance("c").in_flight is not None
    up = advance(st, 400.0)
    assert up.instance("c").in_flight is None and up.time_s == 400.0
    with pytest.raises(ValidationError, match="before the state's time"):
        advance(up, 5.0)


def test_from_plan_places_every_pool_on_aligned_blocks():
    prof = synthetic_profile(seed=2, tps=(2, 4, 8), n_loads=5, clocks=(1000, 1980))
    pl = Planner(prof, {HW: 8}, DEFAULT_SLOS)
    cap = pl.ops.groupby("request_class")["max_load_rps"].max()
    plan = pl.plan({c: 0.7 * float(cap[c]) for c in cap.index})
    st = ClusterState.from_plan(plan, prof.hardware, servers={HW: 8})
    assert len(st.servers) == 8
    want = Counter()
    for pp in plan.pools:
        for g in pp.groups:
            want[(pp.pool, g.hardware, g.tp, g.freq_mhz)] += g.count
    assert Counter(st.config_counts()) == want
    for inst in st.instances:
        g = inst.gpu_indices
        assert g[0] % inst.tp == 0 and g == tuple(range(g[0], g[0] + inst.tp))
    # each pool has servers of its own, as many as the plan says
    for pp in plan.pools:
        used = {i.server for i in st.instances if i.pool == pp.pool}
        assert len(used) == sum(pp.servers.values())
