"""PNG plots of replay results (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dynaplan.replay.engine import ReplayResult


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _minutes_index(df, smooth_s: float):
    t = df.index.to_numpy() / 60.0
    dt = (df.index[1] - df.index[0]) if len(df.index) > 1 else 1.0
    k = max(1, int(round(smooth_s / dt)))
    return t, k


def _smooth(x: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or x.size < k:
        return x
    c = np.cumsum(np.r_[0.0, x])
    out = (c[k:] - c[:-k]) / k
    return np.r_[np.full(k - 1, out[0]), out]


def plot_power(results: Sequence[ReplayResult], path: str | Path, *, smooth_s: float = 60.0, title: str = "") -> Path:
    """Cluster power over time, one line per policy (moving average over ``smooth_s``)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 5))
    hours = False
    for r in results:
        t, k = _minutes_index(r.windows, smooth_s)
        hours = t[-1] > 360
        ax.plot(t / 60.0 if hours else t, _smooth(r.windows["power_w"].to_numpy(), k) / 1e3, label=r.policy, lw=1.2)
    ax.set_xlabel("time (h)" if hours else "time (min)")
    ax.set_ylabel(f"cluster GPU power (kW, {smooth_s:g}-s average)")
    ax.set_title(title or "Cluster power by policy")
    ax.grid(alpha=0.3)
    ax.legend(ncol=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_pool_servers(result: ReplayResult, path: str | Path, *, title: str = "") -> Path:
    """Servers per pool over time (stacked) for one policy."""
    plt = _plt()
    ps = result.pool_servers
    fig, ax = plt.subplots(figsize=(11, 5))
    t = ps.index.to_numpy() / 60.0
    hours = t.size and t[-1] > 360
    x = t / 60.0 if hours else t
    if ps.shape[1]:
        ax.stackplot(x, ps.to_numpy().T, labels=[str(c) for c in ps.columns], step="post")
        ax.legend(ncol=5, fontsize=8, loc="upper left")
    ax.plot(x, result.windows["servers"].to_numpy(), color="k", lw=0.8, label="active (incl. booting, draining)")
    ax.set_xlabel("time (h)" if hours else "time (min)")
    ax.set_ylabel("servers")
    ax.set_title(title or f"Servers per pool: {result.policy}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
