"""Cluster level (every ~30 min): servers per pool and hardware type, and where load spills.

Equations: ``formulations/cluster.md``. The cluster level plans whole servers: ``s[p,k]``
servers of pool p each filled with m_k = G_h/tp_k instances of configuration k (a *server
recipe*). Each (pool, hardware) has at most two recipes, chosen before the solve
(cluster.recipe): the pool's configuration of least energy per request at its SLO capacity,
``P(lmax_k)/lmax_k``, and the one of most capacity per server (for tight inventories). That
keeps the cluster MILP to two integers per (pool, hardware), whatever the cluster size.
Power is the single chord of each recipe (one piece).

Minimise (cluster.obj) ``sum m_k A_k s[p,k] + sum B_k w[p,k] + sum D_{k,c}/lmax_{k,c} z[p,k,c]``
(a spilled class's surcharge; plus the new-server prices from a state and ``M sum u_c`` in best
effort; the load costs are shifted by ``kappa_c`` with ``sum_c kappa_c L_c`` as objective offset,
:func:`network.load_cost_shift`) subject to (demand),
(utilisation) ``sum_c z[p,k,c]/lmax_{k,c} <= w[p,k]``, (capacity) ``w[p,k] <= m_k s[p,k]`` and
(inventory) ``sum_{p,k on h} s[p,k] <= S_h``, and the (linking) rows ``z[p,k,c] <= min(L_c, m_k
lmax_{k,c}) s[p,k]`` that keep the LP relaxation from opening a fraction of a server in
proportion to a small load (cluster.md, "Linking rows"). The pool level then re-optimises each pool's mix
inside the servers chosen here; a recipe is a feasible pool plan, so it can only improve.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dynaplan.domain.hardware import HardwareType
from dynaplan.formulations import network as nw
from dynaplan.formulations.objective import ENERGY, ObjectiveWeights, define_objective
from dynaplan.solvers.model import LinearModel


def recipes(ops: pd.DataFrame, pools: tuple[str, ...], gpus_per_server: dict[str, int] | None = None) -> pd.DataFrame:
    """(cluster.recipe) per (pool, hardware): the pool-class configuration of least energy per
    request at its max load under SLO and, with ``gpus_per_server``, the one of most capacity per
    server (``G_h / tp_k * lmax_k``; the same configuration is kept once)."""
    own = ops[ops["request_class"].isin(pools)].rename(columns={"request_class": "pool"})
    own = own.assign(_e=(own["power_w"] / own["max_load_rps"]).to_numpy())
    own = own.sort_values(["pool", "hardware", "_e", "freq_mhz"])
    out = [own.groupby(["pool", "hardware"], as_index=False).head(1)]
    if gpus_per_server is not None:
        cap = own["hardware"].map(gpus_per_server).to_numpy() // own["tp"].to_numpy() * own["max_load_rps"].to_numpy()
        # most capacity first, then least energy per request among equals (a stable order)
        dense = own.assign(_cap=-cap).sort_values(["pool", "hardware", "_cap", "_e", "freq_mhz"], kind="stable")
        out.append(dense.groupby(["pool", "hardware"], as_index=False).head(1))
    keep = pd.concat(out)[nw.CFG_COLS].drop_duplicates()
    return keep.sort_values(nw.CFG_COLS).reset_index(drop=True)


def chord_segments(ops: pd.DataFrame) -> pd.DataFrame:
    """One piece per operating point: its chord (``static_w``, ``w_per_util``)."""
    seg = ops[["model", "hardware", "tp", "freq_mhz", "request_class", "static_w", "w_per_util"]].copy()
    seg["segment"] = 0
    seg["u_hi"] = 1.0
    return seg


def build(ops: pd.DataFrame, routes: dict[str, tuple[str, ...]], demand_rps: dict[str, float],
          inventory: dict[str, int], hardware: dict[str, HardwareType], pools: tuple[str, ...],
          unserved_penalty: float | None = None, transition_prices: nw.TransitionPrices | None = None,
          weights: ObjectiveWeights = ENERGY, routed_ops: pd.DataFrame | None = None, linking: bool = True):
    """Build the cluster MILP; returns ``(model, network, blocks)``. ``weights``: the objective
    (:mod:`.objective`; default: power, cluster.obj); ``routed_ops``: where routed classes may be
    served (:func:`network.build_network`); ``blocks["load_shift"]``: the objective offset per
    req/s of each class; ``blocks["linking"]``: the (linking) rows' demand-dependent entries
    (:class:`network.LinkingRows`, for re-solves with other demand), None without ``linking``
    (the planner's CP-SAT models: cluster.md, "Linking rows")."""
    gps = {h: hw.gpus_per_server for h, hw in hardware.items()}
    net = nw.build_network(ops, chord_segments(ops), routes, demand_rps, hardware, pools=pools,
                           keep_configs=recipes(ops, pools, gps), routed_ops=routed_ops)
    m = LinearModel("cluster")
    s = nw.define_instance_variables(m, net, recipe=True)
    w = nw.define_utilisation_variables(m, net)
    z = nw.define_load_variables(m, net)
    u = nw.define_unserved_variables(m, net) if unserved_penalty else None
    g = np.array([hardware[h].gpus_per_server for h in net.pieces["hardware"]])
    per_server = (g // net.pieces["tp"].to_numpy()).astype(float)
    nw.define_demand_constraints(m, net, z, u)
    nw.define_utilisation_constraints(m, net, z, w)
    nw.define_capacity_constraints(m, net, s, w, per_instance_mult=per_server)
    nw.define_inventory_constraints(m, net, s, inventory, by="s")
    rows = nw.define_linking_constraints(m, net, s, z, per_instance_mult=per_server) if linking else None
    blocks = {"s": s, "w": w, "z": z, "u": u, "linking": rows}
    if transition_prices is not None:
        blocks["new_servers"] = define_new_server_terms(m, net, s, inventory)
    blocks["load_shift"] = define_objective(m, net, weights, unserved_penalty, transition_prices)
    return m, net, blocks


def define_new_server_terms(m: LinearModel, net: nw.Network, s, inventory: dict[str, int]):
    """(new_servers) ``sum_{p,k on h} s[p,k] - v[h] <= S^now_h``: servers beyond those running now
    must be started (``v[h]``, priced per server by ``define_objective``); moving a running server between pools of the
    same model is only a re-route. ``S^now_h`` is the right-hand side, set per solve."""
    hws = sorted(inventory)
    pos = {h: i for i, h in enumerate(hws)}
    v = m.add_vars("new_servers", hws)
    keep = net.pieces["hardware"].isin(hws).to_numpy()
    rows = np.r_[net.pieces["hardware"][keep].map(pos).to_numpy(), np.arange(len(hws))]
    cols = np.r_[s.cols[keep], v.cols]
    vals = np.r_[np.ones(int(keep.sum())), -np.ones(len(hws))]
    m.add_constraints("new_servers", hws, rows, cols, vals, hi=0.0)
    return v


def allotment(na: nw.NetArrays, x: np.ndarray) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """Servers per pool and hardware, and routed load per pool and class, from a cluster solution."""
    servers: dict[str, dict[str, int]] = {}
    for p, h, v in zip(na.pc_pool, na.pc_hw, np.rint(x[na.n_cols]).astype(np.int64)):
        if v > 0:
            servers.setdefault(p, {})[h] = servers.get(p, {}).get(h, 0) + int(v)
    routed: dict[str, dict[str, float]] = {}
    for k, c, v in zip(na.arc_k, na.arc_class, x[na.z_cols]):
        if v > 1e-9:
            p = na.pc_pool[np.flatnonzero(na.pc_k == k)[0]]
            routed.setdefault(p, {})[c] = routed.get(p, {}).get(c, 0.0) + float(v)
    return servers, routed
