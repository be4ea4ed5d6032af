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
                                   "--servers", "12", "--rate", "20", "--out", str(out), "--plot"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "SinglePool" in res.output and "DynamoLLM" in res.output and "vs SinglePool" in res.output
    df = pd.read_csv(out / "replay.csv", index_col="policy")
    assert list(df.index) == ["SinglePool", "ScaleFreq", "DynamoLLM"]
    assert df.loc["SinglePool", "energy_vs_baseline_pct"] == 0.0
    doc = json.loads((out / "replay.json").read_text())
    assert doc["trace"]["name"] == "azure-code-2023" and len(doc["results"]) == 3
    assert doc["results"][2]["policy"] == "DynamoLLM"
    for png in ("power_by_policy.png", "servers_per_pool.png"):
        assert (out / png).stat().st_size > 10_000


def test_replay_command_rejects_bad_input(app, tmp_path):
    res = CliRunner().invoke(app, ["replay", "--policy", "Nope", "--out", str(tmp_path)])
    assert isinstance(res.exception, ValidationError) and "unknown policy" in str(res.exception)
    res = CliRunner().invoke(app, ["replay", "--rate", "fast", "--policy", "SinglePool", "--out", str(tmp_path)])
    assert isinstance(res.exception, ValidationError) and "--rate" in str(res.exception)
