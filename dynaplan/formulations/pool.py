"""Pool level (every ~5 min): the instance mix of one pool inside its server allotment.

Equations: ``formulations/pool.md``. Minimise (pool.obj) the pool's power

    sum_k (a_k - e_h tp_k) n_k + sum_{k,c} b_{k,c} z_{k,c} + sum_h e_h G_h y_h  [+ M sum_c u_c]

subject to (demand) ``sum_k z_{k,c} (+ u_c) >= L_c``, (capacity) ``sum_c z_{k,c}/lmax_{k,c} <= n_k``,
(packing) ``sum_{k on h} tp_k n_k <= G_h y_h`` and (allotment) ``y_h <= S_h``, with n, y integer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dynaplan.domain.hardware import HardwareType
from dynaplan.formulations import network as nw
from dynaplan.solvers.model import LinearModel


def build(ops: pd.DataFrame, pool: str, loads_rps: dict[str, float], servers: dict[str, int],
          hardware: dict[str, HardwareType], unserved_penalty: float | None = None):
    """Build the pool MILP. Returns ``(model, network, blocks)``; nothing is solved here.

    ``loads_rps``: load of each class routed to this pool (req/s); ``servers``: the pool's
    allotment per hardware type (servers); ``unserved_penalty`` (W per req/s) enables the
    best-effort slack ``u``.
    """
    routes = {c: (pool,) for c in loads_rps}
    net = nw.build_network(ops, routes, loads_rps, hardware, pools=(pool,))
    net = _restrict_hardware(net, servers)
    m = LinearModel(f"pool[{pool}]")
    n = nw.define_instance_variables(m, net)
    z = nw.define_load_variables(m, net)
    ub = np.array([servers.get(h, 0) for h in net.hw_pools["hardware"]], dtype=float)
    y = nw.define_server_variables(m, net, ub)
    u = nw.define_unserved_variables(m, net, unserved_penalty) if unserved_penalty else None
    nw.define_demand_constraints(m, net, z, u)
    nw.define_capacity_constraints(m, net, n, z)
    nw.define_packing_constraints(m, net, n, y)
    return m, net, {"n": n, "z": z, "y": y, "u": u}


def _restrict_hardware(net: nw.Network, servers: dict[str, int]) -> nw.Network:
    """Drop configurations on hardware the pool has no servers of."""
    keep = net.configs["hardware"].map(lambda h: servers.get(h, 0) > 0).to_numpy()
    if keep.all():
        return net
    cfg = net.configs[keep]
    remap = pd.Series(np.arange(len(cfg)), index=cfg.index)
    arcs = net.arcs[net.arcs["k"].isin(cfg.index)].copy()
    arcs["k"] = remap.loc[arcs["k"]].to_numpy()
    cfg = cfg.reset_index(drop=True)
    cfg.index.name = "k"
    hw_pools = net.hw_pools[net.hw_pools["hardware"].isin(cfg["hardware"])].reset_index(drop=True)
    return nw.Network(cfg, arcs.reset_index(drop=True), hw_pools, net.demand_rps, net.hardware)
