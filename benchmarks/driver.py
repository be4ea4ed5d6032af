"""Drivers: run a sweep scenario (build timed apart from solve, repeated, per backend) or a study.

For every point of a sweep and every backend the driver

1. calls ``build(point)`` once untimed (memoised inputs are made here) and, if the scenario asks
   for it, runs each backend once untimed (imports, JIT-free caches, the Planner's model cache);
2. then ``repeats`` times: times ``build(point)``, and with that case times ``run(backend)`` for
   every backend in turn (interleaved, so drift of a shared machine hits all backends alike);
3. reads each run's :class:`~benchmarks.registry.Outcome` and checks the first one per backend
   (untimed), and records every run (``<scenario>_runs.csv``) and per (point, backend) the
   medians and p95 (``<scenario>.csv``), with log-log slopes per dimension (``<scenario>_slopes.csv``).

A run that raises is recorded with status ``error`` and the exception as its check message; the
sweep goes on.

A time-limited solve that found no solution (status ``no_solution``) is a valid outcome, not a
failed check: whether a solver finds an incumbent within a few seconds depends on the machine's
speed and load, and a benchmark records that rather than failing on it. Its check verifies only
that the status is consistent (no objective claimed without a solution); its bound still meets the
claim check against the other backends' verified solutions. ``check_ok`` therefore means "every
run's result is what it says it is"; ``solved`` says whether every run found a solution.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.backends import ALL_BACKENDS, REFERENCE_BACKEND, available
from benchmarks.inputs import solve_options
from benchmarks.registry import Outcome, Point, SweepScenario

OK_STATUSES = ("optimal", "feasible", "done")  # a solution (or, for steps without a solver, a result)
HONEST_STATUSES = OK_STATUSES + ("no_solution",)  # valid outcomes of a time-limited solve


@dataclass
class Context:
    """What a scenario or study gets from the command line: output dir, mode, overrides, progress."""

    out: Path
    quick: bool = False
    repeats: int | None = None
    time_limit_s: float | None = None
    backends: tuple[str, ...] | None = None
    plots: bool = True
    progress: object | None = None  # rich.progress.Progress
    log: Callable[[str], None] = print
    written: list[Path] = field(default_factory=list)

    def task(self, description: str, total: int) -> "Task":
        return Task(self.progress, description, total)

    def backend_ok(self, backend: str) -> bool:
        """Installed, and selected by ``--backend`` (steps without a solver, e.g. ``numpy``, always run)."""
        chosen = self.backends is None or backend in self.backends or backend not in ALL_BACKENDS
        return chosen and available(backend)

    def write_csv(self, name: str, df: pd.DataFrame) -> Path:
        path = self.out / f"{name}.csv"
        df.to_csv(path, index=False, float_format="%.6g")
        self.written.append(path)
        return path

    def figure_path(self, name: str) -> Path:
        path = self.out / f"{name}.png"
        self.written.append(path)
        return path


class Task:
    """A progress-bar task (a no-op without a progress bar)."""

    def __init__(self, progress, description: str, total: int):
        self.progress = progress
        self.id = progress.add_task(description, total=max(total, 1)) if progress is not None else None

    def advance(self, n: int = 1) -> None:
        if self.progress is not None:
            self.progress.advance(self.id, n)

    def done(self) -> None:
        if self.progress is not None:
            task = self.progress.tasks[[t.id for t in self.progress.tasks].index(self.id)]
            self.progress.update(self.id, completed=task.total)


def p95(values: Iterable[float]) -> float:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.percentile(v, 95)) if v else float("nan")


def median(values: Iterable[float]) -> float:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.median(v)) if v else float("nan")


_RANK = {"optimal": 0, "done": 0, "feasible": 1, "no_solution": 2, "infeasible": 3, "error": 4}


def worst_status(statuses: Iterable[str]) -> str:
    return max(statuses, key=lambda s: _RANK.get(s, 5), default="error")


def fit_slope(x, y) -> tuple[float, float, int]:
    """Least-squares slope of log10(y) on log10(x), its R^2 and the number of points used."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = np.log10(x[keep]), np.log10(y[keep])
    if len(np.unique(x)) < 2:
        return float("nan"), float("nan"), int(keep.sum())
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss if ss > 0 else 1.0
    return float(b), r2, int(keep.sum())


def _error_outcome(exc: BaseException) -> tuple[Outcome, str]:
    msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return Outcome(status="error"), msg[:500]


