"""Capacity planning with a reserved fleet plus on-demand servers per period (``formulations/capacity.md``,
r_{t,h}, (cap.available)): hand-solved instances, brute force over small fleets, properties, errors."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from dynaplan.capacity import capacity_problem, default_catalogue, plan_capacity
from dynaplan.capacity.problem import CapacityProblem, Offer, Recipe
from dynaplan.errors import ValidationError
from dynaplan.solvers import Status

CAP_RPS = 10.0  # one instance (one GPU) carries 10 req/s


def _problem(loads, types, *, period_s=3600.0, pue=1.0, electricity=0.0, dyn_w=0.0) -> CapacityProblem:
    """One class; ``types``: (name, GPUs per server, reserved USD/h or None for no fleet, on-demand USD/h
    or None, availability, idle W per GPU). Every type runs TP-1 instances of CAP_RPS req/s drawing
    exactly their GPU's idle power plus ``dyn_w`` at full load."""
    offers, recipes = [], []
    for name, gpus, res, od, avail, idle_w in types:
        offers.append(Offer(hardware=name, gpus_per_server=gpus, price_usd_per_server_h=res or 0.0,
                            on_demand_usd_per_server_h=od, price_kind="reserved+on_demand", idle_power_w=idle_w,
                            max_servers=0 if res is None else avail, available_servers=avail))
        recipes.append(Recipe(hardware=name, request_class="chat", tp=1, freq_mhz=1980, max_load_rps=CAP_RPS,
                              static_w=idle_w, w_per_util=dyn_w))
    T = len(loads)
    return CapacityProblem(classes=("chat",), period_s=period_s, demand_rps=tuple((float(v),) for v in loads),
                           offers=tuple(offers), recipes=tuple(recipes), electricity_usd_per_kwh=(electricity,) * T,
                           carbon_g_per_kwh=(0.0,) * T, pue=pue)


def _brute(loads, types, *, period_s=3600.0, pue=1.0, electricity=0.0, dyn_w=0.0, y_max=6):
    """Least cost by enumeration, independent of the model: every fleet y (reserved servers per type,
    0..y_max), and per period every split of whole instances over the types; a type's on-demand
    servers are the fewest that hold its instances beyond the fleet, within the availability.
    Returns (cost, fleet, on-demand servers per period and type)."""
    h = period_s / 3600.0
    T = len(loads)
    best = (math.inf, None, None)
    ranges = [range(0, (0 if res is None else min(avail, y_max)) + 1) for _, _, res, _, avail, _ in types]
    for y in itertools.product(*ranges):
        total = sum((res or 0.0) * T * h * n for n, (_, _, res, _, _, _) in zip(y, types))
        r_all = []
        for d in loads:
            need = math.ceil(d / CAP_RPS - 1e-9)
            best_t = (math.inf, None)
            for split in itertools.product(range(need + 1), repeat=len(types)):
                if sum(split) < need:
                    continue
                cost, r_t = 0.0, []
                for n_inst, yk, (_, gpus, _, od, avail, idle_w) in zip(split, y, types):
                    r = max(0, math.ceil(n_inst / gpus - 1e-9) - yk)
                    if r > 0 and (od is None or yk + r > avail):
                        cost = math.inf
                        break
                    r_t.append(r)
                    it_w = idle_w * gpus * (yk + r)   # instances draw exactly their GPUs' idle power
                    cost += (od or 0.0) * h * r + electricity * pue * h * it_w / 1000.0
                cost += electricity * pue * h * dyn_w * d / CAP_RPS / 1000.0
                if cost < best_t[0]:
                    best_t = (cost, r_t)
            total += best_t[0]
            r_all.append(best_t[1])
            if not math.isfinite(total):
                break
        if total < best[0] - 1e-9:
            best = (total, y, r_all)
    return best


def _od(plan, name):
    return [per.on_demand_servers[name] for per in plan.periods]


