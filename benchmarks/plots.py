"""PNG figures of the benchmark results (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.backends import ALL_BACKENDS  # noqa: E402

# one colour per solver backend (from dynaplan.solvers.Backend, then the external ones), then the
# steps that are not solvers
_COLORS = {b: f"C{i}" for i, b in enumerate(ALL_BACKENDS + ("numpy", "hierarchy"))}



def _finish(fig, title: str, path: Path) -> None:
    """Title, lay out, write (110 dpi) and close a figure."""
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

def _slope(slopes: pd.DataFrame, dim: str, backend: str, phase: str) -> float:
    s = slopes[(slopes["dimension"] == dim) & (slopes["backend"] == backend) & (slopes["phase"] == phase)]
    return float(s["slope"].iloc[0]) if len(s) else float("nan")


def plot_sweep(summary: pd.DataFrame, slopes: pd.DataFrame, name: str, path: Path) -> None:
    """One panel per dimension: median build (dashed, shared by the backends) and solve (solid) time vs size, log-log,
    with the fitted slope of each line in the legend; failed checks marked x."""
    dims = list(dict.fromkeys(summary["dimension"]))
    cols = min(3, len(dims))
    rows = int(np.ceil(len(dims) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    for ax, dim in zip(axes.flat, dims):
        g = summary[summary["dimension"] == dim]
        for b, gb in g.groupby("backend", sort=False):
            gb = gb.sort_values("value")
            c = _COLORS.get(b, None)
            ax.plot(gb["value"], gb["solve_median_s"] * 1e3, "o-", color=c,
                    label=f"{b} solve (slope {_slope(slopes, dim, b, 'solve'):.2f})")
            if b == g["backend"].iloc[0]:  # one build per repeat, shared by every backend
                ax.plot(gb["value"], gb["build_median_s"] * 1e3, "s--", color="0.4",
                        label=f"build (slope {_slope(slopes, dim, b, 'build'):.2f})")
            bad = gb[~gb["check_ok"].astype(bool)]
            if len(bad):
                ax.plot(bad["value"], bad["solve_median_s"] * 1e3, "x", color="k", ms=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(dim)
        ax.set_ylabel("median time (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(dims):]:
        ax.axis("off")
    _finish(fig, f"{name}: build and solve time vs size (log-log; x = failed check)", path)


def plot_pareto(df: pd.DataFrame, path: Path) -> None:
    """Gap of each plan's true power to the exact optimum (pool) or to the monolithic reference
    (cluster, monolithic) against solve time, one panel per scenario, one line per backend; the
    dotted line is the valid lower bound's distance below the reference."""
    names = list(dict.fromkeys(df["scenario"]))
    cols = min(2, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.5 * rows), squeeze=False)
    floor = 1e-7
    for ax, name in zip(axes.flat, names):
        g = df[df["scenario"] == name]
        gap = g["gap_to_exact"].where(g["gap_to_exact"].notna(), g["gap_to_reference"])
        for b, gb in g.groupby("backend", sort=False):
            gb = gb.sort_values("time_limit_s")
            y_all = gap.loc[gb.index]
            ok = y_all.notna()
            y = np.maximum(y_all[ok].to_numpy(float), floor)
            hier = b.startswith("hierarchy-")
            color = _COLORS.get(b.removeprefix("hierarchy-"))
            ax.plot(gb.loc[ok, "solve_s"], y, "s--" if hier else "o-", color=color, alpha=0.6 if hier else 1.0,
                    label=b)
            none = gb[~ok]
            if len(none):
                ax.plot(none["solve_s"], np.full(len(none), 1.0), "v", color=color, alpha=0.5)
        ref, lb = g["reference_w"].iloc[0], g["lower_bound_w"].iloc[0]
        proven = bool(g["reference_proven"].iloc[0])
        if not proven and np.isfinite(ref) and np.isfinite(lb) and ref > lb:
            ax.axhline((ref - lb) / ref, color="k", ls=":", lw=1, label="reference - lower bound")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(floor / 2, 2.0)
        ax.set_xlabel("solve wall time (s)")
        ax.set_ylabel(("gap to the exact optimum" if proven else "gap to the monolithic reference")
                      + f" (true power; floor {floor:g})")
        ax.set_title(name, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    _finish(fig, "Time against optimality (time limits 1 ms .. 10 s; triangles at 1 = no solution)", path)


def plot_hier_vs_mono(df: pd.DataFrame, path: Path) -> None:
    """Energy of the hierarchical plan over the monolithic one, and the time ratio, per corpus case."""
    d = df.reset_index(drop=True)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
    x = np.arange(len(d))
    a1.bar(x - 0.2, (d["energy_ratio"] - 1) * 100, 0.4, color="C0", label="planner's accounting")
    if "energy_ratio_mix" in d:
        a1.bar(x + 0.2, (d["energy_ratio_mix"] - 1) * 100, 0.4, color="C2", label="re-priced class by class")
    a1.axhline(1.0, color="k", ls="--", lw=1, label="1% target")
    a1.set_yscale("symlog", linthresh=1.0)
    a1.set_xticks(x)
    a1.set_xticklabels(d["case"], rotation=75, fontsize=6)
    a1.set_ylabel("hierarchical / monolithic energy - 1 (%)")
    a1.legend(fontsize=7)
    a2.bar(x, d["mono_wall_s"] / d["hier_wall_s"], color="C1")
    a2.set_yscale("log")
    a2.set_xticks(x)
    a2.set_xticklabels(d["case"], rotation=75, fontsize=6)
    a2.set_ylabel("monolithic / hierarchical wall time")
    _finish(fig, "Hierarchical vs monolithic on the forecast corpus", path)


def plot_discretisation(df: pd.DataFrame, path: Path) -> None:
    """Plan energy against the plan on exact pieces, and the monolithic model's own error, vs
    load_segments (exact pieces drawn at the right-hand end)."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    finite = df["load_segments"].dropna()
    x_exact = 1.6 * float(finite.max()) if len(finite) else 1.0
    x = df["load_segments"].astype(float).fillna(x_exact)
    for (case, mode), g in df.groupby(["case", "mode"], sort=False):
        g = g.assign(_x=x.loc[g.index]).sort_values("_x")
        ls = "-" if mode == "hierarchical" else "--"
        a1.plot(g["_x"], g["energy_vs_finest"] * 100, "o" + ls, label=f"{case} {mode}")
        if g["model_error"].notna().any():
            a2.plot(g["_x"], g["model_error"].abs() * 100, "o" + ls, label=f"{case} {mode}")
    a1.set_ylabel("plan energy / plan on exact pieces - 1 (%)")
    a2.set_yscale("symlog", linthresh=1e-3)
    a2.set_ylabel("|monolithic MILP objective / profile power - 1| (%)")
    ticks = sorted(set(finite.astype(int))) + [x_exact]
    for a in (a1, a2):
        a.set_xscale("log")
        a.set_xticks(ticks)
        a.set_xticklabels([str(t) for t in ticks[:-1]] + ["exact"], fontsize=7)
        a.set_xlabel("load_segments (pieces per power curve)")
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=6)
    _finish(fig, "Discretisation of the load representation", path)


def plot_targets(rows: pd.DataFrame, path: Path) -> None:
    """Measured p95 and median against each timing target (log scale)."""
    d = rows[rows["target_s"].notna()].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    x = np.arange(len(d))
    ax.bar(x - 0.2, d["median_s"] * 1e3, 0.4, label="median")
    ax.bar(x + 0.2, d["p95_s"] * 1e3, 0.4, label="p95")
    ax.scatter(x, d["target_s"] * 1e3, marker="_", s=900, color="k", label="target", zorder=3)
    ax.set_xticks(x)
    ax.set_xticklabels(d["target"], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7)
    _finish(fig, "Planner timing targets", path)
