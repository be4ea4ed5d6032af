"""Hourly grid series (carbon intensity, electricity price) and how replay maps time onto them.

A trace covers an hour or a week of some date; the bundled series cover a year (CAISO carbon
intensity 2022, CAISO day-ahead prices 2023; ``data/ATTRIBUTION.md``). The replay maps a window
onto a series **by UTC hour of day** (default): the value is the series' mean over all its days at
that UTC hour, i.e. the typical diurnal profile. ``mode="calendar"`` takes the same month, day and
hour in the series' year (29 February maps to 28 February; a gap falls back to the hour-of-day
mean). Windows of a trace without an absolute start are placed from 00:00 UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from dynaplan.errors import ValidationError
from dynaplan.validation import excerpt

CARBON_RANGE_G_PER_KWH = (0.0, 5000.0)
"""Carbon intensity a series may hold (gCO2/kWh): never negative (no grid removes CO2 by drawing
power); the dirtiest grids are near 1,100 (lignite), so 5,000 is a generous ceiling."""
PRICE_RANGE_USD_PER_MWH = (-1e5, 1e5)
"""Electricity price a series may hold (USD/MWh). Prices may be negative (surplus renewables on
real markets, down to a few thousand USD/MWh below zero); market caps are around 1e4 USD/MWh."""

CARBON_FILE = "CISO_2022_hourly_ci.csv.gz"
PRICE_FILE = "caiso_2023_hourly_price_usd_per_mwh.csv.gz"
MAPPING_MODES = ("hour_of_day", "calendar")


@dataclass(frozen=True, eq=False)
class HourlySeries:
    """Values at UTC hours. ``unit`` is e.g. ``gCO2/kWh`` or ``USD/MWh``."""

    name: str
    unit: str
    times: pd.DatetimeIndex
    values: np.ndarray
    source: str

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=float)
        if v.ndim != 1 or v.shape[0] != len(self.times):
            raise ValidationError(f"series {self.name}: {len(self.times)} times but values of shape {v.shape}")
        if v.size == 0 or not np.isfinite(v).any():
            raise ValidationError(f"series {self.name}: no finite values")
        if self.times.tz is None:
            object.__setattr__(self, "times", self.times.tz_localize("UTC"))
        object.__setattr__(self, "values", v)

    def check_range(self, lo: float, hi: float, what: str) -> "HourlySeries":
        """``self`` if every finite value is in [lo, hi]; else :class:`ValidationError` naming the
        first value outside, its row (in file order) and its time."""
        v = self.values
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(v) & ((v < lo) | (v > hi))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValidationError(
                f"series {self.name} ({self.source}): row {i + 1} ({self.times[i]:%Y-%m-%d %H:%M} UTC): "
                f"{what} {v[i]:g} {self.unit}; expected {lo:g} to {hi:g} {self.unit} ({int(bad.sum())} value(s) "
                "outside)")
        return self

    def by_hour_of_day(self) -> np.ndarray:
        """Mean value at each UTC hour 0..23 (NaN hours skipped)."""
        hours = self.times.tz_convert("UTC").hour.to_numpy()
        ok = np.isfinite(self.values)
        s = np.bincount(hours[ok], weights=self.values[ok], minlength=24)
        n = np.bincount(hours[ok], minlength=24)
        if (n == 0).any():
            raise ValidationError(f"series {self.name}: no value at UTC hour(s) {np.flatnonzero(n == 0).tolist()}")
        return s / n

    def at(self, times, mode: str = "hour_of_day") -> np.ndarray:
        """Value at each of ``times`` (UTC timestamps), by ``mode`` (see the module docstring)."""
        if mode not in MAPPING_MODES:
            raise ValidationError(f"grid mapping mode {mode!r}; expected one of {MAPPING_MODES}")
        t = pd.DatetimeIndex(times)
        t = t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")
        daily = self.by_hour_of_day()
        fallback = daily[t.hour.to_numpy()]
        if mode == "hour_of_day":
            return fallback
        st = self.times.tz_convert("UTC")
        key = pd.Series(self.values, index=pd.MultiIndex.from_arrays([st.month, st.day, st.hour]))
        key = key[~key.index.duplicated()]
        day = np.where((t.month == 2) & (t.day == 29), 28, t.day)
        got = key.reindex(pd.MultiIndex.from_arrays([t.month, day, t.hour])).to_numpy(dtype=float)
        return np.where(np.isfinite(got), got, fallback)


def read_hourly_series(path: str | Path, column: str, *, time_column: str | None = None, unit: str = "",
                       name: str | None = None) -> HourlySeries:
    """An hourly series from a CSV: a UTC time column (default: the first) and ``column``.

    Naive timestamps are taken as UTC. Empty values are skipped; non-numeric ones raise.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"{path}: grid series file not found")
    try:
        df = pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise ValidationError(f"{path}: cannot read as CSV ({exc})") from None
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].str.strip()
    repeated = sorted({h for h in header if (header == h).sum() > 1})
    if repeated:  # pandas would rename the second one (avg_CI.1) and read the first
        raise ValidationError(f"{path}: line 1: column(s) {repeated} appear more than once in the header")
    tcol = time_column or df.columns[0]
    for c in (tcol, column):
        if c not in df.columns:
            raise ValidationError(f"{path}: no column {c!r}; columns are {list(df.columns)}")
    try:
        times = pd.DatetimeIndex(pd.to_datetime(df[tcol], utc=True))
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{path}: column {tcol!r}: cannot parse timestamps ({exc})") from None
    is_bool = df[column].map(lambda x: isinstance(x, (bool, np.bool_))).to_numpy(dtype=bool)
    if is_bool.any():
        i = int(np.flatnonzero(is_bool)[0])
        raise ValidationError(f"{path}: row {i + 1}, field {column!r}: boolean {excerpt(df[column].iloc[i])}; expected a number")
    vals = pd.to_numeric(df[column], errors="coerce")
    bad = vals.isna() & df[column].notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValidationError(f"{path}: row {i + 1}, field {column!r}: {df[column].iloc[i]!r} is not a number")
    return HourlySeries(name or f"{path.name}:{column}", unit, times, vals.to_numpy(dtype=float), str(path))


