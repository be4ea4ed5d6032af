"""``dynaplan sweep`` end to end: run, resume, a killed or interrupted CLI resumed with every
scenario exactly once, the report and its figures, one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# the CLI with the test kind 'probe' registered (tests/sweep_kinds.py)
RUN = "import sys, sweep_kinds; from dynaplan.cli import main; sys.argv = ['dynaplan'] + sys.argv[1:]; main()"


def _env():
    path = os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "COLUMNS": "200"}


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-c", RUN, *map(str, args)], capture_output=True, text=True,
                          env=_env(), timeout=timeout)


def _spec(tmp_path, n=16, sleep_s=0.0, name="probe.toml", extra=""):
    p = tmp_path / name
    p.write_text(f'name = "probe-sweep"\nkind = "probe"\n[base]\nsleep_s = {sleep_s}\n{extra}[axes]\n'
                 f'x = {{ start = 0, stop = {n - 1}, step = 1 }}\n')
    return p


def _parts(out: Path) -> list[Path]:
    return sorted(out.glob("part-*.parquet")) if out.is_dir() else []


def _sigint_default() -> None:
    """SIGINT at its default in the CLI process: a test run started where SIGINT is ignored (a
    background job of a non-interactive shell) would hand that on, and Python then keeps ignoring
    it, as a program started that way should."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_stop(tmp_path, sig, after: int, n: int = 16, group: bool = False):
    """Start the CLI on a sweep of ``n`` slow scenarios (0.4 s each, one worker), send ``sig`` once
    ``after`` rows are on disk (to the CLI process, or with ``group`` to its process group, worker
    processes included, as Ctrl-C on a terminal does); the return code and the folder."""
    spec, out = _spec(tmp_path, n=n, sleep_s=0.4), tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", RUN, "sweep", str(spec), "--out", str(out), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True, preexec_fn=_sigint_default)
    try:
        deadline = time.monotonic() + 240
        while len(_parts(out)) < after and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before it could be stopped: " + proc.stderr.read()[-2000:]
        if sig == signal.SIGKILL or group:  # the client and its worker processes, all at once
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err, spec, out


def _resume_and_check(spec, out, n, stopped_at):
    res = _cli("sweep", spec, "--out", out, "--workers", "0")
    assert res.returncode == 0, res.stderr
    df = pd.read_parquet(out)
    assert len(df) == n and df["scenario_id"].is_unique and sorted(df["x"]) == list(range(n))
    assert (df["status"] == "ok").all() and (df["y"] == df["x"].astype(float) ** 2).all()
    assert f"already in {out}" in res.stdout
    ran = int(res.stdout.split("this run: ")[1].split()[0])
    assert ran <= n - stopped_at  # finished scenarios were not run again
    assert not list(out.glob(".*.tmp"))


def test_a_killed_sweep_resumes_with_every_scenario_exactly_once(tmp_path):
    code, _, spec, out = _start_and_stop(tmp_path, signal.SIGKILL, after=3)
    assert code == -signal.SIGKILL
    written = len(_parts(out))
    assert 3 <= written < 16
    _resume_and_check(spec, out, 16, written)


@pytest.mark.parametrize("group", [False, True], ids=["cli-process", "process-group"])
def test_an_interrupted_sweep_stops_cleanly_and_resumes(tmp_path, group):
    code, err, spec, out = _start_and_stop(tmp_path, signal.SIGINT, after=2, group=group)
    assert code == 130, err
    written = len(_parts(out))
    assert written >= 2
    # one line, nothing from the worker processes: how many finished, and that re-running resumes
    assert err.strip().splitlines() == [
        f"dynaplan: interrupted; {written} of 16 scenarios finished, their rows kept in {out}; run the same "
        f"command again to resume the other {16 - written}"], err
    _resume_and_check(spec, out, 16, written)


def test_run_resume_report_and_plots(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('name = "grid"\nkind = "probe"\n[axes]\nx = [1, 2, 3]\noffset = [0.0, 10.0]\nfail = [false, true]\n')
    out = tmp_path / "out"
    res = _cli("sweep", spec, "--out", out, "--workers", "2")
    assert res.returncode == 1, res.stderr  # some scenarios failed: exit 1, everything written
    assert "12 scenarios: 6 error, 6 ok" in res.stdout and "failed scenarios (6)" in res.stdout
    assert "ValueError: probe x=" in res.stdout
    df = pd.read_parquet(out)
    assert len(df) == 12 and df.groupby("fail")["status"].agg(set).to_dict() == {False: {"ok"}, True: {"error"}}
    again = _cli("sweep", spec, "--out", out, "--workers", "0")
    assert "this run: 0 scenarios run (0 failed), 12 already in" in again.stdout
    rep = _cli("sweep", "report", out, "--plot", "--metric", "y", "--x", "x", "--by", "offset")
    assert rep.returncode == 0, rep.stderr
    assert "sweep grid: 12 scenarios" in rep.stdout and "y" in rep.stdout
    fig = out / "_figures" / "y_vs_x.png"
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_parquet(out)) == 12  # figures do not disturb the dataset


@pytest.mark.parametrize("args, words", [
    (["sweep", "{spec}"], "give --out DIR"),
    (["sweep", "{missing}", "--out", "{out}"], "no such file"),
    (["sweep", "{bad}", "--out", "{out}"], "bad.toml: SweepSpec: axes: unknown option 'xx' of a probe scenario"),
    (["sweep", "{spec}", "--out", "{out}", "--workers", "-1"], "--workers"),
    (["sweep", "{spec}", "--out", "{out}", "--plot"], "--plot: only with 'dynaplan sweep report DIR'"),
    (["sweep", "report", "{out}"], "no sweep results"),
    (["sweep", "{spec}", "--out", "{spec}"], "not a directory"),
])
def test_bad_invocations_fail_in_one_line(tmp_path, args, words, monkeypatch, capsys):
    sys.path.insert(0, str(TESTS))
    import sweep_kinds  # noqa: F401  (registers 'probe')
    from dynaplan.cli import main

    spec = _spec(tmp_path, n=2)
    (tmp_path / "bad.toml").write_text('kind = "probe"\n[axes]\nxx = [1]\n')
    fill = {"spec": spec, "missing": tmp_path / "none.toml", "bad": tmp_path / "bad.toml", "out": tmp_path / "o"}
    monkeypatch.setattr(sys, "argv", ["dynaplan", *[a.format(**fill) for a in args]])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dynaplan: error:") and words in lines[0], err
