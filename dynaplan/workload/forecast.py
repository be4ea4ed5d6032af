"""Forecasters of the next epoch's per-class peak load, and their error on a trace.

All forecasters share one interface (:class:`Forecaster`): ``forecast(history)`` takes the
per-epoch per-class peaks seen so far — a wide DataFrame as in
:attr:`LoadTable.load_rps <dynaplan.workload.aggregate.LoadTable>`, one row per epoch in time
order, one column per class — and returns the predicted peak of the next epoch as a Series
indexed by class. ``backtest(peaks)`` returns the forecast every epoch would have received
from the epochs before it (vectorised; NaN where there is not enough history), and
:func:`forecast_errors` summarises it per class.

- :class:`LastPeakForecaster`: last epoch's peak times ``1 + headroom``.
- :class:`EWMAForecaster`: exponentially weighted mean of past peaks times ``1 + headroom``.
- :class:`SeasonalForecaster`: mean of the same slot in the last ``n_seasons`` periods (e.g.
  the same half hour yesterday, or last week with ``period_epochs=336``) times
  ``1 + headroom``; falls back to the last peak while the history is shorter than a period.
- :class:`OracleForecaster`: the true next peak (clairvoyant bound; not implementable).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from dynaplan.errors import ValidationError


def _check_history(history: pd.DataFrame) -> None:
    if not isinstance(history, pd.DataFrame) or history.shape[0] == 0:
        raise ValidationError("forecast history must be a non-empty DataFrame (epochs x classes)")
    values = history.to_numpy(dtype=float)
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValidationError("forecast history must hold finite non-negative peaks")


def _check_headroom(headroom: float) -> None:
    if not headroom >= 0:
        raise ValidationError(f"headroom must be >= 0, got {headroom}")


class Forecaster(ABC):
    """Predicts the next epoch's per-class peak from the per-epoch peaks so far."""

    name: ClassVar[str] = "forecaster"

    def forecast(self, history: pd.DataFrame) -> pd.Series:
        """Next-epoch peak per class (Series indexed by the history's columns)."""
        _check_history(history)
        return self.backtest(history, horizon_only=True).iloc[-1]

    @abstractmethod
    def backtest(self, peaks: pd.DataFrame, horizon_only: bool = False) -> pd.DataFrame:
        """Row ``t`` = forecast for epoch ``t`` made from rows ``< t`` (NaN without history).

        With ``horizon_only`` one extra row, the forecast for the epoch after the last, is
        appended (its index label is the last label plus the index step, or ``len(peaks)``).
        """


def _shifted(peaks: pd.DataFrame, values: pd.DataFrame, horizon_only: bool) -> pd.DataFrame:
    """Move ``values`` (estimate after each epoch) one row down: the forecast for the next one."""
    out = values.shift(1)
    if horizon_only:
        idx = peaks.index
        step = idx[-1] - idx[-2] if len(idx) > 1 and pd.api.types.is_numeric_dtype(idx) else 1
        nxt = idx[-1] + step if pd.api.types.is_numeric_dtype(idx) else len(idx)
        extra = pd.DataFrame([values.iloc[-1].to_numpy()], columns=values.columns, index=[nxt])
        extra.index.name = idx.name
        out = pd.concat([out, extra])
    return out


@dataclass(frozen=True)
class LastPeakForecaster(Forecaster):
    """Next peak = last epoch's peak * (1 + headroom)."""

    headroom: float = 0.1
    name: ClassVar[str] = "last-peak"

    def __post_init__(self) -> None:
        _check_headroom(self.headroom)

    def backtest(self, peaks: pd.DataFrame, horizon_only: bool = False) -> pd.DataFrame:
        return _shifted(peaks, peaks * (1 + self.headroom), horizon_only)


@dataclass(frozen=True)
class EWMAForecaster(Forecaster):
    """Next peak = EWMA of past peaks (weight ``alpha`` on the newest) * (1 + headroom)."""

    alpha: float = 0.5
    headroom: float = 0.1
    name: ClassVar[str] = "ewma"

    def __post_init__(self) -> None:
        _check_headroom(self.headroom)
        if not 0 < self.alpha <= 1:
            raise ValidationError(f"alpha must be in (0, 1], got {self.alpha}")

    def backtest(self, peaks: pd.DataFrame, horizon_only: bool = False) -> pd.DataFrame:
        smoothed = peaks.ewm(alpha=self.alpha, adjust=False).mean()
        return _shifted(peaks, smoothed * (1 + self.headroom), horizon_only)