def _bundled(file: str, column: str, unit: str, name: str) -> HourlySeries:
    ref = resources.files("dynaplan.replay") / "data" / file
    with resources.as_file(ref) as p:
        s = read_hourly_series(p, column, unit=unit, name=name)
    return HourlySeries(s.name, s.unit, s.times, s.values, f"bundled:{file}")


def caiso_carbon_intensity() -> HourlySeries:
    """CAISO hourly average carbon intensity 2022 (gCO2/kWh; EIA-930 via HewlettPackard/dc-rl)."""
    return _bundled(CARBON_FILE, "avg_CI", "gCO2/kWh", "CAISO carbon intensity 2022")


def caiso_price() -> HourlySeries:
    """CAISO day-ahead LMP 2023 at TH_NP15_GEN-APND (USD/MWh; via HewlettPackard/green-dcc)."""
    return _bundled(PRICE_FILE, "US-CAL-CISO", "USD/MWh", "CAISO day-ahead price 2023")


@dataclass(frozen=True, eq=False)
class GridSeries:
    """The carbon and price series of one replay, and the mapping mode."""

    carbon: HourlySeries
    price: HourlySeries
    mode: str = "hour_of_day"

    def __post_init__(self) -> None:
        if self.mode not in MAPPING_MODES:
            raise ValidationError(f"grid mapping mode {self.mode!r}; expected one of {MAPPING_MODES}")
        self.carbon.check_range(*CARBON_RANGE_G_PER_KWH, "carbon intensity")
        self.price.check_range(*PRICE_RANGE_USD_PER_MWH, "electricity price")

    @classmethod
    def default(cls) -> "GridSeries":
        return cls(caiso_carbon_intensity(), caiso_price())

    def per_window(self, start: pd.Timestamp | None, n_windows: int, window_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(gCO2/kWh, USD/MWh) of every window, taken at the window's midpoint."""
        t0 = pd.Timestamp("2000-01-01", tz="UTC") if start is None else pd.Timestamp(start)
        mid_s = (np.arange(n_windows) + 0.5) * window_s
        # evaluate once per distinct hour, not per window
        hour_idx = np.floor((mid_s + (t0 - t0.floor("h")).total_seconds()) / 3600).astype(np.int64)
        uniq, inv = np.unique(hour_idx, return_inverse=True)
        times = t0.floor("h") + pd.to_timedelta(uniq, unit="h")
        return self.carbon.at(times, self.mode)[inv], self.price.at(times, self.mode)[inv]
