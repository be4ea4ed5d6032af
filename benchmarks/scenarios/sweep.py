"""The sweep engine (:mod:`dynaplan.sweep`): speed-up with 2 workers and the engine's overhead.

One sweep of N scenarios (64; ``--quick``: 4), each of its own time run four ways in the same run:

* **plain** — a loop calling the kind's ``run(options, shared)`` directly in this process, its
  shared inputs loaded once inside the timed run: the scenarios' own time, no engine (the
  baseline);
* **engine, this process** — ``run_sweep(..., workers=0)``: expansion, ids, one parquet file per
  row, no Dask;
* **engine, 1 worker** — ``run_sweep`` on a ``LocalCluster`` of one worker process: adds scatter,
  submission, transfer of the rows;
* **engine, 2 workers** — the same on two worker processes.

Reported: ``speedup_2_workers = plain / engine-2-workers``, whole sweeps (target >= 1.7 on 2
cores), and ``overhead_1_worker = engine-1-worker run phase / plain - 1``, the per-scenario
overhead (target < 5%; the run phase is the engine's own timing, ``df.attrs["sweep_timing_s"]``,
without the sweep's one-off load of the shared inputs and scatter, which
``overhead_1_worker_total`` includes), medians over the repeats
(plain and engine runs interleaved, their order rotated per repeat, the 1-minute load average
recorded before each: on a shared machine the ratios are only as good as that load), cluster start-up timed apart and excluded (a sweep starts
its cluster once). Every run starts with a fresh output folder; one untimed warm-up scenario runs
first in this process and on every worker. Kind: ``capacity`` when :mod:`dynaplan.capacity` is
installed (growth x hardware set x SLO scale of a one-period per-class load), else ``replay``
(policies x load scales on 30 minutes of the conversation trace) — the CSV names the kind.
Each run also records the CPU seconds of this process and of its worker processes
(``cpu_driver_s``, ``cpu_workers_s``); ``cpu_overhead_2_workers`` = CPU of the 2-worker sweep /
CPU of the plain loop - 1 is what the engine adds, and bounds the speed-up on 2 free cores by
2 / (1 + it) whatever else runs on the machine (a busy machine inflates both a little).
Writes ``sweep_engine.csv`` (one row per run) and ``sweep_engine_summary.csv`` (the ratios).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.machine import calibrate, machine_info
from benchmarks.registry import register_study

SPEEDUP_TARGET = 1.7
OVERHEAD_TARGET = 0.05


def _spec(quick: bool) -> dict:
    if importlib.util.find_spec("dynaplan.capacity") is not None:  # one-period plans: seconds each
        growth = [1.0, 2.0] if quick else [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0]
        hardware = [["h100-80gb"], ["a100-80gb", "h100-80gb"]] if quick else [
            ["h100-80gb"], ["a100-80gb"], ["a100-80gb", "h100-80gb"], ["a100-80gb", "h100-80gb", "h200-141gb"]]
        slo = [1.0] if quick else [1.0, 1.5]
        return {"name": "bench-capacity", "kind": "capacity",
                "base": {"trace": None, "rates": {"SS": 6.0, "MM": 3.0, "LS": 1.0}, "periods": 1,
                         "time_limit_s": 60.0},
                "axes": {"growth": growth, "hardware": hardware, "slo_scale": slo}}
    loads = [1.0, 1.5] if quick else [1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0]
    pols = ["SinglePool", "ScaleFreq"] if quick else ["SinglePool", "MultiPool", "ScaleShard", "ScaleFreq"]
    seeds = [0] if quick else [0, 1]
    return {"name": "bench-replay", "kind": "replay",
            "base": {"trace_duration_s": 600.0 if quick else 1800.0, "servers": 16},
            "axes": {"policy": pols, "load_scale": loads, "seed": seeds}}


def _plain(kind, scenarios, loaded=None) -> float:
    """The scenarios in a loop in this process. Without ``loaded``, the shared inputs are loaded
    inside the timed run, once for the sweep, as one process running the sweep does (and as the
    engine does): every run then starts from the same cold state, whatever a shared input
    remembers between scenarios (e.g. the capacity recipes of a profile)."""
    from dynaplan.sweep.kinds import load_shared

    t0 = time.perf_counter()
    if loaded is None:
        loaded = {k: load_shared(k) for k in dict.fromkeys(k for sc in scenarios
                                                             for k in kind.shared(sc.options).values())}
    for sc in scenarios:
        shared = {n: loaded[k] for n, k in kind.shared(sc.options).items()}
        kind.run(sc.options, shared)
    return time.perf_counter() - t0


def _engine(spec, root: Path, tag: str, **kw) -> tuple[float, pd.DataFrame]:
    from dynaplan.sweep import run_sweep

    out = root / tag
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    df = run_sweep(spec, out, **kw)
    return time.perf_counter() - t0, df


def _cpu_s() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its child processes (the worker
    processes of every LocalCluster it started, idle ones included)."""
    import psutil

    me = psutil.Process()
    kids = 0.0
    for p in me.children(recursive=True):
        try:
            t = p.cpu_times()
            kids += t.user + t.system
        except psutil.Error:  # exited
            pass
    t = me.cpu_times()
    return t.user + t.system, kids


