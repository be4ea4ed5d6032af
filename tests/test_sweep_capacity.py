"""A real capacity sweep end to end (dynaplan.capacity, no test double): a LocalCluster of 2
workers gives the serial rows, each row is the plan ``plan_capacity`` returns for its options, and
the plans are consistent across the axes. Skipped while dynaplan.capacity is not installed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

capacity = pytest.importorskip("dynaplan.capacity", reason="dynaplan.capacity is not installed")

from dynaplan.sweep import expand, read_spec, run_sweep  # noqa: E402
from dynaplan.sweep.spec import SweepSpec  # noqa: E402

SPEC = {"name": "cap-e2e", "kind": "capacity",
        "base": {"trace": None, "rates": {"SS": 6.0, "MM": 3.0}, "periods": 1, "time_limit_s": 60.0,
                 "mip_rel_gap": 1e-4},
        "axes": {"growth": [1.0, 3.0], "hardware": [["h100-80gb"], ["a100-80gb", "h100-80gb"]]}}
KEEP = ["cost_usd", "energy_kwh", "carbon_kg", "peak_power_w", "servers", "fleet", "solve_status"]


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    root = tmp_path_factory.mktemp("capsweep")
    serial = run_sweep(SPEC, root / "serial", workers=0)
    dist = run_sweep(SPEC, root / "dist", workers=2)
    return serial, dist, root


def test_two_workers_give_the_serial_capacity_rows(rows):
    serial, dist, root = rows
    assert (serial["status"] == "ok").all(), serial["error"].tolist()
    assert serial["scenario_id"].tolist() == dist["scenario_id"].tolist()
    pd.testing.assert_frame_equal(serial[KEEP], dist[KEEP])
    assert len(pd.read_parquet(root / "dist")) == 4


def test_each_row_is_the_plan_of_its_options(rows):
    serial, _, _ = rows
    for sc, (_, row) in zip(expand(SweepSpec.model_validate(SPEC)), serial.iterrows()):
        o = sc.options
        problem = capacity.capacity_problem(rates=o["rates"], trace=None, periods=o["periods"], growth=o["growth"],
                                            hardware=o["hardware"])
        plan = capacity.plan_capacity(problem, time_limit_s=o["time_limit_s"], mip_rel_gap=o["mip_rel_gap"])
        assert row["cost_usd"] == pytest.approx(plan.cost_usd, rel=2 * o["mip_rel_gap"])
        assert sum(plan.fleet.values()) == row["servers"] or plan.report.status.value != "optimal"
        assert set(json.loads(row["fleet"])) <= set(o["hardware"])


def test_plans_agree_across_axes(rows):
    serial, _, _ = rows
    assert serial["solve_status"].isin(["optimal", "feasible"]).all()
    tol = 1e-6 * serial["solve_objective"].abs().clip(lower=1.0)
    assert (serial["solve_bound"] <= serial["solve_objective"] + tol).all()
    by = serial.set_index(["hardware", "growth"])
    for hw in serial["hardware"].unique():  # three times the load never costs less
        gap = max(by.loc[(hw, 1.0), "solve_gap"] or 0, by.loc[(hw, 3.0), "solve_gap"] or 0)
        assert by.loc[(hw, 3.0), "cost_usd"] >= by.loc[(hw, 1.0), "cost_usd"] * (1 - gap)
    # more hardware to choose from never costs more (up to the gaps): the wider set contains the narrower
    for g in (1.0, 3.0):
        one, two = by.loc[('["h100-80gb"]', g)], by.loc[('["a100-80gb", "h100-80gb"]', g)]
        assert two["solve_bound"] <= one["cost_usd"] * (1 + 1e-6)


def test_the_bundled_example_spec_is_valid():
    spec = read_spec("examples/sweep_capacity.toml")
    assert spec.kind == "capacity" and spec.size() == 16 and len(expand(spec)) == 16