def test_reserved_base_plus_on_demand_peak_is_strictly_cheapest():
    # servers needed per period: 1, 1, 1, 4 (one GPU per server, 10 req/s each)
    # by hand: reserved only y=4: 4*4*0.6 = 9.6; on demand only: 7 * 1.0 = 7.0;
    # y=1 reserved + 3 on demand at the peak: 4*0.6 + 3 = 5.4 (y=2: 4.8 + 2 = 6.8)
    loads = [10, 10, 10, 40]
    types = [("h", 1, 0.6, 1.0, 50, 0.0)]
    plan = plan_capacity(_problem(loads, types))
    assert plan.report.status is Status.OPTIMAL
    assert plan.fleet == {"h": 1}
    assert _od(plan, "h") == [0, 0, 0, 3]
    assert plan.reserved_usd == pytest.approx(2.4) and plan.on_demand_usd == pytest.approx(3.0)
    assert plan.cost_usd == pytest.approx(5.4) and plan.fleet_usd == pytest.approx(5.4)
    assert plan.on_demand_peak_servers == {"h": 3} and plan.on_demand_server_h == {"h": pytest.approx(3.0)}
    reserved_only = plan_capacity(_problem(loads, [("h", 1, 0.6, None, 50, 0.0)]))
    on_demand_only = plan_capacity(_problem(loads, [("h", 1, None, 1.0, 50, 0.0)]))
    assert reserved_only.cost_usd == pytest.approx(9.6) and reserved_only.fleet == {"h": 4}
    assert on_demand_only.cost_usd == pytest.approx(7.0) and on_demand_only.fleet == {"h": 0}
    assert _od(on_demand_only, "h") == [1, 1, 1, 4]
    assert _brute(loads, types)[:2] == (pytest.approx(5.4), (1,))


def test_idle_energy_counts_the_on_demand_servers():
    # 2 GPUs per server at 100 W idle each, 1 USD/kWh, PUE 1.5; the 4-GPU peak rents 2 servers on
    # top of the reserved one whose GPUs run the base load: idle energy of 6 GPUs at the peak
    loads = [20, 20, 20, 60]
    types = [("h", 2, 0.6, 1.0, 50, 100.0)]
    kw = dict(pue=1.5, electricity=1.0, dyn_w=50.0)
    plan = plan_capacity(_problem(loads, types, **kw))
    cost, y, r = _brute(loads, types, **kw)
    assert plan.report.status is Status.OPTIMAL
    assert plan.fleet == {"h": y[0]} and _od(plan, "h") == [rt[0] for rt in r]
    assert plan.cost_usd == pytest.approx(cost)
    # by hand: y = 1 (2.4 USD), r = 0,0,0,2 (2 USD); IT power 2*100 + 2*50 = 300 W base,
    # 6*100 + 6*50 = 900 W at the peak: 1.5 kWh/kW * (3*0.3 + 0.9) = 2.7 kWh
    assert (y, plan.energy_kwh, plan.energy_usd) == ((1,), pytest.approx(2.7), pytest.approx(2.7))
    assert plan.cost_usd == pytest.approx(2.4 + 2.0 + 2.7)


def test_availability_binds_fleet_plus_on_demand():
    # the cheap type has 3 servers in any period: its fleet of 1 takes 2 more on demand at the peak,
    # the 4th server of the peak is rented on demand from the dearer type (by hand: 2.4 + 2 + 2 = 6.4)
    loads = [10, 10, 10, 40]
    types = [("a", 1, 0.6, 1.0, 3, 0.0), ("b", 1, 1.2, 2.0, 50, 0.0)]
    plan = plan_capacity(_problem(loads, types))
    assert plan.report.status is Status.OPTIMAL
    assert plan.fleet == {"a": 1, "b": 0}
    assert _od(plan, "a") == [0, 0, 0, 2] and _od(plan, "b") == [0, 0, 0, 1]
    assert plan.cost_usd == pytest.approx(6.4)
    assert "availability" in plan.binding
    assert max(plan.fleet["a"] + n for n in _od(plan, "a")) <= 3
    assert _brute(loads, types)[0] == pytest.approx(6.4)


@pytest.mark.parametrize("seed", range(8))
def test_mixed_rent_matches_brute_force_and_is_never_above_either_alone(seed):
    rng = np.random.default_rng(seed)
    T = int(rng.integers(2, 5))
    loads = rng.integers(0, 45, T).tolist()
    types = []
    for name in ("a", "b")[: int(rng.integers(1, 3))]:
        res = float(rng.choice([0.3, 0.5, 0.6, 0.8]))
        od = float(rng.choice([0.7, 1.0, 1.5]))
        types.append((name, int(rng.choice([1, 2])), res, od, int(rng.integers(3, 8)), float(rng.choice([0, 60]))))
    kw = dict(electricity=0.2, dyn_w=40.0)
    cost, _, _ = _brute(loads, types, **kw)
    if not math.isfinite(cost):
        pytest.skip("this draw's availability cannot serve the peak")
    mixed = plan_capacity(_problem(loads, types, **kw))
    assert mixed.report.status is Status.OPTIMAL
    assert mixed.cost_usd == pytest.approx(cost, rel=2e-3)
    # reserved only and on demand only, at the same prices: never cheaper than the mix
    res_only = _brute(loads, [t[:3] + (None,) + t[4:] for t in types], **kw)[0]
    od_only = _brute(loads, [t[:2] + (None,) + t[3:] for t in types], **kw)[0]
    assert cost <= min(res_only, od_only) + 1e-9
    assert mixed.cost_usd <= min(res_only, od_only) * (1 + 2e-3)
    # the plan's figures add up and every period's on-demand servers fit the availability
    assert mixed.cost_usd == pytest.approx(mixed.reserved_usd + mixed.on_demand_usd + mixed.energy_usd
                                           + mixed.carbon_usd)
    avail = {t[0]: t[4] for t in types}
    for per in mixed.periods:
        for h, n in per.on_demand_servers.items():
            assert mixed.fleet[h] + n <= avail[h]


