"""Shared building blocks of the pool, cluster and monolithic formulations.

All three are instances of one *pool network*: pools ``p`` (named after their request class),
configurations ``k`` (hardware, TP, clock) available in each pool, classes ``c`` routed to
pools, and servers per (pool, hardware). See ``formulations/pool.md`` for the equations; the
names of the variable and constraint blocks below are the names used there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dynaplan.domain.hardware import HardwareType
from dynaplan.solvers.model import LinearModel

CFG_COLS = ["pool", "hardware", "tp", "freq_mhz"]


@dataclass(frozen=True)
class Network:
    """Index sets and parameters, as frames with one row per element.

    ``configs``: one row per (pool, hardware, tp, freq_mhz) with ``static_w`` (W per instance)
    and ``chord_error_w``. ``arcs``: one row per (pool, config, class) with the config index
    ``k``, ``max_load_rps`` and ``w_per_rps``. ``hw_pools``: one row per (pool, hardware).
    ``demand_rps``: load per class (req/s).
    """

    configs: pd.DataFrame
    arcs: pd.DataFrame
    hw_pools: pd.DataFrame
    demand_rps: pd.Series
    hardware: dict[str, HardwareType]


def build_network(ops: pd.DataFrame, routes: dict[str, tuple[str, ...]], demand_rps: dict[str, float],
                  hardware: dict[str, HardwareType], pools: tuple[str, ...] | None = None,
                  keep_configs: pd.DataFrame | None = None) -> Network:
    """Assemble the sets from operating points.

    ``ops``: operating points (see :func:`dynaplan.planning.problem.operating_points`);
    ``routes[c]``: the pools that may serve class ``c``. A pool's configurations are the
    points feasible for the pool's own class; a routed class may use one of them only where
    that configuration also meets the routed class's SLO (``max_load_rps > 0``).
    ``keep_configs`` (columns pool, hardware, tp, freq_mhz) restricts the configurations.
    """
    pools = tuple(pools) if pools is not None else tuple(sorted({p for ts in routes.values() for p in ts}))
    own = ops[ops["request_class"].isin(pools)].rename(columns={"request_class": "pool"})
    configs = own[CFG_COLS + ["group_id", "static_w", "chord_error_w", "max_load_rps"]].rename(
        columns={"max_load_rps": "own_max_load_rps"})
    if keep_configs is not None:
        configs = configs.merge(keep_configs[CFG_COLS], on=CFG_COLS, how="inner")
    configs = configs.reset_index(drop=True)
    configs.index.name = "k"
    pairs = pd.DataFrame([(c, p) for c, ps in routes.items() for p in ps if p in pools and demand_rps.get(c, 0) > 0],
                         columns=["request_class", "pool"])
    cand = configs.reset_index().merge(pairs, on="pool")
    arcs = cand.merge(ops[["hardware", "tp", "freq_mhz", "request_class", "max_load_rps", "w_per_rps"]],
                      on=["hardware", "tp", "freq_mhz", "request_class"], how="inner")
    arcs = arcs[["k", "pool", "request_class", "max_load_rps", "w_per_rps"]].reset_index(drop=True)
    hw_pools = configs[["pool", "hardware"]].drop_duplicates().reset_index(drop=True)
    demand = pd.Series({c: float(v) for c, v in demand_rps.items() if v > 0}, dtype=float)
    demand.index.name = "request_class"
    return Network(configs, arcs, hw_pools, demand, hardware)


def define_instance_variables(m: LinearModel, net: Network, recipe: bool = False):
    """``n[p,k]`` integer instances (or, with ``recipe``, ``s[p,k]`` whole servers of config k).

    Cost: the instance's static power, less the idle power its GPUs would draw unallocated
    (that idle power is charged on active servers by :func:`define_server_variables`).
    """
    cfg = net.configs
    idle = np.array([net.hardware[h].idle_power_w for h in cfg["hardware"]])
    g = np.array([net.hardware[h].gpus_per_server for h in cfg["hardware"]])
    tp = cfg["tp"].to_numpy()
    labels = list(cfg[CFG_COLS].itertuples(index=False, name=None))
    if recipe:
        per_server = g // tp
        return m.add_vars("s", labels, cost=per_server * cfg["static_w"].to_numpy(), integer=True)
    return m.add_vars("n", labels, cost=cfg["static_w"].to_numpy() - idle * tp, integer=True)


def define_load_variables(m: LinearModel, net: Network):
    """``z[p,k,c]`` load of class c on configuration k of pool p (req/s), cost b_{k,c} (W per req/s)."""
    a = net.arcs
    labels = [(p, int(k), c) for k, p, c in a[["k", "pool", "request_class"]].itertuples(index=False, name=None)]
    return m.add_vars("z", labels, cost=a["w_per_rps"].to_numpy())


def define_server_variables(m: LinearModel, net: Network, ub: np.ndarray):
    """``y[p,h]`` active servers of hardware h in pool p; cost: idle power of all their GPUs."""
    hp = net.hw_pools
    g = np.array([net.hardware[h].gpus_per_server for h in hp["hardware"]])
    idle = np.array([net.hardware[h].idle_power_w for h in hp["hardware"]])
    return m.add_vars("y", list(hp.itertuples(index=False, name=None)), ub=ub, cost=idle * g, integer=True)


def define_unserved_variables(m: LinearModel, net: Network, penalty_w_per_rps: float):
    """``u[c]`` unserved load (req/s), only in best-effort mode."""
    return m.add_vars("u", list(net.demand_rps.index), cost=penalty_w_per_rps)


def define_demand_constraints(m: LinearModel, net: Network, z, u=None):
    """(demand) sum_{p,k} z[p,k,c] (+ u[c]) >= L_c for every class c."""
    classes = list(net.demand_rps.index)
    pos = {c: i for i, c in enumerate(classes)}
    rows = net.arcs["request_class"].map(pos).to_numpy()
    cols = z.cols
    vals = np.ones(len(cols))
    if u is not None:
        rows = np.r_[rows, np.arange(len(classes))]
        cols = np.r_[cols, u.cols]
        vals = np.r_[vals, np.ones(len(classes))]
    return m.add_constraints("demand", classes, rows, cols, vals, lo=net.demand_rps.to_numpy())


def define_capacity_constraints(m: LinearModel, net: Network, n, z, per_instance_mult: np.ndarray | None = None):
    """(capacity) sum_c z[p,k,c] / lmax_{k,c} - M_k n[p,k] <= 0: per-class utilisation of the
    instances of configuration k is at most 1 (M_k = 1, or instances per server for recipes)."""
    k_count = len(net.configs)
    a = net.arcs
    mult = np.ones(k_count) if per_instance_mult is None else per_instance_mult
    rows = np.r_[a["k"].to_numpy(), np.arange(k_count)]
    cols = np.r_[z.cols, n.cols]
    vals = np.r_[1.0 / a["max_load_rps"].to_numpy(), -mult]
    return m.add_constraints("capacity", n.labels, rows, cols, vals, hi=0.0)


def define_packing_constraints(m: LinearModel, net: Network, n, y):
    """(packing) sum_{k on h} tp_k n[p,k] - G_h y[p,h] <= 0 for every pool p and hardware h.

    With TP degrees that divide the server's GPU count (powers of two on 8-GPU servers), GPU
    counting is exact: any multiset of such instances whose GPUs fit in y servers packs into
    them (first-fit decreasing never leaves a gap a smaller power of two cannot fill).
    """
    hp = net.hw_pools
    pos = {key: i for i, key in enumerate(hp.itertuples(index=False, name=None))}
    cfg = net.configs
    rows_n = np.array([pos[key] for key in cfg[["pool", "hardware"]].itertuples(index=False, name=None)])
    g = np.array([net.hardware[h].gpus_per_server for h in hp["hardware"]])
    rows = np.r_[rows_n, np.arange(len(hp))]
    cols = np.r_[n.cols, y.cols]
    vals = np.r_[cfg["tp"].to_numpy().astype(float), -g.astype(float)]
    return m.add_constraints("packing", y.labels, rows, cols, vals, hi=0.0)


def define_inventory_constraints(m: LinearModel, net: Network, var, inventory: dict[str, int], by: str):
    """(inventory) sum_p y[p,h] <= S_h (or sum_{p,k on h} s[p,k] <= S_h for recipes)."""
    hws = sorted(inventory)
    pos = {h: i for i, h in enumerate(hws)}
    src = net.hw_pools if by == "y" else net.configs
    keep = src["hardware"].isin(hws).to_numpy()
    rows = src["hardware"][keep].map(pos).to_numpy()
    cols = var.cols[keep]
    return m.add_constraints("inventory", hws, rows, cols, np.ones(len(cols)),
                             hi=np.array([inventory[h] for h in hws], dtype=float))


def split_solution(net: Network, x: np.ndarray, n, z, y=None, u=None, recipe: bool = False) -> dict:
    """Column values back into frames keyed like the sets."""
    cfg = net.configs.copy()
    count = np.round(x[n.cols]).astype(np.int64)
    if recipe:
        g = np.array([net.hardware[h].gpus_per_server for h in cfg["hardware"]])
        cfg["servers"] = count
        count = count * (g // cfg["tp"].to_numpy())
    cfg["count"] = count
    arcs = net.arcs.copy()
    arcs["load_rps"] = np.maximum(x[z.cols], 0.0)
    out = {"configs": cfg, "arcs": arcs}
    if y is not None:
        hp = net.hw_pools.copy()
        hp["servers"] = np.round(x[y.cols]).astype(np.int64)
        out["servers"] = hp
    if u is not None:
        out["unserved"] = pd.Series(np.maximum(x[u.cols], 0.0), index=net.demand_rps.index)
    return out


@dataclass(frozen=True)
class NetArrays:
    """The sets of a :class:`Network` as flat numpy arrays with their model columns.

    Built once per model and reused to read solutions without pandas on the hot path.
    """

    cfg_pool: np.ndarray
    cfg_hw: np.ndarray
    cfg_tp: np.ndarray
    cfg_freq: np.ndarray
    cfg_gid: np.ndarray
    cfg_own_lmax: np.ndarray
    cfg_mult: np.ndarray  # instances per count unit: 1, or instances per server for recipes
    n_cols: np.ndarray
    arc_k: np.ndarray
    arc_class: np.ndarray
    arc_lmax: np.ndarray
    z_cols: np.ndarray
    hp_pool: np.ndarray
    hp_hw: np.ndarray
    y_cols: np.ndarray | None
    demand_classes: tuple[str, ...]
    u_cols: np.ndarray | None


def net_arrays(net: Network, blocks: dict, recipe: bool = False) -> NetArrays:
    cfg, arcs, hp = net.configs, net.arcs, net.hw_pools
    tp = cfg["tp"].to_numpy(dtype=np.int64)
    g = np.array([net.hardware[h].gpus_per_server for h in cfg["hardware"]], dtype=np.int64)
    nblock = blocks["s"] if recipe else blocks["n"]
    return NetArrays(
        cfg_pool=cfg["pool"].to_numpy(dtype=object), cfg_hw=cfg["hardware"].to_numpy(dtype=object),
        cfg_tp=tp, cfg_freq=cfg["freq_mhz"].to_numpy(dtype=np.int64),
        cfg_gid=cfg["group_id"].to_numpy(dtype=np.int64), cfg_own_lmax=cfg["own_max_load_rps"].to_numpy(dtype=float),
        cfg_mult=(g // tp) if recipe else np.ones(len(cfg), dtype=np.int64), n_cols=nblock.cols,
        arc_k=arcs["k"].to_numpy(dtype=np.int64), arc_class=arcs["request_class"].to_numpy(dtype=object),
        arc_lmax=arcs["max_load_rps"].to_numpy(dtype=float), z_cols=blocks["z"].cols,
        hp_pool=hp["pool"].to_numpy(dtype=object), hp_hw=hp["hardware"].to_numpy(dtype=object),
        y_cols=blocks["y"].cols if blocks.get("y") is not None else None,
        demand_classes=tuple(net.demand_rps.index),
        u_cols=blocks["u"].cols if blocks.get("u") is not None else None,
    )
