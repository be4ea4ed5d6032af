"""The sweep engine: a LocalCluster of 2 workers gives the serial results; failures are rows and
the sweep goes on; interrupted or killed sweeps resume with each scenario exactly once; shared
inputs are loaded and sent once; the capacity kind maps the agreed capacity API onto a row."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import sweep_kinds  # noqa: E402  (registers the 'probe' kind)

from dynaplan.errors import ValidationError  # noqa: E402
from dynaplan.sweep import ResultStore, SweepSpec, expand, run_sweep  # noqa: E402
from dynaplan.sweep.kinds import get_kind  # noqa: E402
from dynaplan.sweep.store import read_results  # noqa: E402

MEASURED = ["energy_kwh", "cost_usd", "carbon_kg", "slo_attainment", "ttft_p99_ms", "tbt_p99_ms", "avg_servers",
            "peak_servers", "requests"]


def _cluster(**config):
    import dask
    from distributed import Client

    from dynaplan.sweep.engine import local_cluster

    with dask.config.set(config):
        cluster = local_cluster(2)
        c = Client(cluster)
    return cluster, c


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes (the cluster run_sweep starts), shared by the tests."""
    cluster, c = _cluster()
    yield c
    c.close()
    cluster.close()


@pytest.fixture
def fragile_client(request):
    """A cluster of its own for scenarios that kill workers; ``allowed-failures`` from the test's param."""
    cluster, c = _cluster(**{"distributed.scheduler.allowed-failures": request.param})
    yield c
    c.close()
    cluster.close()


def _probe(tmp_path, name, **axes):
    return SweepSpec.model_validate({"kind": "probe", "name": name, "axes": axes})


def test_two_workers_give_the_serial_replay_results(tmp_path, client):
    spec = {"kind": "replay", "base": {"trace_duration_s": 1800, "servers": 12},
            "axes": {"policy": ["SinglePool", "ScaleFreq"], "load_scale": [1.0, 1.5]}}
    serial = run_sweep(spec, tmp_path / "serial", workers=0)
    dist = run_sweep(spec, tmp_path / "dist", client=client)
    assert len(serial) == 4 and (serial["status"] == "ok").all(), serial["error"].tolist()
    assert serial["scenario_id"].tolist() == dist["scenario_id"].tolist()
    pd.testing.assert_frame_equal(serial[MEASURED], dist[MEASURED])
    assert serial["worker"].nunique() == 1  # this process
    assert set(dist["worker"]) and not set(dist["worker"]) & set(serial["worker"])  # worker processes
    # the rows are a replay's own: more load costs SinglePool more energy
    sp = serial[serial["policy"] == "SinglePool"].set_index("load_scale")
    assert sp.loc[1.5, "energy_kwh"] > sp.loc[1.0, "energy_kwh"] and sp.loc[1.5, "requests"] > sp.loc[1.0, "requests"]
    # and pandas reads the folder whole, options as columns
    whole = pd.read_parquet(tmp_path / "dist")
    assert len(whole) == 4 and {"policy", "load_scale", "servers", "status", "error", "wall_time_s",
                                "dynaplan_version"} <= set(whole.columns)


def test_a_failing_scenario_is_recorded_and_the_rest_complete(tmp_path, client):
    spec = _probe(tmp_path, "fail", x=[1, 2, 3, 4], fail=[False, True])
    for out, kw in ((tmp_path / "serial", {"workers": 0}), (tmp_path / "dist", {"client": client})):
        df = run_sweep(spec, out, **kw)
        assert len(df) == 8
        bad = df[df["fail"]]
        assert (bad["status"] == "error").all() and bad["y"].isna().all()
        assert bad["error"].str.startswith("ValueError: probe x=").all()
        assert not bad["error"].str.contains("\n").any()  # one line
        good = df[~df["fail"]]
        assert (good["status"] == "ok").all() and good["y"].tolist() == [float(x * x) for x in good["x"]]
    # a failure is a finished scenario: resumed, nothing re-runs; --retry-failed re-runs only failures
    seen = []
    run_sweep(spec, tmp_path / "serial", workers=0, progress=lambda row, c: seen.append(c))
    assert seen[-1]["skipped"] == 8 and seen[-1]["remaining"] == 0
    seen.clear()
    again = run_sweep(spec, tmp_path / "serial", workers=0, retry_failed=True, progress=lambda row, c: seen.append(c))
    assert seen[-1]["skipped"] == 4 and seen[-1]["failed"] == 4 and len(again) == 8


