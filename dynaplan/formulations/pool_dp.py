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
        # the most req/s one GPU carries on any piece (the two-class search's capacity check, pool.md TC5)
        self.most_per_gpu = float(np.max(self.hi / self.tp)) if self.tp.size else 0.0
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
        self._free: list | None = None  # free_costs(), built on first use
        self._formed: list[tuple] = []  # formed(): per budget, the points formed there
        self._formed_flat: dict[int, tuple] = {}  # formed(): by budget, those up to it end to end
        self._flat_cache: tuple | None = None  # _flat(): the fronts end to end

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
        got = self.solve_units(load_rps, self.units_of(servers))
        if got is None:
            return None
        net, pieces, loads = got
        return DPSolution(value_w=net + self.idle_w * self.gpus_per_server * int(servers), pieces=pieces,
                          loads_rps=loads)

    def solve_units(self, load_rps: float, budget: int) -> tuple[float, np.ndarray, np.ndarray] | None:
        """DP4 on at most ``budget`` GPU units: the least net cost (W, idle GPUs' draw not
        included) of a multiset carrying ``load_rps``, and its instances (piece, load); None when
        the fronts cannot be built that far (DP5) or nothing carries the load."""
        budget = int(budget)
        if budget < 0 or not self.extend(budget):
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
        return best, np.asarray(pieces, dtype=np.int64), np.asarray(loads, dtype=float)

    # -------------------------------------------------- batch queries (formulations/pool.md, "Two-class pools")
    def free_costs(self) -> list[tuple[int, "FreeCost"]]:
        """Per TP degree (its units), the least net cost of one instance of that TP carrying a
        load ``r`` at any load of its piece from ``r`` up (DP4's free instance), as a
        :class:`FreeCost`; built once."""
        if self._free is None:
            self._free = [(u, FreeCost(self.lo[sel], self.hi[sel], self.net_a[sel], self.b[sel]))
                          for u, sel in self.last if sel.size]
        return self._free

    def _flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every budget's front laid end to end (budget ascending, each load ascending): the keys
        ``budget + 1j load`` (numpy orders complex numbers by real part, then imaginary: one
        search finds a load within a budget's front), loads, costs, and where each budget's
        front ends. Rebuilt when the fronts grow."""
        if self._flat_cache is None or self._flat_cache[0] != len(self.f_load):
            loads = np.concatenate(self.f_load)
            costs = np.concatenate(self.f_cost)
            sizes = np.array([len(f) for f in self.f_load])
            keys = np.repeat(np.arange(len(sizes), dtype=float), sizes) + 1j * loads
            self._flat_cache = (len(self.f_load), keys, loads, costs, np.cumsum(sizes))
        return self._flat_cache[1:]

    def least_cost(self) -> float:
        """The least net cost of any front point built so far (0 at the empty pool)."""
        return float(self._flat()[2].min())

    def values(self, load_rps: np.ndarray, budget: np.ndarray) -> np.ndarray:
        """DP4's least net cost (W; idle GPUs not included) for every query ``i``: ``load_rps[i]``
        on at most ``budget[i]`` units; ``inf`` where nothing carries the load or the fronts
        cannot be built that far (DP5). The same optimum as :meth:`solve_units`, for many
        queries at once."""
        L = np.asarray(load_rps, dtype=float)
        U = np.asarray(budget, dtype=np.int64)
        out = np.full(L.shape, np.inf)
        if not L.size:
            return out
        out[L <= 0] = 0.0
        todo = np.flatnonzero((L > 0) & (U >= 0))
        if not todo.size or not self.extend(int(U[todo].max())):
            return out
        keys, loads, costs, ends = self._flat()
        Lq, Uq = L[todo], U[todo]
        need = Lq * (1 - LOAD_RTOL)
        i = np.searchsorted(keys, Uq + 1j * need, side="left")  # first point of U's front carrying L
        best = np.where(i < ends[Uq], costs[np.minimum(i, len(costs) - 1)], np.inf)
        for u, fcost in self.free_costs():  # DP4's free instance of TP u on the front of U - u
            q = np.flatnonzero(Uq >= u)
            if not q.size:
                continue
            f = (Uq[q] - u).astype(float)
            start = np.searchsorted(keys, f + 1j * (Lq[q] - fcost.reach * (1 + LOAD_RTOL)), side="left")
            stop = np.searchsorted(keys, f + 1j * need[q], side="left")
            n = np.maximum(stop - start, 0)
            if not n.any():
                continue
            owner = np.repeat(q, n)
            pos = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(start, n)
            np.minimum.at(best, owner, costs[pos] + fcost(Lq[owner] - loads[pos]))
        out[todo] = best
        return out

    def lower_values(self, load_rps: np.ndarray, budget: int) -> np.ndarray:
        """A lower bound on :meth:`values` of every load for every budget up to ``budget`` (fronts
        built that far): a plan either has a point of the front of ``budget`` carrying the load
        (which dominates every smaller budget's) or one carrying all but a free instance's reach,
        plus that instance at no less than the least free cost."""
        L = np.asarray(load_rps, dtype=float)
        fl, fc = self.f_load[budget], self.f_cost[budget]
        def first(x):
            i = np.searchsorted(fl, x * (1 - LOAD_RTOL), side="left")
            return np.where(i < len(fl), fc[np.minimum(i, len(fl) - 1)], np.inf)
        out = first(L)
        for _, fcost in self.free_costs():
            out = np.minimum(out, first(L - fcost.reach * (1 + LOAD_RTOL)) + min(float(fcost.v0.min()), float(fcost.v1.min())))
        return np.where(L <= 0, np.minimum(out, 0.0), out)

    def values_by_budget(self, load_rps: float, budget: int) -> np.ndarray:
        """:meth:`values` of ``load_rps`` for every budget ``0..budget`` at once (index = units),
        from the points each budget formed (:meth:`formed`): a point formed at ``b`` is a plan
        of at most ``b'`` units for every ``b' >= b``, and every front point was formed at some
        budget, so the running minimum over budgets is DP4's value at each."""
        out = np.full(int(budget) + 1, np.inf)
        L = float(load_rps)
        if L <= 0:
            out[:] = 0.0
            return out
        if budget < 0 or not self.extend(int(budget)):
            return out
        F, C, B, _ = self.formed(budget)
        need = L * (1 - LOAD_RTOL)
        enough = F >= need
        np.minimum.at(out, B[enough], C[enough])
        for u, fcost in self.free_costs():
            w = np.flatnonzero(~enough & (L - F <= fcost.reach * (1 + LOAD_RTOL)) & (B + u <= budget))
            if w.size:
                np.minimum.at(out, B[w] + u, C[w] + fcost(L - F[w]))
        return np.minimum.accumulate(out)

    def formed(self, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every front point of budgets up to ``budget`` at the budget that formed it (points
        inherited from a smaller budget are listed once, at their smallest): loads, net costs,
        budgets (units) and each point's index in its budget's front. Fronts extended that far
        already."""
        budget = min(int(budget), len(self.f_load) - 1)
        got = self._formed_flat.get(budget)
        if got is not None:
            return got
        while len(self._formed) <= budget:
            b = len(self._formed)
            idx = np.flatnonzero(self.f_item[b] >= 0) if b else np.zeros(1, dtype=np.int64)
            self._formed.append((self.f_load[b][idx], self.f_cost[b][idx], np.full(idx.size, b, dtype=np.int64), idx))
        parts = self._formed[: budget + 1]
        got = self._formed_flat[budget] = tuple(np.concatenate([p[i] for p in parts]) for i in range(4))
        return got

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


class FreeCost:
    """The least cost of one instance carrying a load ``r`` (``0 < r <= reach``) on any of a set
    of pieces, piece ``i`` costing ``a_i + b_i l`` at its loads ``l in [lo_i, hi_i]`` and taking
    ``r`` at any load from ``max(r, lo_i)`` to ``hi_i`` (the least at an end of that range):

        f(r) = min over i with hi_i >= r of  min(a_i + b_i max(r, lo_i), a_i + b_i hi_i)

    It is piecewise linear with jumps where a piece's range ends; built exactly: between
    consecutive range ends every piece still in range is one line, and the least of a few lines
    is linear between their crossings, which are all added. ``f`` evaluates many loads at once
    (``inf`` beyond ``reach``, loads within ``LOAD_RTOL`` of a range's end at that end);
    :meth:`argmin` names the piece and load for one."""

    def __init__(self, lo, hi, a, b) -> None:
        self.lo, self.hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        self.a, self.b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        self.reach = float(self.hi.max())
        at_lo = np.where(self.b >= 0, self.a + self.b * self.lo, self.a + self.b * self.hi)
        cap = self.a + self.b * self.hi
        ends = np.unique(np.r_[0.0, self.lo, self.hi])
        ends = ends[ends <= self.reach]
        x0s, x1s, v0s, v1s = [], [], [], []
        for x0, x1 in zip(ends[:-1], ends[1:]):
            on = self.hi >= x1
            if not on.any():
                continue
            # on (x0, x1]: a piece whose range starts at or beyond x1 costs its floor value there;
            # one starting at or before x0 costs a + b r (b >= 0) or its top end (b < 0)
            below = self.lo[on] >= x1
            slope = np.where(below | (self.b[on] < 0), 0.0, self.b[on])
            icpt = np.where(below, at_lo[on], np.where(self.b[on] < 0, cap[on], self.a[on]))
            pts = [x0, x1]
            if slope.size > 1:
                ds = slope[:, None] - slope[None, :]
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    xc = (icpt[None, :] - icpt[:, None]) / ds
                xc = xc[np.isfinite(xc) & (xc > x0) & (xc < x1)]
                pts = np.unique(np.r_[pts, xc])
            pts = np.asarray(pts, dtype=float)
            vals = np.min(icpt[:, None] + slope[:, None] * pts[None, :], axis=0)
            x0s.append(pts[:-1])
            x1s.append(pts[1:])
            v0s.append(vals[:-1])
            v1s.append(vals[1:])
        self.x0, self.x1 = np.concatenate(x0s), np.concatenate(x1s)
        self.v0, self.v1 = np.concatenate(v0s), np.concatenate(v1s)
        self._x1_tol = self.x1 * (1 + LOAD_RTOL)

    def __call__(self, r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=float)
        i = np.searchsorted(self._x1_tol, r, side="left")
        ok = i < len(self.x1)
        i = np.minimum(i, len(self.x1) - 1)
        t = np.clip((r - self.x0[i]) / (self.x1[i] - self.x0[i]), 0.0, 1.0)
        return np.where(ok, self.v0[i] + t * (self.v1[i] - self.v0[i]), np.inf)

    def argmin(self, r: float) -> tuple[int, float, float]:
        """The piece (its index among those given), the load it runs at and its cost for ``r``."""
        x = np.minimum(np.maximum(r, self.lo), self.hi)
        at_x, cap = self.a + self.b * x, self.a + self.b * self.hi
        val = np.where(r <= self.hi * (1 + LOAD_RTOL), np.minimum(at_x, cap), np.inf)
        i = int(np.argmin(val))
        return i, float(x[i] if at_x[i] <= cap[i] else self.hi[i]), float(val[i])


class FreeCosts:
    """Several :class:`FreeCost` evaluated together: ``self(r, which)`` is ``costs[which[i]](r[i])``
    for every ``i`` (one lookup over their tables laid end to end)."""

    def __init__(self, costs: list[FreeCost]) -> None:
        self.costs = costs
        self.reach = np.array([c.reach for c in costs])
        self.shift = np.r_[0.0, np.cumsum(self.reach * 2 + 1.0)][:-1]  # table i starts at shift[i]
        self.x0 = np.concatenate([c.x0 + o for c, o in zip(costs, self.shift)])
        self.x1 = np.concatenate([c.x1 + o for c, o in zip(costs, self.shift)])
        self.v0 = np.concatenate([c.v0 for c in costs])
        self.v1 = np.concatenate([c.v1 for c in costs])
        self.span = self.x1 - self.x0

    def __call__(self, r: np.ndarray, which: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=float)
        ok = r <= self.reach[which] * (1 + LOAD_RTOL)
        rr = np.minimum(np.maximum(r, 0.0), self.reach[which]) + self.shift[which]
        i = np.minimum(np.searchsorted(self.x1, rr, side="left"), len(self.x1) - 1)
        t = np.clip((rr - self.x0[i]) / self.span[i], 0.0, 1.0)
        return np.where(ok, self.v0[i] + t * (self.v1[i] - self.v0[i]), np.inf)


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
