"""Mélange-format instances only: ``plan_capacity(read_melange(cfg, assignment))`` against
Mélange's own model on PuLP + CBC (``benchmarks.scenarios.capacity.melange_pulp``), interleaved per
instance in one process: ours the median of ``--repeats`` runs (wall and process time), CBC once.
The instances are those of the ``capacity`` study (6x6 and 10x10 buckets, 1..1000 req/s, slice
factors 1, 4, 16, seed 0).

    python -m benchmarks.melange_speed [--assignment sliced|divisible] [--repeats 3] [--csv out.csv]

Prints one line per instance and the median, least and largest speed-up (CBC wall / ours), the
medians of both walls, and fails (exit 1) on any answer not proven optimal or dearer than CBC's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import pandas as pd

from benchmarks.scenarios.capacity import melange_instance, melange_pulp
from dynaplan.capacity import plan_capacity, read_melange

INSTANCES = [(b, r, s, 0) for b in (6, 10) for r in (1.0, 10.0, 100.0, 1000.0) for s in (1, 4, 16)]


def _ours(cfg: dict, assignment: str, repeats: int):
    walls, cpus, plan = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        plan = plan_capacity(read_melange(cfg, assignment=assignment))
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), plan


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assignment", default="sliced", choices=("sliced", "divisible"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cbc-limit-s", type=float, default=60.0)
    ap.add_argument("--csv", default=None)
    args = ap.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    rows, bad = [], []
    for b, rate, s, seed in INSTANCES:
        cfg = melange_instance(b, rate, s, seed)
        wall, cpu, plan = _ours(cfg, args.assignment, args.repeats)
        t0 = time.perf_counter()
        st, obj = melange_pulp(cfg, args.cbc_limit_s)
        cbc = time.perf_counter() - t0
        r = plan.report
        name = f"{b}x{b}/{rate:g}/{s}"
        if r.status.value != "optimal" or r.bound is None or r.bound < r.objective - 1e-9:
            bad.append(f"{name}: {r.status.value}, objective {r.objective}, bound {r.bound}")
        if args.assignment == "sliced" and obj is not None and obj < r.objective - 1e-6:
            bad.append(f"{name}: CBC {obj} below ours {r.objective}")
        rows.append({"instance": name, "ours_s": wall, "ours_cpu_s": cpu, "cbc_s": cbc, "speedup": cbc / wall,
                     "status": r.status.value, "objective": r.objective, "bound": r.bound, "cbc_status": st,
                     "cbc_objective": obj})
        print(f"{name:>14}  ours {wall:7.4f} s (cpu {cpu:7.4f})  cbc {cbc:7.3f} s  x{cbc / wall:7.1f}  "
              f"{r.status.value} {r.objective:.4f} (cbc {st} {obj if obj is None else round(obj, 4)})", flush=True)
    df = pd.DataFrame(rows)
    if args.csv:
        df.to_csv(args.csv, index=False)
    print(f"speed-up median {df['speedup'].median():.1f}x min {df['speedup'].min():.1f}x max "
          f"{df['speedup'].max():.1f}x; ours median {df['ours_s'].median():.4f} s (cpu "
          f"{df['ours_cpu_s'].median():.4f} s), CBC median {df['cbc_s'].median():.3f} s; "
          f"load average {os.getloadavg()[0]:.2f}")
    for line in bad:
        print("FAIL", line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
