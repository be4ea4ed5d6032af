"""Shared building blocks of the pool, cluster and monolithic formulations.

All three are instances of one *pool network*: pools ``p`` (named after their request class),
configurations ``k`` (hardware, TP, clock) available in each pool, pieces ``j`` of each
configuration's piecewise-linear power curve, classes ``c`` routed to pools, and servers per
(pool, hardware). Equations: ``formulations/pool.md``; block names here are the names there.

The blocks are added cost-free: :func:`dynaplan.formulations.objective.define_objective` prices
them afterwards, so one set of blocks serves every objective.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dynaplan.domain.hardware import HardwareType
from dynaplan.domain.transitions import TransitionCosts, amortised_cost
from dynaplan.solvers.model import LinearModel

CFG_COLS = ["pool", "hardware", "tp", "freq_mhz"]
_KEY = ["hardware", "tp", "freq_mhz"]


@dataclass(frozen=True)
class Network:
    """Index sets and parameters, as frames with one row per element.

    ``configs``: one row per (pool, hardware, tp, freq_mhz) with the profile ``group_id`` of the
    pool's class and ``own_max_load_rps``. ``pieces``: one row per (config ``k``, piece ``j``)
    with ``static_w`` (A, W per instance) and ``w_per_util`` (B, W per unit utilisation).
    ``arcs``: one row per (config ``k``, routed class) with ``max_load_rps``. ``hw_pools``: one
    row per (pool, hardware). ``demand_rps``: load per class (req/s).
    """

    configs: pd.DataFrame
    pieces: pd.DataFrame
    arcs: pd.DataFrame
    hw_pools: pd.DataFrame
    demand_rps: pd.Series
    hardware: dict[str, HardwareType]


def build_network(ops: pd.DataFrame, segments: pd.DataFrame, routes: dict[str, tuple[str, ...]],
                  demand_rps: dict[str, float], hardware: dict[str, HardwareType], pools: tuple[str, ...],
                  keep_configs: pd.DataFrame | None = None, routed_ops: pd.DataFrame | None = None) -> Network:
    """Assemble the sets from operating points and their power pieces.

    A pool's configurations are the points of ``ops`` feasible for the pool's own class; a routed
    class may use one of them wherever that configuration also meets its SLO: an arc for every
    point of that class in ``routed_ops`` (default ``ops``; the planner passes every SLO-feasible
    point, unpruned: a point the dominance pruning drops for a class's own pool may still be
    the cheapest way to serve it inside another pool, pool.md "Spilled classes").
    ``keep_configs`` (columns pool, hardware, tp, freq_mhz) restricts the configurations.
    """
    own = ops[ops["request_class"].isin(pools)].rename(columns={"request_class": "pool"})
    configs = own[CFG_COLS + ["group_id", "max_load_rps", "power_w"]].rename(
        columns={"max_load_rps": "own_max_load_rps", "power_w": "own_power_w"})
    if keep_configs is not None:
        configs = configs.merge(keep_configs[CFG_COLS], on=CFG_COLS, how="inner")
    configs = configs.reset_index(drop=True)
    configs.index.name = "k"
    kcol = configs.reset_index()[["k"] + CFG_COLS]
    pieces = kcol.merge(segments.rename(columns={"request_class": "pool"}), on=CFG_COLS, how="inner")
    pieces = pieces.sort_values(["k", "segment"]).reset_index(drop=True)
    pairs = pd.DataFrame([(c, p) for c, ps in routes.items() for p in ps if p in pools and demand_rps.get(c, 0) > 0],
                         columns=["request_class", "pool"])
    points = ops if routed_ops is None else routed_ops
    arcs = kcol.merge(pairs, on="pool").merge(points[_KEY + ["request_class", "max_load_rps", "group_id", "power_w"]],
                                              on=_KEY + ["request_class"], how="inner")
    # a routed class's surcharge per unit of utilisation: its full-load power less the pool
    # class's on the same configuration (pool.md, "Spilled classes"), no lower than minus the
    # cheapest piece's slope, so that serving more than the demand never pays
    own_p = configs["own_power_w"].to_numpy(dtype=float)[arcs["k"].to_numpy()]
    # (the flat piece holding the profile's first value below its lightest load is left out: it is
    # bounded by that load, and its zero slope would cancel every negative surcharge)
    hold = (pieces["w_per_util"] == 0) & (pieces["u_hi"] < 1) if "u_lo" in pieces else np.zeros(len(pieces), bool)
    slopes = pieces.loc[~np.asarray(hold)] if (~np.asarray(hold)).any() else pieces
    min_slope = slopes.groupby("k")["w_per_util"].min().reindex(arcs["k"]).to_numpy(dtype=float)
    extra = arcs["power_w"].to_numpy(dtype=float) - own_p
    arcs["extra_w_per_util"] = np.where(arcs["request_class"] == arcs["pool"], 0.0,
                                        np.maximum(extra, -np.nan_to_num(min_slope, nan=0.0)))
    arcs = arcs[["k", "pool", "request_class", "max_load_rps", "group_id", "extra_w_per_util"]].sort_values(
        ["k", "request_class"]).reset_index(drop=True)
    hw_pools = configs[["pool", "hardware"]].drop_duplicates().reset_index(drop=True)
    demand = pd.Series({c: float(v) for c, v in demand_rps.items() if v > 0}, dtype=float)
    demand.index.name = "request_class"
    return Network(configs, pieces, arcs, hw_pools, demand, hardware)


def define_instance_variables(m: LinearModel, net: Network, recipe: bool = False):
    """``n[p,k,j]`` integer instances of configuration k on power piece j; with ``recipe``,
    ``s[p,k,j]`` whole servers each holding G_h/tp_k such instances.

    Priced by ``define_objective``: the piece's static power A_{k,j}, less the idle power the
    instance's GPUs would draw unallocated (that is charged on active servers, ``y``). Recipes
    are whole servers and carry no idle GPUs.
    """
    pc = net.pieces
    tp = pc["tp"].to_numpy()
    labels = list(zip(pc["pool"], pc["hardware"], tp, pc["freq_mhz"], pc["segment"]))
    return m.add_vars("s" if recipe else "n", labels, integer=True)


def define_utilisation_variables(m: LinearModel, net: Network):
    """``w[p,k,j]`` utilisation carried by the instances on piece j (sum over them); priced B_{k,j}."""
    pc = net.pieces
    labels = list(zip(pc["pool"], pc["hardware"], pc["tp"], pc["freq_mhz"], pc["segment"]))
    return m.add_vars("w", labels)


def load_cost_shift(net: Network) -> pd.Series:
    """Per class ``c``, the least surcharge ``kappa_c = min_k D_{k,c} / lmax_{k,c}`` over its arcs
    (W per req/s; 0 for a class without arcs).

    The load and unserved variables of class ``c`` are costed ``kappa_c`` less (so every load
    cost is >= 0, which HiGHS solves markedly faster), and ``sum_c kappa_c L_c`` comes back as
    an objective offset (set at build time for the demand built with; a solve with other demand
    moves it): with ``sum_k z_{k,c} + u_c >= L_c`` met with equality at an
    optimum (serving more never pays), objective and optimum are unchanged.
    """
    a = net.arcs
    raw = a["extra_w_per_util"].to_numpy() / a["max_load_rps"].to_numpy()
    kappa = pd.Series(raw, index=a["request_class"].to_numpy()).groupby(level=0).min()
    return kappa.reindex(net.demand_rps.index, fill_value=0.0).astype(float)


def define_load_variables(m: LinearModel, net: Network):
    """``z[p,k,c]`` load of class c on configuration k of pool p (req/s); priced: a routed
    class's surcharge D_{k,c} / lmax_{k,c} (zero for the pool's own class), less the class's
    shift ``kappa_c`` (:func:`load_cost_shift`)."""
    a = net.arcs
    labels = [(p, int(k), c) for k, p, c in a[["k", "pool", "request_class"]].itertuples(index=False, name=None)]
    return m.add_vars("z", labels)


def define_server_variables(m: LinearModel, net: Network, ub: np.ndarray, lb: np.ndarray | float = 0.0):
    """``y[p,h]`` active servers of hardware h in pool p; priced: idle power of all their GPUs."""
    hp = net.hw_pools
    return m.add_vars("y", list(hp.itertuples(index=False, name=None)), lb=lb, ub=ub, integer=True)


def define_unserved_variables(m: LinearModel, net: Network):
    """``u[c]`` unserved load (req/s), only in best-effort mode; priced: the penalty less the
    class's load-cost shift (:func:`load_cost_shift`), so that the shift is exact with it too."""
    return m.add_vars("u", list(net.demand_rps.index))


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


