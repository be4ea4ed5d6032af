"""Capacity planning MILP (``formulations/capacity.md``): integer fleet constant over the horizon,
per-period instances and loads, energy per period; no solving here.

Blocks (names are the document's labels): variables ``fleet`` y_h, ``groups`` N_{t,g} (integer
instances per hardware, class and TP), ``instances`` n_{t,p} (continuous: on which piece),
``load`` l_{t,p}, ``energy`` e_t, ``ondemand`` r_{t,h} (integer servers rented per period, types with
an on-demand price only), ``slices`` m_{t,c,h} (sliced only); constraints (cap.demand), (cap.capacity),
(cap.group), (cap.gpus), (cap.available), (cap.class_gpus), (cap.class_cost), (cap.energy), (cap.slices),
(cap.slice_count), (cap.energy_cap), (cap.carbon_cap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynaplan.capacity.problem import CapacityProblem
from dynaplan.solvers.model import INF, LinearModel


@dataclass(frozen=True)
class CapacityIndex:
    """Column positions and the recipe arrays the extraction needs."""

    fleet: slice
    groups: slice
    instances: slice
    load: slice
    energy: slice
    n_periods: int
    n_recipes: int
    n_groups: int
    group_of: np.ndarray     # recipe -> group (hardware, class, TP)
    group_keys: tuple        # group -> (offer index, class index, tp)
    hw_of: np.ndarray        # recipe -> offer index
    class_of: np.ndarray     # recipe -> class index
    tp: np.ndarray
    cap_rps: np.ndarray      # u_hi * max_load_rps
    static_w: np.ndarray
    w_per_rps: np.ndarray
    error_w: np.ndarray
    kwh_per_w: float         # PUE * period_h / 1000
    fleet_usd_per_server: np.ndarray  # price over the horizon, per server
    ondemand: slice                   # r_{t,h}, period-major over the types in rent_hw
    rent_hw: np.ndarray               # offer index of each type rented on demand
    ondemand_usd_per_server: np.ndarray  # on-demand rent of one server for one period, per offer (USD)


def _arrays(p: CapacityProblem):
    hw_idx = {h: i for i, h in enumerate(p.hardware)}
    cl_idx = {c: i for i, c in enumerate(p.classes)}
    r = p.recipes
    hw_of = np.array([hw_idx[x.hardware] for x in r], dtype=np.int64)
    class_of = np.array([cl_idx[x.request_class] for x in r], dtype=np.int64)
    tp = np.array([x.tp for x in r], dtype=float)
    lmax = np.array([x.max_load_rps for x in r], dtype=float)
    cap = lmax * np.array([x.u_hi for x in r], dtype=float)
    a = np.array([x.static_w for x in r], dtype=float)
    b = np.array([x.w_per_util for x in r], dtype=float) / lmax
    err = np.array([x.segment_error_w for x in r], dtype=float)
    return hw_of, class_of, tp, cap, a, b, err


def recipe_groups(p: CapacityProblem) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Group of every recipe: its (hardware, class, TP), the unit whose instance count is integer."""
    keys = [(x.hardware, x.request_class, x.tp) for x in p.recipes]
    uniq = sorted(set(keys), key=keys.index)
    pos = {k: i for i, k in enumerate(uniq)}
    hw_idx = {h: i for i, h in enumerate(p.hardware)}
    cl_idx = {c: i for i, c in enumerate(p.classes)}
    return (np.array([pos[k] for k in keys], dtype=np.int64),
            [(hw_idx[h], cl_idx[c], t) for h, c, t in uniq])


def period_server_bounds(p: CapacityProblem, hw_of, class_of, tp, cap) -> np.ndarray:
    """Servers of each type no optimal plan uses in each period (count, shape (periods, types)):
    enough GPUs to carry the period's whole load with the type's *least* capacity per GPU, plus
    one instance of every recipe for rounding. More servers only add rent and idle power (prices
    and powers are >= 0). Ignores the availability."""
    d = p.demand()
    H, C = len(p.offers), len(p.classes)
    gpus = np.array([o.gpus_per_server for o in p.offers], dtype=float)
    # per (type, class): the most GPUs per req/s of any recipe, and the GPUs of one instance of each
    worst = np.full((H, C), -np.inf)
    np.maximum.at(worst, (hw_of, class_of), tp / cap)
    one_each = np.zeros((H, C))
    np.add.at(one_each, (hw_of, class_of), tp)
    has = np.isfinite(worst)
    need = d @ np.where(has, worst, 0.0).T + (d > 0) @ one_each.T   # (T, H) GPUs
    return np.ceil(need / gpus[None, :] - 1e-9) + 1