def run_sweep(sc: SweepScenario, ctx: Context) -> pd.DataFrame:
    """Run every point x backend of ``sc``; write ``<name>.csv``, ``<name>_runs.csv`` and ``<name>_slopes.csv``."""
    quick = ctx.quick
    repeats = ctx.repeats or (sc.quick_repeats if quick else sc.repeats)
    tl = ctx.time_limit_s or (sc.quick_time_limit_s if quick else sc.time_limit_s)
    opts = solve_options(tl)
    plan = []
    for p in sc.points(quick):
        bs = tuple(b for b in sc.backends_for(p, quick) if ctx.backend_ok(b))
        if bs:
            plan.append((p, bs))
    warm = 1 if sc.warmup else 0
    task = ctx.task(sc.name, sum(len(bs) * (repeats + warm) + 1 for _, bs in plan))
    runs: list[dict] = []
    checks: dict = {}
    infos: dict = {}
    firsts: dict = {}
    for p, bs in plan:
        try:
            case = sc.build(p)  # untimed: memoised inputs are made here
        except Exception as exc:  # noqa: BLE001 - recorded, the sweep goes on
            out, msg = _error_outcome(exc)
            ctx.log(f"[red]{sc.name} {p}: build failed: {msg}[/red]")
            for b in bs:
                checks[(p, b)] = (False, f"build failed: {msg}")
                runs.append(_run_row(sc, p, b, 0, float("nan"), float("nan"), out, tl))
            task.advance(len(bs) * (repeats + warm) + 1)
            continue
        infos[p] = dict(case.info)
        task.advance()
        if warm:
            for b in bs:
                t0 = time.perf_counter()
                try:
                    res = case.run(b, opts)
                    firsts[(p, b)] = time.perf_counter() - t0
                    checks[(p, b)] = _safe_check(case, res)
                except Exception as exc:  # noqa: BLE001
                    firsts[(p, b)] = time.perf_counter() - t0
                    _, msg = _error_outcome(exc)
                    checks[(p, b)] = (False, msg)
                task.advance()
        for r in range(repeats):
            t0 = time.perf_counter()
            try:
                case = sc.build(p)
                build_s = time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001
                out, msg = _error_outcome(exc)
                for b in bs:
                    checks.setdefault((p, b), (False, f"build failed: {msg}"))
                    runs.append(_run_row(sc, p, b, r, float("nan"), float("nan"), out, tl))
                task.advance(len(bs))
                continue
            for b in bs:
                t0 = time.perf_counter()
                try:
                    res = case.run(b, opts)
                    solve_s = time.perf_counter() - t0
                    out = case.read(res)
                    if (p, b) not in checks:
                        checks[(p, b)] = _safe_check(case, res)
                    elif out.status == "no_solution" and not check_no_solution(out)[0]:
                        checks[(p, b)] = check_no_solution(out)
                except Exception as exc:  # noqa: BLE001
                    solve_s = time.perf_counter() - t0
                    out, msg = _error_outcome(exc)
                    checks.setdefault((p, b), (False, msg))
                runs.append(_run_row(sc, p, b, r, build_s, solve_s, out, tl))
                task.advance()
    task.done()
    runs_df = pd.DataFrame(runs)
    summary = summarise_runs(runs_df, checks, infos, firsts, compare_claims=sc.same_model)
    ctx.write_csv(f"{sc.name}_runs", runs_df)
    ctx.write_csv(sc.name, summary)
    slopes = slopes_of(summary)
    ctx.write_csv(f"{sc.name}_slopes", slopes)
    if ctx.plots and not summary.empty:
        from benchmarks import plots

        plots.plot_sweep(summary, slopes, sc.name, ctx.figure_path(f"{sc.name}_scaling"))
    return summary


def check_no_solution(out: Outcome) -> tuple[bool, str]:
    """The check of a run that ended without a solution: honest when it claims no objective."""
    if out.objective is not None and not (isinstance(out.objective, float) and math.isnan(out.objective)):
        return False, f"status no_solution but objective {out.objective!r} claimed"
    if out.gap is not None and not (isinstance(out.gap, float) and math.isnan(out.gap)):
        return False, f"status no_solution but gap {out.gap!r} claimed"
    return True, "no solution within the time limit (recorded, not a failure)"


def _safe_check(case, res) -> tuple[bool, str]:
    """``case.check`` of a result with a solution; :func:`check_no_solution` of one without."""
    try:
        out = case.read(res)
        if out.status == "no_solution":
            return check_no_solution(out)
        ok, msg = case.check(res)
        return bool(ok), str(msg)[:500]
    except Exception as exc:  # noqa: BLE001
        return False, f"check raised {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"[:500]


def _run_row(sc, p, backend, repeat, build_s, solve_s, out: Outcome, tl) -> dict:
    row = {"scenario": sc.name, "dimension": p.dimension, "value": p.value, "backend": backend, "repeat": repeat,
           "time_limit_s": tl, "build_s": build_s, "solve_s": solve_s, "total_s": build_s + solve_s,
           "status": out.status, "objective": out.objective, "bound": out.bound, "gap": out.gap}
    row.update({f"part_{k}": v for k, v in out.parts_s.items()})
    row.update({f"m_{k}": v for k, v in out.metrics.items()})
    return row