def define_utilisation_constraints(m: LinearModel, net: Network, z, w):
    """(utilisation) sum_c z[p,k,c] / lmax_{k,c} - sum_j w[p,k,j] <= 0 for every configuration.

    The pieces carry at least the utilisation the load needs; since every w costs power, an
    optimum carries exactly that (the inequality keeps the row satisfiable on CP-SAT's grid).
    """
    a, pc = net.arcs, net.pieces
    rows = np.r_[a["k"].to_numpy(), pc["k"].to_numpy()]
    cols = np.r_[z.cols, w.cols]
    vals = np.r_[1.0 / a["max_load_rps"].to_numpy(), -np.ones(len(pc))]
    labels = list(net.configs[CFG_COLS].itertuples(index=False, name=None))
    return m.add_constraints("utilisation", labels, rows, cols, vals, hi=0.0)


def define_capacity_constraints(m: LinearModel, net: Network, n, w, per_instance_mult: np.ndarray | None = None):
    """(capacity) w[p,k,j] - hi_j M_k n[p,k,j] <= 0 and, where a piece starts above zero
    utilisation, (piece_floor) w[p,k,j] - lo_j M_k n[p,k,j] >= 0: the instances on piece j each
    carry a utilisation in [lo_j, hi_j] (at most 1, so every instance meets every served class's
    SLO), where the piece's line is the profile's power (M_k = 1, or instances per server for
    recipes; pieces without ``u_hi`` / ``u_lo`` span [0, 1])."""
    k = len(net.pieces)
    mult = np.ones(k) if per_instance_mult is None else per_instance_mult
    hi = net.pieces["u_hi"].to_numpy(dtype=float) if "u_hi" in net.pieces else np.ones(k)
    rows = np.r_[np.arange(k), np.arange(k)]
    cap = m.add_constraints("capacity", n.labels, rows, np.r_[w.cols, n.cols], np.r_[np.ones(k), -mult * hi], hi=0.0)
    lo = net.pieces["u_lo"].to_numpy(dtype=float) if "u_lo" in net.pieces else np.zeros(k)
    sel = np.flatnonzero(lo > 0)
    if sel.size:
        r = np.arange(sel.size)
        m.add_constraints("piece_floor", [n.labels[i] for i in sel], np.r_[r, r], np.r_[w.cols[sel], n.cols[sel]],
                          np.r_[np.ones(sel.size), -(mult * lo)[sel]], lo=0.0)
    return cap