@dataclass(frozen=True)
class SeasonalForecaster(Forecaster):
    """Next peak = mean of the same slot in the last ``n_seasons`` periods * (1 + headroom).

    ``period_epochs``: epochs per season (48 = a day of 30-min epochs, 336 = a week). While
    fewer than one period of history exists, the last peak (times 1 + headroom) is used.
    """

    period_epochs: int = 48
    n_seasons: int = 1
    headroom: float = 0.1
    name: ClassVar[str] = "seasonal"

    def __post_init__(self) -> None:
        _check_headroom(self.headroom)
        if self.period_epochs < 1 or self.n_seasons < 1:
            raise ValidationError("period_epochs and n_seasons must be >= 1")

    def backtest(self, peaks: pd.DataFrame, horizon_only: bool = False) -> pd.DataFrame:
        ext = peaks
        if horizon_only:
            ext = pd.concat([peaks, pd.DataFrame(np.nan, index=[-1], columns=peaks.columns)])
        values = ext.to_numpy(dtype=float)
        n = values.shape[0]
        total = np.zeros_like(values)
        count = np.zeros((n, 1))
        for k in range(1, self.n_seasons + 1):
            lag = k * self.period_epochs
            if lag >= n:
                break
            part = np.full_like(values, np.nan)
            part[lag:] = values[: n - lag]
            ok = ~np.isnan(part[:, :1])
            total += np.where(ok, part, 0.0)
            count += ok
        with np.errstate(invalid="ignore", divide="ignore"):
            seasonal = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        last = np.full_like(values, np.nan)
        last[1:] = values[:-1]
        forecast = np.where(count > 0, seasonal, last) * (1 + self.headroom)
        out = _shifted(peaks, peaks, horizon_only)  # for the index only
        return pd.DataFrame(forecast, index=out.index, columns=peaks.columns)


class OracleForecaster(Forecaster):
    """Clairvoyant: the true peak of the next epoch, read from ``truth`` (a bound, not a policy)."""

    name: ClassVar[str] = "oracle"

    def __init__(self, truth: pd.DataFrame):
        _check_history(truth)
        self.truth = truth

    def backtest(self, peaks: pd.DataFrame, horizon_only: bool = False) -> pd.DataFrame:
        n = len(peaks) + (1 if horizon_only else 0)
        if n > len(self.truth):
            raise ValidationError(f"oracle: truth has {len(self.truth)} epochs, {n} needed")
        if not peaks.index.equals(self.truth.index[: len(peaks)]):
            raise ValidationError("oracle: history is not a prefix of the truth it was built with")
        out = self.truth.iloc[:n][list(peaks.columns)].astype(float).copy()
        return out


def forecast_errors(forecaster: Forecaster, peaks: pd.DataFrame, *, warmup_epochs: int = 1) -> pd.DataFrame:
    """Per-class forecast error of ``forecaster`` walked over ``peaks`` (epochs x classes).

    Epoch ``t`` (from ``warmup_epochs`` on) is forecast from epochs ``< t`` and compared with
    its actual peak ``a``; with forecast ``f``:

    - ``mean_over_forecast`` = mean of max(f - a, 0)  (capacity wasted; unit of ``peaks``)
    - ``mean_under_forecast`` = mean of max(a - f, 0)  (load not provisioned)
    - ``under_fraction`` = share of epochs with f < a
    - ``mape`` = mean of |f - a| / a over epochs with a > 0 (NaN if none)
    - ``n_epochs`` = epochs evaluated.

    Returns a DataFrame indexed by class (index named ``class``).
    """
    _check_history(peaks)
    if warmup_epochs < 1 or warmup_epochs >= len(peaks):
        raise ValidationError(f"warmup_epochs must be in 1..{len(peaks) - 1}, got {warmup_epochs}")
    fc = forecaster.backtest(peaks).to_numpy(dtype=float)[warmup_epochs:]
    actual = peaks.to_numpy(dtype=float)[warmup_epochs:]
    ok = ~np.isnan(fc)
    n = ok.sum(axis=0)
    diff = np.where(ok, fc - actual, 0.0)
    scored = ok & (actual > 0)
    ape = np.where(scored, np.abs(diff) / np.where(scored, actual, 1.0), 0.0)

    def mean(x: np.ndarray, count: np.ndarray) -> np.ndarray:
        return np.where(count > 0, x.sum(axis=0) / np.maximum(count, 1), np.nan)

    table = pd.DataFrame(
        {
            "mean_over_forecast": mean(np.clip(diff, 0, None), n),
            "mean_under_forecast": mean(np.clip(-diff, 0, None), n),
            "under_fraction": mean((diff < 0).astype(float), n),
            "mape": mean(ape, scored.sum(axis=0)),
            "n_epochs": n,
        },
        index=pd.Index(list(peaks.columns), name="class"),
    )
    return table