def fleet_upper_bounds(p: CapacityProblem, hw_of, class_of, tp, cap) -> np.ndarray:
    """Servers of each type no optimal fleet exceeds (count): the most of
    :func:`period_server_bounds` over the periods, within the availability."""
    out = period_server_bounds(p, hw_of, class_of, tp, cap).max(axis=0, initial=1.0)
    lo = np.array([o.min_servers for o in p.offers], dtype=float)
    hi = np.array([min(o.max_servers, o.available_servers) if o.rents_on_demand else o.max_servers
                   for o in p.offers], dtype=float)
    return np.maximum(lo, np.minimum(hi, out))


def ondemand_upper_bounds(p: CapacityProblem, hw_of, class_of, tp, cap) -> np.ndarray:
    """Servers of each type rented on demand that no optimal plan exceeds in each period (count,
    shape (periods, types); 0 for types without an on-demand price): :func:`period_server_bounds`
    within the availability (cap.available). They do not depend on the fleet's bounds, so a
    fleet fixed by its bounds (decomposition) leaves them unchanged."""
    per = period_server_bounds(p, hw_of, class_of, tp, cap)
    avail = np.array([o.available_servers if o.rents_on_demand else 0 for o in p.offers], dtype=float)
    return np.minimum(per, avail[None, :])


def objective_weights(p: CapacityProblem) -> tuple[float, float, float]:
    """(per USD, per kWh, per kg CO2) weights of the objective."""
    return {"cost": (1.0, 0.0, 0.0), "energy": (0.0, 1.0, 0.0), "carbon": (0.0, 0.0, 1.0),
            "weighted": p.weights}[p.objective]


def energy_objective_per_kwh(p: CapacityProblem) -> np.ndarray:
    """Objective per kWh of facility energy in each period, c_t (objective units per kWh)."""
    w_cost, w_kwh, w_kg = objective_weights(p)
    kg = np.asarray(p.carbon_g_per_kwh, dtype=float) / 1000.0
    el = np.asarray(p.electricity_usd_per_kwh, dtype=float)
    return w_cost * (el + p.carbon_price_usd_per_t * kg / 1000.0) + w_kwh + w_kg * kg


