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
    assert "class LL: 500 req/s needs at least" in res.stderr and "the inventory has {'h100-80gb': 32} GPUs" in res.stderr


def test_bad_forecast_file_is_one_line(tmp_path):
    f = tmp_path / "forecast.csv"
    f.write_text("request_class,load_rps\nXX,4\n")
    res = run("plan", "--forecast", str(f))
    assert res.returncode == 2 and "unknown class 'XX'" in res.stderr and "Traceback" not in res.stderr
    res = run("plan", "--forecast", str(tmp_path / "missing.csv"))
    assert res.returncode == 2 and "forecast file not found" in res.stderr