def _cluster(n: int):
    from distributed import Client

    from dynaplan.sweep.engine import local_cluster

    t0 = time.perf_counter()
    cluster = local_cluster(n)  # the cluster run_sweep starts without a client
    client = Client(cluster)
    return cluster, client, time.perf_counter() - t0


@register_study("sweep_engine")
def run(ctx) -> list[str]:
    """Sweep engine: 2 workers vs one process, and the engine's overhead on one worker."""
    from dynaplan.sweep import SweepSpec, expand
    from dynaplan.sweep.kinds import get_kind, load_shared

    spec = SweepSpec.model_validate(_spec(ctx.quick))
    kind = get_kind(spec.kind)
    scenarios = expand(spec)
    repeats = ctx.repeats or (1 if ctx.quick else 3)
    info = {**machine_info(), **calibrate(5 if ctx.quick else 15)}
    ctx.log(f"sweep_engine: {len(scenarios)} {spec.kind} scenarios, {repeats} repeat(s); {info['cpu_model']}, "
            f"{info['cpus_usable']} usable CPUs, load {info.get('loadavg_1m_start')}")
    loaded = {k: load_shared(k) for k in dict.fromkeys(k for sc in scenarios for k in kind.shared(sc.options).values())}
    warm = scenarios[:1]
    task = ctx.task("sweep_engine", 4 * repeats)
    rows, failures = [], []
    root = Path(tempfile.mkdtemp(prefix="dynaplan-bench-sweep-"))
    warm_spec = spec.model_copy(update={"axes": {a: spec.axis_values(a)[:1] for a in spec.axes}})
    clusters = []

    def measure(config: str, r: int, fn) -> None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        cpu0 = _cpu_s()
        wall, df = fn()
        cpu1 = _cpu_s()
        if df is not None and not (df["status"] == "ok").all():
            bad = df.loc[df["status"] != "ok", "error"].iloc[0]
            failures.append(f"sweep_engine {config}: {int((df['status'] != 'ok').sum())} scenarios failed: {bad}")
        timing = df.attrs.get("sweep_timing_s", {}) if df is not None else {}
        rows.append({"config": config, "repeat": r, "wall_s": wall, "scenarios": len(scenarios), "loadavg_1m": load,
                     "run_s": timing.get("run_s", wall), "load_s": timing.get("load_s", 0.0),
                     "scatter_s": timing.get("scatter_s", 0.0), "tasks": timing.get("tasks"),
                     "cpu_driver_s": cpu1[0] - cpu0[0], "cpu_workers_s": cpu1[1] - cpu0[1]})
        task.advance()

    def plain():
        return _plain(kind, scenarios), None

    try:
        _plain(kind, warm, loaded)
        if ctx.quick:  # one cluster, one worker, then scaled to two: a few seconds, nothing warmed
            cluster, client, start_s = _cluster(1)
            clusters.append((cluster, client))
            rows.append({"config": "cluster_start_1", "repeat": 0, "wall_s": start_s, "scenarios": 0})
            measure("plain", 0, plain)
            measure("engine_serial", 0, lambda: _engine(spec, root, "serial", workers=0))
            measure("engine_1_worker", 0, lambda: _engine(spec, root, "w1", client=client))
            cluster.scale(2)
            client.wait_for_workers(2)
            measure("engine_2_workers", 0, lambda: _engine(spec, root, "w2", client=client))
        else:
            for n in (1, 2):
                cluster, client, start_s = _cluster(n)
                clusters.append((cluster, client))
                _engine(warm_spec, root, f"warm{n}", client=client)  # imports and caches on every worker
                rows.append({"config": f"cluster_start_{n}", "repeat": 0, "wall_s": start_s, "scenarios": 0})
            for r in range(repeats):
                runs = [("plain", plain),
                        ("engine_serial", lambda: _engine(spec, root, "serial", workers=0)),
                        ("engine_1_worker", lambda: _engine(spec, root, "w1", client=clusters[0][1])),
                        ("engine_2_workers", lambda: _engine(spec, root, "w2", client=clusters[1][1]))]
                for config, fn in runs[r % len(runs):] + runs[:r % len(runs)]:  # order rotated per repeat
                    measure(config, r, fn)
    finally:
        for cluster, client in clusters:
            client.close()
            cluster.close()
        shutil.rmtree(root, ignore_errors=True)
    df = pd.DataFrame(rows).assign(kind=spec.kind)
    ctx.write_csv("sweep_engine", df)
    med = {c: statistics.median(g["wall_s"]) for c, g in df.groupby("config")}
    run_med = {c: statistics.median(g["run_s"]) for c, g in df.groupby("config")}
    speedup = med["plain"] / med["engine_2_workers"]
    overhead = run_med["engine_1_worker"] / med["plain"] - 1  # per scenario: the run phase vs the scenarios
    overhead_total = med["engine_1_worker"] / med["plain"] - 1  # with the sweep's one-off load and scatter
    serial = run_med["engine_serial"] / med["plain"] - 1
    cpu = df.assign(cpu_s=df["cpu_driver_s"] + df["cpu_workers_s"]).groupby("config")["cpu_s"].median()
    cpu_overhead = cpu["engine_2_workers"] / cpu["plain"] - 1  # CPU the engine adds: speed-up <= 2 / (1 + it)
    summary = pd.DataFrame([{
        "kind": spec.kind, "scenarios": len(scenarios), "repeats": repeats, "plain_median_s": med["plain"],
        "per_scenario_s": med["plain"] / len(scenarios), "engine_serial_median_s": med["engine_serial"],
        "engine_1_worker_median_s": med["engine_1_worker"], "engine_2_workers_median_s": med["engine_2_workers"],
        "speedup_2_workers": speedup, "speedup_target": SPEEDUP_TARGET, "speedup_met": speedup >= SPEEDUP_TARGET,
        "overhead_1_worker": overhead, "overhead_1_worker_total": overhead_total,
        "overhead_serial": serial, "overhead_target": OVERHEAD_TARGET, "cpu_overhead_2_workers": cpu_overhead,
        "overhead_met": overhead < OVERHEAD_TARGET, "cpu_model": info["cpu_model"], "cpus_usable": info["cpus_usable"],
        "loadavg_1m_start": info.get("loadavg_1m_start"), "calib_median_ms": info["calib_median_ms"],
        "quick": ctx.quick}])
    ctx.write_csv("sweep_engine_summary", summary)
    ctx.log(f"sweep_engine: {len(scenarios)} {spec.kind} scenarios, plain {med['plain']:.2f} s; 2 workers "
            f"{speedup:.2f}x faster (target {SPEEDUP_TARGET}x); engine overhead per scenario {100 * overhead:+.1f}% on "
            f"1 worker ({100 * overhead_total:+.1f}% with the one-off load and scatter), {100 * serial:+.1f}% in "
            f"this process (target < {100 * OVERHEAD_TARGET:.0f}%); CPU of the 2-worker sweep {100 * cpu_overhead:+.1f}% "
            f"over the scenarios' own")
    return failures
