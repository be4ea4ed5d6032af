"""Capacity planning: hand-solvable instances, Mélange's example, brute force, properties."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dynaplan.capacity import capacity_problem, default_catalogue, plan_capacity, read_melange
from dynaplan.domain import DEFAULT_SLOS
from dynaplan.errors import InfeasibleError, ValidationError
from dynaplan.planning.problem import operating_points
from dynaplan.profiles import Profile
from dynaplan.solvers import Status

MELANGE_EXAMPLE = Path(__file__).parent / "data" / "melange_example.json"


def _brute_sliced(cfg) -> float:
    """Mélange's model by enumeration: every slice on every type, GPUs = ceil of the summed load
    fractions per type (independent of the code under test)."""
    dist = np.asarray(cfg["workload_distribution"], float).ravel()
    dist = dist / dist.sum() * cfg["total_request_rate"]
    s = cfg["slice_factor"]
    names = list(cfg["gpu_info"])
    tputs = {g: np.asarray(cfg["gpu_info"][g]["tputs"], float).ravel() for g in names}
    slices = [(b, dist[b] / s) for b in range(dist.size) if dist[b] > 0 for _ in range(s)]
    best = math.inf
    for assign in itertools.product(range(len(names)), repeat=len(slices)):
        frac = np.zeros(len(names))
        ok = True
        for (b, load), g in zip(slices, assign):
            t = tputs[names[g]][b]
            if t <= 0:
                ok = False
                break
            frac[g] += load / t
        if ok:
            best = min(best, sum(math.ceil(f - 1e-9) * cfg["gpu_info"][n]["cost"] for f, n in zip(frac, names)))
    return best


def test_melange_shipped_example_has_its_known_answer():
    # Mélange's README: 3 A10G + 1 A100-80GB, 6.7 USD/h
    plan = plan_capacity(read_melange(MELANGE_EXAMPLE, assignment="sliced"))
    assert plan.fleet == {"A10G": 3, "A100-80GB": 1}
    assert plan.cost_usd_per_h == pytest.approx(6.7)
    assert plan.report.status is Status.OPTIMAL
    # divisible: 5 req/s of bucket (1,0) on one A10G frees the A100: 1.01 + 3.67 by hand
    div = plan_capacity(read_melange(MELANGE_EXAMPLE))
    assert div.fleet == {"A10G": 1, "A100-80GB": 1} and div.cost_usd_per_h == pytest.approx(4.68)


@pytest.mark.parametrize("seed", range(6))
def test_sliced_optimum_equals_brute_force_and_divisible_is_never_above(seed):
    rng = np.random.default_rng(seed)
    cfg = {"gpu_info": {f"g{k}": {"cost": float(rng.uniform(0.5, 4)),
                                  "tputs": rng.uniform(0.5, 20, (2, 2)).round(2).tolist()} for k in range(2)},
           "workload_distribution": rng.uniform(0.05, 1, (2, 2)).round(3).tolist(),
           "total_request_rate": float(rng.uniform(1, 40)), "slice_factor": int(rng.integers(1, 3))}
    sliced = plan_capacity(read_melange(cfg, assignment="sliced"))
    assert sliced.report.status is Status.OPTIMAL
    assert sliced.cost_usd_per_h == pytest.approx(_brute_sliced(cfg), rel=1e-9)
    div = plan_capacity(read_melange(cfg))
    assert div.cost_usd_per_h <= sliced.cost_usd_per_h + 1e-9


def test_more_load_never_costs_less_and_cheaper_price_never_costs_more():
    cfg = json.loads(MELANGE_EXAMPLE.read_text())
    costs = []
    for rate in (10.0, 30.0, 60.0, 90.0):
        costs.append(plan_capacity(read_melange({**cfg, "total_request_rate": rate})).cost_usd_per_h)
    assert costs == sorted(costs)
    cheap = json.loads(json.dumps(cfg))
    cheap["gpu_info"]["A100-80GB"]["cost"] = 2.0
    assert plan_capacity(read_melange(cheap)).cost_usd_per_h <= plan_capacity(read_melange(cfg)).cost_usd_per_h


@pytest.fixture(scope="module")
def ops():
    prof = Profile.default()
    return operating_points(prof, DEFAULT_SLOS)


def _min_servers(ops, hw: str, cls: str, load: float) -> int:
    """Fewest servers of one type for one class, by enumerating TP degrees (independent)."""
    o = ops[(ops.hardware == hw) & (ops.request_class == cls)]
    g = default_catalogue().entry(hw).gpus_per_server
    best = min(int(tp) * math.ceil(load / o[o.tp == tp].max_load_rps.max() - 1e-9) for tp in o.tp.unique())
    return math.ceil(best / g)


def test_single_type_fleet_is_the_fewest_servers(ops):
    p = capacity_problem(rates={"MM": 40.0}, hardware=["h100-80gb"])
    plan = plan_capacity(p)
    assert plan.fleet["h100-80gb"] == _min_servers(ops, "h100-80gb", "MM", 40.0)
    assert plan.report.status is Status.OPTIMAL
    # the cost adds up
    assert plan.cost_usd == pytest.approx(plan.fleet_usd + plan.energy_usd + plan.carbon_usd)
    assert plan.fleet_usd == pytest.approx(plan.fleet["h100-80gb"] * 55.04 * plan.horizon_h)


def test_availability_binds_and_the_rest_goes_to_the_other_type(ops):
    free = plan_capacity(capacity_problem(rates={"MM": 40.0}, hardware=["h100-80gb", "a100-80gb"]))
    h = free.fleet["h100-80gb"]
    assert h >= 2
    capped = plan_capacity(capacity_problem(rates={"MM": 40.0}, hardware=["h100-80gb", "a100-80gb"],
                                            availability={"h100-80gb": (0, h - 1)}))
    assert capped.fleet["h100-80gb"] <= h - 1 and capped.fleet["a100-80gb"] >= 1
    assert "availability" in capped.binding
    assert capped.cost_usd >= free.cost_usd - 1e-6
    with pytest.raises(InfeasibleError):
        plan_capacity(capacity_problem(rates={"MM": 40.0}, hardware=["h100-80gb"],
                                       availability={"h100-80gb": (0, 1)}))


def test_trace_plan_serves_every_period_and_peak_is_as_asked():
    p = capacity_problem(peak_rps=20.0, periods=6, hardware=["h100-80gb", "a100-80gb"])
    assert max(sum(r) for r in p.demand_rps) == pytest.approx(20.0)
    plan = plan_capacity(p, mip_rel_gap=1e-3)
    assert plan.report.gap is not None and plan.report.bound <= plan.report.objective + 1e-6
    for per in plan.periods:
        for c, need in per.demand_rps.items():
            cap = sum(g["capacity_rps"] for g in per.groups if g["request_class"] == c)
            served = sum(g["load_rps"] for g in per.groups if g["request_class"] == c)
            assert served == pytest.approx(need, abs=1e-6) and cap >= need - 1e-6
        for h, used in per.gpus_used.items():
            assert used <= plan.gpus[h]
    json.dumps(plan.model_dump(mode="json"))


def test_bad_input_names_the_field():
    with pytest.raises(ValidationError, match="peak_rps"):
        capacity_problem(rates={"MM": 1.0}, peak_rps=-1)
    with pytest.raises(ValidationError, match="objective"):
        capacity_problem(rates={"MM": 1.0}, hardware=["h100-80gb"], objective="speed")
    with pytest.raises(ValidationError, match="total_request_rate"):
        read_melange({"gpu_info": {"a": {"cost": 1, "tputs": [[1]]}}, "workload_distribution": [[1]],
                      "total_request_rate": "x"})


def test_a_mix_beats_every_single_type():
    cfg = json.loads(MELANGE_EXAMPLE.read_text())
    mix = plan_capacity(read_melange(cfg))
    for only in cfg["gpu_info"]:
        single = {**cfg, "gpu_info": {only: cfg["gpu_info"][only]}}
        alone = plan_capacity(read_melange(single))
        assert alone.cost_usd_per_h > mix.cost_usd_per_h + 1e-9
    # by hand: A100 alone needs ceil(1.125) = 2 GPUs; A10G alone 12 GPUs
    a100 = plan_capacity(read_melange({**cfg, "gpu_info": {"A100-80GB": cfg["gpu_info"]["A100-80GB"]}}))
    assert a100.fleet == {"A100-80GB": 2}


def test_pareto_front_trades_cost_for_energy():
    from dynaplan.capacity.pareto import pareto_front

    p = capacity_problem(rates={"MM": 20.0, "SS": 10.0}, hardware=["h100-80gb", "a100-80gb"])
    front = pareto_front(p, points=3, time_limit_s=30)
    assert len(front) >= 2
    cheapest, greenest = front[0], front[-1]
    # the cost-optimal plan is no more expensive than the energy-optimal one (within their gaps)
    assert cheapest.cost_usd <= greenest.cost_usd * (1 + 1e-3)
    assert greenest.report.bound <= cheapest.energy_kwh + 1e-6
    for pl in front:
        assert pl.report.bound <= pl.report.objective + 1e-6


def _tiny_problem():
    """Two types, two classes, three hourly periods whose busiest period does not have the most
    load of every class: the fleet must serve a period the fleet-setting period does not cover."""
    from dynaplan.capacity import CapacityProblem, Offer, Recipe

    offers = (Offer(hardware="big", gpus_per_server=2, price_usd_per_server_h=3.0, idle_power_w=40.0),
              Offer(hardware="small", gpus_per_server=1, price_usd_per_server_h=1.0, idle_power_w=20.0))
    # (hardware, class, capacity req/s, static W, W per unit utilisation)
    rows = [("big", "a", 5.0, 150.0, 300.0), ("big", "b", 3.0, 160.0, 250.0),
            ("small", "a", 2.0, 60.0, 120.0), ("small", "b", 1.5, 70.0, 90.0)]
    recipes = tuple(Recipe(hardware=h, request_class=c, tp=1, freq_mhz=1000, max_load_rps=k, static_w=a,
                           w_per_util=b) for h, c, k, a, b in rows)
    demand = ((9.0, 1.0), (2.0, 5.5), (4.0, 2.0))
    return CapacityProblem(classes=("a", "b"), period_s=3600.0, demand_rps=demand, offers=offers, recipes=recipes,
                           electricity_usd_per_kwh=(0.5, 2.0, 1.0), carbon_g_per_kwh=(100.0, 100.0, 100.0)), rows


def _brute_tiny(p, rows) -> float:
    """The tiny problem's optimum by enumeration (independent of the code under test): every fleet,
    every whole instance count per (type, class); within a class the load fills the instances of
    the least W per req/s first (power is linear in load on one piece)."""
    gpus = {o.hardware: o.gpus_per_server for o in p.offers}
    price = {o.hardware: o.price_usd_per_server_h for o in p.offers}
    idle = {o.hardware: o.idle_power_w for o in p.offers}
    best = math.inf
    for yb, ys in itertools.product(range(6), range(9)):
        fleet = {"big": yb, "small": ys}
        total = sum(price[h] * fleet[h] for h in fleet) * p.horizon_h
        for t, dem in enumerate(p.demand_rps):
            period = math.inf
            for counts in itertools.product(range(7), repeat=len(rows)):
                used = {h: sum(n for n, r in zip(counts, rows) if r[0] == h) for h in fleet}
                if any(used[h] > gpus[h] * fleet[h] for h in fleet):
                    continue
                w, ok = 0.0, True
                for c_i, c in enumerate(p.classes):
                    left = dem[c_i]
                    mine = sorted(((b / k, k * n, a * n) for n, (h, cc, k, a, b) in zip(counts, rows) if cc == c),
                                  key=lambda z: z[0])
                    for per_rps, cap, static in mine:
                        take = min(cap, left)
                        w += static + per_rps * take
                        left -= take
                    if left > 1e-9:
                        ok = False
                        break
                if ok:
                    w += sum((gpus[h] * fleet[h] - used[h]) * idle[h] for h in fleet)
                    period = min(period, w / 1000.0 * p.electricity_usd_per_kwh[t])
            total += period
        best = min(best, total)
    return best


@pytest.mark.parametrize("method", ["decomposed", "monolithic"])
def test_multi_period_optimum_equals_brute_force_and_the_bound_holds(method):
    p, rows = _tiny_problem()
    exact = _brute_tiny(p, rows)
    plan = plan_capacity(p, method=method, mip_rel_gap=1e-4)
    assert plan.report.status is Status.OPTIMAL
    assert plan.report.bound <= exact + 1e-6
    assert exact - 1e-6 <= plan.cost_usd <= exact * (1 + 1e-4) + 1e-6


def test_replay_reports_attainment_and_flags_a_fleet_that_misses():
    from dynaplan.capacity.replay import with_replay

    p = capacity_problem(peak_rps=8.0, periods=2, hardware=["h100-80gb", "a100-80gb"])
    plan = plan_capacity(p, replay=True)
    rep = plan.replay
    assert rep["policy"] == "DynamoLLM" and set(rep["slo_attainment_by_class"]) == set(p.classes)
    assert rep["meets_slos"] == (min(rep["slo_attainment_by_class"].values()) >= 0.99)
    assert (plan.verdict == "meets SLOs in replay") == rep["meets_slos"]
    # the same trace on one A100 server: most requests late, every class flagged
    small = with_replay(plan.model_copy(update={"fleet": {"h100-80gb": 0, "a100-80gb": 1}}), p)
    assert not small.replay["meets_slos"] and small.verdict.startswith("MISSES SLOs IN REPLAY")
    assert small.replay["slo_attainment"] < 0.9
    json.dumps(small.model_dump(mode="json"))
    with pytest.raises(ValidationError, match="rates"):
        plan_capacity(capacity_problem(rates={"MM": 1.0}, hardware=["h100-80gb"]), replay=True)


def test_recipes_are_remembered_per_profile_and_question():
    """The same question of the same profile object gives the same (frozen) recipes without
    recomputing; another SLO table, hardware set or load segment count is another question, and
    a profile object of its own is never served another's recipes."""
    from dynaplan.capacity import build
    from dynaplan.domain.slo import DEFAULT_SLOS, SLO, SLOTable
    from dynaplan.profiles import Profile

    prof = Profile.default()
    first = build.recipes_from_profile(prof, DEFAULT_SLOS, ["h100-80gb"])
    assert build.recipes_from_profile(prof, DEFAULT_SLOS, ["h100-80gb"]) is first
    assert first == build._recipes(prof, DEFAULT_SLOS, ["h100-80gb"], 3, None)  # as computed afresh
    tight = SLOTable(per_class={c: SLO(ttft_ms=s.ttft_ms * 0.5, tbt_ms=s.tbt_ms * 0.5)
                                for c, s in DEFAULT_SLOS.per_class.items()})
    other = build.recipes_from_profile(prof, tight, ["h100-80gb"])
    assert other == build._recipes(prof, tight, ["h100-80gb"], 3, None) and other != first
    assert build.recipes_from_profile(prof, DEFAULT_SLOS, ["a100-80gb"]) != first
    assert build.recipes_from_profile(prof, DEFAULT_SLOS, ["h100-80gb"], 1) != first
    fresh = Profile.default()
    assert build.recipes_from_profile(fresh, DEFAULT_SLOS, ["h100-80gb"]) is not first


