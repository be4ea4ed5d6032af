"""Monolithic reference: every pool, the inventory and spill in one MILP.

Equations: ``formulations/monolithic.md`` — the pool equations for all pools at once, with the
demand of each class served by any pool its route allows, and (inventory)
``sum_p y[p,h] <= S_h``. Used to measure what the hierarchy gives up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dynaplan.domain.hardware import HardwareType
from dynaplan.formulations import network as nw
from dynaplan.solvers.model import LinearModel


def build(ops: pd.DataFrame, routes: dict[str, tuple[str, ...]], demand_rps: dict[str, float],
          inventory: dict[str, int], hardware: dict[str, HardwareType], pools: tuple[str, ...],
          unserved_penalty: float | None = None):
    net = nw.build_network(ops, routes, demand_rps, hardware, pools=pools)
    m = LinearModel("monolithic")
    n = nw.define_instance_variables(m, net)
    z = nw.define_load_variables(m, net)
    ub = np.array([inventory.get(h, 0) for h in net.hw_pools["hardware"]], dtype=float)
    y = nw.define_server_variables(m, net, ub)
    u = nw.define_unserved_variables(m, net, unserved_penalty) if unserved_penalty else None
    nw.define_demand_constraints(m, net, z, u)
    nw.define_capacity_constraints(m, net, n, z)
    nw.define_packing_constraints(m, net, n, y)
    nw.define_inventory_constraints(m, net, y, inventory, by="y")
    return m, net, {"n": n, "z": z, "y": y, "u": u}