def summarise_runs(runs: pd.DataFrame, checks: dict, infos: dict, firsts: dict, compare_claims: bool = True
                   ) -> pd.DataFrame:
    """One row per (dimension, value, backend): medians and p95 of the times, results, checks."""
    if runs.empty:
        return pd.DataFrame()
    rows = []
    part_cols = [c for c in runs.columns if c.startswith("part_")]
    metric_cols = [c for c in runs.columns if c.startswith("m_")]
    for (dim, val, b), g in runs.groupby(["dimension", "value", "backend"], sort=False):
        p = Point(dim, val)
        ok, msg = checks.get((p, b), (False, "not checked"))
        row = {"scenario": g["scenario"].iloc[0], "dimension": dim, "value": val, "backend": b,
               "repeats": len(g), "time_limit_s": g["time_limit_s"].iloc[0],
               "build_median_s": median(g["build_s"]), "build_p95_s": p95(g["build_s"]),
               "solve_median_s": median(g["solve_s"]), "solve_p95_s": p95(g["solve_s"]),
               "total_median_s": median(g["total_s"]), "total_p95_s": p95(g["total_s"]),
               "first_run_s": firsts.get((p, b), float("nan")),
               "status": worst_status(g["status"]), "objective": median(g["objective"]),
               "bound": median(g["bound"]), "gap": max((x for x in g["gap"] if pd.notna(x)), default=float("nan")),
               "check_ok": ok and all(s in HONEST_STATUSES for s in g["status"]), "check_msg": msg,
               "solved": all(s in OK_STATUSES for s in g["status"])}
        if ok and not row["check_ok"]:
            row["check_msg"] = f"statuses {sorted(set(g['status']))}"
        for c in part_cols:
            row[f"{c}_median_s"] = median(g[c])
        for c in metric_cols:
            vals = g[c].dropna()
            row[c] = vals.iloc[-1] if len(vals) else None
        row.update({f"info_{k}": v for k, v in infos.get(p, {}).items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    # the same point on the HiGHS fast path: time ratio and objective difference
    ref = df[df["backend"] == REFERENCE_BACKEND].set_index(["dimension", "value"])
    ratio, diff = [], []
    for _, r in df.iterrows():
        key = (r["dimension"], r["value"])
        if key in ref.index:
            h = ref.loc[key]
            ratio.append(r["solve_median_s"] / h["solve_median_s"] if h["solve_median_s"] > 0 else float("nan"))
            o, ho = r["objective"], h["objective"]
            diff.append((o - ho) / max(abs(ho), 1e-9) if pd.notna(o) and pd.notna(ho) else float("nan"))
        else:
            ratio.append(float("nan"))
            diff.append(float("nan"))
    df["solve_ratio_vs_highs"] = ratio
    df["obj_rel_diff_vs_highs"] = diff
    # a backend's claims against the best solution any backend found and verified at the same point:
    # its bound must not exceed it, and an 'optimal' status must be within the requested gap of it
    # (only where every backend solves the identical model)
    verified = df[df["check_ok"].astype(bool) & df["objective"].notna()]
    best = verified.groupby(["dimension", "value"])["objective"].min()
    claim_ok, claim_msg = [], []
    for _, r in df.iterrows():
        b = best.get((r["dimension"], r["value"]))
        msg = ""
        if compare_claims and b is not None and pd.notna(b):
            tol = 1e-6 * max(1.0, abs(b))
            if pd.notna(r["bound"]) and r["bound"] > b + tol:
                msg = f"bound {r['bound']:.8g} above a verified solution {b:.8g}"
            elif r["status"] == "optimal" and pd.notna(r["objective"]) and r["objective"] > b * (1 + 2e-4) + tol:
                msg = f"'optimal' at {r['objective']:.8g}, {r['objective'] / b - 1:.2%} above a verified solution {b:.8g}"
        claim_ok.append(not msg)
        claim_msg.append(msg)
    df["claim_ok"] = claim_ok
    df["claim_msg"] = claim_msg
    df["noise_solve_p95_over_median"] = df["solve_p95_s"] / df["solve_median_s"]
    return df


def slopes_of(summary: pd.DataFrame) -> pd.DataFrame:
    """Log-log slope of build, solve and total median time against each dimension, per backend."""
    rows = []
    if summary.empty:
        return pd.DataFrame(columns=["scenario", "dimension", "backend", "phase", "slope", "r2", "n",
                                     "x_min", "x_max", "y_min_s", "y_max_s"])
    for (dim, b), g in summary.groupby(["dimension", "backend"], sort=False):
        g = g.sort_values("value")
        for phase in ("build", "solve", "total"):
            y = g[f"{phase}_median_s"].to_numpy(float)
            s, r2, n = fit_slope(g["value"].to_numpy(float), y)
            rows.append({"scenario": g["scenario"].iloc[0], "dimension": dim, "backend": b, "phase": phase,
                         "slope": s, "r2": r2, "n": n, "x_min": g["value"].min(), "x_max": g["value"].max(),
                         "y_min_s": np.nanmin(y) if np.isfinite(y).any() else float("nan"),
                         "y_max_s": np.nanmax(y) if np.isfinite(y).any() else float("nan")})
    return pd.DataFrame(rows)