def build_capacity_model(p: CapacityProblem) -> tuple[LinearModel, CapacityIndex]:
    """The MILP of ``formulations/capacity.md`` for problem ``p``."""
    hw_of, class_of, tp, cap, a, b, err = _arrays(p)
    T, P, H, C = p.n_periods, len(p.recipes), len(p.offers), len(p.classes)
    d = p.demand()
    gpus = np.array([o.gpus_per_server for o in p.offers], dtype=float)
    idle_w = np.array([o.idle_power_w for o in p.offers], dtype=float) * (p.idle == "idle")
    kwh_per_w = p.pue * p.period_s / 3.6e6
    price = np.array([o.price_usd_per_server_h for o in p.offers], dtype=float) * p.fleet_h
    el = np.asarray(p.electricity_usd_per_kwh, dtype=float)
    kg_per_kwh = np.asarray(p.carbon_g_per_kwh, dtype=float) / 1000.0
    usd_per_kwh = el + p.carbon_price_usd_per_t * kg_per_kwh / 1000.0
    w_cost, w_kwh, w_kg = objective_weights(p)

    m = LinearModel("capacity")
    y_ub = fleet_upper_bounds(p, hw_of, class_of, tp, cap)
    extra = np.zeros(H) if p.fleet_extra_per_server is None else np.asarray(p.fleet_extra_per_server, dtype=float)
    y = m.add_vars("fleet", p.hardware, lb=[o.min_servers for o in p.offers], ub=y_ub,
                   cost=w_cost * price + extra, integer=True)
    rent_hw = np.array([j for j, o in enumerate(p.offers) if o.rents_on_demand], dtype=np.int64)
    r_ub = ondemand_upper_bounds(p, hw_of, class_of, tp, cap)            # (T, H)
    od_usd = np.array([o.on_demand_usd_per_server_h or 0.0 for o in p.offers]) * p.period_s / 3600.0
    servers_ub = np.maximum(y_ub[None, :], r_ub)  # servers of a type in a period: y + r <= max(y_ub, r_ub)
    dem = d[:, class_of]                                   # (T, P) load of the recipe's class
    n_ub = gpus[hw_of][None, :] * servers_ub[:, hw_of] / tp[None, :]
    wasteful = (a - tp * idle_w[hw_of]) >= 0               # an unloaded instance never saves energy
    need = np.ceil(dem / cap[None, :] - 1e-9)
    n_ub = np.where(wasteful[None, :], np.minimum(n_ub, need), n_ub)
    if not p.shared_instances:
        n_ub = np.floor(n_ub + 1e-9)
    group_of, gkeys = recipe_groups(p)
    G = len(gkeys)
    g_hw = np.array([k[0] for k in gkeys], dtype=np.int64)
    g_tp = np.array([k[2] for k in gkeys], dtype=float)
    g_ub = np.zeros((T, G))
    np.maximum.at(g_ub, (slice(None), group_of), n_ub)
    labels_tg = [(t, g) for t in range(T) for g in range(G)]
    N = m.add_vars("groups", labels_tg, ub=g_ub.ravel(), integer=not p.shared_instances)
    labels_tp = [(t, i) for t in range(T) for i in range(P)]
    n = m.add_vars("instances", labels_tp, ub=n_ub.ravel())
    ld = m.add_vars("load", labels_tp, ub=dem.ravel())
    e = m.add_vars("energy", range(T), lb=-INF, cost=energy_objective_per_kwh(p))
    R = rent_hw.size
    # r_{t,h}: on-demand servers of period t, priced per period (w_$ pi^od_h Delta / 3600 each)
    r = m.add_vars("ondemand", [(t, p.hardware[j]) for t in range(T) for j in rent_hw],
                   ub=r_ub[:, rent_hw].ravel(), cost=np.tile(w_cost * od_usd[rent_hw], T), integer=True)
    rt = np.repeat(np.arange(T), R)          # period of each r column
    rh = np.tile(rent_hw, T)                 # offer of each r column
    r_col = r.start + np.arange(T * R)

    tt = np.repeat(np.arange(T), P)
    pp = np.tile(np.arange(P), T)
    n_col = n.start + tt * P + pp
    l_col = ld.start + tt * P + pp
    # (cap.demand) sum_{p in c} l_{t,p} = d_{t,c}
    m.add_constraints("cap.demand", [(t, c) for t in range(T) for c in p.classes],
                      tt * C + class_of[pp], l_col, np.ones(T * P), lo=d.ravel(), hi=d.ravel())
    # (cap.capacity) l_{t,p} <= cap_p n_{t,p}
    rows_tp = np.arange(T * P)
    m.add_constraints("cap.capacity", labels_tp, np.r_[rows_tp, rows_tp], np.r_[l_col, n_col],
                      np.r_[np.ones(T * P), -cap[pp]], hi=0.0)
    # (cap.group) sum_{p in g} n_{t,p} = N_{t,g}: each instance of group g runs on one piece
    m.add_constraints("cap.group", labels_tg, np.r_[tt * G + group_of[pp], np.arange(T * G)],
                      np.r_[n_col, N.start + np.arange(T * G)], np.r_[np.ones(T * P), -np.ones(T * G)],
                      lo=0.0, hi=0.0)
    # (cap.gpus) sum_g tp_g N_{t,g} <= G_h (y_h + r_{t,h})   (r_{t,h} only for types rented on demand)
    gt = np.repeat(np.arange(T), G)
    gg = np.tile(np.arange(G), T)
    yt = np.repeat(np.arange(T), H) * H + np.tile(np.arange(H), T)
    m.add_constraints("cap.gpus", [(t, h) for t in range(T) for h in p.hardware],
                      np.r_[gt * H + g_hw[gg], yt, rt * H + rh],
                      np.r_[N.start + gt * G + gg, y.start + np.tile(np.arange(H), T), r_col],
                      np.r_[g_tp[gg], -np.tile(gpus, T), -gpus[rh]], hi=0.0)
    if R:
        # (cap.available) y_h + r_{t,h} <= A_h: fleet plus on-demand servers within the availability
        avail = np.array([p.offers[j].available_servers for j in rent_hw], dtype=float)
        rows_r = np.arange(T * R)
        m.add_constraints("cap.available", [(t, p.hardware[j]) for t in range(T) for j in rent_hw],
                          np.r_[rows_r, rows_r], np.r_[y.start + rh, r_col], np.ones(2 * T * R),
                          hi=np.tile(avail, T))
    # (cap.class_gpus) valid inequality: sum_{g in c} tp_g N_{t,g} >= ceil(d_{t,c} min_g tp_g / kappa_g)
    g_cl = np.array([k[1] for k in gkeys], dtype=np.int64)
    g_cap = np.zeros(G)
    np.maximum.at(g_cap, group_of, cap)
    gpr = np.full(C, np.inf)
    np.minimum.at(gpr, g_cl, g_tp / g_cap)
    need_gpus = d * np.where(np.isfinite(gpr), gpr, 0.0)[None, :]
    if not p.shared_instances:  # whole instances of whole GPUs; shared GPUs (Mélange) are not rounded
        need_gpus = np.ceil(need_gpus - 1e-7)
    m.add_constraints("cap.class_gpus", [(t, c) for t in range(T) for c in p.classes],
                      gt * C + g_cl[gg], N.start + gt * G + gg, g_tp[gg], lo=need_gpus.ravel())
    if w_cost > 0 and not p.shared_instances and price.max(initial=0.0) > 0:
        # (cap.class_cost) valid inequality: the fleet cost of class c's GPUs is at least the least
        # cost of whole instances carrying d_{t,c}, K_{t,c} (a small covering knapsack per (t, c))
        usd_gpu = (price / gpus)[g_hw] * g_tp                    # fleet cost of one instance of g
        keep = [(t, c) for t in range(T) for c in range(C) if d[t, c] > 0]
        K = np.array([class_cost_bound(d[t, c], g_cap[g_cl == c], usd_gpu[g_cl == c]) for t, c in keep])
        sel = [np.flatnonzero(g_cl == c) for _, c in keep]
        m.add_constraints("cap.class_cost", [(t, p.classes[c]) for t, c in keep],
                          np.concatenate([np.full(len(s_), k) for k, s_ in enumerate(sel)] or [np.zeros(0)]),
                          np.concatenate([N.start + t * G + s_ for (t, _), s_ in zip(keep, sel)] or [np.zeros(0)]),
                          np.concatenate([usd_gpu[s_] for s_ in sel] or [np.zeros(0)]), lo=K)
    # (cap.energy) e_t = k [ sum_p (A_p - tp_p w^idle_h) n + B_p l + sum_h w^idle_h G_h (y_h + r_{t,h}) ]
    m.add_constraints("cap.energy", range(T),
                      np.r_[np.arange(T), tt, tt, np.repeat(np.arange(T), H), rt],
                      np.r_[e.start + np.arange(T), n_col, l_col, y.start + np.tile(np.arange(H), T), r_col],
                      np.r_[np.ones(T), -kwh_per_w * (a - tp * idle_w[hw_of])[pp], -kwh_per_w * b[pp],
                            -kwh_per_w * np.tile(idle_w * gpus, T), -kwh_per_w * (idle_w * gpus)[rh]],
                      lo=0.0, hi=0.0)
    if p.assignment == "sliced":
        _slices(m, p, d, hw_of, class_of, l_col, tt, pp)
    if p.energy_cap_kwh is not None:
        # (cap.energy_cap) sum_t e_t <= E^max
        m.add_constraints("cap.energy_cap", ["energy"], np.zeros(T), e.start + np.arange(T), np.ones(T),
                          hi=p.energy_cap_kwh)
    if p.carbon_cap_kg is not None:
        # (cap.carbon_cap) sum_t kappa_t e_t <= K^max
        m.add_constraints("cap.carbon_cap", ["carbon"], np.zeros(T), e.start + np.arange(T), kg_per_kwh,
                          hi=p.carbon_cap_kg)
    idx = CapacityIndex(fleet=slice(y.start, y.stop), groups=slice(N.start, N.stop), instances=slice(n.start, n.stop), load=slice(ld.start, ld.stop),
                        energy=slice(e.start, e.stop), n_periods=T, n_recipes=P, n_groups=G,
                        group_of=group_of, group_keys=tuple(gkeys), hw_of=hw_of, class_of=class_of,
                        tp=tp, cap_rps=cap, static_w=a, w_per_rps=b, error_w=err, kwh_per_w=kwh_per_w,
                        fleet_usd_per_server=price, ondemand=slice(r.start, r.stop), rent_hw=rent_hw,
                        ondemand_usd_per_server=od_usd)
    return m, idx


