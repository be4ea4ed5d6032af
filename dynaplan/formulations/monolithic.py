"""Monolithic reference: every pool, the inventory and spill in one MILP.

Equations: ``formulations/monolithic.md`` — the pool equations for all pools at once, the
demand of each class served by any pool its route allows, and (inventory)
``sum_p y[p,h] <= S_h``, with the (linking) rows ``z[p,k,c] <= sum_j min(L_c, hi_j lmax_{k,c})
n[p,k,j]`` that tighten its LP relaxation without changing its optimum (on inventories of at
most :data:`LINKING_MAX_SERVERS` servers: beyond, they slow HiGHS down; monolithic.md). Used to
measure what the hierarchy gives up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dynaplan.domain.hardware import HardwareType
from dynaplan.formulations import network as nw
from dynaplan.formulations.objective import ENERGY, ObjectiveWeights, define_objective

# the (linking) rows on inventories up to this many servers (monolithic.md, "linking"): faster
# proofs at 40-100 servers, no gain at 200-1,000, up to 11x slower solves at 12,500
LINKING_MAX_SERVERS = 200


def build(ops: pd.DataFrame, segments: pd.DataFrame, routes: dict[str, tuple[str, ...]],
          demand_rps: dict[str, float], inventory: dict[str, int], hardware: dict[str, HardwareType],
          pools: tuple[str, ...], unserved_penalty: float | None = None, weights: ObjectiveWeights = ENERGY,
          routed_ops: pd.DataFrame | None = None, linking: bool = True):
    """The monolithic MILP; ``routed_ops``: where routed classes may be served
    (:func:`network.build_network`); ``linking``: the (linking) rows are allowed (built on
    inventories of at most :data:`LINKING_MAX_SERVERS` servers). Returns ``(model, network, blocks)``."""
    net = nw.build_network(ops, segments, routes, demand_rps, hardware, pools=pools, routed_ops=routed_ops)
    ub = np.array([inventory.get(h, 0) for h in net.hw_pools["hardware"]], dtype=float)
    linking = linking and sum(int(n) for n in inventory.values()) <= LINKING_MAX_SERVERS
    m, blocks = nw.build_pool_network_model("monolithic", net, ub, inventory, unserved_penalty, linking=linking)
    blocks["load_shift"] = define_objective(m, net, weights, unserved_penalty)
    return m, net, blocks
