"""``dynaplan plan``: the README's main job, and its errors."""

from __future__ import annotations

import subprocess
import sys

from dynaplan.planning import Plan


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dynaplan", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_plan_on_bundled_defaults_passes_the_checker_and_writes_json(tmp_path):
    out = tmp_path / "plan.json"
    res = run("plan", "--json", str(out))
    assert res.returncode == 0, res.stderr
    assert "independent check: passed" in res.stdout
    plan = Plan.from_json(out.read_text())
    assert plan.mode == "hierarchical" and plan.servers["h100-80gb"] <= 40
    assert set(plan.forecast_rps) == {"SS", "SM", "SL", "MS", "MM", "ML", "LS", "LM", "LL"}


def test_plan_from_forecast_file_and_infeasible_forecast(tmp_path):
    f = tmp_path / "forecast.csv"
    f.write_text("request_class,load_rps\nSS,4\nLL,2\n")
    res = run("plan", "--forecast", str(f), "--servers", "4")
    assert res.returncode == 0, res.stderr
    f.write_text("request_class,load_rps\nLL,500\n")
    res = run("plan", "--forecast", str(f), "--servers", "4")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "class LL: 500 req/s needs at least" in res.stderr and "the inventory has 32 GPUs (4 h100-80gb servers)" in res.stderr


def test_bad_forecast_file_is_one_line(tmp_path):
    f = tmp_path / "forecast.csv"
    f.write_text("request_class,load_rps\nXX,4\n")
    res = run("plan", "--forecast", str(f))
    assert res.returncode == 2 and "unknown class 'XX'" in res.stderr and "Traceback" not in res.stderr
    res = run("plan", "--forecast", str(tmp_path / "missing.csv"))
    assert res.returncode == 2 and "forecast file not found" in res.stderr


PY = [sys.executable, "-c"]
MAIN = "from dynaplan.cli import main; main()"


def run_code(code: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*PY, code + "\n" + MAIN, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_a_closed_pipe_ends_quietly():
    for args in (["plan"], ["--help"], ["trace", "stats"], ["trace"]):
        res = subprocess.run(f"{sys.executable} -m dynaplan {' '.join(args)} | head -1", shell=True,
                             capture_output=True, text=True, timeout=300, executable="/bin/bash")
        assert res.returncode == 0 and res.stderr == "", (args, res.stderr)
        assert len(res.stdout.splitlines()) == 1
    # a reader gone before the first write (deterministic, unlike racing head): exit 141, nothing on stderr
    import os

    for args in (["plan"], ["--help"], ["trace"], ["trace", "stats"]):
        r, w = os.pipe()
        os.close(r)
        try:
            res = subprocess.run([sys.executable, "-m", "dynaplan", *args], stdout=w, stderr=subprocess.PIPE,
                                 text=True, timeout=300)
        finally:
            os.close(w)
        assert res.returncode == 141 and res.stderr == "", (args, res.stderr)  # 128 + SIGPIPE, as a Unix tool


def test_an_unexpected_error_is_one_line_not_a_second_traceback():
    res = run_code("import dynaplan.cli.plan as p; p.Planner = None", "plan")
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr and "AttributeError" not in res.stderr
    assert res.stderr.startswith("dynaplan: error: internal error at plan.py:") and "TypeError" in res.stderr


def test_redirected_tables_keep_every_column(tmp_path):
    res = run("plan", "--servers", "40")
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert max(len(ln) for ln in lines) > 80 and "…" not in res.stdout  # not cut at 80 columns
    assert any("h100-80gb/TP8@" in ln for ln in lines)


def test_a_failed_check_keeps_the_old_outputs_and_says_so(tmp_path):
    old = tmp_path / "old.json"
    old.write_text("precious")
    code = ("import dynaplan.cli.plan as p\n"
            "import dataclasses\n"
            "real = p.check_plan\n"
            "def failing(*a, **k):\n"
            "    return dataclasses.replace(real(*a, **k), ok=False, violations=('pool LL: power off by 1 W',))\n"
            "p.check_plan = failing")
    res = run_code(code, "plan", "--json", str(old), "--csv", str(tmp_path / "p.csv"), cwd=tmp_path)
    assert res.returncode == 1
    assert "independent check of the plan failed: pool LL: power off by 1 W" in res.stderr
    assert old.read_text() == "precious" and not (tmp_path / "p.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]  # no temporaries left


def test_outputs_are_checked_before_any_work(tmp_path):
    (tmp_path / "adir").mkdir()
    res = run("plan", "--json", str(tmp_path / "adir"))
    assert res.returncode == 2 and "--json" in res.stderr and "is a directory" in res.stderr
    res = run("plan", "--json", str(tmp_path / "missing" / "p.json"))
    assert res.returncode == 2 and "does not exist" in res.stderr
    res = run("plan", "--csv", str(tmp_path / "p.xlsx"))
    assert res.returncode == 2 and "--csv" in res.stderr and ".parquet" in res.stderr
    res = run("plan", "--json", str(tmp_path / "same.json"), "--state-out", str(tmp_path / "same.json"))
    assert res.returncode == 2 and "the same file as --json" in res.stderr


def test_plan_csv_is_one_row_per_instance_group_and_sums_to_the_plan(tmp_path):
    import pandas as pd

    res = run("plan", "--json", str(tmp_path / "p.json"), "--csv", str(tmp_path / "p.csv"))
    assert res.returncode == 0, res.stderr
    plan = Plan.from_json((tmp_path / "p.json").read_text())
    df = pd.read_csv(tmp_path / "p.csv")
    groups = df[df["kind"] == "instances"]
    assert len(groups) == sum(len(pp.groups) for pp in plan.pools)
    assert df["power_w"].sum() == __import__("pytest").approx(plan.power_w, rel=1e-9)
    assert (groups["count"] * groups["tp"]).sum() == sum(plan.gpus.values())
