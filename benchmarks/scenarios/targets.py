"""The planner's timing targets, measured as the scheduler would call it.

(a) **Pool level** on the default profile: every pool of the 40-server hierarchical plan (the
cluster level's routed loads and servers), re-planned with ``Planner.plan_pool`` through the
HiGHS fast path and through the Pyomo backend, interleaved call by call in the same run (30
rounds). Target: p95 <= 5 ms with HiGHS, >= 10x faster than Pyomo (ratio of medians), same
objective. Also the raw path (``pool.build`` + ``model.arrays()`` + HiGHS) per pool, to show
where the time goes.

(b) **Whole hierarchy**: ``plan(forecast)`` + ``clocks(instances_of(plan))`` at 40 and 12,500
servers, over the 12 five-minute epoch peaks of the conversation trace (scaled), 5 rounds after
a warm-up round: the steady state of a planner that runs every epoch. The first call of a new
planner (``cold``) is reported apart, and so is the monolithic plan's time on the first
forecast (the baseline the hierarchy replaces), and so is the global bound's time
(``Planner.bound_time_s``, part of ``plan_other_s``) and its median share of the plan call. Targets: <= 50 ms at 40 servers, <= 100 ms at
12,500 (median and p95 both reported; met means p95).

A sensitivity row repeats (b) at 12,500 servers with ``mip_rel_gap=1e-3`` instead of the
default 1e-4 (the cluster MILP there spends most of its time closing the last 0.01%), and one at
40 servers with ``PlannerOptions.cluster_search="single"`` (one allotment instead of the
inventory ladder), with the power it gives up against the ladder per forecast; and rows at 40 and
12,500 servers with ``PlannerOptions.workers=2`` (the global bound alongside, pools side by side;
same plans), whose p95 is the one to read on a machine with two idle cores. Rows at 40 servers
with ``PlannerOptions.time_budget_s`` 0 (the mandatory steps only: the first rung's allotment and
pools, the global bound) and 30 ms (further rungs and polishing while time remains) give the
latency a scheduler can ask for and the power it gives up against the default, per forecast
(``obj_rel_diff_vs_ladder``: the worst forecast; ``obj_rel_mean_vs_ladder``: the mean); a last
row combines budget 0 with 2 worker threads (the first rung's pools side by side).

(c) is computed from the ``hier_vs_mono`` study by ``summary.md``.

Timings are also given in units of the calibration workload measured at the start of this study
(:func:`benchmarks.machine.calibrate`), so another machine's figures can be compared.
Writes ``targets.csv`` (one row per target) and ``targets_runs.csv`` (every call).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from dynaplan.formulations import pool as pool_f
from dynaplan.planning import Planner
from dynaplan.solvers import Backend, solve

from benchmarks import inputs
from benchmarks.driver import median, p95
from benchmarks.machine import calibrate
from benchmarks.registry import Point, register_study
from benchmarks.scenarios.hierarchy import check_hierarchy, plan_parts, run_hierarchy

POOL_TARGET_S = 0.005
POOL_SPEEDUP = 10.0
HIER_TARGETS_S = {40: 0.050, 12500: 0.100}


def _pool_level(ctx, rounds: int, task) -> tuple[list[dict], list[dict], list[str]]:
    point = Point("servers", inputs.BASE_SERVERS)
    st = inputs.setting(point)
    plan = inputs.hierarchical_plan(point)
    pools = [(pp.pool, dict(pp.served_rps), dict(pp.servers)) for pp in plan.pools]
    opts = inputs.solve_options(10.0)
    planners = {b: inputs.planner(st, b, opts) for b in ("highs", "pyomo") if ctx.backend_ok(b)}
    failures = []
    for pl in planners.values():  # warm-up: model caches, imports
        for pool, loads, servers in pools:
            pl.plan_pool(pool, loads, servers)
    calls = []
    for r in range(rounds):
        for pool, loads, servers in pools:
            for b, pl in planners.items():
                t0 = time.perf_counter()
                pp = pl.plan_pool(pool, loads, servers)
                wall = time.perf_counter() - t0
                calls.append({"target": "a", "backend": b, "pool": pool, "round": r, "wall_s": wall,
                              "solve_s": pp.report.solve_time_s, "build_s": pp.report.build_time_s,
                              "objective": pp.report.objective, "status": pp.report.status.value})
            # the raw path: formulation build + arrays + HiGHS, no planner cache
            t0 = time.perf_counter()
            model, _, _ = pool_f.build(planners["highs"].ops, planners["highs"].segments, pool, loads, servers,
                                       planners["highs"].hardware, routed_ops=planners["highs"].routed_ops)
            arrays = model.arrays()
            t1 = time.perf_counter()
            sol = solve(arrays, Backend.HIGHS, opts)
            t2 = time.perf_counter()
            calls.append({"target": "a", "backend": "highs-raw", "pool": pool, "round": r, "wall_s": t2 - t0,
                          "solve_s": t2 - t1, "build_s": t1 - t0, "objective": sol.report.objective,
                          "status": sol.report.status.value})
        task.advance()
    df = pd.DataFrame(calls)
    rows = []
    h = df[df["backend"] == "highs"]
    py = df[df["backend"] == "pyomo"]
    raw = df[df["backend"] == "highs-raw"]
    obj_h = h.groupby("pool")["objective"].first()
    diffs = {}
    if len(py):
        obj_p = py.groupby("pool")["objective"].first()
        diffs = {p: abs(obj_p[p] - obj_h[p]) / max(abs(obj_h[p]), 1e-9) for p in obj_h.index}
    max_diff = max(diffs.values(), default=float("nan"))
    bad_status = sorted(set(df["status"]) - {"optimal", "feasible"})
    if bad_status:
        failures.append(f"(a) pool-level statuses {bad_status}")
    ratio = median(py["wall_s"]) / median(h["wall_s"]) if len(py) else float("nan")
    per_pool_ratio = (py.groupby("pool")["wall_s"].median() / h.groupby("pool")["wall_s"].median()) if len(py) else None
    met = (p95(h["wall_s"]) <= POOL_TARGET_S and ratio >= POOL_SPEEDUP and max_diff <= 1e-6)
    rows.append({"target": "(a) pool p95 <= 5 ms, >= 10x Pyomo, same objective", "key": "a",
                 "servers": inputs.BASE_SERVERS, "calls": len(h), "pools": len(pools),
                 "median_s": median(h["wall_s"]), "p95_s": p95(h["wall_s"]), "target_s": POOL_TARGET_S,
                 "baseline": "pyomo plan_pool", "baseline_median_s": median(py["wall_s"]) if len(py) else float("nan"),
                 "baseline_p95_s": p95(py["wall_s"]) if len(py) else float("nan"),
                 "ratio_baseline_over_median": ratio,
                 "min_pool_ratio": float(per_pool_ratio.min()) if per_pool_ratio is not None else float("nan"),
                 "max_obj_rel_diff": max_diff, "met": bool(met),
                 "solve_median_s": median(h["solve_s"]), "build_median_s": median(h["build_s"]),
                 "raw_build_median_s": median(raw["build_s"]), "raw_solve_median_s": median(raw["solve_s"]),
                 "raw_wall_p95_s": p95(raw["wall_s"])})
    return rows, calls, failures


def _hierarchy(ctx, servers: int, rounds: int, with_mono: bool, task, mip_rel_gap: float = 1e-4,
               search: str = "ladder", workers: int = 1, budget: float | None = None
               ) -> tuple[list[dict], list[dict], list[str]]:
    point = Point("servers", servers)
    st = inputs.setting(point)
    forecasts = inputs.epoch_forecasts(servers)
    failures, calls = [], []
    t0 = time.perf_counter()
    opts = st.options.model_copy(update={"cluster_search": search, "workers": workers, "time_budget_s": budget})
    pl = Planner(st.profile, st.inventory, st.slos, options=opts,
                 solve_options=inputs.solve_options(10.0, mip_rel_gap))
    construct_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = run_hierarchy(pl, forecasts[0])
    cold_s = time.perf_counter() - t0
    ok, msg = check_hierarchy(st, first)
    if not ok:
        failures.append(f"(b) {servers} servers: {msg}")
    for f in forecasts[1:]:  # warm-up round
        run_hierarchy(pl, f)
    task.advance()
    for r in range(rounds):
        for i, f in enumerate(forecasts):
            t0 = time.perf_counter()
            plan, clocks, plan_s, inst_s = run_hierarchy(pl, f)
            wall = time.perf_counter() - t0
            calls.append({"target": "b", "backend": "highs", "servers": servers, "mip_rel_gap": mip_rel_gap,
                          "cluster_search": search, "workers": workers, "time_budget_s": budget,
                          "round": r, "forecast": i,
                          "wall_s": wall, "plan_s": plan_s, "instance_s": inst_s, **plan_parts(plan),
                          "bound_s": pl.bound_time_s,
                          "pools": len(plan.pools), "instances": len(clocks), "objective": plan.report.objective,
                          "status": plan.report.status.value})
        task.advance()
    mono_s = mono_status = float("nan")
    if with_mono:
        mpl = Planner(st.profile, st.inventory, st.slos, options=st.options, solve_options=inputs.solve_options(30.0))
        t0 = time.perf_counter()
        mono = mpl.plan_monolithic(forecasts[0])
        mono_s = time.perf_counter() - t0
        mono_status = mono.report.status.value
    task.advance()
    df = pd.DataFrame(calls)
    target = HIER_TARGETS_S[servers] if servers in HIER_TARGETS_S else float("nan")
    parts = {f"{c}_median_s": median(df[c]) for c in
             ("cluster_build_s", "cluster_solve_s", "pool_build_s", "pool_solve_s", "plan_other_s", "instance_s",
              "bound_s")}
    parts["bound_share_median"] = median(df["bound_s"] / df["plan_s"])  # the global bound's share of plan()
    default_gap = mip_rel_gap == inputs.solve_options().mip_rel_gap
    row = {"target": f"(b) hierarchy {servers} servers <= {target * 1e3:.0f} ms"
                     + ("" if default_gap else f" [sensitivity: mip_rel_gap {mip_rel_gap:g}]")
                     + ("" if search == "ladder" else f" [cluster_search {search}]")
                     + ("" if workers == 1 else f" [workers {workers}]")
                     + ("" if budget is None else f" [time_budget_s {budget:g}]"),
           "key": f"b{servers}" + ("" if default_gap else f"_gap{mip_rel_gap:g}")
                  + ("" if search == "ladder" else f"_{search}") + ("" if workers == 1 else f"_w{workers}")
                  + ("" if budget is None else f"_budget{budget * 1e3:g}ms"),
           "mip_rel_gap": mip_rel_gap, "cluster_search": search, "workers": workers, "time_budget_s": budget,
           "servers": servers, "calls": len(df), "pools": float(np.median(df["pools"])),
           "pools_range": f"{df['pools'].min()}-{df['pools'].max()}",
           "instances": float(np.median(df["instances"])), "median_s": median(df["wall_s"]), "p95_s": p95(df["wall_s"]),
           "target_s": target, "met": bool(p95(df["wall_s"]) <= target), "cold_first_call_s": cold_s,
           "planner_construct_s": construct_s, "baseline": "monolithic plan (first forecast)",
           "baseline_median_s": mono_s, "baseline_status": mono_status,
           "ratio_baseline_over_median": mono_s / median(df["wall_s"]) if math.isfinite(mono_s) else float("nan"),
           **parts}
    bad = sorted(set(df["status"]) - {"optimal", "feasible"})
    if bad:
        failures.append(f"(b) {servers} servers: statuses {bad}")
    return [row], calls, failures


@register_study("targets")
def run(ctx) -> list[str]:
    """Planner targets (a) pool level <= 5 ms p95 and >= 10x Pyomo, (b) hierarchy <= 50 / 100 ms."""
    calib = calibrate()
    rounds_a = 2 if ctx.quick else 30
    rounds_b = 1 if ctx.quick else 5
    sizes = (40,) if ctx.quick else (40, 12500)
    # the default (inventory ladder) at each size; sensitivity rows: a looser gap at 12,500 servers,
    # the single-allotment search (PlannerOptions.cluster_search) at 40, and 2 worker threads
    # (PlannerOptions.workers) at both sizes, time budgets (PlannerOptions.time_budget_s) at 40
    variants = [(n, 1e-4, "ladder", 1, None) for n in sizes] + ([] if ctx.quick else [
        (12500, 1e-3, "ladder", 1, None), (40, 1e-4, "single", 1, None), (40, 1e-4, "ladder", 2, None),
        (12500, 1e-4, "ladder", 2, None), (40, 1e-4, "ladder", 1, 0.0), (40, 1e-4, "ladder", 1, 0.03),
        (40, 1e-4, "ladder", 2, 0.0)])
    task = ctx.task("targets", rounds_a + len(variants) * (rounds_b + 2))
    rows, calls, failures = [], [], []
    r, c, f = _pool_level(ctx, rounds_a, task)
    rows += r
    calls += c
    failures += f
    for n, gap, search, workers, budget in variants:
        r, c, f = _hierarchy(ctx, n, rounds_b, with_mono=not ctx.quick and gap == 1e-4 and search == "ladder"
                             and workers == 1 and budget is None, task=task, mip_rel_gap=gap, search=search,
                             workers=workers, budget=budget)
        rows += r
        calls += c
        failures += f
    runs = pd.DataFrame(calls)
    b = runs[runs["target"] == "b"] if len(runs) else runs
    for row in rows:
        if row["key"].startswith("b") and "_gap" in row["key"]:
            obj = b[(b["servers"] == row["servers"]) & (b["workers"] == 1) & b["time_budget_s"].isna()].groupby(["mip_rel_gap", "forecast"])["objective"].median().unstack(0)
            if 1e-4 in obj.columns:
                row["obj_rel_diff_vs_default_gap"] = float((obj[row["mip_rel_gap"]] / obj[1e-4] - 1).max())
        if row["key"].startswith("b") and (row["cluster_search"] != "ladder" or row["time_budget_s"] is not None):
            # how much power the faster search or the budget gives up against the default, per forecast
            same = b[(b["servers"] == row["servers"]) & (b["mip_rel_gap"] == row["mip_rel_gap"])]
            mine = same[(same["cluster_search"] == row["cluster_search"]) & (same["workers"] == row["workers"])
                        & (same["time_budget_s"] == row["time_budget_s"] if row["time_budget_s"] is not None
                           else same["time_budget_s"].isna())]
            ref = same[(same["cluster_search"] == "ladder") & (same["workers"] == 1) & same["time_budget_s"].isna()]
            if len(ref) and len(mine):
                rel = mine.groupby("forecast")["objective"].median() / ref.groupby("forecast")["objective"].median() - 1
                row["obj_rel_diff_vs_ladder"] = float(rel.max())
                row["obj_rel_mean_vs_ladder"] = float(rel.mean())
    df = pd.DataFrame(rows)
    df["calib_median_ms"] = calib["calib_median_ms"]
    df["median_calib_units"] = df["median_s"] * 1e3 / calib["calib_median_ms"]
    df["p95_calib_units"] = df["p95_s"] * 1e3 / calib["calib_median_ms"]
    df["ratio_p95_over_target"] = df["p95_s"] / df["target_s"]
    df["ratio_median_over_target"] = df["median_s"] / df["target_s"]
    ctx.write_csv("targets", df)
    ctx.write_csv("targets_runs", runs)
    if ctx.plots:
        from benchmarks import plots

        plots.plot_targets(df, ctx.figure_path("targets"))
    return failures
