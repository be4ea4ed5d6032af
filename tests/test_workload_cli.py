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
def test_stats_prints_counts_and_writes_the_class_mix(tmp_path, name, n, mix):
    out = tmp_path / "mix.csv"
    res = invoke("stats", "--trace", name, "--out", str(out))
    assert n in res.output and "Class mix" in res.output and "measured" in res.output
    df = pd.read_csv(out).set_index("class")
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
    assert df["load_rps"].sum() * 300 == pytest.approx(8819)


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


def test_classify_writes_per_request_csv_with_metadata_line(tmp_path):
    out = tmp_path / "cls.csv"
    res = invoke("classify", "--trace", "azure-code-2023", "--accuracy", "0.9", "--out", str(out))
    assert "accuracy 0.9" in res.output
    first = out.read_text().splitlines()[0]
    assert first.startswith("# dynaplan-trace ")
    meta = json.loads(first[len("# dynaplan-trace "):])
    assert meta["synthetic"] is False and meta["predictor_accuracy"] == 0.9
    df = pd.read_csv(out, skiprows=1)
    assert len(df) == 8819 and set(df["true_class"]) <= {"SS", "SM", "SL", "MS", "MM", "ML", "LS", "LM", "LL"}
    assert (df["true_class"] == df["predicted_class"]).mean() == pytest.approx(0.9, abs=0.02)


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
