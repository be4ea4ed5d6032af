"""Regenerate ``tests/data/golden/plans.json``: stored optima and decisions of fixed forecasts
on the bundled profile (``Profile.default()``), checked by ``tests/test_golden_plans.py``.

Run after a change that is meant to change plans (a formulation made exact, a new profile), and
review the diff of the JSON: every changed optimum needs a reason.

    PYTHONPATH=. python scripts/regenerate_golden.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dynaplan.domain import DEFAULT_SLOS  # noqa: E402
from dynaplan.planning import Planner  # noqa: E402
from dynaplan.profiles import Profile  # noqa: E402
from dynaplan.solvers import SolveOptions  # noqa: E402

OUT = ROOT / "tests" / "data" / "golden" / "plans.json"

# (name, inventory, call, forecast or pool arguments); gap 0 so the stored optimum is the optimum
CASES = [
    {"name": "pool_SM_full_load", "inventory": {"h100-80gb": 1}, "call": "plan_pool",
     "pool": "SM", "loads_rps": {"SM": 25.8438}, "servers": {"h100-80gb": 1}},
    {"name": "pool_LL_light", "inventory": {"h100-80gb": 1}, "call": "plan_pool",
     "pool": "LL", "loads_rps": {"LL": 1.1927037040458488}, "servers": {"h100-80gb": 1}},
    {"name": "pool_MM_spill", "inventory": {"h100-80gb": 3}, "call": "plan_pool",
     "pool": "MM", "loads_rps": {"MM": 9.0, "MS": 4.0}, "servers": {"h100-80gb": 3}},
    {"name": "hier_two_classes", "inventory": {"h100-80gb": 5}, "call": "plan",
     "forecast": {"SL": 2.1938, "MS": 26.1696}},
    {"name": "hier_mix", "inventory": {"h100-80gb": 8}, "call": "plan",
     "forecast": {"SS": 30.0, "MS": 12.0, "LL": 1.0, "SM": 6.0}},
    {"name": "mono_mix", "inventory": {"h100-80gb": 8}, "call": "plan_monolithic",
     "forecast": {"SS": 30.0, "MS": 12.0, "LL": 1.0, "SM": 6.0}},
]
OPTIONS = SolveOptions(mip_rel_gap=0.0, time_limit_s=60.0)


def run_case(case: dict, profile: Profile | None = None) -> dict:
    """The plan of ``case`` as stored: power, objective, bound and every pool's decisions."""
    profile = profile or Profile.default()
    pl = Planner(profile, case["inventory"], DEFAULT_SLOS, solve_options=OPTIONS)
    if case["call"] == "plan_pool":
        pools = [pl.plan_pool(case["pool"], case["loads_rps"], case["servers"])]
        power, report = pools[0].power_w, pools[0].report
    else:
        plan = getattr(pl, case["call"])(case["forecast"])
        pools, power, report = plan.pools, plan.power_w, plan.report
    return {
        "power_w": power,
        "objective": report.objective,
        "status": report.status.value,
        "pools": {pp.pool: {
            "servers": dict(sorted(pp.servers.items())),
            "groups": sorted([g.hardware, g.tp, g.freq_mhz, g.count] for g in pp.groups),
            "served_rps": dict(sorted(pp.served_rps.items())),
        } for pp in pools},
    }


def main() -> None:
    profile = Profile.default()
    data = {"note": "regenerate with scripts/regenerate_golden.py; solved with mip_rel_gap=0",
            "cases": {c["name"]: {"case": c, "expected": run_case(c, profile)} for c in CASES}}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=OUT.parent, suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, OUT)
    print(f"wrote {OUT} ({len(CASES)} cases)")


if __name__ == "__main__":
    main()
