"""Discretisation error of the load representation: load_segments 1, 2, 3, ... vs the finest grid.

The pool and monolithic models draw each instance's power as a concave piecewise-linear curve
of its utilisation with ``load_segments`` pieces through profile load points
(formulations/pool.md, "Load representation"); with 22 pieces on the default profile (23 load
points) the curve is the profile's own interpolation. For the Azure conversation and code peaks
at 40 and 400 servers, the hierarchical plan (and at 40 servers the monolithic one, 30 s limit)
is made with every ``load_segments`` value and measured by the profile (``power_w``: the
profile's interpolated power at each instance's actual load, as ``check_plan`` recomputes it).

Columns: ``energy_vs_finest`` = power / power on the finest grid solved to optimality - 1
(``reference_segments``; 22 unless the monolithic solve hit its limit there): what the coarser
grid costs in plan quality, ``model_error`` = MILP objective / plan power - 1 (how far the model's own energy
estimate is from the profile's), ``approx_error_bound_w`` (the plan's bound on that error), wall time.
"""

from __future__ import annotations

import time

import pandas as pd

from dynaplan.domain.hardware import H100_80GB
from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import DynaplanError
from dynaplan.planning import Planner, PlannerOptions

from benchmarks import inputs
from benchmarks.registry import register_study
from benchmarks.scenarios.common import check_plans

SEGMENTS = (1, 2, 3, 4, 6, 8, 12, 22)
QUICK_SEGMENTS = (1, 3, 22)
CASES = (("conv@40", inputs.CONV, 40, True), ("code@40", inputs.CODE, 40, True),
         ("conv@400", inputs.CONV, 400, False), ("code@400", inputs.CODE, 400, False))
QUICK_CASES = (("conv@40", inputs.CONV, 40, False),)


@register_study("discretisation")
def run(ctx) -> list[str]:
    """Discretisation error of the load representation (load_segments 1, 2, 3 .. vs 22 = every load point)."""
    segs = QUICK_SEGMENTS if ctx.quick else SEGMENTS
    cases = QUICK_CASES if ctx.quick else CASES
    limit = ctx.time_limit_s or (5.0 if ctx.quick else 30.0)
    task = ctx.task("discretisation", sum(len(segs) * (2 if mono else 1) for *_, mono in cases))
    prof = inputs.default_profile()
    rows, failures = [], []
    for case, trace, servers, with_mono in cases:
        f = inputs.forecast(servers, trace)
        inv = {H100_80GB.name: servers}
        for k in segs:
            modes = ("hierarchical", "monolithic") if with_mono else ("hierarchical",)
            pl = Planner(prof, inv, DEFAULT_SLOS, options=PlannerOptions(load_segments=k),
                         solve_options=inputs.solve_options(limit))
            for mode in modes:
                t0 = time.perf_counter()
                try:
                    plan = pl.plan(f) if mode == "hierarchical" else pl.plan_monolithic(f)
                except DynaplanError as exc:
                    failures.append(f"{case} {mode} load_segments={k}: {exc}")
                    task.advance()
                    continue
                wall = time.perf_counter() - t0
                ok, msg = check_plans(prof, DEFAULT_SLOS, inv, plan)
                if not ok:
                    failures.append(f"{case} {mode} load_segments={k}: {msg}")
                r = plan.report
                rows.append({"case": case, "mode": mode, "load_segments": k, "servers": servers,
                             "power_w": plan.power_w, "objective": r.objective, "status": r.status.value,
                             "gap": r.gap, "wall_s": wall, "approx_error_bound_w": plan.approx_error_bound_w,
                             "n_vars": r.n_vars, "check_ok": ok, "check_msg": msg})
                task.advance()
    df = pd.DataFrame(rows)
    if len(df):
        # reference: the finest grid whose solve was proven optimal (a time-limited solve is no reference)
        opt = df[df["status"] == "optimal"].sort_values("load_segments")
        finest = opt.groupby(["case", "mode"])["power_w"].last()
        df["reference_segments"] = [opt[(opt["case"] == c) & (opt["mode"] == m)]["load_segments"].max()
                                    for c, m in zip(df["case"], df["mode"])]
        df["energy_vs_finest"] = [p / finest.get((c, m), float("nan")) - 1
                                  for c, m, p in zip(df["case"], df["mode"], df["power_w"])]
        df["model_error"] = df["objective"] / df["power_w"] - 1
    ctx.write_csv("discretisation", df)
    if ctx.plots and len(df):
        from benchmarks import plots

        plots.plot_discretisation(df, ctx.figure_path("discretisation"))
    return failures
