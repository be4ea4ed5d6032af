"""Bulk + residual (formulations/pool.md, "Large pools") measured: the figures of pool.md.

    python -m benchmarks.pool_bulk hierarchy 12500     # large_pool "exact" vs "auto", interleaved
    python -m benchmarks.pool_bulk pools 0 80 9 21 0.5  # random pools: seed, count, servers lo/hi, mixed share

``hierarchy``: the benchmark's epoch forecasts at N servers, each planned by both planners in
turn, 2 rounds after a warm-up; median / p95 time and the summed plan power (every plan through
check_plan). ``pools``: random pools on the default profile, bulk (``plan_pool`` with
``large_pool="bulk"``) against the pool MILP at gap 1e-9; excess of the bulk plan's power.
"""

from __future__ import annotations

import sys
import time

import numpy as np


def hierarchy(n_servers: int) -> None:
    from benchmarks import inputs
    from benchmarks.registry import Point
    from benchmarks.scenarios.hierarchy import run_hierarchy
    from dynaplan.planning import Planner
    from dynaplan.planning.check import check_plan

    st = inputs.setting(Point("servers", n_servers))
    fc = inputs.epoch_forecasts(n_servers)
    modes = ("exact", "auto")
    pls = {m: Planner(st.profile, st.inventory, st.slos, options=st.options.model_copy(update={"large_pool": m}),
                      solve_options=inputs.solve_options(10.0)) for m in modes}
    for m in modes:
        for f in fc:
            run_hierarchy(pls[m], f)
    res = {m: ([], []) for m in modes}
    for r in range(2):
        for f in fc:
            for m in modes:
                t0 = time.perf_counter()
                plan, *_ = run_hierarchy(pls[m], f)
                res[m][0].append(time.perf_counter() - t0)
                res[m][1].append(plan.power_w)
                if r == 0:
                    check_plan(st.profile, st.inventory, st.slos, plan, forecast=f, model=pls[m].model,
                               options=st.options).raise_if_failed()
    base = res["exact"][1][:len(fc)]
    for m in modes:
        ts, pw = res[m]
        pw = pw[:len(fc)]
        worst = max((a - b) / b for a, b in zip(pw, base))
        print(f"{m:5s}: median {np.median(ts) * 1e3:.1f} ms p95 {np.percentile(ts, 95) * 1e3:.1f} ms "
              f"summed power {sum(pw):.2f} W ({sum(pw) / sum(base) - 1:+.3e} vs exact; worst plan {worst:+.3e})")


def pools(seed: int, count: int, lo: int, hi: int, mixed_share: float) -> None:
    from dynaplan.domain.slo import DEFAULT_SLOS
    from dynaplan.errors import InfeasibleError
    from dynaplan.planning import Planner, PlannerOptions
    from dynaplan.profiles.profile import Profile

    hw = "h100-80gb"
    prof = Profile.default()
    inv = {hw: max(hi, 40)}
    ex = Planner(prof, inv, DEFAULT_SLOS, options=PlannerOptions(large_pool="exact", pool_mip_rel_gap=1e-9))
    bk = Planner(prof, inv, DEFAULT_SLOS, options=PlannerOptions(large_pool="bulk"))
    ops = ex.ops[ex.ops["max_load_rps"] > 0]
    cap = (8 // ops["tp"] * ops["max_load_rps"]).groupby(ops["request_class"]).max()
    rng = np.random.default_rng(seed)
    classes = list(ex.classes)
    out = {"single": [], "mixed": []}
    gaps = []
    for _ in range(count):
        pool = classes[rng.integers(len(classes))]
        n = int(rng.integers(lo, hi))
        loads = {pool: float(rng.uniform(0.05, 0.98)) * cap[pool] * n}
        spill = [c for c in classes if pool in ex.routes[c] and c != pool]
        mixed = bool(spill) and rng.random() < mixed_share
        if mixed:
            c = spill[rng.integers(len(spill))]
            s = float(rng.uniform(0.02, 0.5))
            loads = {pool: (1 - s) * loads[pool], c: s * loads[pool] * cap[c] / cap[pool]}
        try:
            e = ex.plan_pool(pool, loads, {hw: n})
        except InfeasibleError:
            continue
        b = bk.plan_pool(pool, loads, {hw: n})
        out["mixed" if mixed else "single"].append((b.power_w - e.power_w) / e.power_w)
        if not mixed:
            gaps.append(b.report.gap)
    for name, v in out.items():
        if v:
            v = np.array(v)
            print(f"{name}: {len(v)} pools, excess median {np.median(v):+.2e} p95 {np.percentile(v, 95):+.2e} "
                  f"max {v.max():+.2e}, above 1e-6: {int(np.sum(v > 1e-6))}")
    if gaps:
        print(f"single-class stated gap: median {np.median(gaps):.2e} max {max(gaps):.2e}")


if __name__ == "__main__":
    if sys.argv[1] == "hierarchy":
        hierarchy(int(sys.argv[2]))
    else:
        pools(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
