"""Exact optimum of a single-class pool on one hardware type, by dynamic programming over GPUs.

The maths and the proof of exactness are in formulations/pool.md, "Exact dynamic programme"
(DP1-DP5); the comments below cite those steps. In short: the pool's pieces (the profile's own
interpolation, after the exact pruning) are lines on load intervals; an optimum has every
instance but at most one at an end of its piece (DP1); per TP degree only the Pareto-minimal
(load, net power) piece ends matter (DP2); a DP over GPU budgets keeps, per budget, the Pareto
front of (load carried, net power) over multisets of such instances (DP3), built once per
(pool, hardware) and extended as larger pools ask for it, since it does not depend on the load;
a query combines a front with at most one more instance at any load of its piece (DP4).
:func:`mix_envelope` makes the pieces of DP6, the same DP as a lower bound on a pool that serves
spilled classes.

Sizes are checked up front (DP5): a pool of more than :data:`MAX_GPUS` GPUs is not attempted;
a budget step that would form more than :data:`MAX_STEP_CANDIDATES` candidate points, or a front
store beyond :data:`MAX_FRONT_POINTS`, stops the extension. The caller then solves that pool by
the MILP instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from math import gcd

import numpy as np

# DP5: size bounds. Every stored front point is two float64 and two int32 (24 bytes), so the
# store is at most ~2.4 MB; one step's candidates (same layout, transient) at most ~24 MB. The
# fronts grow about quadratically with the budget: on the default profile (H100) building them
# to 64 GPUs takes up to ~0.2 s once per (pool, hardware), to 128 GPUs over 1 s.
MAX_GPUS = 64
MAX_FRONT_POINTS = 100_000
MAX_STEP_CANDIDATES = 1_000_000
# relative tolerance on loads: a sum within it of the demand meets the demand, a load within it
# of a piece's end is at that end
LOAD_RTOL = 1e-12


def _pareto(load: np.ndarray, cost: np.ndarray, *payload: np.ndarray) -> tuple[np.ndarray, ...]:
    """The points no other point dominates (at least the load at no more cost), load ascending
    (then cost ascending, strictly); ``payload`` arrays are filtered alike."""
    order = np.lexsort((cost, -load))  # load descending, then cost ascending
    c = cost[order]
    best = np.minimum.accumulate(c)
    keep = np.r_[True, c[1:] < best[:-1]] if c.size else np.zeros(0, bool)
    idx = order[keep][::-1]
    return (load[idx], cost[idx]) + tuple(p[idx] for p in payload)


@dataclass(frozen=True)
class DPSolution:
    """The optimum of one query: ``value_w`` the pool's power (instances plus every idle GPU of
    its servers, W), and the instances as (piece index, load in req/s), one entry per instance."""

    value_w: float
    pieces: np.ndarray
    loads_rps: np.ndarray


class PoolDP:
    """The DP of one (pool, hardware type): built from the pool's pieces on that hardware.

    ``tp``, ``lo_rps``, ``hi_rps``, ``a_w``, ``b_w_per_rps``: per piece, its TP degree, load range
    and line (an instance of the piece at load ``l`` in ``[lo, hi]`` draws ``a + b l`` W);
    ``gpus_per_server`` and ``idle_w`` (one idle GPU) of the hardware.
    """

    def __init__(self, tp, lo_rps, hi_rps, a_w, b_w_per_rps, gpus_per_server: int, idle_w: float) -> None:
        self.tp = np.asarray(tp, dtype=np.int64)
        self.lo = np.asarray(lo_rps, dtype=float)
        self.hi = np.asarray(hi_rps, dtype=float)
        self.a = np.asarray(a_w, dtype=float)
        self.b = np.asarray(b_w_per_rps, dtype=float)
        self.gpus_per_server = int(gpus_per_server)
        self.idle_w = float(idle_w)
        tps = sorted({int(t) for t in self.tp})
        self.unit = reduce(gcd, tps) if tps else 1  # GPU unit: divides every TP and the server
        net_a = self.a - self.idle_w * self.tp  # an instance's power less its GPUs' idle draw (DP1)
        self.net_a = net_a
        # DP2: per TP degree, the Pareto-minimal piece ends (load, net power), with their piece
        self.items: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # (units, load, cost, piece)
        self.last: list[tuple[int, np.ndarray]] = []  # (units, pieces of that TP) for the free instance
        for t in tps:
            sel = np.flatnonzero(self.tp == t)
            ends_l = np.r_[self.lo[sel], self.hi[sel]]
            ends_c = np.r_[net_a[sel] + self.b[sel] * self.lo[sel], net_a[sel] + self.b[sel] * self.hi[sel]]
            load, cost, piece = _pareto(ends_l, ends_c, np.r_[sel, sel])
            self.items.append((t // self.unit, load, cost, piece))
            self.last.append((t // self.unit, sel))
        # DP3: fronts by budget (units); front[0] is the empty pool
        self.f_load = [np.zeros(1)]
        self.f_cost = [np.zeros(1)]
        self.f_par = [np.full(1, -1, dtype=np.int32)]
        self.f_item = [np.full(1, -1, dtype=np.int32)]  # -1: inherited from budget - 1 (or the root)
        self.item_units = np.concatenate([np.full(len(it[1]), it[0], dtype=np.int64) for it in self.items]) \
            if self.items else np.zeros(0, np.int64)
        self.item_load = np.concatenate([it[1] for it in self.items]) if self.items else np.zeros(0)
        self.item_piece = np.concatenate([it[3] for it in self.items]) if self.items else np.zeros(0, np.int64)
        self._item_start = np.cumsum([0] + [len(it[1]) for it in self.items])
        self.stored = 1
        self.limit: int | None = None  # the largest budget the size checks allow, once one failed

    def units_of(self, servers: int) -> int:
        return self.gpus_per_server * int(servers) // self.unit

    def extend(self, units: int) -> bool:
        """Fronts up to ``units``; False when the size checks (DP5) stop short of it."""
        while len(self.f_load) <= units:
            b = len(self.f_load)
            if self.limit is not None and b > self.limit:
                return False
            n_cand = len(self.f_load[b - 1]) + sum(len(self.f_load[b - u]) * len(it[1])
                                                   for u, *it in self.items if u <= b)
            if n_cand > MAX_STEP_CANDIDATES:  # checked before the step's arrays are formed
                self.limit = b - 1
                return False
            loads, costs, pars, items = [self.f_load[b - 1]], [self.f_cost[b - 1]], \
                [np.arange(len(self.f_load[b - 1]), dtype=np.int32)], [np.full(len(self.f_load[b - 1]), -1, np.int32)]
            for i, (u, il, ic, _) in enumerate(self.items):
                if u > b:
                    continue
                fl, fc = self.f_load[b - u], self.f_cost[b - u]
                loads.append((fl[:, None] + il[None, :]).ravel())
                costs.append((fc[:, None] + ic[None, :]).ravel())
                pars.append(np.repeat(np.arange(len(fl), dtype=np.int32), len(il)))
                items.append(np.tile(np.arange(self._item_start[i], self._item_start[i + 1], dtype=np.int32), len(fl)))
            load, cost, par, item = _pareto(np.concatenate(loads), np.concatenate(costs), np.concatenate(pars),
                                            np.concatenate(items))
            if self.stored + len(load) > MAX_FRONT_POINTS:
                self.limit = b - 1
                return False
            self.f_load.append(load)
            self.f_cost.append(cost)
            self.f_par.append(par)
            self.f_item.append(item)
            self.stored += len(load)
        return True

    def solve(self, load_rps: float, servers: int) -> DPSolution | None:
        """The optimum for ``load_rps`` on ``servers`` servers (DP4); None when the pool is larger
        than the size checks allow (DP5) or no mix of instances carries the load."""
        if self.gpus_per_server * int(servers) > MAX_GPUS:
            return None
        budget = self.units_of(servers)
        if not self.extend(budget):
            return None
        L = float(load_rps)
        need = L * (1 - LOAD_RTOL)
        best, choice = np.inf, None
        fl, fc = self.f_load[budget], self.f_cost[budget]
        i = int(np.searchsorted(fl, need, side="left"))  # fronts: load and cost ascending
        if i < len(fl):
            best, choice = float(fc[i]), (budget, i, -1, 0.0)
        for u, sel in self.last:  # DP4: one more instance takes the rest at any load of its piece
            if u > budget or sel.size == 0:
                continue
            fl, fc = self.f_load[budget - u], self.f_cost[budget - u]
            m = int(np.searchsorted(fl, need, side="left"))  # points short of the demand
            if m == 0:
                continue
            rest = L - fl[:m]
            lo, hi, a, b = self.lo[sel], self.hi[sel], self.net_a[sel], self.b[sel]
            x = np.minimum(np.maximum(rest[:, None], lo[None, :]), hi[None, :])
            at_x, at_hi = a + b * x, a + b * hi[None, :]
            val = np.minimum(at_x, at_hi)
            val = np.where(rest[:, None] <= hi[None, :] * (1 + LOAD_RTOL), val, np.inf) + fc[:m, None]
            j = int(np.argmin(val))
            if val.flat[j] < best:
                r, p = divmod(j, len(sel))
                best = float(val.flat[j])
                load = float(x[r, p]) if at_x[r, p] <= at_hi[0, p] else float(hi[p])
                choice = (budget - u, r, int(sel[p]), load)
        if choice is None:
            return None
        b, idx, last_piece, last_load = choice
        pieces, loads = self.front_instances(b, idx)
        if last_piece >= 0:
            pieces, loads = np.r_[last_piece, pieces], np.r_[last_load, loads]
        value = best + self.idle_w * self.gpus_per_server * int(servers)
        return DPSolution(value_w=value, pieces=np.asarray(pieces, dtype=np.int64),
                          loads_rps=np.asarray(loads, dtype=float))

    def front_instances(self, budget: int, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """The instances (piece, load in req/s) of point ``idx`` of the front of ``budget``
        units (DP3's back pointers; fronts extended that far already)."""
        pieces, loads = [], []
        b = int(budget)
        while b > 0:
            it = int(self.f_item[b][idx])
            idx = int(self.f_par[b][idx])
            if it < 0:
                b -= 1
                continue
            pieces.append(int(self.item_piece[it]))
            loads.append(float(self.item_load[it]))
            b -= int(self.item_units[it])
        return np.asarray(pieces, dtype=np.int64), np.asarray(loads, dtype=float)


def mix_envelope(curves: list[tuple[np.ndarray, np.ndarray]], own_lmax_rps: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pieces of the lower envelope of one configuration's class curves (pool.md, DP6).

    ``curves``: per class the configuration may serve, its load points as utilisation
    (``load / lmax_c``) and the power there (held at the first value below the lightest point).
    Returns ``(lo, hi, a, b)`` per piece in the pool class's load units (``l = U own_lmax``):
    ``min_c Q_c(U)`` is exactly ``a + b l`` on ``[lo, hi]``.
    """
    pts = np.unique(np.clip(np.concatenate([[0.0, 1.0]] + [u for u, _ in curves]), 0.0, 1.0))
    vals = np.array([np.interp(pts, u, p) for u, p in curves])  # classes x points
    # each curve is linear between consecutive points; add every pairwise crossing inside them
    extra = []
    for i in range(len(curves)):
        for j in range(i + 1, len(curves)):
            d = vals[i] - vals[j]
            cross = np.flatnonzero(d[:-1] * d[1:] < 0)
            t = d[cross] / (d[cross] - d[cross + 1])
            extra.append(pts[cross] + t * (pts[cross + 1] - pts[cross]))
    if extra:
        pts = np.unique(np.concatenate([pts] + extra))
    env = np.min([np.interp(pts, u, p) for u, p in curves], axis=0)
    lo, hi = pts[:-1] * own_lmax_rps, pts[1:] * own_lmax_rps
    keep = hi > lo
    lo, hi, e0, e1 = lo[keep], hi[keep], env[:-1][keep], env[1:][keep]
    b = (e1 - e0) / (hi - lo)
    return lo, hi, e0 - b * lo, b


def mix_bound_dp(profile, max_load, pool: str, classes: tuple[str, ...], hardware: str, hw
                 ) -> tuple[PoolDP | None, dict[str, float]]:
    """DP6's problem for pool ``pool`` serving ``classes`` on ``hardware`` (``hw``): the DP over
    the lower envelope (:func:`mix_envelope`) of the classes' curves, the pool's own always
    among them, of every configuration meeting the pool's SLO (``max_load``: the profile's max
    loads under the SLOs, unpruned), and per class ``c`` its ratio ``r_c = min_k lmax_{k,p} /
    lmax_{k,c}`` (the demand in pool-class equivalents is ``sum_c r_c L_c``). None when some
    class has no configuration."""
    ml = max_load[(max_load["hardware"] == hardware) & (max_load["max_load_rps"] > 0)]
    lm = ml.set_index(["tp", "freq_mhz", "request_class"])
    starts, ends = profile.group_bounds
    pts = profile.table["load_rps"].to_numpy(dtype=float)
    pw = profile.table["power_w"].to_numpy(dtype=float)
    ratio = {c: np.inf for c in classes}
    tps, los, his, a_s, b_s = [], [], [], [], []
    for r in ml[ml["request_class"] == pool].itertuples(index=False):
        own = float(r.max_load_rps)
        curves = []
        # the pool's own class always (an idle instance draws its curve's first value)
        for c in sorted(set(classes) | {pool}):
            if (r.tp, r.freq_mhz, c) not in lm.index:
                continue
            row = lm.loc[(r.tp, r.freq_mhz, c)]
            lmax_c, g = float(row["max_load_rps"]), int(row["group_id"])
            curves.append((pts[starts[g]:ends[g]] / lmax_c, pw[starts[g]:ends[g]]))
            if c in ratio:
                ratio[c] = min(ratio[c], own / lmax_c)
        lo, hi, a, b = mix_envelope(curves, own)
        tps.append(np.full(len(lo), int(r.tp)))
        los.append(lo)
        his.append(hi)
        a_s.append(a)
        b_s.append(b)
    if not tps or not all(np.isfinite(v) for v in ratio.values()):
        return None, ratio
    return PoolDP(np.concatenate(tps), np.concatenate(los), np.concatenate(his), np.concatenate(a_s),
                  np.concatenate(b_s), hw.gpus_per_server, hw.idle_power_w), ratio
