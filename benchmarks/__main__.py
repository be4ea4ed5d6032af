"""Command line: ``python -m benchmarks [--scenario NAME ...] [--quick] [--out DIR] ...``.

Writes into ``--out`` (default ``benchmarks/out/``): one CSV per scenario (``<name>.csv``
summary, ``<name>_runs.csv`` every timed run, ``<name>_slopes.csv`` log-log slopes), PNG
figures, ``machine.json`` (platform, CPU, cores, Python and solver versions, load average and a
calibration workload timed before and after) and ``summary.md`` (targets, slopes, checks).
Exit status 1 when a scenario crashed or a check failed, so CI notices; timings never fail it,
and neither do solver claims (bound, 'optimal') contradicted by another backend's verified solution:
those are listed in ``summary.md`` and ``machine.json`` (``claim_warnings``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "out"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description="dynaplan benchmark suite")
    p.add_argument("--scenario", "-s", action="append", default=None,
                   help="run only this scenario or study (repeatable); default: all")
    p.add_argument("--quick", action="store_true", help="small sizes, one repeat, short time limits (CI smoke)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per point (default: per scenario)")
    p.add_argument("--time-limit", type=float, default=None, help="solver time limit in s (default: per scenario)")
    p.add_argument("--backend", "-b", action="append", default=None,
                   help="only these solver backends (highs, pyomo, cpsat, pulp); repeatable")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (plain log lines)")
    p.add_argument("--list", action="store_true", help="list the registered scenarios and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from benchmarks import load_scenarios
    from benchmarks.driver import Context, run_sweep
    from benchmarks.machine import calibrate, machine_info

    console = Console(stderr=True)
    registry = load_scenarios()
    if args.list:
        for name, entry in registry.items():
            first = entry.description.splitlines()[0] if entry.description else ""
            console.print(f"[bold]{name}[/bold] ({entry.kind}): {first}")
        from benchmarks.registry import OUTSIDE

        for path, why in OUTSIDE.items():
            console.print(f"[dim]{path}[/dim] (outside the registry): {why}")
        return 0
    names = args.scenario or list(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        console.print(f"[red]unknown scenario(s) {unknown}; known: {list(registry)}[/red]")
        return 2
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    info = {"command": command.strip(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": args.quick,
            **machine_info(), **{f"{k}_start": v for k, v in calibrate().items()}}
    console.print(f"machine: {info['cpu_model']}, {info['cpus_usable']} usable CPUs, Python {info['python']}, "
                  f"HiGHS {info['highs']}, load avg {info.get('loadavg_1m_start')}; "
                  f"calibration {info['calib_median_ms_start']:.1f} ms")
    durations, failures, claims = {}, [], []
    progress = None if args.no_progress else Progress(
        TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False)
    ctx = Context(out=out, quick=args.quick, repeats=args.repeats, time_limit_s=args.time_limit,
                  backends=tuple(args.backend) if args.backend else None, plots=not args.no_plots,
                  progress=progress, log=console.print)
    t_all = time.perf_counter()
    if progress is not None:
        progress.start()
    try:
        for name in names:
            entry = registry[name]
            t0 = time.perf_counter()
            if progress is None:
                console.print(f"running {name} ...")
            try:
                if entry.kind == "sweep":
                    df = run_sweep(entry, ctx)
                    bad = df[~df["check_ok"].astype(bool)] if len(df) else df
                    for _, r in bad.iterrows():
                        failures.append(f"{name} {r['dimension']}={r['value']} {r['backend']}: {r['check_msg']}")
                    wrong = df[~df["claim_ok"].astype(bool)] if len(df) else df
                    for _, r in wrong.iterrows():
                        claims.append(f"{name} {r['dimension']}={r['value']} {r['backend']}: {r['claim_msg']}")
                else:
                    bad = entry.run(ctx) or []
                    failures.extend(f"{name}: {m}" for m in bad)
            except Exception as exc:  # noqa: BLE001 - report and go on with the next scenario
                failures.append(f"{name}: crashed: {type(exc).__name__}: {exc}")
                console.print(f"[red]{name} crashed[/red]\n{traceback.format_exc()}")
            durations[name] = time.perf_counter() - t0
    finally:
        if progress is not None:
            progress.stop()
    info.update({f"{k}_end": v for k, v in calibrate().items()})
    if hasattr(os, "getloadavg"):
        info["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    info["duration_s"] = time.perf_counter() - t_all
    info["scenario_durations_s"] = durations
    info["failures"] = failures
    info["claim_warnings"] = claims
    (out / "machine.json").write_text(json.dumps(info, indent=2, default=str))
    from benchmarks.summary import write_summary

    write_summary(out, info)
    for f in failures:
        console.print(f"[red]check failed[/red] {f}")
    if claims:
        console.print(f"[yellow]{len(claims)} solver claim(s) contradicted by another backend's verified "
                      f"solution (see summary.md)[/yellow]")
    console.print(f"done in {info['duration_s']:.0f} s; results in {out} (summary.md)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
