"""Cluster level (every ~30 min): servers per pool and hardware type, and where load spills.

Equations: ``formulations/cluster.md``. The cluster level plans whole servers: ``s[p,k]``
servers of pool p each filled with G_h/tp_k instances of configuration k (a *server recipe*).
Each (pool, hardware) has one recipe, chosen before the solve (cluster.recipe): the pool's
configuration of least energy per request at its SLO capacity, ``(a_k + b_k lmax_k)/lmax_k``.
That keeps the cluster MILP to one integer per (pool, hardware), whatever the cluster size.
Minimise (cluster.obj) ``sum_{p,k} (G_h/tp_k) a_k s[p,k] + sum_{p,k,c} b_{k,c} z[p,k,c]``
subject to (demand) ``sum_{p,k} z[p,k,c] (+ u_c) >= L_c``, (capacity)
``sum_c z[p,k,c]/lmax_{k,c} <= (G_h/tp_k) s[p,k]`` and (inventory)
``sum_{p,k on h} s[p,k] <= S_h``. The pool level then re-optimises each pool's mix inside the
servers chosen here; because a recipe is a feasible pool plan, the pool level never does worse.
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
    net = nw.build_network(ops, routes, demand_rps, hardware, pools=pools, keep_configs=recipes(ops, pools))
    m = LinearModel("cluster")
    s = nw.define_instance_variables(m, net, recipe=True)
    z = nw.define_load_variables(m, net)
    u = nw.define_unserved_variables(m, net, unserved_penalty) if unserved_penalty else None
    g = np.array([hardware[h].gpus_per_server for h in net.configs["hardware"]])
    per_server = (g // net.configs["tp"].to_numpy()).astype(float)
    nw.define_demand_constraints(m, net, z, u)
    nw.define_capacity_constraints(m, net, s, z, per_instance_mult=per_server)
    nw.define_inventory_constraints(m, net, s, inventory, by="s")
    return m, net, {"s": s, "z": z, "u": u}


def recipes(ops: pd.DataFrame, pools: tuple[str, ...]) -> pd.DataFrame:
    """(cluster.recipe) per (pool, hardware): the pool-class configuration of least energy per
    request at its max load under SLO."""
    own = ops[ops["request_class"].isin(pools)].rename(columns={"request_class": "pool"})
    e = (own["static_w"] + own["w_per_rps"] * own["max_load_rps"]) / own["max_load_rps"]
    own = own.assign(_e=e.to_numpy()).sort_values(["pool", "hardware", "_e", "freq_mhz"])
    return own.groupby(["pool", "hardware"], as_index=False).head(1)[nw.CFG_COLS].reset_index(drop=True)


def allotment(parts: dict) -> pd.DataFrame:
    """Servers per (pool, hardware) and load per (class, pool) from a cluster solution."""
    cfg = parts["configs"]
    servers = cfg.groupby(["pool", "hardware"], as_index=False)["servers"].sum()
    routed = parts["arcs"].groupby(["request_class", "pool"], as_index=False)["load_rps"].sum()
    return servers, routed