@dataclass(frozen=True)
class LinkingRows:
    """The (linking) rows' matrix entries on the count variables, one per (arc, piece of the
    arc's configuration): model ``row`` and ``col``, the arc's class ``request_class`` and its
    capacity coefficient ``cap`` (req/s per count; the entry is ``-min(L_c, cap)``, or ``-cap``
    where ``L_c`` is 0: :func:`linking_coefficients`)."""

    row: np.ndarray
    col: np.ndarray
    request_class: np.ndarray
    cap: np.ndarray


def define_linking_constraints(m: LinearModel, net: Network, n, z, per_instance_mult: np.ndarray | None = None
                               ) -> LinkingRows:
    """(linking) for every arc (k, c): ``z[p,k,c] - sum_j min(L_c, hi_j M_k lmax_{k,c}) n[p,k,j] <= 0``.

    With the weak coefficient ``hi_j M_k lmax_{k,c}`` the row follows from (utilisation) and
    (capacity). With ``L_c`` it is the fixed-charge strengthening of cluster.md, "Linking rows":
    it removes no optimum (an optimum serves each class no more than its demand on every arc,
    and a count is at least 1 wherever load is carried), while the LP relaxation can no longer
    open a fraction of a server in proportion to a small load. The coefficients are set from
    the build's demand (``net.demand_rps``); a model re-solved for other demand moves them with
    :func:`linking_coefficients` (:meth:`dynaplan.solvers.model.ModelArrays.with_coefficients`)."""
    a, pc = net.arcs, net.pieces
    mult = np.ones(len(pc)) if per_instance_mult is None else np.asarray(per_instance_mult, dtype=float)
    hi = pc["u_hi"].to_numpy(dtype=float) if "u_hi" in pc else np.ones(len(pc))
    pk = pc["k"].to_numpy(dtype=np.int64)
    order = np.argsort(pk, kind="stable")
    lo_j = np.searchsorted(pk[order], a["k"].to_numpy(dtype=np.int64), side="left")
    hi_j = np.searchsorted(pk[order], a["k"].to_numpy(dtype=np.int64), side="right")
    lens = hi_j - lo_j
    arc_of = np.repeat(np.arange(len(a)), lens)  # one entry per (arc, piece)
    piece = order[np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(lo_j, lens)]
    lmax = a["max_load_rps"].to_numpy(dtype=float)
    cap = mult[piece] * hi[piece] * lmax[arc_of]
    cls = a["request_class"].to_numpy(dtype=object)[arc_of]
    demand = net.demand_rps.reindex(cls, fill_value=0.0).to_numpy(dtype=float)
    r = np.arange(len(a))
    labels = list(zip(a["pool"], a["k"].astype(int), a["request_class"]))
    block = m.add_constraints("linking", labels, np.r_[r, arc_of], np.r_[z.cols, n.cols[piece]],
                              np.r_[np.ones(len(a)), -linking_coefficients(cap, demand)], hi=0.0)
    return LinkingRows(row=block.start + arc_of, col=n.cols[piece], request_class=cls, cap=cap)


