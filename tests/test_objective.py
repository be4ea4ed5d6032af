"""The objective apart from the variable blocks (formulations/objective.py).

Other weights re-price the same blocks: the carbon objective is the power objective scaled
exactly; a server-cost optimum is checked against an enumeration of server counts computed from
the profile's SLO capacities (not from the model); a weight set that prices nothing is refused.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from dynaplan.errors import DynaplanError
from dynaplan.formulations import cluster as cluster_f
from dynaplan.formulations import monolithic as mono_f
from dynaplan.formulations import pool as pool_f
from dynaplan.formulations.objective import ObjectiveWeights
from dynaplan.planning import Planner
from dynaplan.planning.problem import PlannerOptions
from dynaplan.profiles import Profile
from dynaplan.solvers import Backend, SolveOptions, Status, solve

INVENTORY = {"h100-80gb": 3, "a100-80gb": 3}


@pytest.fixture(scope="module")
def planner():
    return Planner(Profile.default(), INVENTORY, options=PlannerOptions(spill="none"))


def _builds(pl, weights):
    demand = {"SS": 20.0, "MS": 4.0}
    servers = {h: 2 for h in pl.hardware}
    return {
        "pool": pool_f.build(pl.ops, pl.segments, "SS", {"SS": 20.0}, servers, pl.hardware, 1e6,
                             pl.transition_prices, weights=weights),
        "cluster": cluster_f.build(pl.ops, pl.routes, demand, pl.inventory.servers, pl.hardware, pl.classes,
                                   1e6, pl.transition_prices, weights=weights),
        "monolithic": mono_f.build(pl.ops, pl.segments, pl.routes, demand, pl.inventory.servers, pl.hardware,
                                   pl.classes, weights=weights),
    }


def test_carbon_objective_scales_every_power_term(planner):
    intensity = 380.0
    power = _builds(planner, ObjectiveWeights())
    carbon = _builds(planner, ObjectiveWeights(energy=0.0, carbon=1.0, carbon_intensity_g_per_kwh=intensity))
    for kind in power:
        mp, _, bp = power[kind]
        mc, _, bc = carbon[kind]
        ap, ac = mp.arrays(), mc.arrays()
        scale = np.full(mp.n_cols, intensity / 1000.0)
        if "u" in mp.var_blocks:  # the unserved penalty is charged as given, not scaled
            u = mp.var_blocks["u"].cols
            scale[u] = 0.0
            np.testing.assert_allclose(ac.cost[u], 1e6 - bc["load_shift"].to_numpy(), rtol=1e-12)
        keep = scale > 0
        np.testing.assert_allclose(ac.cost[keep], ap.cost[keep] * scale[keep], rtol=1e-12, atol=1e-12)
        assert ac.offset == pytest.approx(ap.offset * intensity / 1000.0, rel=1e-12)
        np.testing.assert_allclose(bc["load_shift"], bp["load_shift"] * intensity / 1000.0, rtol=1e-12)
        assert (ac.A != ap.A).nnz == 0 and np.array_equal(ac.row_lo, ap.row_lo)  # same constraints


def _cheapest_fleet_usd_per_h(pl, cls: str, load_rps: float) -> float:
    """Enumerate server counts per hardware type; a server of type h carries at most
    G_h * max_k lmax_{k,cls} / tp_k req/s of one class (instances fill it)."""
    ml = pl.max_load[(pl.max_load["request_class"] == cls) & (pl.max_load["max_load_rps"] > 0)]
    cap, price = {}, {}
    for h, hw in pl.hardware.items():
        rows = ml[ml["hardware"] == h]
        cap[h] = hw.gpus_per_server * float((rows["max_load_rps"] / rows["tp"]).max()) if len(rows) else 0.0
        price[h] = hw.price_usd_per_server_h
    hws = sorted(pl.hardware)
    best = math.inf
    for counts in itertools.product(*(range(INVENTORY[h] + 1) for h in hws)):
        if sum(n * cap[h] for n, h in zip(counts, hws)) >= load_rps * (1 + 1e-9):
            best = min(best, sum(n * price[h] for n, h in zip(counts, hws)))
    return best


@pytest.mark.parametrize("load_rps", [5.0, 60.0, 150.0])
def test_server_cost_objective_finds_the_cheapest_fleet(planner, load_rps):
    w = ObjectiveWeights(energy=0.0, server_cost=1.0)
    m, _, blocks = mono_f.build(planner.ops, planner.segments, planner.routes, {"SS": load_rps},
                                planner.inventory.servers, planner.hardware, planner.classes, weights=w)
    sol = solve(m.arrays(), Backend.HIGHS, SolveOptions())
    assert sol.report.status is Status.OPTIMAL
    expected = _cheapest_fleet_usd_per_h(planner, "SS", load_rps)
    assert sol.report.objective == pytest.approx(expected, rel=1e-6)
    y = blocks["y"]
    fleet = sum(round(sol.x[c]) * planner.hardware[h].price_usd_per_server_h for (_, h), c in zip(y.labels, y.cols))
    assert fleet == pytest.approx(expected, rel=1e-9)


def test_weighted_sum_adds_the_server_price_to_power(planner):
    power = _builds(planner, ObjectiveWeights())
    both = _builds(planner, ObjectiveWeights(energy=1.0, server_cost=10.0))
    for kind, block in (("pool", "y"), ("monolithic", "y"), ("cluster", "s")):
        mp, mb = power[kind][0], both[kind][0]
        cols = mp.var_blocks[block].cols
        hw = [lab[1] for lab in mp.var_blocks[block].labels]
        price = np.array([planner.hardware[h].price_usd_per_server_h for h in hw])
        np.testing.assert_allclose(mb.arrays().cost[cols], mp.arrays().cost[cols] + 10.0 * price, rtol=1e-12)


@pytest.mark.parametrize("weights", [dict(energy=0.0), dict(energy=0.0, carbon=1.0), dict(energy=-1.0)])
def test_weights_that_price_nothing_are_refused(weights):
    with pytest.raises(DynaplanError):
        ObjectiveWeights(**weights)
