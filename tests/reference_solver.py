"""An independent exact solver of single-class pools, built from ``Profile.table`` alone.

It shares no code with ``dynaplan.planning`` or ``dynaplan.formulations``: it reads the raw
table (load points, power, P99 latencies, throughput), the hardware's GPUs per server and idle
power, and the class's SLO, and solves the pool's own problem:

    min  sum_i P_i(l_i) + e (G S - sum_i tp_i)
    s.t. sum_i l_i >= L,  0 <= l_i <= lmax_i,  sum_i tp_i <= G S

over any multiset of instances ``i`` (each a (TP, clock) of the class), where ``P_i`` is the
profile's linear interpolation over its load points, held at its first value below the lightest
one, and ``lmax_i`` the last load point of the group's prefix that meets both P99 SLOs
unsaturated.

Method. For a fixed multiset and fixed linear segment of every instance the loads are an LP with
one coupling row, so an optimal vertex has every instance but at most one at a segment end,
i.e. at 0 or a profile load point. A dynamic programme over GPU units (the GCD of the TPs)
keeps, for every budget, the Pareto set of (load carried, capped at L; net power above idle)
over multisets of instances at load points; the one remaining instance takes the rest of the
load at the least net power of any load >= the rest (over-serving is allowed), a non-decreasing
function of the rest, so Pareto pruning loses nothing.
"""

from __future__ import annotations

from functools import reduce
from math import gcd

import numpy as np
import pandas as pd


def class_curves(table: pd.DataFrame, model: str, hardware: str, request_class: str, ttft_ms: float,
                 tbt_ms: float) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(tp, freq_mhz, loads up to lmax, power there) of every SLO-feasible group of the class."""
    t = table[(table["model"] == model) & (table["hardware"] == hardware) & (table["request_class"] == request_class)]
    out = []
    for (tp, f), g in t.groupby(["tp", "freq_mhz"]):
        g = g.sort_values("load_rps")
        ok = ((g["ttft_p99_ms"] <= ttft_ms) & (g["tbt_p99_ms"] <= tbt_ms)
              & (g["throughput_rps"] >= g["load_rps"] * (1 - 1e-6))).to_numpy()
        n_ok = len(ok) if ok.all() else int(np.argmin(ok))
        if n_ok == 0 or g["load_rps"].iloc[n_ok - 1] <= 0:
            continue
        out.append((int(tp), int(f), g["load_rps"].to_numpy()[:n_ok], g["power_w"].to_numpy()[:n_ok]))
    return out


def _pareto(load: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points not dominated by another with at least the load and at most the cost."""
    order = np.lexsort((cost, -load))  # load descending, then cost ascending
    load, cost = load[order], cost[order]
    best = np.minimum.accumulate(cost)
    keep = np.r_[True, cost[1:] < best[:-1] - 1e-12]
    return load[keep], cost[keep]


def pool_optimum_w(table: pd.DataFrame, model: str, hardware: str, gpus_per_server: int, idle_power_w: float,
                   request_class: str, ttft_ms: float, tbt_ms: float, load_rps: float, servers: int) -> float:
    """Least power (W) of a pool of ``servers`` servers serving ``load_rps`` of one class; inf if
    no mix of instances carries it."""
    curves = class_curves(table, model, hardware, request_class, ttft_ms, tbt_ms)
    total_idle = idle_power_w * gpus_per_server * servers
    if load_rps <= 0:
        return total_idle
    if not curves:
        return np.inf
    unit = reduce(gcd, [c[0] for c in curves])
    budget = gpus_per_server * servers // unit
    items_u, items_l, items_c = [], [], []
    for tp, _, loads, pw in curves:
        pts = np.r_[0.0, loads]
        items_u.append(np.full(len(pts), tp // unit))
        items_l.append(np.minimum(pts, load_rps))
        items_c.append(np.interp(pts, loads, pw) - idle_power_w * tp)
    iu, il, ic = np.concatenate(items_u), np.concatenate(items_l), np.concatenate(items_c)
    front = [(np.array([0.0]), np.array([0.0]))]
    for g in range(1, budget + 1):
        cand_l, cand_c = [front[g - 1][0]], [front[g - 1][1]]
        for u in np.unique(iu):
            if u > g:
                continue
            fl, fc = front[g - u]
            sel = iu == u
            cand_l.append(np.minimum((fl[:, None] + il[sel][None, :]).ravel(), load_rps))
            cand_c.append((fc[:, None] + ic[sel][None, :]).ravel())
        front.append(_pareto(np.concatenate(cand_l), np.concatenate(cand_c)))
    fl, fc = front[budget]
    best = float(np.min(np.where(fl >= load_rps * (1 - 1e-12), fc, np.inf)))
    for tp, _, loads, pw in curves:  # one instance takes the rest of the load
        if tp // unit > budget:
            continue
        fl, fc = front[budget - tp // unit]
        rest = load_rps - fl
        ok = (rest > 0) & (rest <= loads[-1] * (1 + 1e-12))
        if not ok.any():
            continue
        net = pw - idle_power_w * tp
        suffix = np.minimum.accumulate(net[::-1])[::-1]  # least net power at load point >= index
        r = rest[ok]
        pos = np.searchsorted(loads, r, side="left")  # first load point >= r
        at_r = np.interp(r, loads, pw) - idle_power_w * tp
        nxt = np.where(pos < len(loads), suffix[np.minimum(pos, len(loads) - 1)], np.inf)
        best = min(best, float(np.min(fc[ok] + np.minimum(at_r, nxt))))
    return best + total_idle if np.isfinite(best) else np.inf