def test_keyboard_interrupt_stops_cleanly_and_the_sweep_resumes_exactly_once(tmp_path):
    out = tmp_path / "out"
    spec = {"kind": "probe", "axes": {"x": list(range(6))}}
    interrupted = {"kind": "probe", "axes": {"x": list(range(6))}}
    ids = [s.scenario_id for s in expand(SweepSpec.model_validate(spec))]
    # the 4th scenario interrupts: the first three are written, whole
    store = ResultStore(out, get_kind("probe"), get_kind("probe").metrics)
    original = sweep_kinds.run_probe

    def interrupt_at_3(o, shared):
        if o["x"] == 3:
            raise KeyboardInterrupt
        return original(o, shared)

    kind = get_kind("probe")
    object.__setattr__(kind, "run", interrupt_at_3)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(interrupted, out, workers=0)
    finally:
        object.__setattr__(kind, "run", original)
    assert sorted(store.finished()) == sorted(ids[:3])
    assert not list(out.glob(".*.tmp"))
    df = run_sweep(spec, out, workers=0)
    assert df["scenario_id"].tolist() == ids and df["x"].tolist() == list(range(6))
    whole = read_results(out)
    assert len(whole) == 6 and whole["scenario_id"].is_unique


@pytest.mark.parametrize("fragile_client", [1], indirect=True)
def test_a_killed_worker_reruns_its_scenario(tmp_path, fragile_client):
    marker = tmp_path / "died-once"
    spec = {"kind": "probe", "mode": "zip", "axes": {"x": [1, 2, 3, 4],
                                                      "die": [None, f"once:{marker}", None, None]}}
    df = run_sweep(spec, tmp_path / "a", client=fragile_client)
    assert marker.exists()  # a worker did die
    assert (df["status"] == "ok").all() and df["y"].tolist() == [1.0, 4.0, 9.0, 16.0]
    assert len(read_results(tmp_path / "a")) == 4


@pytest.mark.parametrize("fragile_client", [0], indirect=True)
def test_a_scenario_that_kills_its_worker_is_recorded_and_the_rest_complete(tmp_path, fragile_client):
    # Dask gives up on a task whose worker died (allowed-failures 0 here): KilledWorker, recorded as
    # the scenario's error, and the sweep goes on. A task queued on the same worker fails with it
    # (Dask counts it as running there); --retry-failed re-runs exactly those.
    killer = {"kind": "probe", "mode": "zip", "axes": {"x": [5, 6, 7], "die": ["always", None, None]}}
    df = run_sweep(killer, tmp_path / "b", client=fragile_client)
    rows = df.set_index("x")
    assert len(df) == 3 and rows.loc[5, "status"] == "error"
    assert "KilledWorker" in rows.loc[5, "error"] or "workers running it died" in rows.loc[5, "error"]
    for x in (6, 7):
        assert rows.loc[x, "y"] == x * x or "KilledWorker" in rows.loc[x, "error"] or "died" in rows.loc[x, "error"]
    rest = {"kind": "probe", "axes": {"x": [6, 7]}}
    df = run_sweep(rest, tmp_path / "b", client=fragile_client, retry_failed=True)
    assert df["y"].tolist() == [36.0, 49.0] and (df["status"] == "ok").all()
    assert len(read_results(tmp_path / "b")) == 3


def test_shared_inputs_are_loaded_once_and_scattered_once(tmp_path, client):
    sweep_kinds.LOADS.clear()
    calls = []
    real = client.scatter

    def spy(data, **kw):
        calls.append((len(data), kw))
        return real(data, **kw)

    client.scatter = spy
    try:
        df = run_sweep({"kind": "probe", "axes": {"x": list(range(8)), "table_size": [1000, 2000]}}, tmp_path / "o",
                       client=client)
    finally:
        del client.scatter
    assert sorted(sweep_kinds.LOADS) == [("probe_table", 1000), ("probe_table", 2000)]  # 2 keys, 16 scenarios
    assert calls == [(2, {"broadcast": True, "hash": False})]
    assert (df["status"] == "ok").all() and len(df) == 16


