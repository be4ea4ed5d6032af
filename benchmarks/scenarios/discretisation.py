"""Discretisation of the load representation: load_segments 1, 2, 3, ... against exact pieces.

The pool and monolithic models draw each instance's power as a piecewise-linear curve of its
utilisation with ``load_segments`` pieces through profile load points (formulations/pool.md,
"Load representation"); the default (``load_segments=None``: one piece per load segment, and
the flat hold below the lightest load) is the profile's own interpolation, exact for
single-class instances. For the Azure conversation and code peaks at 40 and 400 servers the hierarchical plan
(and at 40 servers the monolithic one, 30 s limit) is made with every ``load_segments`` value and
measured by the profile (``power_w``: the profile's interpolated power at each instance's actual
load, as ``check_plan`` recomputes it).

Rows ``pieces`` = ``exact`` are the default (``load_segments`` None: exact pieces, and the exact
pool DP for single-class pools); ``load_segments`` = 22 puts chords through every load point but
keeps the MILP path. Columns: ``energy_vs_finest`` = power / power of the same mode with exact
pieces - 1, what a coarser grid costs in plan quality; ``global_bound_w`` (the plan's bound, formulations/bound.md,
valid for the profile's problem) and ``gap_to_bound`` = (power - bound) / power;
``best_w`` = the least power of any plan of the case and ``energy_vs_best``; at 40 servers
``reference_w`` = the monolithic plan on exact pieces (the monolithic model's optimum when
``reference_milp_status`` is ``optimal``; a time-limited one otherwise) and
``energy_vs_reference``. For monolithic rows the MILP's own figures (``milp_status``,
``milp_objective``, ``milp_bound``) and ``model_error`` = MILP objective / plan power - 1 (how far
the model's energy estimate is from the profile's); ``approx_error_bound_w`` (the plan's bound
on that error), wall time.
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
from benchmarks.scenarios.common import check_plans, record_milp_reports

SEGMENTS = (1, 2, 3, 4, 6, 8, 12, 22, None)  # None: exact pieces (the default; single-class pools by the DP)
QUICK_SEGMENTS = (1, 3, None)
CASES = (("conv@40", inputs.CONV, 40, True), ("code@40", inputs.CODE, 40, True),
         ("conv@400", inputs.CONV, 400, False), ("code@400", inputs.CODE, 400, False))
QUICK_CASES = (("conv@40", inputs.CONV, 40, False),)


@register_study("discretisation")
def run(ctx) -> list[str]:
    """Discretisation error of the load representation (load_segments 1, 2, 3 .. 22 vs exact pieces)."""
    segs = QUICK_SEGMENTS if ctx.quick else SEGMENTS
    cases = QUICK_CASES if ctx.quick else CASES
    limit = ctx.time_limit_s or (5.0 if ctx.quick else 30.0)
    task = ctx.task("discretisation", sum(len(segs) * (2 if mono else 1) for *_, mono in cases))
    label = {k: "exact" if k is None else str(k) for k in segs}
    prof = inputs.default_profile()
    rows, failures = [], []
    for case, trace, servers, with_mono in cases:
        f = inputs.forecast(servers, trace)
        inv = {H100_80GB.name: servers}
        for k in segs:
            modes = ("hierarchical", "monolithic") if with_mono else ("hierarchical",)
            pl = Planner(prof, inv, DEFAULT_SLOS, options=PlannerOptions(load_segments=k),
                         solve_options=inputs.solve_options(limit))
            milp_reports = record_milp_reports(pl)
            for mode in modes:
                t0 = time.perf_counter()
                milp_reports.clear()
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
                milp = milp_reports[-1] if mode == "monolithic" and milp_reports else None
                rows.append({"case": case, "mode": mode, "load_segments": k, "pieces": label[k], "servers": servers,
                             "power_w": plan.power_w, "objective": r.objective, "status": r.status.value,
                             "gap": r.gap, "global_bound_w": r.bound, "wall_s": wall,
                             "approx_error_bound_w": plan.approx_error_bound_w, "n_vars": r.n_vars,
                             "milp_status": milp.status.value if milp else None,
                             "milp_objective": milp.objective if milp else None,
                             "milp_bound": milp.bound if milp else None, "check_ok": ok, "check_msg": msg})
                task.advance()
    df = pd.DataFrame(rows)
    if len(df):
        exact_rows = df["pieces"] == "exact"
        exact = df[exact_rows].set_index(["case", "mode"])["power_w"]
        df["energy_vs_finest"] = [p / exact.get((c, m), float("nan")) - 1
                                  for c, m, p in zip(df["case"], df["mode"], df["power_w"])]
        df["gap_to_bound"] = (df["power_w"] - df["global_bound_w"]) / df["power_w"]
        df["best_w"] = df.groupby("case")["power_w"].transform("min")
        df["energy_vs_best"] = df["power_w"] / df["best_w"] - 1
        ref = df[(df["mode"] == "monolithic") & exact_rows].set_index("case")
        df["reference_w"] = df["case"].map(ref["power_w"])
        df["reference_milp_status"] = df["case"].map(ref["milp_status"])
        df["energy_vs_reference"] = df["power_w"] / df["reference_w"] - 1
        df["model_error"] = df["milp_objective"].astype(float) / df["power_w"] - 1
        below = df[df["power_w"] < df["global_bound_w"] * (1 - 1e-6)]
        failures += [f"{c} {m} load_segments={k}: power {p:.6f} W below the global bound {b:.6f} W"
                     for c, m, k, p, b in below[["case", "mode", "pieces", "power_w", "global_bound_w"]]
                     .itertuples(index=False, name=None)]
    ctx.write_csv("discretisation", df)
    if ctx.plots and len(df):
        from benchmarks import plots

        plots.plot_discretisation(df, ctx.figure_path("discretisation"))
    return failures
