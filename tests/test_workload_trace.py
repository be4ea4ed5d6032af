"""Trace loading: bundled traces, Azure and generic formats, validation errors and repairs."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynaplan.errors import ValidationError
from dynaplan.workload import Trace, load_trace, save_trace

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens"
SHARED = Path("/work/shared/data/azure_llm_2023")


def write(tmp_path: Path, name: str, lines: list[str], crlf: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((("\r\n" if crlf else "\n").join(lines) + ("\r\n" if crlf else "\n")).encode())
    return path


# ---------------------------------------------------------------------------------------------
# Bundled traces
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, rows, start, duration_s",
    [
        ("azure-conv-2023", 19_366, "2023-11-16 18:15:46.6805900", 3501.721937),
        ("azure-code-2023", 8_819, "2023-11-16 18:17:03.9799600", 3435.948056),
    ],
)
def test_bundled_traces_load_by_name(name, rows, start, duration_s):
    tr = load_trace(name)
    assert len(tr) == rows
    assert tr.start == pd.Timestamp(start, tz="UTC")
    assert tr.duration_s == pytest.approx(duration_s, abs=1e-6)
    assert tr.arrival_s.dtype == np.float64 and tr.arrival_s[0] == 0.0
    assert tr.input_tokens.dtype == np.int32 and tr.output_tokens.dtype == np.int32
    assert not tr.synthetic and "measured" in tr.label
    assert tr.repairs is not None and not tr.repairs.changed and tr.repairs.actions == ()


@pytest.mark.skipif(not SHARED.exists(), reason="shared data not present")
@pytest.mark.parametrize("name, kind", [("azure-conv-2023", "conv"), ("azure-code-2023", "code")])
def test_bundled_trace_matches_shared_csv_independently(name, kind):
    raw = pd.read_csv(SHARED / f"AzureLLMInferenceTrace_{kind}.csv")
    ts = pd.to_datetime(raw["TIMESTAMP"]).astype("int64").to_numpy()
    tr = load_trace(name)
    np.testing.assert_allclose(tr.arrival_s, (ts - ts[0]) / 1e9, atol=1e-7)
    np.testing.assert_array_equal(tr.input_tokens, raw["ContextTokens"].to_numpy())
    np.testing.assert_array_equal(tr.output_tokens, raw["GeneratedTokens"].to_numpy())


def test_arrays_are_read_only():
    tr = load_trace("azure-code-2023")
    with pytest.raises(ValueError):
        tr.arrival_s[0] = 1.0


# ---------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------


def test_azure_2023_format_crlf_seven_fraction_digits(tmp_path):
    p = write(tmp_path, "a.csv", [HEADER, "2023-11-16 18:15:46.6805900,374,44",
                                   "2023-11-16 18:15:46.6805901,3,4", "2023-11-16 18:15:50,10,20"], crlf=True)
    tr = load_trace(p)
    np.testing.assert_allclose(tr.arrival_s, [0.0, 1e-7, 3.31941], atol=1e-12)
    assert tr.start == pd.Timestamp("2023-11-16 18:15:46.68059", tz="UTC")
    assert tr.input_tokens.tolist() == [374, 3, 10]


def test_azure_2024_format_offsets_and_missing_fractions(tmp_path):
    p = write(tmp_path, "b.csv", [HEADER, "2024-05-10 00:00:00.009930+00:00,5,6",
                                   "2024-05-10 00:00:01+00:00,7,8", "2024-05-10 02:00:01.5+02:00,9,10"])
    tr = load_trace(p)
    # 02:00:01.5+02:00 is 00:00:01.5 UTC
    np.testing.assert_allclose(tr.arrival_s, [0.0, 0.99007, 1.49007], atol=1e-9)
    assert str(tr.start.tz) == "UTC"


def test_generic_csv_aliases_numeric_arrivals_and_gzip(tmp_path):
    path = tmp_path / "vidur.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("arrived_at,num_prefill_tokens,num_decode_tokens,extra\n0.5,10,3,x\n1.25,20.0,4,y\n")
    tr = load_trace(path)
    assert tr.start is None
    assert tr.arrival_s.tolist() == [0.5, 1.25] and tr.input_tokens.tolist() == [10, 20]


def test_columns_override(tmp_path):
    p = write(tmp_path, "c.csv", ["t,a,b", "0,1,2", "1,3,4"])
    with pytest.raises(ValidationError, match="missing the arrival column"):
        load_trace(p)
    tr = load_trace(p, columns={"arrival": "t", "input": "a", "output": "b"})
    assert tr.output_tokens.tolist() == [2, 4]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_save_load_round_trip_keeps_provenance(tmp_path, suffix):
    tr = Trace(arrival_s=np.array([0.0, 0.5, 2.0]), input_tokens=np.array([1, 2, 3]),
               output_tokens=np.array([4, 5, 6]), name="toy", start="2024-01-01T00:00:00Z",
               duration_s=10.0, synthetic=True, label="SYNTHETIC: toy", metadata={"seed": 3})
    back = load_trace(save_trace(tr, tmp_path / f"toy{suffix}"))
    np.testing.assert_array_equal(back.arrival_s, tr.arrival_s)
    np.testing.assert_array_equal(back.input_tokens, tr.input_tokens)
    assert back.synthetic and back.label == "SYNTHETIC: toy" and back.name == "toy"
    assert back.start == tr.start and back.duration_s == 10.0 and back.metadata["seed"] == "3"


def test_parquet_with_timestamp_column(tmp_path):
    df = pd.DataFrame({"TIMESTAMP": pd.to_datetime(["2024-05-10 00:00:00", "2024-05-10 00:00:02"], utc=True),
                       "ContextTokens": np.array([1, 2], dtype=np.int64), "GeneratedTokens": [3, 4]})
    df.to_parquet(tmp_path / "t.parquet")
    tr = load_trace(tmp_path / "t.parquet")
    assert tr.arrival_s.tolist() == [0.0, 2.0] and tr.start == pd.Timestamp("2024-05-10", tz="UTC")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines, pattern",
    [
        ([], "empty file"),
        ([HEADER], "no data rows"),
        (["TIMESTAMP,ContextTokens", "2024-05-10 00:00:00,3"], "missing the output column"),
        ([HEADER, "2023-11-16 18:15:46,1,2", "2023-11-16 18:15:45,1,3"],
         r"row 2 \(line 3\), field 'TIMESTAMP'.*earlier than row 1.*sorted"),
        ([HEADER, "2023-11-16 18:15:46,1,2", "2023-11-16 18:15:47,-5,3"],
         r"row 2 \(line 3\), field 'ContextTokens': negative token count, got -5"),
        ([HEADER, "2023-11-16 18:15:46,1,2", "2023-11-16 18:15:47,1,abc"],
         r"row 2 \(line 3\), field 'GeneratedTokens': not a number, got 'abc'"),
        ([HEADER, "2023-11-16 18:15:46,1,2", "2023-11-16 18:15:47,,3"],
         r"row 2 \(line 3\), field 'ContextTokens': missing value"),
        ([HEADER, "2023-11-16 18:15:46,1,2", "2023-11-16 18:15:47,1.5,3"],
         r"row 2 \(line 3\), field 'ContextTokens': not a whole number"),
        ([HEADER, "2023-11-16 18:15:46,1,2", "yesterday,1,3"],
         r"row 2 \(line 3\), field 'TIMESTAMP': not a timestamp"),
        ([HEADER, "2024-05-10 00:00:00+00:00,1,2", "2024-05-10 00:00:01,1,3"],
         r"row 2 \(line 3\), field 'TIMESTAMP': not a timestamp with a zone offset"),
        ([HEADER, "2023-11-16 18:15:46,1,2", "2023-11-16 18:15:46,1,2"],
         r"row 2 \(line 3\): identical to row 1"),
        ([HEADER, "2023-11-16 18:15:46,1,2", "2023-11-16 18:15:47,1,2,9"], "malformed CSV"),
    ],
)
def test_bad_traces_raise_naming_file_row_and_field(tmp_path, lines, pattern):
    p = write(tmp_path, "bad.csv", lines) if lines else (tmp_path / "bad.csv")
    if not lines:
        p.write_bytes(b"")
    with pytest.raises(ValidationError, match=pattern) as info:
        load_trace(p)
    assert "bad.csv" in str(info.value)


def test_unknown_name_lists_bundled():
    with pytest.raises(ValidationError, match="azure-conv-2023"):
        load_trace("no-such-trace")


def test_equal_timestamps_with_different_rows_are_accepted(tmp_path):
    p = write(tmp_path, "ties.csv", [HEADER, "2024-05-10 00:00:00+00:00,1,2", "2024-05-10 00:00:00+00:00,1,3",
                                      "2024-05-10 00:00:00+00:00,5,2"])
    tr = load_trace(p)
    assert len(tr) == 3 and tr.repairs.actions == ()


# ---------------------------------------------------------------------------------------------
# Repairs
# ---------------------------------------------------------------------------------------------


def test_repair_sorts_drops_and_reports(tmp_path):
    p = write(tmp_path, "r.csv", [
        HEADER,
        "2023-11-16 18:00:03,30,3",  # row 1
        "2023-11-16 18:00:01,10,1",  # row 2: out of order
        "2023-11-16 18:00:02,-1,2",  # row 3: negative
        "2023-11-16 18:00:04,x,4",   # row 4: non-numeric
        "2023-11-16 18:00:03,30,3",  # row 5: identical to row 1
        "2023-11-16 18:00:05,50,5",  # row 6
    ])
    tr = load_trace(p, repair=True)
    assert tr.input_tokens.tolist() == [10, 30, 50]
    np.testing.assert_allclose(tr.arrival_s, [0.0, 2.0, 4.0])
    rep = tr.repairs
    assert rep.rows_read == 6 and rep.rows_kept == 3 and rep.changed
    kinds = [a.kind for a in rep.actions]
    assert kinds.count("dropped_invalid") == 2
    dropped = {a.first_rows for a in rep.actions if a.kind == "dropped_invalid"}
    assert dropped == {(3,), (4,)}
    sorted_ = next(a for a in rep.actions if a.kind == "sorted")
    assert sorted_.n_rows == 1 and sorted_.first_rows == (2,)
    dup = next(a for a in rep.actions if a.kind == "dropped_duplicates")
    assert dup.n_rows == 1 and dup.first_rows == (5,)
    assert "kept 3" in str(rep)


@pytest.mark.parametrize("policy, n, kind", [("drop", 2, "dropped_duplicates"), ("jitter", 4, "jittered_duplicates"),
                                              ("keep", 4, "kept_duplicates")])
def test_duplicate_policies(tmp_path, policy, n, kind):
    p = write(tmp_path, "d.csv", [HEADER, "2024-05-10 00:00:00+00:00,1,2", "2024-05-10 00:00:00+00:00,1,2",
                                   "2024-05-10 00:00:00+00:00,5,2", "2024-05-10 00:00:00+00:00,1,2"])
    tr = load_trace(p, duplicates=policy)
    assert len(tr) == n
    action = tr.repairs.actions[0]
    assert action.kind == kind and action.n_rows == 2 and action.first_rows == (2, 4)
    if policy == "jitter":
        assert np.all(np.diff(tr.arrival_s) >= 0) and len(np.unique(tr.arrival_s)) == 3
        np.testing.assert_allclose(tr.arrival_s.max(), 2e-9)
        assert sorted(tr.input_tokens.tolist()) == [1, 1, 1, 5]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 5000), st.integers(0, 900)),
                min_size=1, max_size=40, unique_by=lambda r: r[0]))
def test_repair_sorting_matches_pandas(tmp_path_factory, rows):
    tmp = tmp_path_factory.mktemp("h")
    lines = [HEADER] + [f"{pd.Timestamp('2024-05-10') + pd.Timedelta(milliseconds=t)},{i},{o}" for t, i, o in rows]
    tr = load_trace(write(tmp, "h.csv", lines), repair=True)
    expect = pd.DataFrame(rows, columns=["t", "i", "o"]).sort_values("t", kind="stable")
    np.testing.assert_allclose(tr.arrival_s, (expect["t"] - expect["t"].iloc[0]) / 1000.0, atol=1e-9)
    np.testing.assert_array_equal(tr.input_tokens, expect["i"].to_numpy())
    n_back = int(np.sum(np.diff([r[0] for r in rows]) < 0))
    assert tr.repairs.changed == (n_back > 0)


def test_trace_rejects_bad_arrays():
    with pytest.raises(ValidationError, match="shape"):
        Trace(arrival_s=np.zeros(3), input_tokens=np.zeros(2), output_tokens=np.zeros(3), name="x")
    with pytest.raises(ValidationError, match="non-decreasing"):
        Trace(arrival_s=np.array([1.0, 0.0]), input_tokens=np.zeros(2), output_tokens=np.zeros(2), name="x")
    with pytest.raises(ValidationError, match="0..2"):
        Trace(arrival_s=np.zeros(1), input_tokens=np.array([-1]), output_tokens=np.zeros(1), name="x")
