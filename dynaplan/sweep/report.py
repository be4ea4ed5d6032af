"""What a sweep found: a summary, the standard figures, the cost-energy Pareto front.

* :func:`summary` — scenarios by status and, per kept metric, its min / median / max over the
  successful scenarios with the axis values of the best one;
* :func:`plot_metric_vs_axis` — a metric against one axis, one line per value of another axis
  (e.g. cost vs load growth per hardware set); other axes are averaged and the title says so;
* :func:`pareto_front` and :func:`plot_pareto` — the scenarios no other scenario beats on both
  cost and energy (lower is better), drawn over every scenario.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from dynaplan.errors import ValidationError
from dynaplan.replay.plots import _plt
from dynaplan.sweep.store import STATUS_OK

COST, ENERGY = "cost_usd", "energy_kwh"


def read_meta(out: str | Path) -> dict:
    """The ``_sweep.json`` of a results folder ({} if absent)."""
    p = Path(out) / "_sweep.json"
    try:
        return json.loads(p.read_text()) if p.is_file() else {}
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{p}: cannot read ({exc})") from None


def axis_names(df: pd.DataFrame, meta: dict) -> list[str]:
    """The axes of the sweep (from its spec), else the option columns that vary."""
    axes = [a for a in (meta.get("spec") or {}).get("axes", {}) if a in df.columns]
    return axes or [c for c in df.columns if c not in ("scenario_id", "worker", "finished_at", "wall_time_s",
                                                      "error") and df[c].nunique(dropna=False) > 1][:2]


def label(value) -> str:
    """An axis value as a legend label: a JSON list of names as ``a+b``."""
    if isinstance(value, str) and value.startswith("["):
        try:
            return "+".join(map(str, json.loads(value)))
        except ValueError:
            return value
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def metric_columns(df: pd.DataFrame, meta: dict) -> list[str]:
    """The numeric metrics kept by the sweep (its spec's ``metrics``, else its kind's)."""
    from dynaplan.sweep.kinds import KINDS

    spec = meta.get("spec") or {}
    kind = KINDS.get(spec.get("kind", ""))
    kept = spec.get("metrics") or (list(kind.metrics) if kind else [])
    return [c for c in kept if c in df.columns and pd.api.types.is_numeric_dtype(df[c])]


def summary(df: pd.DataFrame, meta: dict) -> tuple[dict, pd.DataFrame]:
    """({status: count}, per metric: min, median, max and the axis values at the min)."""
    counts = df["status"].value_counts().to_dict()
    ok = df[df["status"] == STATUS_OK]
    axes = axis_names(df, meta)
    rows = []
    for m in metric_columns(df, meta):
        col = ok[m].dropna()
        if col.empty:
            continue
        at = ok.loc[col.idxmin()]
        rows.append({"metric": m, "min": col.min(), "median": col.median(), "max": col.max(),
                     "at min": ", ".join(f"{a}={label(at[a])}" for a in axes)})
    return counts, pd.DataFrame(rows, columns=["metric", "min", "median", "max", "at min"])


def pareto_front(cost: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Mask of the points no other point beats on both (lower is better; NaN never on the front)."""
    cost, energy = np.asarray(cost, float), np.asarray(energy, float)
    ok = np.isfinite(cost) & np.isfinite(energy)
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((energy[idx], cost[idx]))]  # by cost, then energy
    e = energy[order]
    best_before = np.concatenate([[np.inf], np.minimum.accumulate(e)[:-1]])
    front = np.zeros(cost.shape, bool)
    front[order[e < best_before]] = True
    return front


