"""Benchmark: load aggregation over a synthetic week of conversation (~27M requests).

Measures (median of ``--repeats`` runs) the generator, the classifier/predictor, per-class
aggregation at 5 s / 5 min / 30 min windows and per-epoch peaks, plus the peak resident memory
of the process and the tracemalloc peak of one 5-s aggregation. With ``--load-csv`` it also
writes the week as an Azure-2024-format CSV (``TIMESTAMP`` with ``+00:00`` offsets, ~1.1 GB in
a temporary directory) and times :func:`dynaplan.workload.load_trace` on it in a fresh
subprocess, reporting that subprocess's peak RSS.

Run: ``python benchmarks/trace_aggregation.py [--days 7] [--repeats 3] [--load-csv]``.
Not in the registry of ``python -m benchmarks`` (see ``benchmarks.registry.OUTSIDE`` for why).
Benchmarks measure, tests verify: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path


def _rss_mib() -> float:
    """Peak resident set size of this process so far (MiB; ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def _write_azure_csv(trace, path: Path) -> None:
    """The trace in the 2024 Azure format: TIMESTAMP (+00:00), ContextTokens, GeneratedTokens."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    start_ns = trace.start.value
    ns = start_ns + np.round(trace.arrival_s * 1e9).astype(np.int64)
    ts = pa.array(ns.astype("datetime64[ns]").astype("datetime64[us]"))
    text = pc.binary_join_element_wise(pc.strftime(ts, format="%Y-%m-%d %H:%M:%S"), "+00:00", "")
    table = pa.table({"TIMESTAMP": text, "ContextTokens": trace.input_tokens, "GeneratedTokens": trace.output_tokens})
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="none"))


_LOAD_SNIPPET = """
import resource, sys, time
from dynaplan.workload import load_trace
t0 = time.perf_counter(); tr = load_trace(sys.argv[1]); dt = time.perf_counter() - t0
try:  # VmHWM is this process's own peak; ru_maxrss would include the parent's at fork time
    hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
except OSError:
    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{len(tr)} {dt:.2f} {hwm:.0f}")
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--load-csv", action="store_true", help="also time loading a 2024-format CSV")
    args = parser.parse_args(argv)

    import numpy as np
    import pandas as pd

    from dynaplan.workload import aggregate_load, classify_trace, epoch_peaks, generate_trace

    print(f"machine: {platform.platform()}, {_cpu_model()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}, "
          f"pandas {pd.__version__}")
    t_gen, trace = _time(lambda: generate_trace("azure-conv-2023", days=args.days, seed=args.seed), 1)
    print(f"generate {args.days:g}-day conversation week: {len(trace):,} requests in {t_gen:.2f} s "
          f"(peak RSS so far {_rss_mib():.0f} MiB)")
    t_cls, cls = _time(lambda: classify_trace(trace, seed=args.seed), args.repeats)
    print(f"classify + predict (0.81):           median {t_cls:.3f} s")
    for window in ("5s", "5min", "30min"):
        t, lt = _time(lambda: aggregate_load(trace, cls.true_class, window_s=window), args.repeats)
        print(f"aggregate_load window {window:>5}:       median {t:.3f} s  ({lt.load_rps.shape[0]:,} windows x "
              f"{lt.load_rps.shape[1]} classes)")
    for inner in ("5s", "1min"):
        t, pk = _time(lambda: epoch_peaks(trace, cls.true_class, epoch_s="30min", inner_window_s=inner), args.repeats)
        print(f"epoch_peaks 30min / inner {inner:>4}:    median {t:.3f} s  ({pk.load_rps.shape[0]} epochs)")
    tracemalloc.start()
    aggregate_load(trace, cls.true_class, window_s="5s")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"extra memory of one 5-s aggregation (tracemalloc peak): {peak / 2**20:.0f} MiB")
    print(f"peak RSS of the process: {_rss_mib():.0f} MiB (trace arrays: "
          f"{(trace.arrival_s.nbytes + trace.input_tokens.nbytes + trace.output_tokens.nbytes) / 2**20:.0f} MiB)")

    if args.load_csv:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "AzureLLMInferenceTrace_conv_1week_synthetic.csv"
            t0 = time.perf_counter()
            _write_azure_csv(trace, path)
            print(f"wrote 2024-format CSV {path.stat().st_size / 2**30:.2f} GiB in {time.perf_counter() - t0:.1f} s")
            del trace, cls
            res = subprocess.run([sys.executable, "-c", _LOAD_SNIPPET, str(path)], capture_output=True, text=True,
                                 check=True)
            n, secs, rss = res.stdout.split()
            print(f"load_trace on it (fresh process): {int(n):,} rows in {float(secs):.1f} s, peak RSS {rss} MiB")


if __name__ == "__main__":
    main()
