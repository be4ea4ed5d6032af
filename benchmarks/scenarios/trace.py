"""Workload layer: generating, classifying and aggregating a synthetic conversation trace.

The registry form of ``benchmarks/trace_aggregation.py`` (which stays a standalone script for
the full week and the CSV-loading measurement). Build: ``generate_trace`` of ``days`` days
(~3.9M requests a day). Solve: ``classify_trace`` and the per-class load at 5-s windows and
the 30-min epoch peaks, i.e. what the planner's forecasts are made from. Check: the 5-s load
table counts every request exactly once.
"""

from __future__ import annotations

import numpy as np

from dynaplan.workload import aggregate_load, classify_trace, epoch_peaks, generate_trace

from benchmarks.registry import Case, Outcome, Point, register_sweep
from benchmarks.trace_aggregation import _rss_mib

SWEEP = {"days": (0.05, 0.25, 1.0)}
QUICK = {"days": (0.01,)}


@register_sweep("trace", sweep=SWEEP, quick=QUICK, backends=("numpy",), repeats=3, warmup=False)
def build(point: Point) -> Case:
    """Trace generation (build) and classification + aggregation (solve) for a synthetic conversation trace."""
    days = float(point.value)
    trace = generate_trace("azure-conv-2023", days=days, seed=0)

    def run(backend: str, opts):
        cls = classify_trace(trace, seed=0)
        load = aggregate_load(trace, cls.true_class, window_s="5s")
        peaks = epoch_peaks(trace, cls.true_class, epoch_s="30min", inner_window_s="60s")
        return load, peaks

    def read(res) -> Outcome:
        load, peaks = res
        return Outcome(status="done", metrics={"windows": load.load_rps.shape[0], "epochs": peaks.load_rps.shape[0],
                                               "peak_rss_mib": _rss_mib()})

    def check(res) -> tuple[bool, str]:
        load, _ = res
        rates = load.load_rps.to_numpy()
        # each window's rate is over the width of it the trace covers (the last may end early)
        width = np.minimum(load.window_s, trace.duration_s - load.window_s * np.arange(len(rates)))
        width = np.where(width > 0, width, load.window_s)
        counted = float(np.round((rates * width[:, None]).sum()))
        if abs(counted - len(trace)) > 0.5:
            return False, f"5-s windows count {counted:.0f} requests, the trace has {len(trace)}"
        return True, ""

    return Case(run=run, read=read, check=check, info={"requests": len(trace), "days": days})
