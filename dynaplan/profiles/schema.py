"""The profile table's schema and its validation.

A profile is a tidy table, one row per measured (or modelled) operating point:

==================  =======  ==========================================================
column              unit     meaning
==================  =======  ==========================================================
model               -        served model, e.g. ``llama2-70b``
hardware            -        hardware type name, e.g. ``h100-80gb``
tp                  GPUs     tensor-parallel degree of the instance
freq_mhz            MHz      SM clock of every GPU of the instance
request_class       -        request class name, e.g. ``SS`` .. ``LL``
load_rps            req/s    offered load on one instance (arrival rate)
power_w             W        mean power of the whole instance (all ``tp`` GPUs)
ttft_p99_ms         ms       P99 time to first token at that load
tbt_p99_ms          ms       P99 time between tokens at that load
throughput_rps      req/s    completed requests per second (= load below saturation)
==================  =======  ==========================================================

Optional columns ``ttft_p50_ms``, ``tbt_p50_ms`` (ms) and ``throughput_tok_s`` (output
tokens/s) are kept when present. ``energy_per_request_j = power_w / throughput_rps`` (J) is
derived on load and never read from the file.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from dynaplan.domain.classes import ClassScheme
from dynaplan.domain.hardware import HardwareType
from dynaplan.errors import ValidationError
from dynaplan.validation import excerpt

GROUP_COLUMNS: tuple[str, ...] = ("model", "hardware", "tp", "freq_mhz", "request_class")
KEY_COLUMNS: tuple[str, ...] = GROUP_COLUMNS + ("load_rps",)
REQUIRED_VALUE_COLUMNS: tuple[str, ...] = ("power_w", "ttft_p99_ms", "tbt_p99_ms", "throughput_rps")
OPTIONAL_VALUE_COLUMNS: tuple[str, ...] = ("ttft_p50_ms", "tbt_p50_ms", "throughput_tok_s")
DERIVED_COLUMNS: tuple[str, ...] = ("energy_per_request_j",)
STRING_COLUMNS: tuple[str, ...] = ("model", "hardware", "request_class")
INT_COLUMNS: tuple[str, ...] = ("tp", "freq_mhz")

VALUE_RANGES: dict[str, tuple[float, float, bool]] = {
    # column: (lowest, highest, lowest excluded). Physically sane bounds of one instance's
    # operating point, wide enough for any real GPU server and narrow enough that no value can
    # overflow a solver or an interpolation (a power of 1e308 W made HiGHS fail; a load of 1e15
    # req/s once made lookups lose precision).
    "tp": (1, 1024, False),                     # GPUs per instance
    "freq_mhz": (1, 10_000, False),             # MHz
    "load_rps": (0.0, 1e6, True),               # req/s offered to one instance
    "power_w": (0.0, 1e6, True),                # W of one instance (an 8-GPU H100 server draws ~10 kW)
    "ttft_p99_ms": (0.0, 1e9, True),            # ms (1e9 ms is 11.6 days)
    "tbt_p99_ms": (0.0, 1e9, True),             # ms
    "throughput_rps": (0.0, 1e6, True),         # req/s completed by one instance
    "ttft_p50_ms": (0.0, 1e9, False),           # ms
    "tbt_p50_ms": (0.0, 1e9, False),            # ms
    "throughput_tok_s": (0.0, 1e9, False),      # output tokens/s of one instance
}
"""Allowed range of every numeric profile column (the one table :func:`normalise` checks)."""

# Relative tolerance for "latency falls as load rises": measured profiles carry noise, and a
# latency that drops by less than this fraction between adjacent load points is accepted.
MONOTONE_RTOL = 1e-6


def _row_label(source: str, row: int) -> str:
    # Row numbers are 1-based data rows; in a CSV with a header the line number is row + 1.
    return f"{source}: row {row + 1} (line {row + 2})"


def _fail(source: str, row: int, field: str, msg: str) -> None:
    raise ValidationError(f"{_row_label(source, row)}, field {field!r}: {msg}")


def _show(value) -> str:
    """A value as the user wrote it: ``2.5``, ``'two'``, never ``np.float64(2.5)``; bounded."""
    return excerpt(value)


def normalise(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check columns and types; return a new frame with canonical dtypes and row order kept.

    Raises :class:`ValidationError` naming the first offending row and field.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValidationError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise ValidationError(f"{source}: the profile has no rows")
    missing = [c for c in KEY_COLUMNS + REQUIRED_VALUE_COLUMNS if c not in df.columns]
    repeated = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if repeated:
        raise ValidationError(f"{source}: column(s) {repeated} appear more than once; each column must be unique")
    if missing:
        raise ValidationError(f"{source}: missing column(s) {missing}; required {list(KEY_COLUMNS + REQUIRED_VALUE_COLUMNS)}")
    keep = [c for c in KEY_COLUMNS + REQUIRED_VALUE_COLUMNS + OPTIONAL_VALUE_COLUMNS if c in df.columns]
    out = df[keep].reset_index(drop=True).copy()

    for c in STRING_COLUMNS:
        col = out[c]
        bad = col.isna() | (col.astype(str).str.strip() == "")
        if bad.any():
            _fail(source, int(np.flatnonzero(bad.to_numpy())[0]), c, "empty value")
        out[c] = col.astype(str).str.strip()
    for c in INT_COLUMNS + ("load_rps",) + REQUIRED_VALUE_COLUMNS + tuple(
        c for c in OPTIONAL_VALUE_COLUMNS if c in out.columns
    ):
        if pd.api.types.is_bool_dtype(out[c]) or (
            out[c].dtype == object and out[c].map(lambda v: isinstance(v, (bool, np.bool_))).any()
        ):
            r = int(np.flatnonzero(out[c].map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy())[0])
            _fail(source, r, c, f"boolean value {_show(out[c].iloc[r])}; expected a number")
        num = pd.to_numeric(out[c], errors="coerce")
        bad = num.isna().to_numpy()
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raw = df[c].iloc[r]
            what = "NaN" if pd.isna(raw) else f"non-numeric value {raw!r}"
            _fail(source, r, c, f"{what}; expected a number")
        arr = num.to_numpy(dtype=float)
        if not np.all(np.isfinite(arr)):
            _fail(source, int(np.flatnonzero(~np.isfinite(arr))[0]), c, "infinite value")
        if c in INT_COLUMNS:
            huge = np.abs(arr) > np.iinfo(np.int32).max
            if huge.any():
                _fail(source, int(np.flatnonzero(huge)[0]), c, f"{_show(arr[huge][0])} is out of range")
            nonint = arr != np.round(arr)
            if nonint.any():
                _fail(source, int(np.flatnonzero(nonint)[0]), c, f"{_show(arr[nonint][0])} is not an integer")
            out[c] = arr.astype(np.int64)
        else:
            out[c] = arr
        check_range(out[c].to_numpy(), source, c)
    for med, p99 in (("ttft_p50_ms", "ttft_p99_ms"), ("tbt_p50_ms", "tbt_p99_ms")):
        if med in out.columns:
            above = out[med].to_numpy() > out[p99].to_numpy() * (1 + 1e-9)
            if above.any():
                r = int(np.flatnonzero(above)[0])
                _fail(source, r, med, f"{_show(out[med].iloc[r])} ms exceeds {p99} {_show(out[p99].iloc[r])} ms "
                                      "(a median cannot exceed the 99th percentile)")
    thr_bad = out["throughput_rps"].to_numpy() > out["load_rps"].to_numpy() * (1 + 1e-9)
    if thr_bad.any():
        r = int(np.flatnonzero(thr_bad)[0])
        _fail(source, r, "throughput_rps", "exceeds load_rps (an instance cannot complete more than it is offered)")
    return out


def check_range(values: np.ndarray, source: str, column: str) -> None:
    """Every value of ``column`` within its :data:`VALUE_RANGES` entry; the first one outside
    raises naming its row."""
    lo, hi, lo_open = VALUE_RANGES[column]
    low = values <= lo if lo_open else values < lo
    if low.any():
        r = int(np.flatnonzero(low)[0])
        _fail(source, r, column, f"{_show(values[r])} must be {'>' if lo_open else '>='} {lo:g}")
    high = values > hi
    if high.any():
        r = int(np.flatnonzero(high)[0])
        _fail(source, r, column, f"{_show(values[r])} exceeds {hi:g}, the largest value a profile may hold "
                                 f"(schema.VALUE_RANGES)")


def check_keys(df: pd.DataFrame, source: str) -> None:
    """Duplicate keys are an error: two rows would claim the same operating point."""
    dup = df.duplicated(list(KEY_COLUMNS), keep="first").to_numpy()
    if dup.any():
        r = int(np.flatnonzero(dup)[0])
        key = {c: df[c].iloc[r] for c in KEY_COLUMNS}
        key = {c: v.item() if isinstance(v, np.generic) else v for c, v in key.items()}
        first = int(np.flatnonzero(
            np.all([df[c].to_numpy() == key[c] for c in KEY_COLUMNS], axis=0)
        )[0])
        _fail(source, r, "load_rps", f"duplicate key {key} (first seen at row {first + 1})")


def check_known(
    df: pd.DataFrame,
    source: str,
    hardware: Mapping[str, HardwareType] | None,
    classes: ClassScheme | None,
) -> None:
    """Hardware, classes, clocks and TP degrees must be ones the planner knows."""
    if hardware is not None:
        bad = ~df["hardware"].isin(list(hardware)).to_numpy()
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            _fail(source, r, "hardware", f"unknown hardware {df['hardware'].iloc[r]!r}; known: {sorted(hardware)}")
        for name, hw in hardware.items():
            sel = (df["hardware"] == name).to_numpy()
            f_bad = sel & ~df["freq_mhz"].isin(hw.clock_levels_mhz).to_numpy()
            if f_bad.any():
                r = int(np.flatnonzero(f_bad)[0])
                _fail(source, r, "freq_mhz", f"{df['freq_mhz'].iloc[r]} MHz is not a clock level of {name} {hw.clock_levels_mhz}")
            t_bad = sel & ~df["tp"].isin(hw.tp_degrees()).to_numpy()
            if t_bad.any():
                r = int(np.flatnonzero(t_bad)[0])
                _fail(source, r, "tp", f"TP{df['tp'].iloc[r]} does not fit in one {name} server (allowed {hw.tp_degrees()})")
    if classes is not None:
        bad = ~df["request_class"].isin(classes.names).to_numpy()
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            _fail(source, r, "request_class", f"unknown request class {df['request_class'].iloc[r]!r}; known: {list(classes.names)}")


def missing_grid_points(
    df: pd.DataFrame,
    hardware: Mapping[str, HardwareType] | None,
    classes: ClassScheme | None,
) -> pd.DataFrame:
    """(model, hardware, tp, freq_mhz, request_class) groups a planner needs but the table lacks.

    For each (model, hardware) in the table the planner expects every TP degree present for that
    pair, at every clock level of the hardware (or every clock seen, if the hardware is unknown),
    for every class of the scheme (or every class seen).
    """
    have = df[list(GROUP_COLUMNS)].drop_duplicates()
    cls_names = list(classes.names) if classes is not None else sorted(df["request_class"].unique())
    frames = []
    for (model, hw_name), sub in have.groupby(["model", "hardware"], sort=True):
        if hardware is not None and hw_name in hardware:
            freqs = list(hardware[hw_name].clock_levels_mhz)
        else:
            freqs = sorted(sub["freq_mhz"].unique())
        idx = pd.MultiIndex.from_product(
            [[model], [hw_name], sorted(sub["tp"].unique()), freqs, cls_names], names=list(GROUP_COLUMNS)
        )
        frames.append(idx.to_frame(index=False))
    need = pd.concat(frames, ignore_index=True)
    merged = need.merge(have, how="left", on=list(GROUP_COLUMNS), indicator=True)
    return merged.loc[merged["_merge"] == "left_only", list(GROUP_COLUMNS)].reset_index(drop=True)


def check_grid(df: pd.DataFrame, source: str, hardware, classes) -> None:
    missing = missing_grid_points(df, hardware, classes)
    if len(missing):
        first = missing.iloc[0].to_dict()
        raise ValidationError(
            f"{source}: {len(missing)} grid point(s) a planner needs are missing, e.g. "
            f"model={first['model']} hardware={first['hardware']} tp={first['tp']} "
            f"freq_mhz={first['freq_mhz']} request_class={first['request_class']} has no rows"
        )


def check_monotone(df_sorted: pd.DataFrame, source: str, order: np.ndarray, starts: np.ndarray) -> None:
    """Latency must not fall as load rises within a group (rows sorted by group then load)."""
    same_group = np.ones(len(df_sorted), dtype=bool)
    same_group[starts] = False  # first row of each group has no predecessor
    for c in ("ttft_p99_ms", "tbt_p99_ms"):
        v = df_sorted[c].to_numpy()
        prev = np.r_[np.inf, v[:-1]]
        drops = same_group & (v < prev * (1 - MONOTONE_RTOL))
        if drops.any():
            k = int(np.flatnonzero(drops)[0])
            r = int(order[k])
            _fail(
                source, r, c,
                f"latency falls as load rises ({prev[k]:.6g} ms at load {df_sorted['load_rps'].iloc[k - 1]:.6g} "
                f"-> {v[k]:.6g} ms at load {df_sorted['load_rps'].iloc[k]:.6g} req/s)",
            )