def _slices(m: LinearModel, p: CapacityProblem, d, hw_of, class_of, l_col, tt, pp) -> None:
    """Mélange's assignment: each of S equal slices of (t, c) on one type; identical slices make
    the binaries x_{s,h} an integer count m_{t,c,h} = sum_s x_{s,h} in 0..S."""
    T, C, H, S = p.n_periods, len(p.classes), len(p.offers), p.slice_factor
    pairs = sorted({(int(c), int(h)) for c, h in zip(class_of, hw_of)})
    pair_idx = {ch: i for i, ch in enumerate(pairs)}
    K = len(pairs)
    labels = [(t, p.classes[c], p.hardware[h]) for t in range(T) for c, h in pairs]
    ub = np.repeat(np.where(d.ravel() > 0, S, 0), 1).reshape(T, C)
    ms = m.add_vars("slices", labels, ub=np.array([ub[t, c] for t in range(T) for c, _ in pairs], dtype=float),
                    integer=True)
    rec_pair = np.array([pair_idx[(int(c), int(h))] for c, h in zip(class_of, hw_of)], dtype=np.int64)
    # (cap.slices) sum_{p in (c,h)} l_{t,p} = d_{t,c} / S * m_{t,c,h}
    k_t = np.repeat(np.arange(T), K)
    k_i = np.tile(np.arange(K), T)
    k_c = np.array([pairs[i][0] for i in range(K)], dtype=np.int64)[k_i]
    m.add_constraints("cap.slices", labels, np.r_[tt * K + rec_pair[pp], k_t * K + k_i],
                      np.r_[l_col, ms.start + k_t * K + k_i], np.r_[np.ones(len(pp)), -d[k_t, k_c] / S],
                      lo=0.0, hi=0.0)
    # (cap.slice_count) sum_h m_{t,c,h} = S for every (t, c) with load
    ctc = [(t, c) for t in range(T) for c in range(C) if d[t, c] > 0 and any(pc == c for pc, _ in pairs)]
    row_of = {tc: i for i, tc in enumerate(ctc)}
    rows, cols = [], []
    for j, (t, i) in enumerate(zip(k_t, k_i)):
        key = (int(t), pairs[i][0])
        if key in row_of:
            rows.append(row_of[key])
            cols.append(ms.start + j)
    m.add_constraints("cap.slice_count", [(t, p.classes[c]) for t, c in ctc], rows, cols, np.ones(len(rows)),
                      lo=float(S), hi=float(S))


