"""Mélange configs solved by plan_capacity (lattice search (M4)-(M6), the divisible optimum's fleet
with whole slices (M7), the MILPs (M1)-(M2)) against references built here from the raw config:
brute force over every slice-to-type assignment, and Mélange's own binary model (plus its
divisible variant) written for HiGHS in this file and solved with zero gap."""

from __future__ import annotations

import itertools

import highspy
import numpy as np
import pytest

from dynaplan.capacity import plan_capacity, read_melange
from dynaplan.solvers.result import Status

COSTS = {"L4": 0.7, "A10G": 1.01, "A100": 3.67, "H100": 7.5}
SPEED = {"L4": 1.0, "A10G": 1.3, "A100": 5.0, "H100": 9.0}


def config(seed: int, n: int, rate: float, slices: int, costs=COSTS) -> dict:
    """n x n buckets, one random throughput factor per (type, bucket), a random bucket mix."""
    rng = np.random.default_rng(seed)
    size = np.arange(1, n + 1, dtype=float)
    base = 40.0 / (size[:, None] * 0.6 + size[None, :])
    info = {g: {"cost": c, "tputs": np.round(base * SPEED[g] * rng.uniform(0.7, 1.3, base.shape), 3).tolist()}
            for g, c in costs.items()}
    dist = np.round(rng.dirichlet(np.ones(n * n)).reshape(n, n), 4)
    return {"gpu_info": info, "workload_distribution": dist.tolist(), "total_request_rate": rate,
            "slice_factor": slices}


def _raw(cfg: dict):
    dist = np.asarray(cfg["workload_distribution"], float).ravel()
    rates = dist / dist.sum() * cfg["total_request_rate"]
    names = list(cfg["gpu_info"])
    cost = np.array([cfg["gpu_info"][g]["cost"] for g in names])
    tput = np.array([np.asarray(cfg["gpu_info"][g]["tputs"], float).ravel() for g in names])  # (H, B)
    return rates, names, cost, tput


def brute_force_sliced(cfg: dict) -> float:
    """Every assignment of every slice to a GPU type; GPUs of a type: its load rounded up."""
    rates, _, cost, tput = _raw(cfg)
    s = cfg["slice_factor"]
    items = [b for b in range(rates.size) if rates[b] > 0 for _ in range(s)]
    best = np.inf
    for choice in itertools.product(range(cost.size), repeat=len(items)):
        load = np.zeros(cost.size)
        for b, h in zip(items, choice):
            load[h] += rates[b] / s / tput[h, b]
        best = min(best, float(cost @ np.ceil(load - 1e-9)))
    return best


def reference_milp(cfg: dict, divisible: bool) -> float:
    """Mélange's model for HiGHS with zero gap: x[s, h] binary (slice s of its bucket on type h;
    divisible: x[b, h] in [0, 1], the share of bucket b on type h), y[h] integer GPUs;
    min cost @ y, sum_h x = 1, sum_s x[s, h] load_s / tput[h, b(s)] <= y[h]."""
    rates, _, cost, tput = _raw(cfg)
    s = 1 if divisible else cfg["slice_factor"]
    items = [(b, rates[b] / s) for b in range(rates.size) if rates[b] > 0 for _ in range(s)]
    H, n = cost.size, len(items)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.0)
    inf = highspy.kHighsInf
    # columns: x (n*H), then y (H); a type with no throughput for a bucket cannot take its slices
    for b, _ in items:
        for j in range(H):
            h.addVar(0.0, 1.0 if tput[j, b] > 0 else 0.0)
    for j in range(H):
        h.addVar(0.0, inf)
    h.changeColsCost(H, np.arange(n * H, n * H + H, dtype=np.int32), cost)
    integer = np.arange(n * H if divisible else 0, n * H + H, dtype=np.int32)
    h.changeColsIntegrality(integer.size, integer, np.full(integer.size, highspy.HighsVarType.kInteger))
    for i in range(n):
        h.addRow(1.0, 1.0, H, np.arange(i * H, i * H + H, dtype=np.int32), np.ones(H))
    for j in range(H):
        idx = np.r_[np.arange(n) * H + j, n * H + j].astype(np.int32)
        val = np.r_[[load / tput[j, b] if tput[j, b] > 0 else 0.0 for b, load in items], -1.0]
        h.addRow(-inf, 0.0, idx.size, idx, val)
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return float(h.getInfo().objective_function_value)


def _assert_proven(plan):
    r = plan.report
    assert r.status == Status.OPTIMAL
    assert r.bound is not None and r.bound == pytest.approx(r.objective, abs=1e-9)
    assert r.gap == pytest.approx(0.0, abs=1e-9)


