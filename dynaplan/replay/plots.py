"""PNG plots of replay results and of trace load (matplotlib, Agg backend).

Every figure is meant to be read at a glance by someone who did not make it: its title says what
is plotted and on what (trace, scale, inventory); axes carry units; the time axis is in minutes,
hours or days by the span; legends sit outside the data; every policy keeps one colour in every
figure (DynamoLLM and Oracle clearly apart); stacked pools are in class order (SS at the bottom)
with the legend in the stack's order (top entry = top band); long series are averaged into at
most :data:`MAX_POINTS` steps so a day of 5-s windows stays readable.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dynaplan.replay.engine import ReplayResult

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
MAX_POINTS = 400
"""Most steps of a time series drawn (longer ones are averaged over equal bins)."""

POLICY_STYLE = {
    "SinglePool": dict(color="#7f7f7f", ls="-"),
    "MultiPool": dict(color="#8c564b", ls="-"),
    "ScaleInst": dict(color="#ff7f0e", ls="-"),
    "ScaleShard": dict(color="#9467bd", ls="-"),
    "ScaleFreq": dict(color="#2ca02c", ls="-"),
    "DynamoLLM": dict(color="#1f77b4", ls="-", lw=1.8),
    "Oracle": dict(color="#000000", ls="--", lw=1.1),
}
CLASS_ORDER = ("SS", "SM", "SL", "MS", "MM", "ML", "LS", "LM", "LL")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def time_axis(seconds: np.ndarray, span_s: float | None = None) -> tuple[np.ndarray, str, float]:
    """Times in minutes (< 3 h), hours (< 3 days) or days: (values, axis label, seconds per unit)."""
    span = float(span_s if span_s is not None else (seconds.max() - seconds.min() if seconds.size else 0.0))
    unit, per = ("min", 60.0) if span < 3 * 3600 else ("h", 3600.0) if span < 3 * 86400 else ("days", 86400.0)
    return np.asarray(seconds, dtype=float) / per, f"time since trace start ({unit})", per


def binned(t_s: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray, float]:
    """Average ``values`` (rows = times, equally spaced) over equal bins so at most ``max_points``
    remain: (bin start times, bin means, bin width in s)."""
    t_s = np.asarray(t_s, dtype=float)
    dt = float(t_s[1] - t_s[0]) if t_s.size > 1 else 1.0
    k = max(1, int(np.ceil(t_s.size / max_points)))
    if k == 1:
        return t_s, values, dt
    n = t_s.size // k * k
    v = np.asarray(values, dtype=float)
    head = v[:n].reshape(n // k, k, *v.shape[1:]).mean(axis=1)
    t = t_s[:n:k]
    if n < t_s.size:  # the remainder as one shorter bin
        head = np.concatenate([head, v[n:].mean(axis=0, keepdims=True)])
        t = np.r_[t, t_s[n]]
    return t, head, dt * k


def step_edges(t: np.ndarray, width: float, end: float | None = None) -> np.ndarray:
    """Bin edges for a step plot: every start and the end of the last bin (so it is drawn too)."""
    last = t[-1] + width if end is None else end
    return np.r_[t, last]


def legend_outside(ax, handles=None, labels=None, title: str | None = None) -> None:
    kw = dict(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, title=title)
    if handles is not None:
        ax.legend(handles, labels, **kw)
    else:
        ax.legend(**kw)


def _sorted_pools(columns) -> list[str]:
    order = {c: i for i, c in enumerate(CLASS_ORDER)}
    return sorted((str(c) for c in columns), key=lambda c: (order.get(c, len(order)), c))


def draw_power(ax, results: Sequence[ReplayResult]) -> None:
    """Cluster power per policy (bin averages, kW)."""
    per = None
    for r in results:
        w = r.windows
        t0 = w.index.to_numpy(dtype=float)
        t, p, width = binned(t0, w["power_w"].to_numpy() / 1e3)
        x, label, per = time_axis(step_edges(t, width), r.summary.duration_s)
        style = POLICY_STYLE.get(r.policy, {})
        ax.stairs(p, x, label=r.policy, baseline=None, **{"lw": 1.2, **style})
    ax.set_ylabel("cluster GPU power (kW)")
    ax.grid(alpha=0.3)
    legend_outside(ax, title="policy")
    return per


def draw_pool_servers(ax, result: ReplayResult) -> None:
    """Servers per pool of one policy, stacked in class order, with the active total."""
    ps = result.pool_servers
    pools = _sorted_pools(ps.columns)
    t0 = ps.index.to_numpy(dtype=float)
    if pools and t0.size:
        t, vals, width = binned(t0, ps[pools].to_numpy(dtype=float))
        edges, label, _ = time_axis(step_edges(t, width), result.summary.duration_s)
        cmap = _plt().get_cmap("tab10")
        bottom = np.zeros(len(t))
        handles = []
        for i, p in enumerate(pools):
            ci = CLASS_ORDER.index(p) if p in CLASS_ORDER else len(CLASS_ORDER) + i
            h = ax.stairs(bottom + vals[:, i], edges, baseline=bottom.copy(), fill=True, color=cmap(ci % 10),
                          alpha=0.85, label=p)
            handles.append(h)
            bottom = bottom + vals[:, i]
        tw = result.windows
        tt, active, w2 = binned(tw.index.to_numpy(dtype=float), tw["servers"].to_numpy(dtype=float))
        e2, _, _ = time_axis(step_edges(tt, w2), result.summary.duration_s)
        line = ax.stairs(active, e2, baseline=None, color="k", lw=0.9, label="active servers\n(incl. booting, draining)")
        handles = [line] + handles[::-1]  # legend top to bottom = stack top to bottom
        legend_outside(ax, handles, [h.get_label() for h in handles], title="pool")
    ax.set_ylabel("servers")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def plot_replay(results: Sequence[ReplayResult], path: str | Path, *, pools_of: str = "DynamoLLM",
                title: str = "", note: str = "") -> Path:
    """One figure: cluster power by policy (top) and servers per pool of ``pools_of`` (bottom)."""
    plt = _plt()
    chosen = next((r for r in results if r.policy.lower() == pools_of.lower()), results[-1])
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(12, 7.5), sharex=True)
    draw_power(a1, results)
    a1.set_title("cluster GPU power by policy", fontsize=10, loc="left")
    draw_pool_servers(a2, chosen)
    a2.set_title(f"servers per pool, {chosen.policy}", fontsize=10, loc="left")
    w = results[0].windows.index.to_numpy(dtype=float)
    _, label, _ = time_axis(w, results[0].summary.duration_s)
    a2.set_xlabel(label)
    a2.set_xlim(left=0)
    fig.suptitle(title or "Replay", fontsize=11)
    lines = textwrap.wrap(note, 190) if note else []
    if lines:
        fig.text(0.01, 0.005, "\n".join(lines), fontsize=7, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.005 + 0.014 * len(lines), 1, 0.97))
    fig.savefig(path, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(path)


def plot_power(results: Sequence[ReplayResult], path: str | Path, *, title: str = "") -> Path:
    """Cluster power over time, one line per policy."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(12, 4.5))
    draw_power(ax, results)
    _, label, _ = time_axis(results[0].windows.index.to_numpy(dtype=float), results[0].summary.duration_s)
    ax.set_xlabel(label)
    ax.set_title(title or "Cluster GPU power by policy", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(path)


def plot_pool_servers(result: ReplayResult, path: str | Path, *, title: str = "") -> Path:
    """Servers per pool over time (stacked, class order) for one policy."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(12, 4.5))
    draw_pool_servers(ax, result)
    _, label, _ = time_axis(result.windows.index.to_numpy(dtype=float), result.summary.duration_s)
    ax.set_xlabel(label)
    ax.set_title(title or f"Servers per pool: {result.policy}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(path)


__all__ = ["CLASS_ORDER", "MAX_POINTS", "PLOT_SUFFIXES", "POLICY_STYLE", "binned", "legend_outside",
           "plot_pool_servers", "plot_power", "plot_replay", "step_edges", "time_axis"]
