"""``dynaplan plan-reconfig``, run through ``dynaplan.cli.main`` with the command registered."""

from __future__ import annotations

import json
import sys
from collections import Counter

import pandas as pd
import pytest
import typer

import dynaplan.cli as cli
from dynaplan.cli.reconfig import register
from dynaplan.domain import DEFAULT_SLOS, H100_80GB
from dynaplan.planning import Plan, Planner
from dynaplan.reconfig import ClusterState, ReconfigPlan, Server, apply
from dynaplan.testing import synthetic_profile

HW = H100_80GB.name


@pytest.fixture
def run(monkeypatch, capsys):
    """Run ``dynaplan ARGS`` through ``main`` on an app holding the registered command."""
    monkeypatch.setenv("COLUMNS", "200")
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)

    @app.callback()
    def _root() -> None:
        """dynaplan (test app)"""

    register(app)
    monkeypatch.setattr(cli, "app", app)

    def go(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["dynaplan", *map(str, args)])
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return go


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("reconfig")
    prof = synthetic_profile(seed=4, tps=(2, 4, 8), n_loads=5)
    prof.write(d / "profile.csv")
    pl = Planner(prof, {HW: 6}, DEFAULT_SLOS)
    cap = pl.ops.groupby("request_class")["max_load_rps"].max()
    now = {c: 0.4 * float(cap[c]) for c in cap.index}
    ClusterState.from_plan(pl.plan(now), prof.hardware, servers={HW: 6}).write(d / "state.json")
    pd.DataFrame({"request_class": list(now), "load_rps": [1.5 * v for v in now.values()]}).to_csv(
        d / "forecast.csv", index=False)
    return d


def test_plan_reconfig_prints_and_writes_the_plan_and_the_schedule(run, files, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run("plan-reconfig", "--state", files / "state.json", "--forecast", files / "forecast.csv",
                            "--profile", files / "profile.csv", "--servers", 8, "--out", out)
    assert code == 0, err
    for title in ("instances by pool", "reconfiguration schedule", "reconfiguration summary"):
        assert title in stdout
    plan = Plan.from_json((out / "plan.json").read_text())
    rp = ReconfigPlan.from_json((out / "reconfig.json").read_text())
    assert rp.actions
    # the schedule takes the state, with the 2 empty servers --servers added, to the plan
    state = ClusterState.read(files / "state.json")
    assert {a.server for a in rp.actions} - {s.id for s in state.servers} <= {f"{HW}-new-0", f"{HW}-new-1"}
    state = ClusterState(servers=state.servers + (Server(id=f"{HW}-new-0", hardware=HW),
                                                  Server(id=f"{HW}-new-1", hardware=HW)),
                         instances=state.instances)
    final = apply(state, rp.actions)
    want = Counter()
    for pp in plan.pools:
        for g in pp.groups:
            want[(pp.pool, g.hardware, g.tp, g.freq_mhz)] += g.count
    assert Counter(final.config_counts()) == want


def test_bad_state_file_gives_one_line_naming_the_problem(run, files, tmp_path):
    data = json.loads((files / "state.json").read_text())
    inst = data["instances"][0]
    inst["tp"] = inst["tp"] * 2 if inst["tp"] < 8 else 4
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    code, _, err = run("plan-reconfig", "--state", bad, "--forecast", files / "forecast.csv",
                       "--profile", files / "profile.csv")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dynaplan: error:")
    assert "bad.json" in lines[0] and f"instance {inst['id']}" in lines[0] and "GPU" in lines[0]
    code, _, err = run("plan-reconfig", "--state", tmp_path / "missing.json", "--forecast", files / "forecast.csv")
    assert code == 2 and "missing.json: state file not found" in err
    code, _, err = run("plan-reconfig", "--state", files / "state.json", "--forecast", files / "forecast.csv",
                       "--profile", files / "profile.csv", "--servers", 1)
    assert code == 2 and "--servers 1: the state already has 6" in err
