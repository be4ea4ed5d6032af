"""Sizes that drive memory or time are refused up front against the limits of dynaplan/limits.py.

Each case would allocate without bound or run for minutes without the check; with it, the CLI
exits 2 with one line naming the flag (or file and field), the size and the limit by name and
value, and the library raises :class:`ValidationError`. Nothing here solves a large model.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from dynaplan import limits
from dynaplan.cli import main
from dynaplan.domain import DEFAULT_SLOS
from dynaplan.errors import ValidationError
from dynaplan.planning import Planner
from dynaplan.profiles import Profile
from dynaplan.reconfig import ClusterState
from dynaplan.replay.load import scale_trace
from dynaplan.workload import Trace
from dynaplan.workload.loading import load_trace

ROOT = Path(__file__).resolve().parents[1]
HW = "h100-80gb"


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run ``dynaplan ARGS``; return (exit code, stdout, the one stderr line or "")."""
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["dynaplan", *map(str, args)])
        with pytest.raises(SystemExit) as exc:
            main()
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) <= 1, err
        return exc.value.code, out, lines[0] if lines else ""

    return run


def refused(cli, *args, expect: tuple[str, ...]) -> str:
    code, _, err = cli(*args)
    assert code == 2, err
    assert err.startswith("dynaplan: error: "), err
    for part in expect:
        assert part in err, err
    return err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("limits")
    (d / "small.csv").write_text("request_class,load_rps\nSS,5\n")
    (d / "huge.csv").write_text("request_class,load_rps\nSS,1e12\n")
    servers = [{"id": f"s{i}", "hardware": HW} for i in range(limits.MAX_STATE_SERVERS + 1)]
    (d / "wide.json").write_text(json.dumps({"servers": servers, "instances": []}))
    (d / "three.json").write_text(json.dumps({"servers": servers[:3], "instances": []}))
    (d / "deep.json").write_text("[" * 100_000)
    return d


# ---------------------------------------------------------------- the limits themselves
def test_every_limit_is_named_in_its_error_and_stated_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for lim in limits.ALL:
        assert getattr(limits, lim.name) == lim.value
        assert re.search(rf"`{lim.name}` \| {lim.value:,} \|", readme), lim.name
        with pytest.raises(ValidationError, match=rf"--flag: .* \(at most {lim.value:,}, dynaplan.limits.{lim.name}\)"):
            lim.check(lim.value + 1, "--flag")
        assert lim.check(lim.value, "--flag") == lim.value
    with pytest.raises(ValidationError, match="about nan"):
        limits.TRACE_REQUESTS.check(math.nan, "x")


def test_workload_limits_are_the_shared_ones():
    from dynaplan.workload import MAX_SYNTHETIC_REQUESTS, MAX_WINDOWS

    assert MAX_WINDOWS == limits.MAX_WINDOWS and MAX_SYNTHETIC_REQUESTS == limits.MAX_TRACE_REQUESTS


def test_json_depth_counts_brackets_outside_strings_only():
    assert limits.json_depth("") == 0
    assert limits.json_depth('{"a": [1, [2, {"b": "[[[[[[\\"]]"}]]}') == 4
    assert limits.json_depth("[" * 100_000) == 100_000


# ---------------------------------------------------------------- trace scaling
def test_scale_trace_refuses_beyond_the_request_limit_before_allocating():
    tr = load_trace("azure-code-2023")
    with pytest.raises(ValidationError, match=r"--rate 1e7: scales the 8,819 requests of trace 'azure-code-2023' "
                                              r"to about 3\.\d+e\+10 requests \(at most 100,000,000, "
                                              r"dynaplan.limits.MAX_TRACE_REQUESTS\)"):
        scale_trace(tr, 1e7 / tr.mean_rate_rps, label="--rate 1e7")
    with pytest.raises(ValidationError, match="rate scale factor x1e\\+12"):
        scale_trace(tr, 1e12)


