"""The sweep's parquet store and report: typed rows, atomic files, leftovers ignored, the Pareto front."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
import sweep_kinds  # noqa: E402,F401  (registers 'probe')

from dynaplan.sweep.kinds import CAPACITY, REPLAY, get_kind  # noqa: E402
from dynaplan.sweep.report import pareto_front, standard_figures, summary  # noqa: E402
from dynaplan.sweep.store import ResultStore, schema  # noqa: E402


def test_schema_types_come_from_the_option_annotations():
    s = schema(CAPACITY, CAPACITY.metrics)
    assert s.field("growth").type == pa.float64() and s.field("periods").type == pa.int64()
    assert s.field("hardware").type == pa.string() and s.field("objective").type == pa.string()  # JSON / text
    assert s.field("servers").type == pa.int64() and s.field("solve_status").type == pa.string()
    r = schema(REPLAY, REPLAY.metrics)
    assert r.field("trace_duration_s").type == pa.float64() and r.field("seed").type == pa.int64()
    assert r.names[:2] == ["scenario_id", "kind"] and r.names[-6:] == [
        "status", "error", "wall_time_s", "dynaplan_version", "worker", "finished_at"]


def test_rows_are_whole_files_leftovers_are_ignored_and_ids_replace(tmp_path):
    kind = get_kind("probe")
    store = ResultStore(tmp_path, kind, kind.metrics)
    base = {"kind": "probe", "x": 1, "offset": 0.0, "sleep_s": 0.0, "fail": False, "interrupt": False, "die": None,
            "table_size": 1000, "status": "ok", "error": None}
    store.write({**base, "scenario_id": "a", "y": 1.0, "pid": 1})
    store.write({**base, "scenario_id": "b", "status": "error", "error": "ValueError: no"})  # metrics null
    (tmp_path / ".part-c.parquet.123.tmp").write_bytes(b"half a file")  # a killed write
    df = pd.read_parquet(tmp_path)
    assert sorted(df["scenario_id"]) == ["a", "b"] and df.set_index("scenario_id").loc["b", "y"] != 1.0
    assert store.finished() == {"a": "ok", "b": "error"}
    store.write({**base, "scenario_id": "b", "y": 4.0, "pid": 2})  # a retry replaces the row
    assert store.finished() == {"a": "ok", "b": "ok"} and len(pd.read_parquet(tmp_path)) == 2
    assert store.clean_temporaries() == 1 and not list(tmp_path.glob(".*"))
    assert store.read(["b", "a"])["scenario_id"].tolist() == ["b", "a"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=25))
def test_pareto_front_is_the_set_of_undominated_points(points):
    cost, energy = np.array(points, float).T
    got = pareto_front(cost, energy)
    for i in range(len(points)):  # brute force: dominated iff another point is <= on both and < on one
        dominated = any(cost[j] <= cost[i] and energy[j] <= energy[i] and (cost[j] < cost[i] or energy[j] < energy[i])
                        for j in range(len(points)))
        twin_on_front = any(got[j] and cost[j] == cost[i] and energy[j] == energy[i] for j in range(len(points)))
        if dominated:
            assert not got[i], (points, i)
        else:  # undominated: on the front, or an equal point stands for it (exactly one of equals is on it)
            assert got[i] or twin_on_front, (points, i)
    coords = {(c, e) for c, e, g in zip(cost, energy, got) if g}
    assert len(coords) == int(got.sum())


def test_pareto_front_skips_nan():
    assert pareto_front(np.array([1.0, np.nan, 2.0]), np.array([2.0, 0.0, 1.0])).tolist() == [True, False, True]


def test_report_summary_and_figures(tmp_path):
    rows = [{"scenario_id": f"s{g}{h}", "status": "ok", "growth": g, "hardware": json.dumps([h]),
             "cost_usd": 10.0 * g * (2 if h == "b" else 1), "energy_kwh": 5.0 * g * (1 if h == "b" else 2)}
            for g in (1.0, 2.0) for h in ("a", "b")]
    rows.append({"scenario_id": "bad", "status": "error", "growth": 3.0, "hardware": json.dumps(["a"]),
                 "cost_usd": np.nan, "energy_kwh": np.nan, "error": "InfeasibleError: no"})
    df = pd.DataFrame(rows)
    meta = {"spec": {"name": "t", "kind": "capacity", "axes": {"growth": [], "hardware": []},
                     "metrics": ["cost_usd", "energy_kwh"]}}
    counts, stats = summary(df, meta)
    assert counts == {"ok": 4, "error": 1}
    row = stats.set_index("metric").loc["cost_usd"]
    assert row["min"] == 10.0 and row["max"] == 40.0 and row["at min"] == "growth=1, hardware=a"
    paths = standard_figures(df, meta, tmp_path / "_figures")
    assert [p.name for p in paths] == ["cost_usd_vs_growth.png", "pareto_cost_energy.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