def _assert_fleet_serves(plan, cfg: dict, sliced: bool):
    """The plan's fleet and per-bucket loads, checked against the raw config."""
    rates, names, cost, tput = _raw(cfg)
    assert plan.cost_usd_per_h == pytest.approx(float(cost @ [plan.fleet[g] for g in names]), abs=1e-9)
    used = dict.fromkeys(names, 0.0)
    served = np.zeros(rates.size)
    s = cfg["slice_factor"]
    cols = np.asarray(cfg["workload_distribution"]).shape[-1]
    for g in plan.periods[0].groups:
        i, j = (int(v) for v in g["request_class"][1:].split("_"))
        b = i * cols + j
        h = names.index(g["hardware"])
        used[g["hardware"]] += g["load_rps"] / tput[h, b]
        served[b] += g["load_rps"]
        if sliced and rates[b] > 0:
            k = g["load_rps"] / (rates[b] / s)
            assert k == pytest.approx(round(k), abs=1e-6), "a bucket's load on a type is not whole slices"
    assert served == pytest.approx(rates, abs=1e-7)
    for name in names:
        assert used[name] <= plan.fleet[name] + 1e-7


TINY = [(seed, rate, s) for seed in (0, 1, 2) for rate, s in ((2.0, 1), (9.0, 2), (25.0, 1), (40.0, 2))]


@pytest.mark.parametrize("seed,rate,slices", TINY)
def test_tiny_configs_match_brute_force(seed, rate, slices):
    cfg = config(seed, 2, rate, slices, costs={k: COSTS[k] for k in ("L4", "A10G", "A100")})
    want = brute_force_sliced(cfg)
    sliced = plan_capacity(read_melange(cfg, assignment="sliced"))
    _assert_proven(sliced)
    assert sliced.cost_usd_per_h == pytest.approx(want, abs=1e-9)
    _assert_fleet_serves(sliced, cfg, sliced=True)
    div = plan_capacity(read_melange(cfg))
    _assert_proven(div)
    assert div.cost_usd_per_h <= want + 1e-9
    assert div.cost_usd_per_h == pytest.approx(reference_milp(cfg, divisible=True), abs=1e-9)
    _assert_fleet_serves(div, cfg, sliced=False)


# seeds and rates chosen so that every way of proving the optimum occurs: the lattice search
# alone, the divisible MILP, whole slices on the divisible fleet, the sliced MILP
SMALL = [(0, 20.0, 1), (0, 150.0, 1), (0, 150.0, 4), (3, 150.0, 1), (1, 60.0, 2), (2, 60.0, 4), (4, 3.0, 4),
         (5, 150.0, 2)]


@pytest.mark.parametrize("seed,rate,slices", SMALL)
def test_small_configs_match_melange_model(seed, rate, slices):
    cfg = config(seed, 3, rate, slices)
    sliced = plan_capacity(read_melange(cfg, assignment="sliced"))
    div = plan_capacity(read_melange(cfg))
    for plan in (sliced, div):
        _assert_proven(plan)
    assert sliced.cost_usd_per_h == pytest.approx(reference_milp(cfg, divisible=False), abs=1e-9)
    assert div.cost_usd_per_h == pytest.approx(reference_milp(cfg, divisible=True), abs=1e-9)
    assert div.cost_usd_per_h <= sliced.cost_usd_per_h + 1e-9
    _assert_fleet_serves(sliced, cfg, sliced=True)
    _assert_fleet_serves(div, cfg, sliced=False)


def test_small_configs_cover_every_proof():
    """The configurations above reach every route to a proven optimum (else they test less than
    they claim)."""
    seen = set()
    for seed, rate, slices in SMALL:
        cfg = config(seed, 3, rate, slices)
        for assignment in ("sliced", "divisible"):
            msg = plan_capacity(read_melange(cfg, assignment=assignment)).report.message
            seen.add((assignment, "lattice" if msg.startswith("lattice search") else
                      "m7" if msg.startswith("divisible optimum") else "milp"))
    assert seen >= {("sliced", "lattice"), ("sliced", "m7"), ("sliced", "milp"), ("divisible", "lattice"),
                    ("divisible", "milp")}


def test_prices_off_the_lattice_fall_back_to_the_milp():
    """Prices with more than 4 decimals: no lattice, the MILP with the requested gap, still
    matching the reference within that gap."""
    costs = {"L4": 0.7000123, "A10G": 1.0100071, "A100": 3.6700033}
    cfg = config(1, 3, 60.0, 2, costs=costs)
    plan = plan_capacity(read_melange(cfg, assignment="sliced"), mip_rel_gap=1e-6)
    assert plan.report.status == Status.OPTIMAL
    assert plan.cost_usd_per_h == pytest.approx(reference_milp(cfg, divisible=False), rel=1e-6)
    _assert_fleet_serves(plan, cfg, sliced=True)


@pytest.mark.parametrize("rate,slices", [(12.0, 1), (40.0, 2), (150.0, 4)])
def test_buckets_a_type_cannot_serve(rate, slices):
    """A zero throughput leaves that (bucket, type) out; the answers still match the reference."""
    cfg = config(2, 3, rate, slices)
    cfg["gpu_info"]["L4"]["tputs"][0][0] = 0.0
    cfg["gpu_info"]["H100"]["tputs"][2][1] = 0.0
    for assignment, divisible in (("sliced", False), ("divisible", True)):
        plan = plan_capacity(read_melange(cfg, assignment=assignment))
        _assert_proven(plan)
        assert plan.cost_usd_per_h == pytest.approx(reference_milp(cfg, divisible=divisible), abs=1e-9)
        _assert_fleet_serves(plan, cfg, sliced=not divisible)
