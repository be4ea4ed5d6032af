"""Golden plans on the bundled profile: stored optima and decisions of fixed forecasts.

``tests/data/golden/plans.json`` holds, per case, the plan's power (the optimum at
``mip_rel_gap=0``), its status and every pool's servers, instance groups and served loads. A
change that moves any of them fails here; when the change is meant (a formulation made exact, a
new bundled profile), regenerate with ``scripts/regenerate_golden.py`` and review the diff.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((ROOT / "tests" / "data" / "golden" / "plans.json").read_text())


def _runner():
    spec = importlib.util.spec_from_file_location("regenerate_golden", ROOT / "scripts" / "regenerate_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


REGEN = _runner()


def test_the_stored_cases_are_the_script_cases():
    assert [c["name"] for c in REGEN.CASES] == list(GOLDEN["cases"])
    for c in REGEN.CASES:
        assert GOLDEN["cases"][c["name"]]["case"] == c


@pytest.mark.parametrize("name", list(GOLDEN["cases"]))
def test_golden_plan(name):
    stored = GOLDEN["cases"][name]
    got = REGEN.run_case(stored["case"])
    want = stored["expected"]
    # a pool solve is proven within its gap; a whole plan is "optimal" only when its gap to the
    # global bound (planning/bounds.py) is, so plan cases store their honest status
    assert got["status"] == want["status"]
    if stored["case"]["call"] == "plan_pool":
        # a pool serving a spilled class has no proven bound on the profile's problem
        # (formulations/pool.md, "Mixed pools: what the report claims"): feasible, never optimal
        spill = any(c != stored["case"]["pool"] for c in stored["case"]["loads_rps"])
        assert got["status"] == ("feasible" if spill else "optimal")
    else:
        assert got["status"] in ("optimal", "feasible")
    assert got["power_w"] == pytest.approx(want["power_w"], rel=1e-6)
    assert got["objective"] == pytest.approx(want["objective"], rel=1e-6)
    assert set(got["pools"]) == set(want["pools"])
    for pool, w in want["pools"].items():
        g = got["pools"][pool]
        assert g["servers"] == w["servers"], pool
        assert g["groups"] == w["groups"], pool
        assert g["served_rps"] == pytest.approx(w["served_rps"], rel=1e-6, abs=1e-9), pool


@pytest.mark.parametrize("name", [n for n, c in GOLDEN["cases"].items()
                                  if c["case"]["call"] == "plan_pool" and len(c["case"]["loads_rps"]) == 1])
def test_stored_single_class_pool_optima_are_the_exact_optima(name):
    """The stored optimum of a single-class pool case is the independent exact solver's
    (tests/reference_solver.py, from the profile table alone), so a golden file regenerated
    from a wrong model cannot pass."""
    from reference_solver import pool_optimum_w

    from dynaplan.domain import DEFAULT_SLOS
    from dynaplan.profiles import Profile

    case = GOLDEN["cases"][name]["case"]
    (cls, load), = case["loads_rps"].items()
    (hw_name, servers), = case["servers"].items()
    prof = Profile.default()
    hw = prof.hardware[hw_name]
    want = pool_optimum_w(prof.table, prof.models[0], hw_name, hw.gpus_per_server, hw.idle_power_w, cls,
                          DEFAULT_SLOS[cls].ttft_ms, DEFAULT_SLOS[cls].tbt_ms, load, servers)
    assert GOLDEN["cases"][name]["expected"]["power_w"] == pytest.approx(want, rel=1e-6)
