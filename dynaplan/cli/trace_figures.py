"""Figures of ``dynaplan trace``: the class mix and token counts (``stats --plot``) and the load by
class over time (``load --plot``). Titles say what is plotted and on which trace; the time axis
is in minutes, hours or days by the span; legends sit outside the data, in the stack's order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dynaplan.cli.outputs import OutputSet
from dynaplan.replay.plots import CLASS_ORDER, MAX_POINTS, legend_outside, time_axis
from dynaplan.workload.aggregate import LoadTable
from dynaplan.workload.trace import Trace


def figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(outs: OutputSet, fig, path: Path) -> None:
    plt = figure()
    try:
        outs.write(path, lambda tmp: fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".").lower()))
    finally:
        plt.close(fig)


def stats_figure(tr: Trace, st):
    """Requests by class (bars) and the input/output token distributions (log histograms)."""
    plt = figure()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    mix = st.class_mix
    a1.bar(mix.index.astype(str), 100 * mix["share"].to_numpy(), color="tab:blue")
    a1.set_xlabel("request class (input length, output length: S / M / L)")
    a1.set_ylabel("share of requests (%)")
    a1.set_title("requests by class", fontsize=10, loc="left")
    a1.grid(alpha=0.3, axis="y")
    for name, tokens, color in (("input", tr.input_tokens, "tab:orange"), ("output", tr.output_tokens, "tab:green")):
        t = np.asarray(tokens, dtype=float)
        t = t[t > 0]
        if t.size:
            bins = np.logspace(0, np.log10(max(t.max(), 10.0)), 60)
            a2.hist(t, bins=bins, histtype="step", lw=1.4, color=color, label=f"{name} tokens")
    a2.set_xscale("log")
    a2.set_xlabel("tokens per request (log scale)")
    a2.set_ylabel("requests per bin")
    a2.set_title("token counts", fontsize=10, loc="left")
    a2.grid(alpha=0.3)
    a2.legend(fontsize=8, frameon=False, loc="upper right")
    kind = "SYNTHETIC trace" if tr.synthetic else "measured trace"
    fig.suptitle(f"{kind} {tr.name}: {st.n_requests:,} requests over {st.duration_s / 3600:.2f} h "
                 f"({st.mean_rate_rps:.3g} req/s mean)", fontsize=11)
    fig.text(0.01, 0.005, tr.label, fontsize=7, color="0.35")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    return fig


def load_figure(load: LoadTable, end_s: float, title: str, footnote: str):
    plt = figure()
    df = load.load_rps
    t_s = df.index.to_numpy(dtype=float)
    values = df.to_numpy(dtype=float)
    k = max(1, int(np.ceil(len(t_s) / MAX_POINTS)))
    if k > 1:  # too many windows to draw one by one: average (mean rates) or take the max (peaks) per bin
        n_bins = int(np.ceil(len(t_s) / k))
        pad = n_bins * k - len(t_s)
        v = np.vstack([values, np.full((pad, values.shape[1]), np.nan)]).reshape(n_bins, k, -1)
        values = np.nanmax(v, axis=1) if load.peak_window_s else np.nanmean(v, axis=1)
        t_s = t_s[::k]
        title += f"; drawn as {'maxima' if load.peak_window_s else 'means'} over {k} windows"
    edges_s = np.r_[t_s, end_s]
    x, label, _ = time_axis(edges_s, end_s)
    fig, ax = plt.subplots(figsize=(12, 4.8))
    cmap = plt.get_cmap("tab10")
    bottom = np.zeros(len(t_s))
    handles = []
    for i, c in enumerate(df.columns):
        v = values[:, i]
        ci = CLASS_ORDER.index(c) if c in CLASS_ORDER else i
        handles.append(ax.stairs(bottom + v, x, baseline=bottom.copy(), fill=True, color=cmap(ci % 10), alpha=0.85,
                                 label=str(c)))
        bottom = bottom + v
    legend_outside(ax, handles[::-1], [h.get_label() for h in handles[::-1]], title="class")
    kind = "peak" if load.peak_window_s else "mean"
    ax.set_xlabel(label)
    ax.set_ylabel("mean load, stacked by class (req/s)" if kind == "mean" else
                  "per-class peak load, stacked (req/s)\n(classes peak at different times)")
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.text(0.01, 0.005, footnote, fontsize=7, color="0.35")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


__all__ = ["figure", "load_figure", "save", "stats_figure"]
