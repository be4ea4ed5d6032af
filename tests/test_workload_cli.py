"""``dynaplan trace ...`` through typer's CliRunner, and error exit codes through main()."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dynaplan.cli import app

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, ["trace", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.mark.parametrize(
    "name, n, mix",
    [("azure-conv-2023", "19,366", {"SS": 693, "LL": 4950, "MS": 3680}),
     ("azure-code-2023", "8,819", {"LS": 5242, "SS": 1362, "ML": 5})],
)
def test_stats_prints_counts_and_writes_every_table(tmp_path, name, n, mix):
    out = tmp_path / "stats"
    res = invoke("stats", "--trace", name, "--out", str(out))
    assert n in res.output and "Class mix" in res.output and "measured" in res.output
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 1 and summary.loc[0, "requests"] == int(n.replace(",", ""))
    tokens = pd.read_csv(out / "token_percentiles.csv").set_index("tokens")
    assert set(tokens.index) == {"input", "output"} and (tokens["max"] >= tokens["p99"]).all()
    df = pd.read_csv(out / "class_mix.csv").set_index("class")
    assert df["requests"].sum() == int(n.replace(",", ""))
    for cls, count in mix.items():
        assert df.loc[cls, "requests"] == count
    assert (~df["synthetic"]).all() and df["trace"].str.startswith("measured").all()


def test_load_with_plot_and_csv(tmp_path):
    out, png = tmp_path / "load.csv", tmp_path / "load.png"
    res = invoke("load", "--trace", "azure-code-2023", "--window", "5min", "--out", str(out), "--plot", str(png))
    assert "12 windows" in res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    df = pd.read_csv(out)
    assert list(df.columns[:5]) == ["window_start_s", "class", "load_rps", "input_tokens_per_s", "output_tokens_per_s"]
    assert df[df["window_start_s"] < 3300]["load_rps"].sum() * 300 + \
        df[df["window_start_s"] == 3300]["load_rps"].sum() * (3435.948056 - 3300) == pytest.approx(8819)


def test_synthetic_output_is_labelled_everywhere(tmp_path):
    out = tmp_path / "peaks.csv"
    res = invoke("load", "--trace", "azure-conv-2023", "--synthetic-days", "0.25", "--seed", "4", "--window", "1min",
                 "--epoch", "30min", "--classes", "predicted", "--out", str(out))
    assert "SYNTHETIC" in res.output and "12 windows" in res.output
    df = pd.read_csv(out)
    assert df["synthetic"].all() and df["trace"].str.startswith("SYNTHETIC").all()


def test_generate_then_stats_on_the_file(tmp_path):
    path = tmp_path / "week.parquet"
    res = invoke("generate", "--source", "azure-code-2023", "--days", "0.5", "--seed", "1", "--rate", "2",
                 "--out", str(path))
    assert "hourly peak/valley" in res.output and "SYNTHETIC" in res.output
    res = invoke("stats", "--trace", str(path))
    assert "SYNTHETIC" in res.output and "True" in res.output


def test_classify_writes_a_plain_csv_and_its_metadata_beside_it(tmp_path):
    out = tmp_path / "cls.csv"
    res = invoke("classify", "--trace", "azure-code-2023", "--accuracy", "0.9", "--out", str(out))
    assert "accuracy 0.9" in res.output
    df = pd.read_csv(out)  # no header line to skip
    assert list(df.columns) == ["arrival_s", "input_tokens", "output_tokens", "true_class", "predicted_class"]
    assert len(df) == 8819 and set(df["true_class"]) <= {"SS", "SM", "SL", "MS", "MM", "ML", "LS", "LM", "LL"}
    assert (df["true_class"] == df["predicted_class"]).mean() == pytest.approx(0.9, abs=0.02)
    meta = json.loads((tmp_path / "cls.meta.json").read_text())
    assert meta["synthetic"] is False and meta["predictor_accuracy"] == 0.9 and meta["name"] == "azure-code-2023"


def test_classify_parquet_keeps_its_metadata_inside(tmp_path):
    import pyarrow.parquet as pq

    from dynaplan.workload.trace import PARQUET_METADATA_KEY

    out = tmp_path / "cls.parquet"
    invoke("classify", "--trace", "azure-code-2023", "--out", str(out))
    df = pd.read_parquet(out)
    assert len(df) == 8819 and "predicted_class" in df.columns
    meta = json.loads(pq.read_schema(out).metadata[PARQUET_METADATA_KEY])
    assert meta["name"] == "azure-code-2023" and not (tmp_path / "cls.meta.json").exists()


def test_stats_plot_and_a_file_name_for_the_table_directory(tmp_path):
    png = tmp_path / "stats.png"
    invoke("stats", "--trace", "azure-code-2023", "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = runner.invoke(app, ["trace", "stats", "--out", str(tmp_path / "mix.csv")])
    assert res.exit_code != 0 and "directory" in str(res.exception) and not (tmp_path / "mix.csv").exists()


def test_load_joins_a_short_last_window_to_the_one_before_it(tmp_path):
    from dynaplan.workload.loading import load_trace

    out = tmp_path / "load.csv"
    invoke("load", "--trace", "azure-code-2023", "--window", "5min", "--out", str(out))
    df = pd.read_csv(out)
    tr = load_trace("azure-code-2023")
    last = df["window_start_s"].max()
    covered = tr.duration_s - last
    assert 0 < covered < 150  # the hour is 57 min: the 12th window covers under half its width
    # so it shares the rate of the last 300 + covered seconds with the 11th window
    n_tail = int((tr.arrival_s >= last - 300).sum())
    for start in (last - 300, last):
        assert df.loc[df["window_start_s"] == start, "load_rps"].sum() == pytest.approx(n_tail / (300 + covered))


def test_generate_rate_is_the_mean_of_the_trace_and_peak_rps_its_peak(tmp_path):
    from dynaplan.cli.rates import peak_rps
    from dynaplan.workload.loading import load_trace

    path = tmp_path / "day.parquet"
    invoke("generate", "--days", "1", "--rate", "20", "--out", str(path))
    tr = load_trace(str(path))
    assert tr.mean_rate_rps == pytest.approx(20, rel=0.01)  # not the weekly mean (about 7% above on a Monday)
    invoke("generate", "--days", "1", "--peak-rps", "60", "--out", str(path))
    assert peak_rps(load_trace(str(path))) == pytest.approx(60, rel=0.03)
    res = runner.invoke(app, ["trace", "generate", "--days", "1", "--rate", "5", "--peak-rps", "9"])
    assert res.exit_code != 0 and "not both" in str(res.exception)


def test_forecast_command():
    res = invoke("forecast", "--trace", "azure-conv-2023", "--epoch", "10min", "--window", "1min")
    for name in ("last-peak", "ewma", "seasonal", "oracle"):
        assert name in res.output


def run_main(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from dynaplan.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd)


def test_bad_trace_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,2\n2023-11-16 18:15:47,-3,2\n")
    res = run_main("trace", "stats", "--trace", str(bad), cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.csv" in lines[0] and "row 2" in lines[0] and "ContextTokens" in lines[0]
    assert "Traceback" not in res.stderr
    ok = run_main("trace", "stats", "--trace", str(bad), "--repair", cwd=tmp_path)
    assert ok.returncode == 0 and "dropped_invalid" in ok.stdout


def test_bad_window_exits_2(tmp_path, monkeypatch):
    from dynaplan.cli import main

    monkeypatch.setattr(sys, "argv", ["dynaplan", "trace", "load", "--window", "5 parsecs"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2


def test_a_bad_plot_path_is_refused_before_the_table_is_replaced(tmp_path):
    k = tmp_path / "k.csv"
    k.write_text("precious\n")
    res = runner.invoke(app, ["trace", "load", "--out", str(k), "--plot", str(tmp_path / "p.xyz")])
    assert res.exit_code != 0 and "--plot" in str(res.exception)
    assert k.read_text() == "precious\n" and sorted(p.name for p in tmp_path.iterdir()) == ["k.csv"]


def test_progress_is_drawn_on_a_terminal_and_never_into_a_pipe(monkeypatch):
    import io

    from rich.console import Console

    import dynaplan.cli.console as con

    buf = io.StringIO()
    monkeypatch.setattr(con, "err_console", lambda: Console(file=buf, force_terminal=True, width=100))
    invoke("classify", "--trace", "azure-code-2023")
    assert "classifying" in buf.getvalue()
    monkeypatch.setattr(con, "err_console", lambda: Console(file=buf, force_terminal=False, width=100))
    buf.truncate(0), buf.seek(0)
    invoke("classify", "--trace", "azure-code-2023")
    assert buf.getvalue() == ""


def test_generate_writes_plain_csv_and_a_metadata_sidecar(tmp_path):
    out = tmp_path / "g.csv"
    invoke("generate", "--days", "0.005", "--out", str(out))
    df = pd.read_csv(out)  # no '#' line before the header
    assert list(df.columns) == ["arrival_s", "input_tokens", "output_tokens"] and len(df) > 0
    meta = json.loads((tmp_path / "g.meta.json").read_text())
    assert meta["synthetic"] is True
    from dynaplan.workload.loading import load_trace

    back = load_trace(out)  # the loader reads the sidecar back
    assert back.synthetic and back.label == meta["label"] and len(back) == len(df)
