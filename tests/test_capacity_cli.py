"""``dynaplan capacity``: a Mélange config end to end, and bad input as one line with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MELANGE_EXAMPLE = Path(__file__).parent / "data" / "melange_example.json"


def _run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "dynaplan", "capacity", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_melange_config_through_the_cli(tmp_path):
    res = _run("--melange", str(MELANGE_EXAMPLE), "--assignment", "sliced", "--json", "m.json", "--csv", "m.csv",
               cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    plan = json.loads((tmp_path / "m.json").read_text())["plans"][0]
    assert plan["fleet"] == {"A10G": 3, "A100-80GB": 1} and abs(plan["cost_usd_per_h"] - 6.7) < 1e-9
    assert plan["report"]["status"] == "optimal"
    assert "A10G,3" in (tmp_path / "m.csv").read_text()


def test_bad_flags_are_one_line_and_exit_2(tmp_path):
    for args, word in ((["--growth", "x"], "--growth"), (["--availability", "h100-80gb"], "--availability"),
                       (["--melange", "missing.json"], "missing.json"),
                       (["--hardware", "tpu-v9", "--periods", "1"], "tpu-v9"),
                       (["--melange", str(MELANGE_EXAMPLE), "--period-plans"], "--period-plans")):
        res = _run(*args, cwd=tmp_path)
        assert res.returncode == 2, (args, res.stderr)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and word in lines[0], (args, res.stderr)
    assert not (tmp_path / "capacity.json").exists()  # nothing written on failure


def test_a_fleet_missing_its_slos_in_replay_is_flagged_and_exits_1(tmp_path):
    # a target of 100% of requests within the SLOs: a P99-sized fleet misses it in some class
    res = _run("--peak-rps", "8", "--periods", "2", "--hardware", "h100-80gb,a100-80gb", "--replay",
               "--replay-target", "1.0", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert "misses its SLOs in replay" in res.stderr
    plan = json.loads((tmp_path / "capacity.json").read_text())["plans"][0]
    assert plan["verdict"].startswith("MISSES SLOs IN REPLAY") and plan["replay"]["meets_slos"] is False
    assert "MISSES SLOs IN REPLAY" in (tmp_path / "capacity.csv").read_text()
