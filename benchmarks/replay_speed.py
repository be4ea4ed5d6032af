"""Benchmark: replay speed and memory.

Targets (issue 6; benchmarks measure, tests verify — nothing here asserts a time):

* **hour**: the bundled 1-hour conversation trace at the CLI's default load (``--rate auto``:
  SinglePool, sized for the peak, needs half of 40 H100 servers), all seven bundled policies:
  trace scaling, ``prepare`` and the seven replays — target < 10 s. Median of ``--repeats`` runs.
* **week**: DynamoLLM over a synthetic week of conversation (``generate_trace``, seed 0,
  ~27.3M requests, 40 servers) — target < 2 min and < 4 GiB peak memory. Run in a fresh
  subprocess so its peak RSS is its own; generation, ``prepare`` and the replay are timed apart.

Run: ``python benchmarks/replay_speed.py [--repeats 3] [--week-repeats 1] [--days 7] [--skip-week] [--json OUT]``.
Not in the registry of ``python -m benchmarks`` (see ``benchmarks.registry.OUTSIDE`` for why).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _machine() -> dict:
    try:
        from benchmarks.machine import calibrate, machine_info

        return {**machine_info(), **calibrate()}
    except Exception:  # noqa: BLE001 - informational only
        return {"platform": platform.platform(), "python": sys.version.split()[0], "cpu_count": os.cpu_count()}


def _rss_mib(who=resource.RUSAGE_SELF) -> float:
    peak = resource.getrusage(who).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def bench_hour(servers: int = 40) -> dict:
    """One run of the hour benchmark: seconds per stage and per policy."""
    from dynaplan.replay import prepare, replay
    from dynaplan.replay.engine import scale_to_baseline
    from dynaplan.replay.policies import make_policies
    from dynaplan.workload import load_trace

    out: dict = {}
    t0 = time.perf_counter()
    trace = load_trace("azure-conv-2023")
    pkw = {"inventory": {"h100-80gb": servers}}
    trace, factor = scale_to_baseline(trace, 0.5 * servers, prepare_kwargs=pkw)
    t1 = time.perf_counter()
    inp = prepare(trace, **pkw)
    t2 = time.perf_counter()
    out["scale_s"], out["prepare_s"] = t1 - t0, t2 - t1
    out["requests"], out["rate_factor"] = len(trace), factor
    for pol in make_policies("all"):
        t = time.perf_counter()
        replay(inp, pol)
        out[f"replay_{pol.label}_s"] = time.perf_counter() - t
    out["replays_s"] = time.perf_counter() - t2
    out["total_s"] = time.perf_counter() - t0
    return out


def bench_week_child(days: float) -> dict:
    """The week benchmark, in this (fresh) process."""
    from dynaplan.replay import prepare, replay
    from dynaplan.replay.policies import DynamoLLM
    from dynaplan.workload import generate_trace

    t0 = time.perf_counter()
    trace = generate_trace("azure-conv-2023", days=days, seed=0)
    t1 = time.perf_counter()
    inp = prepare(trace, inventory={"h100-80gb": 40})
    t2 = time.perf_counter()
    pol = DynamoLLM()
    res = replay(inp, pol)
    t3 = time.perf_counter()
    s = res.summary
    return {"requests": len(trace), "generate_s": t1 - t0, "prepare_s": t2 - t1, "replay_s": t3 - t2,
            "policy_s": s.decide_time_s, "total_s": t3 - t0, "pool_solves": pol._plans.solves,
            "pool_cache_hits": pol._plans.hits, "allot_calls": pol.allot_calls, "energy_kwh": s.energy_kwh,
            "slo_attainment": s.slo_attainment, "avg_servers": s.avg_servers, "peak_rss_mib": _rss_mib()}


def bench_week(days: float) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
            f"from benchmarks.replay_speed import bench_week_child; print(json.dumps(bench_week_child({days!r})))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _median(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="runs of the hour benchmark (median reported)")
    ap.add_argument("--week-repeats", type=int, default=1, help="runs of the week benchmark (median reported)")
    ap.add_argument("--days", type=float, default=7.0, help="days of the synthetic trace")
    ap.add_argument("--skip-week", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)
    report: dict = {"machine": _machine()}
    bench_hour()  # warm-up: imports, profile load
    hour = [bench_hour() for _ in range(args.repeats)]
    report["hour"] = {"median": _median(hour), "runs": hour}
    h = report["hour"]["median"]
    print(f"hour (1-h conversation, {int(h['requests']):,} requests, all 7 policies): median total "
          f"{h['total_s']:.2f} s (scale {h['scale_s']:.2f}, prepare {h['prepare_s']:.2f}, replays "
          f"{h['replays_s']:.2f}) over {args.repeats} runs")
    for k, v in h.items():
        if k.startswith("replay_"):
            print(f"    {k[7:-2]:>12}: {v:.3f} s")
    if not args.skip_week:
        week = [bench_week(args.days) for _ in range(args.week_repeats)]
        report["week"] = {"median": _median(week), "runs": week}
        w = report["week"]["median"]
        print(f"week ({args.days:g} synthetic days, {int(w['requests']):,} requests, DynamoLLM): replay "
              f"{w['replay_s']:.1f} s (policy {w['policy_s']:.1f} s, {int(w['pool_solves'])} pool solves, "
              f"{int(w['pool_cache_hits'])} cache hits), "
              f"generate {w['generate_s']:.1f} s, prepare {w['prepare_s']:.1f} s, total {w['total_s']:.1f} s, "
              f"peak RSS {w['peak_rss_mib'] / 1024:.2f} GiB")
    m = report["machine"]
    print(f"machine: {m.get('cpu_model', '?')}, {m.get('cpus_usable', m.get('cpu_count'))} CPUs usable, "
          f"Python {m.get('python')}, calibration {m.get('calib_median_ms', float('nan')):.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