def linking_coefficients(cap: np.ndarray, demand_rps: np.ndarray) -> np.ndarray:
    """The (linking) rows' coefficients ``min(L_c, cap)`` (``cap`` where ``L_c`` is 0: a class
    with no demand keeps the weak row, and the matrix its sparsity pattern)."""
    return np.where(demand_rps > 0, np.minimum(demand_rps, cap), cap)


def uniform_start(na: "NetArrays", piece_lo: np.ndarray, piece_hi: np.ndarray, arrays, loads: Mapping[str, float],
                  gpus: Mapping[str, int]) -> np.ndarray | None:
    """A starting solution for a pool model (pool.md, "Starting solution"): the cheapest *uniform*
    plan, ``N`` instances of one configuration sharing every class's load equally, in the
    model's own terms (``arrays``: the model as it is about to be solved, servers fixed; its
    costs price the candidates). ``piece_lo``/``piece_hi``: each piece's utilisation range;
    ``loads``: req/s by class; ``gpus``: the pool's GPUs by hardware type. None when no
    configuration serves every loaded class. The returned vector satisfies every row of the
    model (demand met exactly; the instances' utilisation on one piece; packing within the
    servers); its cost is the candidate's objective."""
    want = {c: float(v) for c, v in loads.items() if v > 0}
    if not want or na.y_cols is None:
        return None
    sel = np.flatnonzero(np.isin(na.arc_class, list(want)))
    util = np.bincount(na.arc_k[sel], weights=np.array([want[c] for c in na.arc_class[sel]]) / na.arc_lmax[sel],
                       minlength=int(na.pc_k.max()) + 1)
    served = np.bincount(na.arc_k[sel], minlength=len(util))
    zcost = np.bincount(na.arc_k[sel], weights=arrays.cost[na.z_cols[sel]] * np.array([want[c] for c in na.arc_class[sel]]),
                        minlength=len(util))
    best, best_cost = None, np.inf
    for j in range(len(na.pc_k)):  # every piece: the instance counts that put it in its range
        k = na.pc_k[j]
        if served[k] < len(want):
            continue
        most = int(gpus.get(na.pc_hw[j], 0)) // int(na.pc_tp[j])
        u_k = util[k]
        first = max(1, int(np.ceil(u_k / piece_hi[j] - 1e-12)))
        if first > most:
            continue
        count = np.arange(first, most + 1)
        count = count[(piece_lo[j] * count <= u_k * (1 + 1e-12)) & (u_k <= piece_hi[j] * count * (1 + 1e-12))]
        if not count.size:
            continue
        cost = arrays.cost[na.n_cols[j]] * count + arrays.cost[na.w_cols[j]] * u_k + zcost[k]
        i = int(np.argmin(cost))
        if cost[i] < best_cost:
            best_cost, best = float(cost[i]), (j, int(count[i]))
    if best is None:
        return None
    j, count = best
    x = np.zeros(arrays.n_cols)
    x[na.y_cols] = arrays.lb[na.y_cols]
    x[na.n_cols[j]] = count
    x[na.w_cols[j]] = util[na.pc_k[j]]
    arcs = sel[na.arc_k[sel] == na.pc_k[j]]
    x[na.z_cols[arcs]] = [want[c] for c in na.arc_class[arcs]]
    return x


