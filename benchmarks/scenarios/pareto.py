"""Time against optimality: solve time vs gap to the best known optimum, time limits 1 ms .. 10 s.

For each MILP scenario (pool, cluster, monolithic) at its 40-server point (and the monolithic
one at 400 servers) the built model is solved by every backend under every time limit; the
best known optimum is the least objective any run found, including a reference HiGHS solve with
``mip_rel_gap=0`` and a long limit. The hierarchy (cluster + pools, time limit per solve) is
put on the monolithic panel: its objective is the sum of its pools' objectives, the same model
terms as the monolithic objective, so its gap there is what the hierarchy gives up.

Rows: ``scenario, backend, time_limit_s, solve_s`` (wall of the call), ``status, objective,
bound, gap`` (as the solver reports it) and ``gap_to_best`` = (objective - best) / best.
"""

from __future__ import annotations

import math
import time

import pandas as pd

from benchmarks import inputs
from benchmarks.registry import REGISTRY, Point, register_study
from benchmarks.scenarios.common import HIER_BACKENDS, MILP_BACKENDS
from benchmarks.scenarios.hierarchy import run_hierarchy

LIMITS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
QUICK_LIMITS = (0.001, 0.01, 0.1)
CASES = (("pool", Point("servers", 40)), ("cluster", Point("servers", 40)), ("monolithic", Point("servers", 40)),
         ("monolithic", Point("servers", 400)))
QUICK_CASES = (("pool", Point("servers", 40)), ("cluster", Point("servers", 40)))


def _gap(obj, best):
    if obj is None or best is None or not math.isfinite(obj):
        return float("nan")
    return max(0.0, obj - best) / max(abs(best), 1e-9)


@register_study("pareto")
def run(ctx) -> list[str]:
    """Time against optimality: gap to the best known optimum vs solve time, per backend and time limit."""
    limits = QUICK_LIMITS if ctx.quick else LIMITS
    cases = QUICK_CASES if ctx.quick else CASES
    milp_bs = [b for b in MILP_BACKENDS if ctx.backend_ok(b)]
    hier_bs = [b for b in HIER_BACKENDS if ctx.backend_ok(b)]
    n_mono40 = sum(1 for name, p in cases if name == "monolithic")
    task = ctx.task("pareto", len(cases) * (len(milp_bs) * len(limits) + 1) + n_mono40 * len(hier_bs) * len(limits))
    rows, failures = [], []
    for name, point in cases:
        label = f"{name} {point}"
        case = REGISTRY[name].build(point)
        ref_limit = 2.0 if ctx.quick else 60.0
        ref = case.run("highs", inputs.solve_options(ref_limit, mip_rel_gap=0.0))
        ref_out = case.read(ref)
        task.advance()
        found = [ref_out.objective] if ref_out.objective is not None else []
        part = []
        for b in milp_bs:
            case.run(b, inputs.solve_options(1.0))  # warm-up: imports and first-call costs are not the solver's
            for tl in limits:
                t0 = time.perf_counter()
                try:
                    res = case.run(b, inputs.solve_options(tl))
                    wall = time.perf_counter() - t0
                    out = case.read(res)
                    status, obj, bound, gap = out.status, out.objective, out.bound, out.gap
                    if status in ("optimal", "feasible"):
                        ok, msg = case.check(res)
                        if not ok:
                            failures.append(f"{label} {b} limit {tl}: {msg}")
                except Exception as exc:  # noqa: BLE001
                    wall = time.perf_counter() - t0
                    status, obj, bound, gap = "error", None, None, None
                    failures.append(f"{label} {b} limit {tl}: {type(exc).__name__}: {exc}")
                if obj is not None:
                    found.append(obj)
                part.append({"scenario": label, "backend": b, "time_limit_s": tl, "solve_s": wall, "status": status,
                             "objective": obj, "bound": bound, "gap": gap})
                task.advance()
        if name == "monolithic":
            st = inputs.setting(point)
            for b in hier_bs:
                for tl in limits:
                    opts = inputs.solve_options(tl)
                    pl = inputs.planner(st, b, opts)
                    try:
                        run_hierarchy(pl, st.forecast)  # warm the planner's model caches
                        t0 = time.perf_counter()
                        plan, _, _, _ = run_hierarchy(pl, st.forecast)
                        wall = time.perf_counter() - t0
                        r = plan.report
                        status, obj, bound, gap = r.status.value, r.objective, r.bound, r.gap
                    except Exception as exc:  # noqa: BLE001  (e.g. no solution within a 1 ms limit)
                        wall, status, obj, bound, gap = float("nan"), "no_solution", None, None, None
                        msg = f"{type(exc).__name__}: {exc}"
                        if "time limit" not in msg:
                            failures.append(f"{label} hierarchy {b} limit {tl}: {msg[:200]}")
                    part.append({"scenario": label, "backend": f"hierarchy-{b}", "time_limit_s": tl, "solve_s": wall,
                                 "status": status, "objective": obj, "bound": bound, "gap": gap})
                    task.advance()
        mono_found = [r["objective"] for r in part if r["objective"] is not None
                      and not r["backend"].startswith("hierarchy")]
        best = min(mono_found + found) if (mono_found + found) else None
        for r in part:
            r["best_known"] = best
            r["gap_to_best"] = _gap(r["objective"], best)
            r["reference_status"] = ref_out.status
        rows.extend(part)
    df = pd.DataFrame(rows)
    ctx.write_csv("pareto", df)
    if ctx.plots and len(df):
        from benchmarks import plots

        plots.plot_pareto(df, ctx.figure_path("pareto"))
    return failures
