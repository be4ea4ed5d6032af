"""Sweep capacity plans over load growth x hardware set x SLO scale, then check the results.

Runs ``examples/sweep_capacity.toml`` (16 capacity plans of the bundled Azure conversation trace)
on a LocalCluster of 2 workers, reads the results back with pandas, runs the sweep again to show
that finished scenarios are skipped, and checks: one row per scenario and id, every plan solved
with a bound at most its objective, and more load never cheaper for the same hardware and SLOs.

Run: python examples/sweep_capacity.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd

from dynaplan.sweep import expand, read_spec, run_sweep

HERE = Path(__file__).resolve().parent


def check_capacity(df: pd.DataFrame) -> None:
    assert (df["status"] == "ok").all(), df.loc[df["status"] != "ok", "error"].tolist()
    assert df["solve_status"].isin(["optimal", "feasible"]).all()
    tol = 1e-6 * df["solve_objective"].abs().clip(lower=1.0)
    assert (df["solve_bound"] <= df["solve_objective"] + tol).all()
    for (hw, slo), g in df.groupby(["hardware", "slo_scale"]):
        cost = g.sort_values("growth")["cost_usd"].to_numpy()
        gap = g["solve_gap"].fillna(0).max()
        assert all(b >= a * (1 - gap) - 1e-6 for a, b in zip(cost, cost[1:])), (hw, slo, cost)
        assert all(set(json.loads(f)) <= set(json.loads(hw)) for f in g["fleet"]), (hw, g["fleet"].tolist())


def main() -> None:
    spec_path = HERE / "sweep_capacity.toml"
    spec = read_spec(spec_path)
    ids = [s.scenario_id for s in expand(spec)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sweep-out"
        df = run_sweep(spec, out, workers=2)
        print(df.drop(columns=["worker", "finished_at", "dynaplan_version"]).to_string(max_cols=14))
        whole = pd.read_parquet(out)  # the folder reads whole
        assert len(whole) == len(ids) and sorted(whole["scenario_id"]) == sorted(ids)
        assert whole["scenario_id"].is_unique
        seen = []
        again = run_sweep(spec, out, workers=0, progress=lambda row, counts: seen.append(counts))
        assert seen[-1]["skipped"] == len(ids) and seen[-1]["done"] == 0  # nothing ran twice
        assert again["scenario_id"].tolist() == df["scenario_id"].tolist()
        check_capacity(df)
    print(f"{len(ids)} scenarios of {spec_path.name}: checks passed")


if __name__ == "__main__":  # worker processes import this file; only the parent runs the sweep
    main()