def test_scale_trace_copies_are_vectorised_with_the_same_draws_as_one_copy_at_a_time():
    tr = Trace(arrival_s=np.array([0.0, 10.0, 500.0]), input_tokens=np.array([5, 6, 7]),
               output_tokens=np.array([1, 2, 3]), name="t", duration_s=1000.0)
    factor, seed, jit = 4.5, 3, 120.0
    out = scale_trace(tr, factor, seed=seed, jitter_s=jit)
    # reference: copy k > 0 draws its n offsets in turn, then the fractional copy
    rng = np.random.default_rng(seed)
    t = [tr.arrival_s] + [tr.arrival_s + rng.uniform(-jit, jit, 3) for _ in range(3)]
    keep = rng.random(3) < 0.5
    t.append(tr.arrival_s[keep] + rng.uniform(-jit, jit, int(keep.sum())))
    t = np.concatenate(t)
    t = np.where(t < 0, -t, t)
    t = np.clip(np.where(t > 1000.0, 2000.0 - t, t), 0.0, 1000.0)
    assert np.array_equal(out.arrival_s, np.sort(t, kind="stable"))
    assert len(out) == 12 + int(keep.sum())


def test_replay_rate_and_servers_are_refused_by_the_trace_limit(cli):
    for rate in ("1e7", "1e12"):
        refused(cli, "replay", "-t", "azure-code-2023", "--policy", "SinglePool", "--rate", rate,
                expect=(f"--rate {float(rate):g}: scales the 8,819 requests", "MAX_TRACE_REQUESTS"))
    refused(cli, "replay", "-t", "azure-code-2023", "--policy", "SinglePool", "--servers", "1000000000",
            expect=("--servers 1000000000 (with --rate auto): scales the 8,819 requests", "MAX_TRACE_REQUESTS"))


# ---------------------------------------------------------------- inventories and states
def test_inventory_beyond_the_limit(cli, files):
    prof = Profile.default()
    with pytest.raises(ValidationError, match=r"inventory: h100-80gb: has 100,000,000,000 servers \(at most "
                                              r"1,000,000,000, dynaplan.limits.MAX_INVENTORY_SERVERS\)"):
        Planner(prof, {HW: 10**11}, DEFAULT_SLOS)
    refused(cli, "plan", "--servers", "100000000000", "--forecast", files / "huge.csv",
            expect=("--servers 100000000000: an inventory of 100,000,000,000 servers", "MAX_INVENTORY_SERVERS"))
    refused(cli, "replay", "--servers", "100000000000", expect=("--servers 100000000000", "MAX_INVENTORY_SERVERS"))


def test_plan_reconfig_servers_refused_before_building_them(cli, files):
    refused(cli, "plan-reconfig", "--state", files / "three.json", "--forecast", files / "small.csv",
            "--servers", "1000000000",
            expect=("--servers 1000000000: a cluster state of 1,000,000,000 servers", "MAX_STATE_SERVERS"))


def test_state_file_with_too_many_servers(cli, files):
    n = limits.MAX_STATE_SERVERS + 1
    refused(cli, "plan-reconfig", "--state", files / "wide.json", "--forecast", files / "small.csv",
            expect=(f"wide.json: servers: {n:,} servers (at most {limits.MAX_STATE_SERVERS:,}", "MAX_STATE_SERVERS"))
    with pytest.raises(ValidationError, match="MAX_STATE_SERVERS"):
        ClusterState.read(files / "wide.json")


def test_state_too_large_from_the_library():
    with pytest.raises(ValidationError, match="instances: .*MAX_STATE_INSTANCES"):
        ClusterState(servers=(), instances=[{}] * (limits.MAX_STATE_INSTANCES + 1))
    plan = Planner(Profile.default(), {HW: 10**9}, DEFAULT_SLOS).plan({"SS": 1e9})
    with pytest.raises(ValidationError, match="ClusterState.from_plan: the plan and servers= ask for .*MAX_STATE_SERVERS"):
        ClusterState.from_plan(plan, Profile.default().hardware, servers={HW: 10**9})


def test_deeply_nested_state_file(cli, files):
    refused(cli, "plan-reconfig", "--state", files / "deep.json", "--forecast", files / "small.csv",
            expect=("deep.json: 100,000 levels of nesting (at most 64, dynaplan.limits.MAX_JSON_DEPTH)",))
    with pytest.raises(ValidationError, match="MAX_JSON_DEPTH"):
        ClusterState.from_json('{"servers": ' + "[" * 5000 + "]" * 5000 + "}")