def test_a_kind_whose_engine_is_not_installed_fails_before_running(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dynaplan.capacity", None)  # as if not installed
    with pytest.raises(ValidationError, match="scenario kind 'capacity' needs dynaplan.capacity, which is not installed"):
        run_sweep({"kind": "capacity"}, tmp_path / "o", workers=0)
    assert not (tmp_path / "o").exists()


def test_an_output_folder_of_another_sweep_is_refused(tmp_path):
    out = tmp_path / "o"
    run_sweep({"kind": "probe", "axes": {"x": [1]}}, out, workers=0)
    with pytest.raises(ValidationError, match="holds results of another sweep"):
        run_sweep({"kind": "probe", "metrics": ["y"], "axes": {"x": [2]}}, out, workers=0)
    (tmp_path / "f").write_text("")
    with pytest.raises(ValidationError, match="not a directory"):
        run_sweep({"kind": "probe"}, tmp_path / "f", workers=0)


# ------------------------------------------------------------------------- the capacity kind
def _report():
    from dynaplan.solvers.result import Backend, SolveReport, Status

    return SolveReport(status=Status.OPTIMAL, backend=Backend.HIGHS, objective=120.0, bound=119.9, gap=8.3e-4,
                       solve_time_s=0.01, build_time_s=0.002)


def test_capacity_kind_maps_the_capacity_api_onto_a_row(tmp_path, monkeypatch):
    """A TEST DOUBLE of dynaplan.capacity (the agreed API), not the capacity engine: checks that the
    kind passes every option through and reads the plan's fields into the row."""
    calls = []

    def capacity_problem(**kw):
        calls.append(kw)
        return kw

    def plan_capacity(problem, *, time_limit_s, mip_rel_gap, method):
        assert method == "monolithic"
        n = round(10 * problem["growth"])
        hw = (problem["hardware"] or ["h100-80gb"])[0]
        return types.SimpleNamespace(fleet={hw: n}, cost_usd=100.0 * n, cost_usd_per_h=100.0 * n / 24,
                                     energy_kwh=50.0 * n, carbon_kg=5.0 * n, peak_power_w=1e4 * n,
                                     report=_report())

    fake = types.ModuleType("dynaplan.capacity")
    fake.capacity_problem, fake.plan_capacity = capacity_problem, plan_capacity
    fake.default_catalogue = lambda: "catalogue"
    monkeypatch.setitem(sys.modules, "dynaplan.capacity", fake)
    import dynaplan

    monkeypatch.setattr(dynaplan, "capacity", fake, raising=False)
    spec = {"kind": "capacity", "base": {"periods": 6, "availability": {"h100-80gb": [0, 64]}, "method": "monolithic",
                                         "energy_cap_kwh": 900.0, "load_segments": 4},
            "axes": {"growth": [1.0, 2.0], "hardware": [["h100-80gb"], ["a100-80gb", "h100-80gb"]],
                     "slo_scale": [1.0, 1.5]}}
    df = run_sweep(spec, tmp_path / "o", workers=0)
    assert len(df) == 8 and (df["status"] == "ok").all(), df["error"].tolist()
    assert len(calls) == 8 and all(c["catalogue"] == "catalogue" and c["periods"] == 6 for c in calls)
    assert all(c["trace"].name == "azure-conv-2023" and hasattr(c["trace"], "arrival_s") for c in calls)  # shared
    assert calls[0]["trace"] is calls[1]["trace"]  # loaded once
    assert {c["slo_scale"] for c in calls} == {1.0, 1.5} and calls[0]["availability"] == {"h100-80gb": (0, 64)}
    assert "time_limit_s" not in calls[0] and "mip_rel_gap" not in calls[0] and "method" not in calls[0]
    assert calls[0]["energy_cap_kwh"] == 900.0 and calls[0]["load_segments"] == 4 and calls[0]["carbon_cap_kg"] is None
    row = df[(df["growth"] == 2.0)].iloc[0]
    assert row["servers"] == 20 and row["cost_usd"] == 2000.0 and json.loads(row["fleet"]) == {
        json.loads(row["hardware"])[0]: 20}
    assert row["solve_status"] == "optimal" and row["solve_bound"] == 119.9 and row["solve_backend"] == "highs"
    assert row["solve_wall_time_s"] == pytest.approx(0.012)
    assert json.loads(df["hardware"].iloc[1]) in (["h100-80gb"], ["a100-80gb", "h100-80gb"])  # lists as JSON


def test_a_scheduler_address_runs_the_same_sweep(tmp_path, client):
    spec = {"kind": "probe", "axes": {"x": [2, 3], "offset": [0.5]}}
    df = run_sweep(spec, tmp_path / "o", scheduler=client.scheduler.address)
    assert df["y"].tolist() == [4.5, 9.5] and (df["status"] == "ok").all()
    assert df["worker"].str.rsplit(":", n=1).str[1].astype(int).isin(
        list(client.run(__import__("os").getpid).values())).all()  # ran on that cluster's workers
    with pytest.raises(ValidationError, match="--scheduler tcp://127.0.0.1:1: cannot connect"):
        run_sweep(spec, tmp_path / "p", scheduler="tcp://127.0.0.1:1")


def test_replay_kind_passes_its_inventory_and_modelling_options_to_the_replay(tmp_path, monkeypatch):
    import dynaplan.replay.engine as engine

    seen = []
    real = engine.prepare

    def spy(trace, **kw):
        seen.append(kw)
        return real(trace, **kw)

    monkeypatch.setattr(engine, "prepare", spy)
    spec = {"kind": "replay", "base": {"trace_duration_s": 600.0, "policy": "SinglePool", "idle_power": "linear",
                                       "instance_headroom": 0.1, "predictor_accuracy": 0.9, "prehistory_s": 300.0},
            "axes": {"inventory": [{"h100-80gb": 6}, {"a100-80gb": 6, "h100-80gb": 6}]}}
    df = run_sweep(spec, tmp_path / "o", workers=0)
    assert (df["status"] == "ok").all(), df["error"].tolist()
    assert [k["inventory"] for k in seen] == [{"h100-80gb": 6}, {"a100-80gb": 6, "h100-80gb": 6}]
    o = seen[0]["options"]
    assert (o.idle_power, o.instance_headroom, o.predictor_accuracy, o.prehistory_s) == ("linear", 0.1, 0.9, 300.0)
    assert json.loads(df["inventory"].iloc[1]) == {"a100-80gb": 6, "h100-80gb": 6}


def test_chunk_size_targets_half_second_tasks_and_ends_with_single_scenarios():
    from dynaplan.sweep.engine import MAX_CHUNK, chunk_size

    assert chunk_size([], queued=100, slots=2) == 1  # nothing known yet
    assert chunk_size([0.1] * 5, queued=100, slots=2) == 5  # 0.5 s tasks
    assert chunk_size([0.001] * 5, queued=1000, slots=2) == MAX_CHUNK
    assert chunk_size([2.0] * 5, queued=100, slots=2) == 1  # long scenarios: one per task
    assert chunk_size([0.1] * 5, queued=12, slots=2) == 3  # guided: a quarter of what is left on 2 slots
    assert chunk_size([0.1] * 5, queued=3, slots=2) == 1


def test_short_scenarios_run_several_per_task_with_the_serial_results(tmp_path, client):
    spec = {"kind": "probe", "axes": {"x": list(range(60)), "offset": [0.0, 0.5]}}
    serial = run_sweep(spec, tmp_path / "serial", workers=0)
    dist = run_sweep(spec, tmp_path / "dist", client=client)
    assert dist.attrs["sweep_timing_s"]["tasks"] < len(dist) == 120
    assert serial["scenario_id"].tolist() == dist["scenario_id"].tolist()
    pd.testing.assert_series_equal(serial["y"], dist["y"])
    assert (dist["status"] == "ok").all() and read_results(tmp_path / "dist")["scenario_id"].is_unique


def test_the_local_cluster_workers_run_with_the_lean_dask_settings(client):
    from dynaplan.sweep.engine import LEAN_DASK

    def settings():
        import os

        import dask

        return {k: dask.config.get(k) for k in LEAN_DASK}, os.environ.get("MALLOC_TRIM_THRESHOLD_")

    for got, trim in client.run(settings).values():
        assert got == LEAN_DASK and trim is None
