"""Pool-level exactness and speed against an independent exact solver.

``python -m benchmarks.pool_exactness [--pools N] [--seed S]`` draws N random single-class
pools on the default profile (1-4 H100 servers, a class at random, a load log-uniform between
0.5% and 98% of the pool's largest SLO capacity), solves each with ``Planner.plan_pool`` three
ways in the same run: ``dp`` (the default: the exact dynamic programme, formulations/pool.md
DP1-DP5), ``highs`` (the exact pool MILP, ``pool_dp=False``) and ``chords3`` (the old figure:
the 3-chord approximation, ``load_segments=3``), and compares each with
``tests/reference_solver.py`` (enumeration of profile load points plus a dynamic programme over
GPUs, from ``Profile.table`` alone). Prints counts above the optimum by more than 1e-6
relative, the worst excess, statuses, median/p95 time per ``plan_pool`` call (the first call per
class and pool size is left out and reported apart: it builds the model, and for ``dp`` the
fronts) and their ratios, wall clock and the process CPU time (on a shared machine the
wall clock's tail is mostly the process waiting for a core), plus machine info. Registered as
the ``pool_exactness`` study of ``python -m benchmarks`` (:mod:`benchmarks.scenarios.exactness`,
1,000 pools, seed 0); this script takes any ``--pools`` / ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import machine_info
from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.planning import Planner, PlannerOptions
from dynaplan.profiles.profile import Profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_solver import class_curves, pool_optimum_w  # noqa: E402

HW = "h100-80gb"


def draw_pools(profile: Profile, n: int, seed: int) -> list[tuple[str, float, int]]:
    rng = np.random.default_rng(seed)
    model = profile.models[0]
    g = profile.hardware[HW].gpus_per_server
    out = []
    while len(out) < n:
        c = str(rng.choice(list(profile.classes.names)))
        s = int(rng.integers(1, 5))
        curves = class_curves(profile.table, model, HW, c, DEFAULT_SLOS[c].ttft_ms, DEFAULT_SLOS[c].tbt_ms)
        if not curves:
            continue
        cap = max(g * s // tp * loads[-1] for tp, _, loads, _ in curves)
        out.append((c, float(cap * np.exp(rng.uniform(np.log(0.005), np.log(0.98)))), s))
    return out


def run(n: int, seed: int) -> dict:
    profile = Profile.default()
    hw = profile.hardware[HW]
    pools = draw_pools(profile, n, seed)
    res = {}
    variants = (("dp", PlannerOptions()), ("highs", PlannerOptions(pool_dp=False)),
                ("chords3", PlannerOptions(load_segments=3)))
    first = {}
    for name, opts in variants:
        planners = {s: Planner(profile, {HW: s}, DEFAULT_SLOS, options=opts) for s in range(1, 5)}
        warm: set = set()
        times, cpu, power, status, first_calls = [], [], [], [], []
        for c, load, s in pools:
            pl = planners[s]
            if (c, s) not in warm:  # the first call builds the cached model (build time is not solve time)
                t0 = time.perf_counter()
                pl.plan_pool(c, {c: load}, {HW: s})
                first_calls.append(time.perf_counter() - t0)
                warm.add((c, s))
            t0, c0 = time.perf_counter(), time.process_time()
            pp = pl.plan_pool(c, {c: load}, {HW: s})
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            power.append(pp.power_w)
            status.append(pp.report.status.value)
        res[name] = (np.array(times), np.array(power), status, np.array(cpu))
        first[name] = first_calls
    ref = np.array([pool_optimum_w(profile.table, profile.models[0], HW, hw.gpus_per_server, hw.idle_power_w, c,
                                   DEFAULT_SLOS[c].ttft_ms, DEFAULT_SLOS[c].tbt_ms, load, s) for c, load, s in pools])
    out = {"pools": n, "seed": seed, "machine": machine_info()}
    for name, _ in variants:
        t, pw, st, cp = res[name]
        rel = (pw - ref) / ref
        out[name] = {"above_1e-6": int((rel > 1e-6).sum()), "below_-1e-6": int((rel < -1e-6).sum()),
                     "worst_rel": float(rel.max()), "optimal_labelled": st.count("optimal"),
                     "optimal_but_above": int(((rel > 1e-6) & (np.array(st) == "optimal")).sum()),
                     "p50_ms": float(np.median(t) * 1e3), "p95_ms": float(np.percentile(t, 95) * 1e3),
                     "max_ms": float(t.max() * 1e3),
                     "cpu_p50_ms": float(np.median(cp) * 1e3), "cpu_p95_ms": float(np.percentile(cp, 95) * 1e3),
                     "first_call_max_ms": float(max(first[name]) * 1e3),
                     "first_call_total_ms": float(sum(first[name]) * 1e3)}
    for a, b in (("dp", "chords3"), ("dp", "highs"), ("highs", "chords3")):
        for q in ("p50", "p95", "cpu_p50", "cpu_p95"):
            out[f"{q}_ratio_{a}_vs_{b}"] = out[a][f"{q}_ms"] / out[b][f"{q}_ms"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pools", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(json.dumps(run(a.pools, a.seed), indent=1, default=str))


if __name__ == "__main__":
    main()
