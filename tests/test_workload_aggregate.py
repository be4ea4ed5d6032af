"""Per-window per-class rates and per-epoch peaks on hand-made traces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynaplan.domain.classes import DEFAULT_CLASSES
from dynaplan.errors import ValidationError
from dynaplan.workload import Trace, aggregate_load, classify_trace, epoch_peaks, load_trace, parse_duration_s

SS = (10, 10)  # tokens of an SS request
LL = (2000, 500)


def make(rows, duration_s=None) -> Trace:
    t, i, o = zip(*rows)
    return Trace(arrival_s=np.array(t, float), input_tokens=np.array(i), output_tokens=np.array(o), name="hand",
                 duration_s=duration_s)


@pytest.mark.parametrize("text, seconds", [("5s", 5), ("5min", 300), ("30min", 1800), ("1h", 3600), ("2d", 172800),
                                           ("300", 300), (60, 60), ("250ms", 0.25), ("1.5 min", 90)])
def test_parse_duration(text, seconds):
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("bad", ["5 parsecs", "", "-5s", "0", "min"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValidationError):
        parse_duration_s(bad)


def test_window_rates_known_answer():
    # windows of 10 s over 30 s: SS at 1, 2, 12; LL at 5, 25, 30 (the last arrival ends the trace)
    tr = make([(1, *SS), (2, *SS), (5, *LL), (12, *SS), (25, *LL), (30, *LL)])
    lt = aggregate_load(tr, window_s="10s")
    assert lt.load_rps.index.name == "window_start_s" and lt.load_rps.columns.name == "class"
    assert list(lt.load_rps.columns) == list(DEFAULT_CLASSES.names)
    assert lt.load_rps.index.tolist() == [0.0, 10.0, 20.0]
    assert lt.load_rps["SS"].tolist() == [0.2, 0.1, 0.0]
    assert lt.load_rps["LL"].tolist() == [0.1, 0.0, 0.2]  # arrival at duration counts in the last window
    assert lt.input_tokens_per_s["LL"].tolist() == [200.0, 0.0, 400.0]
    assert lt.output_tokens_per_s["SS"].tolist() == [2.0, 1.0, 0.0]
    assert lt.load_rps.drop(columns=["SS", "LL"]).to_numpy().sum() == 0
    long = lt.long()
    assert long.index.names == ["window_start_s", "class"]
    assert long.loc[(20.0, "LL"), "load_rps"] == 0.2


def test_epoch_peaks_known_answer():
    # 4 requests of SS in second 3 and 1 in second 7 of epoch 0 (10 s); 2 in second 12 of epoch 1.
    rows = [(3.1, *SS), (3.2, *SS), (3.3, *SS), (3.9, *SS), (7.5, *SS), (12.0, *SS), (12.5, *SS), (19.0, *LL)]
    pk = epoch_peaks(make(rows, duration_s=20), epoch_s="10s", inner_window_s="1s")
    assert pk.window_s == 10 and pk.peak_window_s == 1
    assert pk.load_rps["SS"].tolist() == [4.0, 2.0]
    assert pk.load_rps["LL"].tolist() == [0.0, 1.0]
    assert pk.output_tokens_per_s["LL"].tolist() == [0.0, 500.0]
    # with 5-s inner windows: epoch 0 has 4 in [0,5) and 1 in [5,10)
    pk5 = epoch_peaks(make(rows, duration_s=20), epoch_s=10, inner_window_s=5)
    assert pk5.load_rps["SS"].tolist() == [0.8, 0.4]


def test_predicted_classes_move_load():
    tr = make([(0, *SS), (1, *SS)], duration_s=10)
    lt = aggregate_load(tr, np.array([0, 1], dtype=np.int16), window_s=10)
    assert lt.load_rps[["SS", "SM"]].iloc[0].tolist() == [0.1, 0.1]
    with pytest.raises(ValidationError, match="shape"):
        aggregate_load(tr, np.array([0]), window_s=10)
    with pytest.raises(ValidationError, match="0..8"):
        aggregate_load(tr, np.array([0, 9]), window_s=10)
    with pytest.raises(ValidationError, match="multiple"):
        epoch_peaks(tr, epoch_s=10, inner_window_s=3)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1000, allow_nan=False), st.integers(0, 3000), st.integers(0, 800)),
                min_size=1, max_size=60), st.sampled_from([1.0, 7.0, 60.0, 300.0]))
def test_aggregation_conserves_requests_and_tokens(rows, window_s):
    rows = sorted(rows)
    tr = make(rows)
    lt = aggregate_load(tr, window_s=window_s)
    # every window's rate is over the width of it the trace covers (the last may be partial; a
    # trace spanning under 1e-9 of a window, i.e. no time at all, is taken over one whole window)
    n = len(lt.load_rps)
    width = np.full(n, window_s)
    covered = tr.duration_s - (n - 1) * window_s
    if 0 < covered < window_s and not (n == 1 and covered < 1e-9 * window_s):
        width[-1] = covered
    assert np.isfinite(lt.load_rps.to_numpy()).all()
    assert (lt.load_rps.to_numpy() * width[:, None]).sum() == pytest.approx(len(rows))
    assert (lt.input_tokens_per_s.to_numpy() * width[:, None]).sum() == pytest.approx(sum(r[1] for r in rows))
    counts = np.bincount(DEFAULT_CLASSES.class_index(tr.input_tokens, tr.output_tokens), minlength=9)
    np.testing.assert_allclose((lt.load_rps.to_numpy() * width[:, None]).sum(axis=0), counts)
    # a peak of inner windows is at least the epoch mean and at most the epoch count / inner window
    # (a last epoch the trace covers for under half its width shares its mean with the epoch
    # before it, so the two are compared together)
    epoch = window_s * 4
    pk = epoch_peaks(tr, epoch_s=epoch, inner_window_s=window_s).load_rps.to_numpy()
    mean = aggregate_load(tr, window_s=epoch).load_rps.to_numpy()
    tail = tr.duration_s - (len(mean) - 1) * epoch
    if len(mean) > 1 and 0 < tail < epoch / 2:
        pk = np.vstack([pk[:-2], pk[-2:].max(axis=0)])
        mean = mean[:-1]
    assert (pk >= mean - 1e-9).all()


def test_bundled_trace_aggregates_match_pandas_resample():
    tr = load_trace("azure-conv-2023")
    c = classify_trace(tr)
    lt = aggregate_load(tr, c.true_class, window_s="5min")
    frame = pd.DataFrame({"w": (tr.arrival_s // 300) * 300, "c": np.asarray(c.names)[c.true_class]})
    counts = frame.groupby(["w", "c"]).size().unstack(fill_value=0)
    # each window over the width of it the trace covers (its last window may end early)
    expect = counts.div(np.minimum(300.0, tr.duration_s - counts.index.to_numpy()), axis=0)
    got = lt.load_rps.loc[expect.index, expect.columns]
    np.testing.assert_allclose(got.to_numpy(), expect.to_numpy())
    assert lt.label == tr.label and not lt.synthetic


def test_a_partial_last_window_is_divided_by_the_width_it_covers():
    """25 s of trace in 10-s windows: the last window covers 5 s, so its 2 requests are 0.4 req/s
    (not 0.2, as over a full window), the rate every other window of this steady trace has."""
    rows = [(t, *SS) for t in np.arange(0.0, 25.0, 2.5)]
    lt = aggregate_load(make(rows, duration_s=25), window_s=10)
    assert lt.load_rps["SS"].tolist() == pytest.approx([0.4, 0.4, 0.4])
    full = aggregate_load(make(rows, duration_s=30), window_s=10)  # a whole last window: unchanged
    assert full.load_rps["SS"].tolist() == pytest.approx([0.4, 0.4, 0.2])


def test_an_arrival_just_past_a_window_boundary_makes_no_spike():
    """Steady 1 req/s for 20 s, then one arrival 1 ms into a third 10-s window: that sliver is
    joined to the window before it (11 requests over 10.001 s), not a rate of 1,000 req/s."""
    rows = [(t, *SS) for t in np.arange(10.0, 20.0, 1.0)] + [(20.001, *SS)]
    rows = [(t, *SS) for t in np.arange(0.0, 10.0, 1.0)] + rows
    lt = aggregate_load(make(rows), window_s=10)
    assert lt.load_rps["SS"].tolist() == pytest.approx([1.0, 11 / 10.001, 11 / 10.001])
    pk = epoch_peaks(make(rows), epoch_s=30, inner_window_s=10)
    assert pk.load_rps["SS"].tolist() == pytest.approx([11 / 10.001])
    # a last window covered for half its width or more keeps its own rate
    half = [(t, *SS) for t in np.arange(0.0, 15.0, 1.0)]
    assert aggregate_load(make(half, duration_s=15), window_s=10).load_rps["SS"].tolist() == pytest.approx([1.0, 1.0])