def test_deeply_nested_trace_metadata(tmp_path):
    from dynaplan.workload.trace import CSV_METADATA_PREFIX

    p = tmp_path / "t.csv"
    p.write_text(CSV_METADATA_PREFIX.strip() + "[" * 100_000 + "\narrival_s,input_tokens,output_tokens\n0,1,1\n")
    with pytest.raises(ValidationError, match="line 1: dynaplan metadata: .*MAX_JSON_DEPTH"):
        load_trace(str(p))


def test_plan_of_twenty_million_instances_passes_the_cli_check(cli, files, tmp_path):
    """`plan --servers 1e9` with 1e9 req/s of SS: about 2e7 instances, checked without a loop over them."""
    (tmp_path / "big.csv").write_text("request_class,load_rps\nSS,1e9\n")
    code, out, err = cli("plan", "--servers", "1000000000", "--forecast", tmp_path / "big.csv",
                         "--json", tmp_path / "p.json")
    assert code == 0 and "independent check: passed" in out, (err, out[-500:])
    from dynaplan.planning import Plan

    plan = Plan.from_json((tmp_path / "p.json").read_text())
    assert sum(g.count for pp in plan.pools for g in pp.groups) > 10**7


# ---------------------------------------------------------------- per-instance frames
def _instances_loop(plan):
    """Reference: the per-instance frame built one instance at a time."""
    import pandas as pd

    rows, i = [], 0
    for pp in plan.pools:
        for g in pp.groups:
            for _ in range(g.count):
                for c, v in (g.load_rps_per_instance or {pp.pool: 0.0}).items():
                    rows.append((i, pp.pool, g.hardware, g.tp, c, v))
                i += 1
    return pd.DataFrame(rows, columns=["instance", "pool", "hardware", "tp", "request_class", "load_rps"])


def test_instances_of_is_built_per_group_and_equals_the_per_instance_loop():
    prof = Profile.default()
    plan = Planner(prof, {HW: 40}, DEFAULT_SLOS).plan({"SS": 60.0, "SM": 20.0, "MM": 9.0, "LL": 3.0, "ML": 1.0})
    assert any(len(g.load_rps_per_instance) > 1 for pp in plan.pools for g in pp.groups)
    got = Planner.instances_of(plan)
    want = _instances_loop(plan)
    assert len(got) == len(want) > len(plan.pools)
    assert (got.to_numpy() == want.to_numpy()).all()


def test_instances_of_refuses_a_frame_beyond_the_row_limit():
    plan = Planner(Profile.default(), {HW: 4}, DEFAULT_SLOS).plan({"SS": 5.0})
    g = plan.pools[0].groups[0].model_copy(update={"count": limits.MAX_FRAME_ROWS + 1})
    big = plan.model_copy(update={"pools": (plan.pools[0].model_copy(update={"groups": (g,)}),)})
    with pytest.raises(ValidationError, match=r"Planner.instances_of: the plan's instances make .* rows "
                                              r"\(at most 50,000,000, dynaplan.limits.MAX_FRAME_ROWS\)"):
        Planner.instances_of(big)


# ---------------------------------------------------------------- replay epochs
def test_replay_epochs_beyond_the_limit(cli):
    from dynaplan.replay import prepare
    from dynaplan.replay.engine import ReplayOptions

    tr = load_trace("azure-code-2023")
    with pytest.raises(ValidationError, match=r"options.pool_epoch_s=0.1 s: cuts the .* s of trace 'azure-code-2023' "
                                              r"into about .* pool epochs \(at most 20,000, dynaplan.limits.MAX_REPLAY_EPOCHS\)"):
        prepare(tr, options=ReplayOptions(window_s=0.1, pool_epoch_s=0.1, cluster_epoch_s=0.1, rate_window_s=0.1))
    refused(cli, "replay", "-t", "azure-code-2023", "--policy", "SinglePool", "--rate", "none", "--window", "100ms",
            "--pool-epoch", "100ms", "--cluster-epoch", "100ms", "--rate-window", "100ms",
            expect=("--pool-epoch 100ms: cuts the", "MAX_REPLAY_EPOCHS"))
