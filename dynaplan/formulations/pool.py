"""Pool level (every ~5 min): the instance mix of one pool inside its server allotment.

Equations: ``formulations/pool.md``. Minimise (pool.obj) the pool's power

    sum_{k,j} (A_{k,j} - e_h tp_k) n_{k,j} + sum_{k,j} B_{k,j} w_{k,j} + sum_h e_h G_h y_h
      + sum_{k,c} D_{k,c} / lmax_{k,c} z_{k,c}  [+ M sum_c u_c]

(D: a spilled class's surcharge; the load costs are shifted by ``kappa_c`` with
``sum_c kappa_c L_c`` as objective offset, :func:`network.load_cost_shift`)

subject to (demand) ``sum_k z_{k,c} (+ u_c) >= L_c``, (utilisation)
``sum_c z_{k,c}/lmax_{k,c} = sum_j w_{k,j}``, (capacity, piece_floor)
``lo_{k,j} n_{k,j} <= w_{k,j} <= hi_{k,j} n_{k,j}`` (piece j's line is the profile's power on
[lo, hi], so a single-class pool's optimum is the profile's), (packing)
``sum tp_k n_{k,j} <= G_h y_h`` and (allotment) ``y_h = S_h``, with n integer: the pool runs on the
servers the cluster level gave it for the whole cluster epoch (it re-shards and re-clocks
inside them; releasing servers is the cluster level's decision), so every allotted GPU not held
by an instance draws idle power.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dynaplan.domain.hardware import HardwareType
from dynaplan.formulations import network as nw
from dynaplan.formulations.objective import ENERGY, ObjectiveWeights, define_objective


def build(ops: pd.DataFrame, segments: pd.DataFrame, pool: str, loads_rps: dict[str, float],
          servers: dict[str, int], hardware: dict[str, HardwareType], unserved_penalty: float | None = None,
          transition_prices: nw.TransitionPrices | None = None, weights: ObjectiveWeights = ENERGY,
          routed_ops: pd.DataFrame | None = None):
    """Build the pool MILP. Returns ``(model, network, blocks)``; nothing is solved here.

    ``loads_rps``: load of each class routed to this pool (req/s); ``servers``: the pool's
    allotment per hardware type; ``unserved_penalty`` (W per req/s) enables the best-effort
    slack ``u``. Configurations on hardware the pool has no servers of are left out. With
    ``transition_prices`` the model charges for changing the current instances (pool.md 6-10);
    the current counts are right-hand sides of the ``transition`` rows, set per solve.
    ``weights``: the objective (:mod:`.objective`; default: power, pool.obj); ``routed_ops``: where
    routed classes may be served (:func:`network.build_network`). ``blocks["load_shift"]``
    is the objective offset per req/s of each class (for re-solves with other demand).
    """
    routes = {c: (pool,) for c in loads_rps}

    def here(points: pd.DataFrame) -> pd.DataFrame:
        return points[points["hardware"].map(lambda h: servers.get(h, 0) > 0)]

    net = nw.build_network(here(ops), segments, routes, loads_rps, hardware, pools=(pool,),
                           routed_ops=None if routed_ops is None else here(routed_ops))
    ub = np.array([servers.get(h, 0) for h in net.hw_pools["hardware"]], dtype=float)
    m, blocks = nw.build_pool_network_model(f"pool[{pool}]", net, ub, None, unserved_penalty, server_lb=ub)
    if transition_prices is not None:
        blocks["transitions"] = nw.define_transition_terms(m, net, blocks["n"])
    blocks["load_shift"] = define_objective(m, net, weights, unserved_penalty, transition_prices)
    return m, net, blocks