def instances_solution(na: "NetArrays", arrays, rows: np.ndarray, util: np.ndarray, arcs: np.ndarray,
                       loads: np.ndarray) -> np.ndarray:
    """A pool model's solution vector from instances (the two-class search's plan, pool.md TC4):
    one instance on piece row ``rows[i]`` at utilisation ``util[i]`` each, and load ``loads[j]``
    (req/s) on arc ``arcs[j]``; the servers at the fixed bounds of ``arrays`` (the model as it
    is about to be solved). Instances of a piece add up in ``n`` and ``w``, loads of an arc in ``z``."""
    x = np.zeros(arrays.n_cols)
    x[na.y_cols] = arrays.lb[na.y_cols]
    np.add.at(x, na.n_cols[rows], 1.0)
    np.add.at(x, na.w_cols[rows], util)
    np.add.at(x, na.z_cols[arcs], loads)
    return x


def define_packing_constraints(m: LinearModel, net: Network, n, y):
    """(packing) sum_{k on h, j} tp_k n[p,k,j] - G_h y[p,h] <= 0 for every pool p and hardware h
    (exact for TP degrees dividing the server's GPU count; see ``formulations/pool.md``)."""
    hp = net.hw_pools
    pos = {key: i for i, key in enumerate(hp.itertuples(index=False, name=None))}
    pc = net.pieces
    rows_n = np.array([pos[key] for key in zip(pc["pool"], pc["hardware"])], dtype=np.int64)
    g = np.array([net.hardware[h].gpus_per_server for h in hp["hardware"]], dtype=float)
    rows = np.r_[rows_n, np.arange(len(hp))]
    vals = np.r_[pc["tp"].to_numpy().astype(float), -g]
    return m.add_constraints("packing", y.labels, rows, np.r_[n.cols, y.cols], vals, hi=0.0)


def define_inventory_constraints(m: LinearModel, net: Network, var, inventory: dict[str, int], by: str):
    """(inventory) sum_p y[p,h] <= S_h (or sum_{p,k on h} s[p,k] <= S_h for recipes)."""
    hws = sorted(inventory)
    pos = {h: i for i, h in enumerate(hws)}
    src = net.hw_pools if by == "y" else net.pieces
    keep = src["hardware"].isin(hws).to_numpy()
    rows = src["hardware"][keep].map(pos).to_numpy()
    cols = var.cols[keep]
    return m.add_constraints("inventory", hws, rows, cols, np.ones(len(cols)),
                             hi=np.array([inventory[h] for h in hws], dtype=float))