def plot_metric_vs_axis(df: pd.DataFrame, metric: str, x: str, by: str | None, path: Path, title: str = "") -> Path:
    """``metric`` against axis ``x``, one line per value of ``by`` (others averaged)."""
    plt = _plt()
    ok = df[df["status"] == STATUS_OK]
    groups = [(None, ok)] if by is None else list(ok.groupby(by, sort=True))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, g in groups:
        line = g.groupby(x, sort=True)[metric].mean()
        xs = line.index if pd.api.types.is_numeric_dtype(line.index) else [label(v) for v in line.index]
        ax.plot(xs, line.to_numpy(), marker="o", label=None if key is None else f"{by}={label(key)}")
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} vs {x}" + (f" per {by}" if by else ""), fontsize=10)
    return _finish(plt, fig, ax, path, legend=by is not None)


def _finish(plt, fig, ax, path: Path, legend: bool) -> Path:
    """Legend outside the axes (when asked), grid, tight layout; write ``path`` and close."""
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_pareto(df: pd.DataFrame, path: Path, title: str = "", color_by: str | None = None) -> Path:
    """Cost against energy of every successful scenario, the Pareto front drawn over them."""
    plt = _plt()
    ok = df[df["status"] == STATUS_OK]
    front = pareto_front(ok[COST].to_numpy(), ok[ENERGY].to_numpy())
    fig, ax = plt.subplots(figsize=(7, 4.2))
    groups = [(None, ok)] if color_by is None else list(ok.groupby(color_by, sort=True))
    for key, g in groups:
        ax.scatter(g[ENERGY], g[COST], s=18, alpha=0.7, label=None if key is None else f"{color_by}={label(key)}")
    f = ok[front].sort_values(ENERGY)
    ax.step(f[ENERGY], f[COST], where="post", color="black", lw=1.0)
    ax.scatter(f[ENERGY], f[COST], s=70, facecolors="none", edgecolors="black", lw=1.2,
               label=f"Pareto front ({len(f)} scenario{'s' if len(f) != 1 else ''})")
    ax.set_xlabel("energy (kWh)")
    ax.set_ylabel("cost (USD)")
    ax.set_title(title or f"cost vs energy, {len(ok)} scenarios", fontsize=10)
    return _finish(plt, fig, ax, path, legend=True)


def standard_figures(df: pd.DataFrame, meta: dict, folder: Path, metric: str | None = None, x: str | None = None,
                     by: str | None = None) -> list[Path]:
    """The metric-vs-axis figure and, when cost and energy are kept, the Pareto figure."""
    axes = axis_names(df, meta)
    for flag, name in (("--x", x), ("--by", by)):
        if name is not None and name not in df.columns:
            raise ValidationError(f"{flag} {name!r}: not a column of the results; axes: {', '.join(axes)}")
    metrics = metric_columns(df, meta)
    metric = metric or (COST if COST in metrics else (metrics[0] if metrics else None))
    if metric is None or metric not in df.columns:
        raise ValidationError(f"--metric {metric!r}: not a metric of the results; metrics: {', '.join(metrics)}")
    numeric = [a for a in axes if pd.api.types.is_numeric_dtype(df[a])]
    x = x or (numeric[0] if numeric else (axes[0] if axes else None))
    if x is None:
        raise ValidationError("the sweep has no axes to plot against; give --x")
    by = by or next((a for a in axes if a != x), None)
    folder.mkdir(parents=True, exist_ok=True)
    name = (meta.get("spec") or {}).get("name", "sweep")
    rest = [a for a in axes if a not in (x, by)]
    note = f" (mean over {', '.join(rest)})" if rest else ""
    paths = [plot_metric_vs_axis(df, metric, x, by, folder / f"{metric}_vs_{x}.png",
                                 f"{name}: {metric} vs {x}" + (f" per {by}" if by else "") + note)]
    if COST in df.columns and ENERGY in df.columns and df[[COST, ENERGY]].notna().all(axis=1).any():
        paths.append(plot_pareto(df, folder / "pareto_cost_energy.png", f"{name}: cost vs energy", color_by=by))
    return paths


__all__ = ["axis_names", "label", "pareto_front", "plot_metric_vs_axis", "plot_pareto", "read_meta",
           "standard_figures", "summary"]
