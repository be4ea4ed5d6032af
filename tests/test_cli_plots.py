"""Figures: time axes by span, long series binned, the last (partial) window drawn, legends outside."""

from __future__ import annotations

import numpy as np
import pytest

from dynaplan.replay.plots import MAX_POINTS, binned, step_edges, time_axis


@pytest.mark.parametrize("span_s, unit, per", [(3600, "min", 60.0), (86400, "h", 3600.0), (7 * 86400, "days", 86400.0)])
def test_time_axis_unit_follows_the_span(span_s, unit, per):
    x, label, got = time_axis(np.array([0.0, span_s]))
    assert got == per and label.endswith(f"({unit})") and x[-1] == pytest.approx(span_s / per)


def test_binned_keeps_the_mean_and_at_most_max_points():
    t = np.arange(17_280) * 5.0  # a day of 5-s windows
    v = np.random.default_rng(0).random((t.size, 3))
    tb, vb, width = binned(t, v)
    assert len(tb) <= MAX_POINTS + 1 and vb.shape == (len(tb), 3)
    assert width == pytest.approx(5.0 * np.ceil(t.size / MAX_POINTS))
    k = int(np.ceil(t.size / MAX_POINTS))
    n_full = t.size // k
    assert (vb[:n_full] * k).sum() + v[n_full * k:].mean(axis=0).sum() * (t.size - n_full * k) == pytest.approx(v.sum())
    edges = step_edges(tb, width)
    assert len(edges) == len(tb) + 1 and edges[-1] == pytest.approx(tb[-1] + width)


def test_load_figure_draws_every_window_up_to_the_trace_end():
    from dynaplan.cli.trace import _complete_last_window
    from dynaplan.cli.trace_figures import load_figure
    from dynaplan.workload.aggregate import aggregate_load
    from dynaplan.workload.loading import load_trace

    tr = load_trace("azure-code-2023")
    lt, end_s = _complete_last_window(aggregate_load(tr, window_s=300), tr)
    assert len(lt.load_rps) == 12 and end_s == pytest.approx(tr.duration_s)
    fig = load_figure(lt, end_s, "title", "footnote")
    ax = fig.axes[0]
    assert ax.get_xlim()[1] == pytest.approx(tr.duration_s / 60)  # minutes: the 12th window is drawn
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 >= ax.get_window_extent().x1 - 1  # outside
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[0] == "LL" and labels[-1] == "SS"  # top of the legend = top of the stack


def test_replay_figure_keeps_policy_colours_apart():
    from dynaplan.replay.plots import POLICY_STYLE

    assert POLICY_STYLE["DynamoLLM"]["color"] != POLICY_STYLE["Oracle"]["color"]
    assert POLICY_STYLE["Oracle"]["ls"] != POLICY_STYLE["DynamoLLM"]["ls"]
    assert len({s["color"] for s in POLICY_STYLE.values()}) == len(POLICY_STYLE)
