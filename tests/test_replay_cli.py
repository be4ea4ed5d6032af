"""``dynaplan replay`` end to end (on an app of its own until the lead wires ``register``)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from dynaplan.cli.replay import register
from dynaplan.errors import ValidationError


@pytest.fixture(scope="module")
def app():
    a = typer.Typer(pretty_exceptions_enable=False)
    register(a)

    @a.callback()
    def _root() -> None:  # keep "replay" a sub-command
        pass

    return a


def test_replay_command_prints_and_writes(app, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["replay", "--trace", "azure-code-2023", "--policy", "SinglePool,ScaleFreq,DynamoLLM",
                                   "--servers", "12", "--rate", "20", "--out", str(out),
                                   "--plot", str(tmp_path / "replay.png")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "SinglePool" in res.output and "DynamoLLM" in res.output and "vs SinglePool" in res.output
    df = pd.read_csv(out / "replay.csv", index_col="policy")
    assert list(df.index) == ["SinglePool", "ScaleFreq", "DynamoLLM"]
    assert df.loc["SinglePool", "energy_vs_baseline_pct"] == 0.0
    doc = json.loads((out / "replay.json").read_text())
    assert doc["trace"]["name"] == "azure-code-2023" and len(doc["results"]) == 3
    assert doc["results"][2]["policy"] == "DynamoLLM"
    assert (tmp_path / "replay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    windows = pd.read_parquet(out / "windows.parquet")
    assert list(windows["policy"].unique()) == ["SinglePool", "ScaleFreq", "DynamoLLM"]
    n = len(windows) // 3
    assert n > 100 and (windows.groupby("policy").size() == n).all()
    assert {"window_start_s", "power_w", "servers"} <= set(windows.columns)
    energy_kwh = windows.groupby("policy")["power_w"].sum() * 5.0 / 3.6e6  # 5-s windows
    assert energy_kwh["SinglePool"] == pytest.approx(df.loc["SinglePool", "energy_kwh"], rel=0.05)
    # the summary says what the table shows: the rate, the inventory and how the baselines were sized
    assert "20.0 req/s mean (--rate 20)" in res.output and "inventory: 12 servers x h100-80gb (96 GPUs)" in res.output
    assert "baselines:" in res.output and "--static-sizing peak" in res.output


def test_replay_policy_help_lists_the_names(app):
    res = CliRunner().invoke(app, ["replay", "--help"], terminal_width=200)
    for name in ("SinglePool", "MultiPool", "ScaleInst", "ScaleShard", "ScaleFreq", "DynamoLLM", "Oracle"):
        assert name in res.output


def test_replay_peak_rps_scales_the_trace_to_that_peak(app, tmp_path):
    res = CliRunner().invoke(app, ["replay", "--trace", "azure-code-2023", "--policy", "SinglePool", "--servers", "12",
                                   "--peak-rps", "40", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    doc = json.loads((tmp_path / "replay.json").read_text())
    peak = float(doc["rate"].split("1-min peak of ")[1].split(" req/s")[0])
    assert peak == pytest.approx(40, rel=0.05)
    res = CliRunner().invoke(app, ["replay", "--rate", "10", "--peak-rps", "40", "--out", str(tmp_path)])
    assert isinstance(res.exception, ValidationError) and "not both" in str(res.exception)


def test_replay_never_clobbers_outputs_on_a_failed_run(app, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "replay.csv").write_text("precious\n")
    (out / "replay.json").mkdir()  # a directory where a file must go: refused before any work
    res = CliRunner().invoke(app, ["replay", "--policy", "SinglePool", "--out", str(out)])
    assert isinstance(res.exception, ValidationError) and "replay.json" in str(res.exception)
    assert (out / "replay.csv").read_text() == "precious\n" and not (out / "windows.parquet").exists()
    (out / "replay.json").rmdir()
    res = CliRunner().invoke(app, ["replay", "--policy", "SinglePool", "--out", str(out), "--plot",
                                   str(tmp_path / "p.xyz")])
    assert isinstance(res.exception, ValidationError) and "--plot" in str(res.exception)
    assert (out / "replay.csv").read_text() == "precious\n"
    assert sorted(p.name for p in out.iterdir()) == ["replay.csv"]  # no temporaries left behind


def test_replay_command_rejects_bad_input(app, tmp_path):
    res = CliRunner().invoke(app, ["replay", "--policy", "Nope", "--out", str(tmp_path)])
    assert isinstance(res.exception, ValidationError) and "unknown policy" in str(res.exception)
    res = CliRunner().invoke(app, ["replay", "--rate", "fast", "--policy", "SinglePool", "--out", str(tmp_path)])
    assert isinstance(res.exception, ValidationError) and "--rate" in str(res.exception)


def test_the_summary_explains_when_dynamollm_is_not_better():
    from types import SimpleNamespace

    from dynaplan.cli.replay import explain
    from dynaplan.workload.loading import load_trace

    tr = load_trace("azure-conv-2023")

    def res(policy, kwh, servers, usd):
        return SimpleNamespace(policy=policy, summary=SimpleNamespace(energy_kwh=kwh, avg_servers=servers,
                                                                      cost_usd=usd))

    lines = explain(tr, "rate as recorded", 40, "h100-80gb", 8, "peak", 1.0, 19.9,
                    [res("SinglePool", 78.5, 20.0, 1918), res("DynamoLLM", 79.7, 40.0, 3832)])
    text = "\n".join(lines)
    assert "inventory: 40 servers x h100-80gb (320 GPUs)" in text and "needs 19.9 servers" in text
    assert "why DynamoLLM saves little here (+1.5% energy)" in text and "sized for this very trace's peak" in text
    assert "--static-sizing inventory" in text and "docs/results.md" in text
    assert "cost: DynamoLLM keeps 40.0 servers on average against SinglePool's 20.0" in text
    lines = explain(tr, "rate as recorded", 40, "h100-80gb", 8, "inventory", 2.0, 19.9,
                    [res("SinglePool", 100.0, 40.0, 1000), res("DynamoLLM", 60.0, 30.0, 900)])
    assert not any(ln.startswith(("why", "cost")) for ln in lines)  # nothing to explain when it saves
    assert "sized for 2.00 x the trace's peak" in "\n".join(lines)
