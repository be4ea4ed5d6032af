"""Replay inputs: per-window load, rate scaling, profile lookup tables, grid series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dynaplan.domain import DEFAULT_SLOS
from dynaplan.errors import ValidationError
from dynaplan.profiles import Profile
from dynaplan.replay import GridSeries, HourlySeries, read_hourly_series, scale_trace, window_load
from dynaplan.replay.grid import caiso_carbon_intensity, caiso_price
from dynaplan.replay.load import trailing_mean
from dynaplan.replay.tables import ProfileTables
from dynaplan.workload import aggregate_load, classify_trace, load_trace


@pytest.fixture(scope="module")
def conv():
    return load_trace("azure-conv-2023")


def test_joint_window_counts_have_aggregate_loads_marginals(conv):
    cls = classify_trace(conv, seed=3)
    wl = window_load(conv, cls, window_s=5.0, rate_window_s=5.0)
    # aggregate_load divides a partial last window by the width it covers, and joins a last sliver
    # under half a window (this trace ends 1.72 s into its last 5-s window) to the window before
    # it; the replay divides every window by 5 s. So the two last windows compare as one.
    pred = aggregate_load(conv, cls.predicted_class, window_s="5s").load_rps.to_numpy()
    true = aggregate_load(conv, cls.true_class, window_s="5s").load_rps.to_numpy()
    width = np.minimum(5.0, conv.duration_s - 5.0 * np.arange(len(pred)))[:, None]
    assert 0 < width[-1, 0] < 2.5

    def joined(x):  # the last two windows summed
        return np.vstack([x[:-2], x[-2:].sum(axis=0)])

    np.testing.assert_allclose(joined(wl.counts.sum(axis=2)), joined(pred * width), rtol=1e-6)
    np.testing.assert_allclose(joined(wl.counts.sum(axis=1)), joined(true * width), rtol=1e-6)
    np.testing.assert_allclose(wl.predicted_rps()[:-2], (pred * width / 5.0)[:-2], rtol=1e-6)  # no smoothing
    assert wl.counts.sum() == len(conv)
    assert wl.predictor_accuracy == pytest.approx(cls.measured_accuracy)


def test_trailing_mean():
    x = np.arange(10, dtype=float)
    got = trailing_mean(x, 3)
    want = [0, 0.5, 1, 2, 3, 4, 5, 6, 7, 8]
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(trailing_mean(x, 1), x)


@pytest.mark.parametrize("factor", [0.5, 3.0, 7.4])
def test_scale_trace_multiplies_the_rate_without_piling_up_at_the_ends(conv, factor):
    tr = scale_trace(conv, factor, seed=2)
    assert len(tr) == pytest.approx(factor * len(conv), rel=0.02)
    assert tr.duration_s == conv.duration_s and tr.start == conv.start
    assert np.all(np.diff(tr.arrival_s) >= 0)
    assert "rate x" in tr.label
    counts = np.bincount((tr.arrival_s // 60).astype(int))[:-1]
    base = np.bincount((conv.arrival_s // 60).astype(int))[:-1] * factor
    assert counts[0] < 2.0 * base[:10].mean() and counts[-1] < 2.0 * base[-10:].mean()
    # token pairs come from the trace
    assert set(zip(tr.input_tokens[:200].tolist(), tr.output_tokens[:200].tolist())) <= set(
        zip(conv.input_tokens.tolist(), conv.output_tokens.tolist()))


def test_scale_trace_rejects_bad_factor(conv):
    with pytest.raises(ValidationError):
        scale_trace(conv, 0.0)


@pytest.mark.parametrize("idle", ["busy-fraction", "linear", "hold"])
def test_tables_reproduce_profile_interpolation(idle):
    prof = Profile.default()
    tab = ProfileTables.build(prof, DEFAULT_SLOS, hardware=("h100-80gb",), idle_power=idle)
    rng = np.random.default_rng(0)
    t = prof.table
    groups = prof.groups
    groups = groups[groups["hardware"] == "h100-80gb"].reset_index()
    for _ in range(200):
        g = groups.iloc[int(rng.integers(len(groups)))]
        k = tab.key_of(g["hardware"], g["tp"])
        cell = tab.cell(k, tab.clock_col(k, g["freq_mhz"]), prof.classes.names.index(g["request_class"]))
        rows = t[(t.hardware == g["hardware"]) & (t.tp == g["tp"]) & (t.freq_mhz == g["freq_mhz"])
                 & (t.request_class == g["request_class"])]
        lo, hi = rows["load_rps"].min(), rows["load_rps"].max()
        x = rng.uniform(lo + 2 * hi / (tab.grid_points - 1), hi)  # the grid cell straddling lo mixes in the bridge
        for col in ("power_w", "ttft_p99_ms", "tbt_p99_ms", "ttft_p50_ms"):
            want = prof.interpolate(col, g["group_id"], x)
            got = tab.lookup(col, np.array([cell]), np.array([x]))
            assert got[0] == pytest.approx(float(want), rel=2e-3), (col, g.to_dict(), x)
    # below the lightest load: latency held; power bridged from idle (or held)
    k = tab.key_of("h100-80gb", 8)
    cell = tab.cell(k, tab.n_clocks[k] - 1, prof.classes.names.index("MM"))
    p0 = tab.lookup("power_w", np.array([cell]), np.array([0.0]))[0]
    p_first = float(prof.power_w("h100-80gb", 8, 1980, "MM", 1e-6)[0])
    if idle == "hold":
        assert p0 == pytest.approx(p_first)
    else:
        assert p0 == pytest.approx(8 * 75.0)
        mid = tab.lookup("power_w", np.array([cell]), np.array([0.3]))[0]
        assert 8 * 75.0 < mid < p_first


def test_grid_series_hour_of_day_and_calendar():
    times = pd.date_range("2023-01-01", periods=48, freq="h", tz="UTC")
    vals = np.r_[np.arange(24.0), np.arange(24.0) + 10]
    s = HourlySeries("x", "u", times, vals, "test")
    np.testing.assert_allclose(s.by_hour_of_day(), np.arange(24.0) + 5)
    q = pd.DatetimeIndex(["2024-06-01 03:30", "2024-01-02 03:00"], tz="UTC")
    np.testing.assert_allclose(s.at(q), [8.0, 8.0])
    np.testing.assert_allclose(s.at(q, mode="calendar"), [8.0, 13.0])  # June missing: hour-of-day mean
    with pytest.raises(ValidationError):
        s.at(q, mode="weekly")


def test_bundled_caiso_series_and_per_window_mapping():
    c, p = caiso_carbon_intensity(), caiso_price()
    assert len(c.times) == 8760 and len(p.times) == 8760
    assert 200 < np.nanmean(c.values) < 320 and 40 < p.values.mean() < 80
    g = GridSeries(c, p)
    start = pd.Timestamp("2023-11-16 18:15:46", tz="UTC")
    ci, pr = g.per_window(start, 720, 5.0)
    daily = c.by_hour_of_day()
    assert ci[0] == pytest.approx(daily[18]) and ci[-1] == pytest.approx(daily[19])
    assert ((ci == daily[18]) | (ci == daily[19])).all()
    assert pr[0] == pytest.approx(p.by_hour_of_day()[18])


def test_user_series_file(tmp_path):
    f = tmp_path / "ci.csv"
    rows = [f"2023-01-01T{h:02d}:00:00Z,{100 + h}" for h in range(24)]
    rows += ["2023-01-02T00:00:00Z,", "2023-01-02T01:00:00Z,301"]
    f.write_text("time,ci\n" + "\n".join(rows) + "\n")
    s = read_hourly_series(f, "ci", unit="gCO2/kWh")
    hod = s.by_hour_of_day()
    assert hod[0] == pytest.approx(100.0) and hod[1] == pytest.approx(201.0)  # the empty row is skipped
    short = tmp_path / "short.csv"
    short.write_text("time,ci\n2023-01-01T00:00:00Z,1\n")
    with pytest.raises(ValidationError, match="no value at UTC hour"):
        read_hourly_series(short, "ci").by_hour_of_day()
    bad = tmp_path / "bad.csv"
    bad.write_text("time,ci\n2023-01-01T00:00:00Z,abc\n")
    with pytest.raises(ValidationError, match="row 1"):
        read_hourly_series(bad, "ci")
    with pytest.raises(ValidationError, match="no column"):
        read_hourly_series(f, "nope")