def test_precomputed_recipes_give_the_same_problem_and_a_mismatched_set_is_refused():
    """A RecipeSet made by recipe_set() for a problem's profile and question gives the problem the
    builder computes itself (also after a round-trip through pickle, as to a sweep worker, and for a
    profile object read again); one made for other SLOs, hardware, segments or profile is refused."""
    import pickle

    from dynaplan.capacity import recipe_set

    prof = Profile.default()
    kw = {"rates": {"SS": 6.0, "MM": 3.0, "LS": 1.0}, "hardware": ["a100-80gb", "h100-80gb"], "slo_scale": 1.5}
    own = capacity_problem(profile=prof, **kw)
    given = pickle.loads(pickle.dumps(recipe_set(profile=prof, hardware=kw["hardware"], slo_scale=1.5)))
    assert capacity_problem(profile=Profile.default(), recipes=given, **kw) == own
    for wrong in (recipe_set(profile=prof, hardware=kw["hardware"], slo_scale=1.0),
                  recipe_set(profile=prof, hardware=["h100-80gb"], slo_scale=1.5),
                  recipe_set(profile=prof, hardware=kw["hardware"], slo_scale=1.5, load_segments=2)):
        with pytest.raises(ValidationError, match="recipes: computed for other SLOs, hardware or load segments"):
            capacity_problem(profile=prof, recipes=wrong, **kw)
    other = Profile(prof.table.assign(power_w=prof.table["power_w"] * 1.01), source="other")
    with pytest.raises(ValidationError, match="recipes: computed for another profile than other"):
        capacity_problem(profile=other, recipes=given, **kw)
    with pytest.raises(ValidationError, match="recipes: tuple; expected a RecipeSet"):
        capacity_problem(profile=prof, recipes=given.recipes, **kw)
