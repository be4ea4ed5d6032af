"""Bad profiles are rejected with a message naming the source, row and field; files round-trip."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from dynaplan.errors import ValidationError
from dynaplan.profiles import Profile
from dynaplan.profiles import schema
from dynaplan.testing import profiles, synthetic_profile, synthetic_profile_table

N_LOADS = 3


@pytest.fixture(scope="module")
def base_table() -> pd.DataFrame:
    # every H100 clock (complete for the default hardware), two TP degrees, 9 classes, 3 loads
    return synthetic_profile_table(seed=7, tps=(2, 8), n_loads=N_LOADS)


@pytest.fixture
def df(base_table) -> pd.DataFrame:
    return base_table.copy()


def where(row: int, field: str) -> str:
    """The location fragment the validator puts in its message (1-based row, CSV line)."""
    return f"row {row + 1} (line {row + 2}), field '{field}'"


def rejected(table: pd.DataFrame, *fragments: str, **kwargs) -> str:
    with pytest.raises(ValidationError) as info:
        Profile(table, source="t.csv", **kwargs)
    msg = str(info.value)
    assert msg.startswith("t.csv: "), msg
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    return msg


def test_base_table_is_valid_and_not_mutated(base_table):
    before = base_table.copy()
    p = Profile(base_table)
    pd.testing.assert_frame_equal(base_table, before)
    assert len(p) == 2 * 7 * 9 * N_LOADS
    assert len(p.groups) == 2 * 7 * 9
    assert p.missing_grid_points().empty


@pytest.mark.parametrize("column", ["power_w", "ttft_p99_ms", "load_rps", "throughput_rps"])
def test_nan_is_rejected(df, column):
    df.loc[11, column] = np.nan
    rejected(df, where(11, column), "NaN")


def test_infinite_is_rejected(df):
    df.loc[4, "tbt_p99_ms"] = np.inf
    rejected(df, where(4, "tbt_p99_ms"), "infinite")


@pytest.mark.parametrize("value", [0.0, -250.0])
def test_zero_or_negative_power_is_rejected(df, value):
    df.loc[20, "power_w"] = value
    rejected(df, where(20, "power_w"), "must be > 0")


def test_duplicate_key_is_rejected(df):
    dup = pd.concat([df, df.iloc[[5]]], ignore_index=True)
    rejected(dup, where(len(df), "load_rps"), "duplicate key", "first seen at row 6")


def test_missing_tp_clock_group_is_rejected(df):
    gap = df[~((df["tp"] == 8) & (df["freq_mhz"] == 1200))]
    msg = rejected(gap, "9 grid point(s) a planner needs are missing", "tp=8", "freq_mhz=1200")
    assert "request_class=" in msg
    # a partial profile is accepted and lists exactly the 9 missing (tp, freq, class) groups
    p = Profile(gap, complete=False)
    missing = p.missing_grid_points()
    assert len(missing) == 9
    assert set(missing["tp"]) == {8} and set(missing["freq_mhz"]) == {1200}
    assert sorted(missing["request_class"]) == sorted(p.classes.names)


def test_missing_class_group_is_rejected(df):
    gap = df[~((df["tp"] == 2) & (df["freq_mhz"] == 800) & (df["request_class"] == "LL"))]
    rejected(gap, "1 grid point(s)", "tp=2", "freq_mhz=800", "request_class=LL")


@pytest.mark.parametrize("column", ["ttft_p99_ms", "tbt_p99_ms"])
def test_latency_falling_with_load_is_rejected(df, column):
    r = 4 * N_LOADS + 2  # the heaviest load of the 5th group; row r - 1 is its lighter neighbour
    assert df.loc[r, "load_rps"] > df.loc[r - 1, "load_rps"]
    df.loc[r, column] = df.loc[r - 1, column] * 0.5
    median = column.replace("p99", "p50")  # keep the median below the P99: only the fall is wrong
    df.loc[r, median] = min(df.loc[r, median], df.loc[r, column])
    rejected(df, where(r, column), "latency falls as load rises")


def test_unknown_class_is_rejected(df):
    df.loc[30, "request_class"] = "XX"
    rejected(df, where(30, "request_class"), "unknown request class 'XX'")


def test_unknown_hardware_is_rejected(df):
    df.loc[31, "hardware"] = "b200"
    rejected(df, where(31, "hardware"), "unknown hardware 'b200'")


def test_unknown_clock_level_is_rejected(df):
    df.loc[32, "freq_mhz"] = 1234
    rejected(df, where(32, "freq_mhz"), "1234 MHz is not a clock level of h100-80gb")


def test_tp_that_does_not_fit_is_rejected(df):
    df.loc[33, "tp"] = 16
    rejected(df, where(33, "tp"), "TP16")


def test_non_integer_tp_is_rejected(df):
    df["tp"] = df["tp"].astype(float)
    df.loc[34, "tp"] = 2.5
    rejected(df, where(34, "tp"), "not an integer")


@pytest.mark.parametrize("column", schema.KEY_COLUMNS + schema.REQUIRED_VALUE_COLUMNS)
def test_missing_column_is_rejected(df, column):
    rejected(df.drop(columns=[column]), f"missing column(s) [{column!r}]")


def test_non_numeric_value_is_rejected(df):
    df["power_w"] = df["power_w"].astype(object)
    df.loc[9, "power_w"] = "abc"
    rejected(df, where(9, "power_w"), "non-numeric value 'abc'")


def test_empty_string_key_is_rejected(df):
    df.loc[3, "model"] = "  "
    rejected(df, where(3, "model"), "empty value")


def test_throughput_above_load_is_rejected(df):
    df.loc[15, "throughput_rps"] = df.loc[15, "load_rps"] * 1.5
    rejected(df, where(15, "throughput_rps"), "exceeds load_rps")


@pytest.mark.parametrize("median, p99", [("ttft_p50_ms", "ttft_p99_ms"), ("tbt_p50_ms", "tbt_p99_ms")])
def test_median_above_p99_is_rejected(df, median, p99):
    df[median] = df[p99] * 0.5
    df.loc[9, median] = df.loc[9, p99] * 1.2
    rejected(df, where(9, median), f"exceeds {p99}", "a median cannot exceed the 99th percentile")


def test_empty_table_is_rejected(df):
    rejected(df.iloc[:0], "no rows")


# ---------------------------------------------------------------- files
def test_non_numeric_in_csv_names_file_and_line(tmp_path, base_table):
    path = tmp_path / "bad.csv"
    base_table.to_csv(path, index=False)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[13].split(",")  # line 14 of the file = data row 13
    cells[header.index("ttft_p99_ms")] = "fast"
    lines[13] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationError) as info:
        Profile.read(path)
    msg = str(info.value)
    assert msg.startswith(str(path)), msg
    assert "row 13 (line 14), field 'ttft_p99_ms'" in msg and "'fast'" in msg


def test_empty_file_is_rejected(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ValidationError, match=re.escape(str(path))):
        Profile.read(path)


def test_header_only_file_is_rejected(tmp_path, base_table):
    path = tmp_path / "header.csv"
    base_table.iloc[:0].to_csv(path, index=False)
    with pytest.raises(ValidationError, match=re.escape(str(path)) + ".*no rows"):
        Profile.read(path)


def test_garbage_parquet_is_rejected(tmp_path):
    path = tmp_path / "junk.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(ValidationError, match=re.escape(str(path)) + ": cannot read"):
        Profile.read(path)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "profile.csv"
    with pytest.raises(ValidationError) as info:
        Profile.read(path)
    assert str(path) in str(info.value)
    assert "not found" in str(info.value)


@pytest.mark.parametrize("name", ["p.csv", "p.csv.gz", "p.parquet"])
def test_round_trip_is_exact(tmp_path, name):
    p = synthetic_profile(seed=3)
    q = Profile.read(p.write(tmp_path / name))
    pd.testing.assert_frame_equal(p.table, q.table, check_exact=True)
    pd.testing.assert_frame_equal(p.groups, q.groups)


@settings(max_examples=15, deadline=None)
@given(p=profiles())
def test_round_trip_property(tmp_path_factory, p):
    d = tmp_path_factory.mktemp("rt")
    for name in ("p.csv", "p.parquet"):
        q = Profile.read(p.write(d / name), hardware=p.hardware)
        pd.testing.assert_frame_equal(p.table, q.table, check_exact=True)
