"""Forecasters of next-epoch per-class peaks and the forecast-error table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dynaplan.errors import ValidationError
from dynaplan.workload import (
    EWMAForecaster,
    LastPeakForecaster,
    OracleForecaster,
    SeasonalForecaster,
    epoch_peaks,
    forecast_errors,
    generate_trace,
)

PEAKS = pd.DataFrame({"SS": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "LL": [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]},
                     index=pd.Index(np.arange(6) * 1800.0, name="window_start_s"))
PEAKS.columns.name = "class"


def test_last_peak_and_ewma_known_values():
    assert LastPeakForecaster(0.1).forecast(PEAKS).to_dict() == pytest.approx({"SS": 6.6, "LL": 1.1})
    # EWMA alpha 0.5 of SS 1..6: 1, 1.5, 2.25, 3.125, 4.0625, 5.03125
    ew = EWMAForecaster(alpha=0.5, headroom=0.0)
    assert ew.forecast(PEAKS)["SS"] == pytest.approx(5.03125)
    assert ew.backtest(PEAKS)["SS"].tolist()[1:] == pytest.approx([1, 1.5, 2.25, 3.125, 4.0625])


def test_seasonal_uses_the_same_slot_one_period_back():
    s = SeasonalForecaster(period_epochs=2, n_seasons=1, headroom=0.0)
    assert s.forecast(PEAKS).to_dict() == {"SS": 5.0, "LL": 0.0}  # epoch 6 <- epoch 4
    bt = s.backtest(PEAKS)
    assert bt["LL"].tolist()[2:] == [0.0, 1.0, 0.0, 1.0]  # perfect on a period-2 pattern
    assert bt["SS"].iloc[1] == 1.0  # fallback to the last peak before a full period
    two = SeasonalForecaster(period_epochs=2, n_seasons=2, headroom=0.0)
    assert two.forecast(PEAKS)["SS"] == pytest.approx((5.0 + 3.0) / 2)


@pytest.mark.parametrize("f", [LastPeakForecaster(0.2), EWMAForecaster(0.3, 0.1), SeasonalForecaster(3, 2, 0.05)])
def test_forecast_equals_backtest_on_every_prefix(f):
    bt = f.backtest(PEAKS)
    for t in range(1, len(PEAKS)):
        pd.testing.assert_series_equal(f.forecast(PEAKS.iloc[:t]), bt.iloc[t], check_names=False)


def test_oracle_is_exact_and_checks_its_history():
    o = OracleForecaster(PEAKS)
    assert o.forecast(PEAKS.iloc[:3]).to_dict() == {"SS": 4.0, "LL": 1.0}
    err = forecast_errors(o, PEAKS)
    assert (err[["mean_over_forecast", "mean_under_forecast", "under_fraction", "mape"]] == 0).all().all()
    with pytest.raises(ValidationError):
        o.forecast(PEAKS)  # no 7th epoch in the truth
    with pytest.raises(ValidationError):
        o.forecast(PEAKS.iloc[1:3])  # not a prefix


def test_error_table_known_answer():
    err = forecast_errors(LastPeakForecaster(0.1), PEAKS)
    assert err.index.name == "class" and list(err.index) == ["SS", "LL"]
    # SS: forecasts 1.1, 2.2, 3.3, 4.4, 5.5 for actual 2..6: always under by 0.9..0.5
    assert err.loc["SS", "mean_under_forecast"] == pytest.approx(np.mean([0.9, 0.8, 0.7, 0.6, 0.5]))
    assert err.loc["SS", "mean_over_forecast"] == 0 and err.loc["SS", "under_fraction"] == 1.0
    assert err.loc["SS", "mape"] == pytest.approx(np.mean([0.9 / 2, 0.8 / 3, 0.7 / 4, 0.6 / 5, 0.5 / 6]))
    # LL: forecasts 0, 1.1, 0, 1.1, 0 for actual 1, 0, 1, 0, 1
    assert err.loc["LL", "under_fraction"] == pytest.approx(0.6)
    assert err.loc["LL", "mean_over_forecast"] == pytest.approx(2.2 / 5)
    assert err.loc["LL", "mape"] == pytest.approx(1.0)  # only epochs with a nonzero actual
    assert err["n_epochs"].tolist() == [5, 5]


def test_seasonal_beats_last_peak_on_a_synthetic_week():
    tr = generate_trace("azure-code-2023", days=4, mean_rate_rps=3.0, seed=2)
    peaks = epoch_peaks(tr, epoch_s="30min", inner_window_s="5min").load_rps
    day = 48
    seas = forecast_errors(SeasonalForecaster(day, 1, 0.1), peaks, warmup_epochs=day)
    last = forecast_errors(LastPeakForecaster(0.1), peaks, warmup_epochs=day)
    # on the busiest class the daily template beats persistence (seeded, deterministic)
    assert seas.loc["LS", "mape"] < last.loc["LS", "mape"] < 0.5
    assert (forecast_errors(OracleForecaster(peaks), peaks)["mape"].fillna(0) == 0).all()


def test_invalid_inputs():
    with pytest.raises(ValidationError):
        LastPeakForecaster(headroom=-0.1)
    with pytest.raises(ValidationError):
        EWMAForecaster(alpha=0)
    with pytest.raises(ValidationError):
        LastPeakForecaster().forecast(PEAKS.iloc[:0])
    with pytest.raises(ValidationError):
        forecast_errors(LastPeakForecaster(), PEAKS * np.nan)
    with pytest.raises(ValidationError):
        forecast_errors(LastPeakForecaster(), PEAKS, warmup_epochs=6)