@dataclass(frozen=True)
class NetArrays:
    """The sets of a :class:`Network` as flat numpy arrays with their model columns.

    Built once per model and reused to read solutions without pandas on the hot path. ``pc_*``
    arrays run over (configuration, piece) pairs.
    """

    pc_k: np.ndarray
    pc_pool: np.ndarray
    pc_hw: np.ndarray
    pc_tp: np.ndarray
    pc_freq: np.ndarray
    pc_gid: np.ndarray
    pc_mult: np.ndarray  # instances per count unit: 1, or instances per server for recipes
    n_cols: np.ndarray
    w_cols: np.ndarray
    arc_k: np.ndarray
    arc_class: np.ndarray
    arc_lmax: np.ndarray
    arc_gid: np.ndarray
    z_cols: np.ndarray
    hp_pool: np.ndarray
    hp_hw: np.ndarray
    y_cols: np.ndarray | None
    demand_classes: tuple[str, ...]
    u_cols: np.ndarray | None


def net_arrays(net: Network, blocks: dict, recipe: bool = False) -> NetArrays:
    pc, cfg, arcs, hp = net.pieces, net.configs, net.arcs, net.hw_pools
    k = pc["k"].to_numpy(dtype=np.int64)
    tp = pc["tp"].to_numpy(dtype=np.int64)
    g = np.array([net.hardware[h].gpus_per_server for h in pc["hardware"]], dtype=np.int64)
    return NetArrays(
        pc_k=k, pc_pool=pc["pool"].to_numpy(dtype=object), pc_hw=pc["hardware"].to_numpy(dtype=object),
        pc_tp=tp, pc_freq=pc["freq_mhz"].to_numpy(dtype=np.int64),
        pc_gid=cfg["group_id"].to_numpy(dtype=np.int64)[k],
        pc_mult=(g // tp) if recipe else np.ones(len(pc), dtype=np.int64),
        n_cols=(blocks["s"] if recipe else blocks["n"]).cols, w_cols=blocks["w"].cols,
        arc_k=arcs["k"].to_numpy(dtype=np.int64), arc_class=arcs["request_class"].to_numpy(dtype=object),
        arc_lmax=arcs["max_load_rps"].to_numpy(dtype=float), arc_gid=arcs["group_id"].to_numpy(dtype=np.int64),
        z_cols=blocks["z"].cols,
        hp_pool=hp["pool"].to_numpy(dtype=object), hp_hw=hp["hardware"].to_numpy(dtype=object),
        y_cols=blocks["y"].cols if blocks.get("y") is not None else None,
        demand_classes=tuple(net.demand_rps.index),
        u_cols=blocks["u"].cols if blocks.get("u") is not None else None,
    )


def build_pool_network_model(name: str, net: Network, server_ub: np.ndarray, inventory: dict[str, int] | None,
                             unserved_penalty: float | None, server_lb: np.ndarray | float = 0.0,
                             linking: bool = False) -> tuple[LinearModel, dict]:
    """The pool equations (pool.md 1-4) for every pool of ``net``; with ``inventory``, the
    monolithic coupling (inventory) as well; with ``unserved_penalty``, the unserved load ``u``;
    with ``linking``, the (linking) rows (:func:`define_linking_constraints`; monolithic.md).
    ``server_lb`` = ``server_ub`` fixes the servers. The blocks are cost-free: the caller adds
    any further blocks, then calls ``define_objective``."""
    m = LinearModel(name)
    n = define_instance_variables(m, net)
    w = define_utilisation_variables(m, net)
    z = define_load_variables(m, net)
    y = define_server_variables(m, net, server_ub, server_lb)
    u = define_unserved_variables(m, net) if unserved_penalty else None
    define_demand_constraints(m, net, z, u)
    define_utilisation_constraints(m, net, z, w)
    define_capacity_constraints(m, net, n, w)
    define_packing_constraints(m, net, n, y)
    if inventory is not None:
        define_inventory_constraints(m, net, y, inventory, by="y")
    blocks = {"n": n, "w": w, "z": z, "y": y, "u": u}
    if linking:
        blocks["linking"] = define_linking_constraints(m, net, n, z)
    return m, blocks


@dataclass(frozen=True)
class TransitionPrices:
    """Amortised prices of changes (W per unit, over the amortisation epoch).

    ``reclock_w[(hardware, tp)]`` per instance re-clocked; ``reshard_w_per_gpu[hardware]`` per GPU
    whose instance is re-sharded in place; ``start_w_per_gpu[hardware]`` per GPU of a newly started
    instance (boot, weights, engine); ``server_start_w[hardware]`` per server added to the cluster.
    """

    reclock_w: dict
    reshard_w_per_gpu: dict
    start_w_per_gpu: dict
    server_start_w: dict


def transition_prices(costs: TransitionCosts, model: str, hardware: Mapping[str, HardwareType],
                      pool_epoch_s: float, cluster_epoch_s: float) -> TransitionPrices:
    """The :class:`TransitionPrices` of ``costs`` (:func:`dynaplan.domain.transitions.amortised_cost`):
    re-clocks, re-shards (per GPU, to half the server's TP) and instance starts (per GPU) spread over
    ``pool_epoch_s``; whole-server starts over ``cluster_epoch_s`` (s)."""
    reclock, reshard, start, server = {}, {}, {}, {}
    for name, hw in hardware.items():
        g = hw.gpus_per_server
        for tp in hw.tp_degrees():
            reclock[(name, tp)] = amortised_cost(costs, "reclock", model, hw, tp, pool_epoch_s).power_w
        reshard[name] = amortised_cost(costs, "reshard", model, hw, g, pool_epoch_s, to_tp=max(1, g // 2)).power_w / g
        start[name] = amortised_cost(costs, "add", model, hw, g, pool_epoch_s).power_w / g
        server[name] = amortised_cost(costs, "add", model, hw, g, cluster_epoch_s).power_w
    return TransitionPrices(reclock, reshard, start, server)


def define_transition_terms(m: LinearModel, net: Network, n) -> dict:
    """Charge for moving from the current instances ``C_k`` to the planned ones (pool.md, 6-10).

    (transition)  sum_j n[k,j] - a[k] + r[k] = C_k           a, r >= 0: instances added / removed at k
    (reclock_in)  q[t] - sum_{k in t} a[k] <= 0               q: instances that only change clock
    (reclock_out) q[t] - sum_{k in t} r[k] <= E_t             (E_t: instances of t on pruned clocks)
    (reshard)     g[p,h] - sum_t tp_t (sum_{k in t} r[k] - q[t]) <= sum_t tp_t E_t + F_h
    (start)       v[p,h] + g[p,h] - sum_t tp_t (sum_{k in t} a[k] - q[t]) >= 0
    with t = (pool, hardware, TP); g: GPUs re-sharded in place; v: GPUs of newly started
    instances; E_t: instances of t now at a clock the model lacks; F_h: GPUs of instances now at a
    (hardware, TP) the model lacks. Priced by ``define_objective`` (:class:`TransitionPrices`):
    q x reclock, g x reshard per GPU, v x start per GPU. ``C_k``, ``E_t`` and the reshard
    right-hand side are set per call (:func:`transition_rows`).
    """
    cfg = net.configs
    k_labels = list(cfg[CFG_COLS].itertuples(index=False, name=None))
    nk = len(cfg)
    a = m.add_vars("added", k_labels)
    r = m.add_vars("removed", k_labels)
    pc = net.pieces
    rows = np.r_[pc["k"].to_numpy(), np.arange(nk), np.arange(nk)]
    cols = np.r_[n.cols, a.cols, r.cols]
    vals = np.r_[np.ones(len(pc)), -np.ones(nk), np.ones(nk)]
    m.add_constraints("transition", k_labels, rows, cols, vals, lo=0.0, hi=0.0)

    t_keys = list(dict.fromkeys(zip(cfg["pool"], cfg["hardware"], cfg["tp"])))
    t_pos = {t: i for i, t in enumerate(t_keys)}
    t_of_k = np.array([t_pos[t] for t in zip(cfg["pool"], cfg["hardware"], cfg["tp"])], dtype=np.int64)
    q = m.add_vars("reclocked", t_keys)
    nt = len(t_keys)
    m.add_constraints("reclock_in", t_keys, np.r_[np.arange(nt), t_of_k], np.r_[q.cols, a.cols],
                      np.r_[np.ones(nt), -np.ones(nk)], hi=0.0)
    m.add_constraints("reclock_out", t_keys, np.r_[np.arange(nt), t_of_k], np.r_[q.cols, r.cols],
                      np.r_[np.ones(nt), -np.ones(nk)], hi=0.0)

    ph_keys = list(net.hw_pools.itertuples(index=False, name=None))
    ph_pos = {key: i for i, key in enumerate(ph_keys)}
    ph_of_k = np.array([ph_pos[key] for key in zip(cfg["pool"], cfg["hardware"])], dtype=np.int64)
    ph_of_t = np.array([ph_pos[(p, h)] for p, h, _ in t_keys], dtype=np.int64)
    tp_k = cfg["tp"].to_numpy(dtype=float)
    tp_t = np.array([tp for _, _, tp in t_keys], dtype=float)
    g = m.add_vars("resharded_gpus", ph_keys)
    v = m.add_vars("started_gpus", ph_keys)
    nph = len(ph_keys)
    m.add_constraints("reshard", ph_keys, np.r_[np.arange(nph), ph_of_k, ph_of_t], np.r_[g.cols, r.cols, q.cols],
                      np.r_[np.ones(nph), -tp_k, tp_t], hi=0.0)
    m.add_constraints("start", ph_keys, np.r_[np.arange(nph), np.arange(nph), ph_of_k, ph_of_t],
                      np.r_[v.cols, g.cols, a.cols, q.cols], np.r_[np.ones(nph), np.ones(nph), -tp_k, tp_t], lo=0.0)
    return {"added": a, "removed": r, "reclocked": q, "resharded_gpus": g, "started_gpus": v,
            "t_keys": t_keys, "ph_keys": ph_keys}


def transition_rows(net: Network, terms: dict, current: Mapping[tuple[str, int, int], int]) -> dict:
    """Right-hand sides of :func:`define_transition_terms`' rows for the current instances.

    ``current``: the pool's instances now, count by (hardware, tp, freq_mhz); ``terms``: what
    :func:`define_transition_terms` returned. Returns ``{block: (lo, hi)}`` for (transition)
    ``C_k``, (reclock_out) ``E_t`` and (reshard) the GPUs freed: instances on configurations the
    model lacks (pruned clocks or TP degrees) are removed for sure and free their GPUs for
    re-sharding. ``None`` keeps a side as built.
    """
    cfg = net.configs
    have = {(h, int(tp), int(f)): k for k, (h, tp, f) in enumerate(zip(cfg["hardware"], cfg["tp"], cfg["freq_mhz"]))}
    c_k = np.zeros(len(cfg))
    t_keys, ph_keys = terms["t_keys"], terms["ph_keys"]
    e_t = np.zeros(len(t_keys))
    free_gpus = np.zeros(len(ph_keys))
    t_pos = {(h, tp): i for i, (_, h, tp) in enumerate(t_keys)}
    ph_pos = {h: i for i, (_, h) in enumerate(ph_keys)}
    for (h, tp, f), cnt in current.items():
        if (h, tp, f) in have:
            c_k[have[(h, tp, f)]] += cnt
        elif (h, tp) in t_pos:
            e_t[t_pos[(h, tp)]] += cnt
            free_gpus[ph_pos[h]] += tp * cnt
        elif h in ph_pos:
            free_gpus[ph_pos[h]] += tp * cnt
    return {"transition": (c_k, c_k), "reclock_out": (None, e_t), "reshard": (None, free_gpus)}