def class_cost_bound(demand_rps: float, cap_rps: np.ndarray, cost: np.ndarray) -> float:
    """K of (cap.class_cost): the least ``cost @ N`` over whole ``N >= 0`` with ``cap_rps @ N >=
    demand_rps``, or a lower bound of it (the knapsack's LP bound when its exact search is cut
    short). Exact search: the optimum takes some count of the best-ratio item and covers the rest
    with other items; every candidate count of each item is tried by depth-first search with the
    LP bound as the pruning rule."""
    if demand_rps <= 0 or cap_rps.size == 0:
        return 0.0
    cap_rps = np.asarray(cap_rps, dtype=float)
    cost = np.asarray(cost, dtype=float)
    order = np.argsort(cost / cap_rps)
    cap_rps, cost = cap_rps[order], cost[order]
    ratio = cost / cap_rps
    # suffix minimum of the ratio: the LP bound of covering r with items i.. is r * min ratio[i:]
    best = [np.inf]
    budget = [20_000]

    def search(i: int, r: float, acc: float) -> None:
        if r <= 1e-9 * max(demand_rps, 1.0):
            best[0] = min(best[0], acc)
            return
        if i == cap_rps.size or acc + r * ratio[i] >= best[0] - 1e-12:
            return
        budget[0] -= 1
        if budget[0] < 0:
            return
        top = int(np.ceil(r / cap_rps[i] - 1e-12))
        for n in range(top, -1, -1):
            search(i + 1, r - n * cap_rps[i], acc + n * cost[i])
            if budget[0] < 0:
                return

    search(0, float(demand_rps), 0.0)
    lp = float(demand_rps * ratio[0])
    if budget[0] < 0 or not np.isfinite(best[0]):
        return lp
    return float(max(best[0], lp))