def test_decomposed_and_monolithic_agree_on_mixed_rent():
    loads = [12, 31, 7, 44, 25, 18]
    types = [("a", 2, 0.6, 1.0, 4, 60.0), ("b", 1, 0.5, 1.5, 5, 30.0)]
    kw = dict(electricity=0.3, dyn_w=40.0)
    p = _problem(loads, types, **kw)
    dec = plan_capacity(p, method="decomposed")
    mono = plan_capacity(p, method="monolithic")
    cost = _brute(loads, types, **kw)[0]
    for plan in (dec, mono):
        assert plan.report.status is Status.OPTIMAL
        assert plan.cost_usd == pytest.approx(cost, rel=2e-3)
        assert plan.report.bound <= cost + 1e-9


def _catalogue_with(**update):
    cat = default_catalogue()
    return cat.model_copy(update={"entries": tuple(e.model_copy(update=update) for e in cat.entries)})


def test_mixed_rent_from_the_catalogue_prices_both_columns():
    p = capacity_problem(rates={"SS": 2.0}, periods=3, hardware=["h100-80gb"],
                         price="reserved+on_demand")
    o = p.offers[0]
    entry = default_catalogue().entry("h100-80gb")
    assert o.price_usd_per_server_h == entry.reserved_usd_per_server_h
    assert o.on_demand_usd_per_server_h == entry.on_demand_usd_per_server_h
    p2 = capacity_problem(rates={"SS": 2.0}, periods=3, hardware=["h100-80gb"],
                          price="reserved+on_demand", availability={"h100-80gb": (0, 7)})
    assert (p2.offers[0].max_servers, p2.offers[0].available_servers) == (7, 7)


def test_missing_prices_and_bad_kinds_are_one_line_errors():
    for update, field in (({"on_demand_usd_per_server_h": None}, "on_demand_usd_per_server_h"),
                          ({"reserved_usd_per_server_h": None}, "reserved_usd_per_server_h")):
        with pytest.raises(ValidationError, match=field) as e:
            capacity_problem(rates={"SS": 1.0}, hardware=["h100-80gb"],
                             catalogue=_catalogue_with(**update), price="reserved+on_demand")
        assert "\n" not in str(e.value)
    with pytest.raises(ValidationError, match="reserved\\+on_demand"):
        capacity_problem(rates={"SS": 1.0}, hardware=["h100-80gb"], price="spot")
    p = _problem([10, 20], [("h", 1, 0.6, 1.0, 5, 0.0)])
    with pytest.raises(ValidationError, match="replay"):
        plan_capacity(p, replay=True)


def test_cli_reports_reserved_and_on_demand(tmp_path):
    run = [sys.executable, "-m", "dynaplan", "capacity", "--peak-rps", "8", "--periods", "4",
           "--hardware", "h100-80gb", "--price", "reserved+on_demand"]
    res = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr
    plan = json.loads((tmp_path / "capacity.json").read_text())["plans"][0]
    assert plan["cost_usd"] == pytest.approx(plan["reserved_usd"] + plan["on_demand_usd"] + plan["energy_usd"]
                                             + plan["carbon_usd"])
    assert plan["fleet_usd"] == pytest.approx(plan["reserved_usd"] + plan["on_demand_usd"])
    assert all("on_demand_servers" in per for per in plan["periods"])
    header = (tmp_path / "capacity.csv").read_text().splitlines()[0].split(",")
    assert {"reserved_usd", "on_demand_usd", "on_demand_peak_servers"} <= set(header)
    bad = subprocess.run(run + ["--replay"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "--replay" in lines[0], bad.stderr
