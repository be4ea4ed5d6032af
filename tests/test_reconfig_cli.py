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


def test_the_scheduler_loop_from_the_api_keeps_the_whole_inventory(files):
    """plan -> state on the whole inventory -> diff to a larger forecast -> apply -> diff again."""
    from dynaplan.reconfig import TransitionCosts, diff

    prof = synthetic_profile(seed=4, tps=(2, 4, 8), n_loads=5)
    planner = Planner(prof, {HW: 16}, DEFAULT_SLOS)
    cap = planner.ops.groupby("request_class")["max_load_rps"].max()
    small = {c: 0.5 * float(cap[c]) for c in ("SS", "MM", "LL")}
    plan = planner.plan(small)
    state = ClusterState.from_plan(plan, planner)
    assert state.servers_by_hardware() == {HW: 16} and sum(plan.servers.values()) < 8  # idle servers kept
    big = planner.plan({c: 4 * v for c, v in small.items()})
    assert sum(big.servers.values()) > sum(plan.servers.values())
    rp = diff(prof, state, DEFAULT_SLOS, big, TransitionCosts())
    assert not [d for d in rp.dips if d.end_s is None]  # reachable on the inventory
    assert any(a.kind == "start" and a.server not in {i.server for i in state.instances} for a in rp.actions)
    state2 = apply(state, rp.actions)
    assert state2.servers_by_hardware() == {HW: 16} and state2.time_s == rp.summary.target_reached_s
    rp2 = diff(prof, state2, DEFAULT_SLOS, planner.plan(small), TransitionCosts())
    assert rp2.now_s == state2.time_s and rp2.actions
    with pytest.raises(Exception, match="pass servers="):
        ClusterState.from_plan(plan, prof.hardware)  # a plan alone does not know the inventory


def test_the_scheduler_loop_from_the_cli(run, files, tmp_path):
    """plan-reconfig --state-out, then the next plan-reconfig from that state."""
    s2, s3 = tmp_path / "s2.json", tmp_path / "s3.json"
    code, _, err = run("plan-reconfig", "--state", files / "state.json", "--forecast", files / "forecast.csv",
                       "--profile", files / "profile.csv", "--state-out", s2, "--out", tmp_path / "r2")
    assert code == 0, err
    st2 = ClusterState.read(s2)
    rp = ReconfigPlan.from_json((tmp_path / "r2" / "reconfig.json").read_text())
    assert st2.time_s == rp.summary.target_reached_s and all(i.in_flight is None for i in st2.instances)
    actions = pd.read_csv(tmp_path / "r2" / "actions.csv")
    assert len(actions) == len(rp.actions) and list(actions["seq"]) == list(range(len(rp.actions)))
    plan_rows = pd.read_csv(tmp_path / "r2" / "plan.csv")
    plan = Plan.from_json((tmp_path / "r2" / "plan.json").read_text())
    assert plan_rows["power_w"].sum() == pytest.approx(plan.power_w)
    code, out, err = run("plan-reconfig", "--state", s2, "--forecast", files / "forecast.csv",
                         "--profile", files / "profile.csv", "--state-out", s3)
    assert code == 0, err
    assert f"after {st2.time_s:g} s" in out  # --now-s defaults to the state's time
    assert ClusterState.read(s3).servers_by_hardware() == st2.servers_by_hardware()


def test_a_plan_json_is_a_state_with_its_inventory(run, files, tmp_path):
    prof = synthetic_profile(seed=4, tps=(2, 4, 8), n_loads=5)
    pl = Planner(prof, {HW: 6}, DEFAULT_SLOS)
    cap = pl.ops.groupby("request_class")["max_load_rps"].max()
    p1 = tmp_path / "p1.json"
    p1.write_text(pl.plan({c: 0.2 * float(cap[c]) for c in cap.index}).to_json())
    code, _, err = run("plan-reconfig", "--state", p1, "--forecast", files / "forecast.csv",
                       "--profile", files / "profile.csv")
    assert code == 2 and "a plan, which records only the servers it uses" in err and "--state-out" in err
    code, out, err = run("plan-reconfig", "--state", p1, "--forecast", files / "forecast.csv",
                         "--profile", files / "profile.csv", "--servers", 6, "--state-out", tmp_path / "s.json")
    assert code == 0, err and "reconfiguration summary" in out
    assert ClusterState.read(tmp_path / "s.json").servers_by_hardware() == {HW: 6}


def test_a_failed_run_keeps_what_was_in_out(run, files, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "plan.json").write_text("precious")
    (out / "reconfig.json").mkdir()
    code, _, err = run("plan-reconfig", "--state", files / "state.json", "--forecast", files / "forecast.csv",
                       "--profile", files / "profile.csv", "--out", out)
    assert code == 2 and "reconfig.json is a directory" in err
    assert (out / "plan.json").read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == ["plan.json", "reconfig.json"]


def test_help_states_the_defaults(run):
    code, out, _ = run("plan-reconfig", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "default: the state's time_s" in text and "default: transfer" in text and "BRIEF" not in text