def build_share_model(p: CapacityProblem) -> tuple[LinearModel, dict]:
    """The same MILP for one period of time-shared GPUs with no power model (Mélange configs), with
    the loads eliminated: with one recipe per (class, type) and continuous instance counts, (cap.demand),
    (cap.capacity) and (cap.group) give ``N = d_c m_{c,h} / (S kappa)``, so (cap.gpus) becomes
    ``sum_c d_c m_{c,h} / (S kappa_{c,h}) <= G_h y_h`` and (cap.slice_count) stays. Divisible: m continuous."""
    if p.n_periods != 1 or not p.shared_instances:
        raise ValueError("build_share_model: one period of shared instances only")
    d = p.demand()[0]
    S = p.slice_factor if p.assignment == "sliced" else 1
    hw_idx = {h: i for i, h in enumerate(p.hardware)}
    cl_idx = {c: i for i, c in enumerate(p.classes)}
    pairs = [(cl_idx[r.request_class], hw_idx[r.hardware], r.max_load_rps * r.u_hi, r.tp) for r in p.recipes]
    pairs = [q for q in pairs if d[q[0]] > 0]
    m = LinearModel("capacity-share")
    H = len(p.offers)
    hw_of, class_of, tp, cap, *_ = _arrays(p)
    y_ub = fleet_upper_bounds(p, hw_of, class_of, tp, cap)
    price = np.array([o.price_usd_per_server_h for o in p.offers], dtype=float) * p.fleet_h
    y = m.add_vars("fleet", p.hardware, lb=[o.min_servers for o in p.offers], ub=y_ub, cost=price, integer=True)
    ms = m.add_vars("slices", [(p.classes[c], p.hardware[h]) for c, h, _, _ in pairs], ub=float(S),
                    integer=p.assignment == "sliced")
    k = len(pairs)
    gpus = np.array([o.gpus_per_server for o in p.offers], dtype=float)
    coef = np.array([d[c] / S / kap * t for c, _, kap, t in pairs])
    hrow = np.array([h for _, h, _, _ in pairs], dtype=np.int64)
    # (cap.gpus) with the loads eliminated
    m.add_constraints("cap.gpus", list(p.hardware), np.r_[hrow, np.arange(H)], np.r_[ms.start + np.arange(k), y.start + np.arange(H)],
                      np.r_[coef, -gpus], hi=0.0)
    # (cap.slice_count)
    loaded = [c for c in range(len(p.classes)) if d[c] > 0]
    row = {c: i for i, c in enumerate(loaded)}
    crow = np.array([row[c] for c, _, _, _ in pairs], dtype=np.int64)
    m.add_constraints("cap.slice_count", [p.classes[c] for c in loaded], crow, ms.start + np.arange(k), np.ones(k),
                      lo=float(S), hi=float(S))
    return m, {"pairs": pairs, "fleet": slice(y.start, y.stop), "slices": slice(ms.start, ms.stop), "S": S}
