"""Two-class pools: a search over the plan structures a vertex of the pool model can have.

A pool serving its own class ``p`` and one spilled class ``s`` on one hardware type is the pool
MILP of formulations/pool.md priced as the model prices it (the own class's pieces, the spilled
class's surcharge ``d_k = D_{k,s} / lmax_{k,s}`` per req/s). Fix its instances: the rest is an LP
with two demand rows, so at a vertex every instance but at most two is *pure* (one class) at an
end of its piece, and the others are one mixed instance at any utilisation, or two instances each
mixed at a piece end or pure at any load (pool.md, "Two-class pools"). The pure instances of
each class are the single-class DPs' fronts: ``dp_p`` (the pool's own, DP1-DP5) and ``dp_s``
(the spilled class alone in the model's pricing, floors included: ``Planner._spill_dp``).
:func:`search` combines them over these families:

* **A**, pure only: ``p`` on ``b`` units and ``s`` on the rest, each with its free instance;
* **M**, one mixed instance at any utilisation on top of a front point of each class;
* **MP**, a mixed instance at a piece end carrying the rest of ``s`` beyond a front point of ``s``
  and filling up with ``p``, the rest of ``p`` by its DP (with its free instance);
* **MS**, a mixed instance at a piece end carrying all of ``p`` and filling up with ``s``, the
  rest of ``s`` by its DP;
* **MM**, two mixed instances at piece ends carrying all of ``s`` on top of a front point of ``p``.

Every candidate is a plan of the model and is priced exactly as the model prices it, so the
answer is never below the model's optimum; it is the optimum whenever the optimum has one of
these structures, which leaves out two cases (a mixed instance at an end beside pure instances
of the class it does not fill, and two mixed instances beside pure instances of ``s``). The
answer is a search result, not a proven optimum: reports say so (status ``feasible``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynaplan.formulations.pool_dp import LOAD_RTOL, FreeCost, FreeCosts, PoolDP


@dataclass(frozen=True)
class MixedConfigs:
    """The pool's configurations on one hardware type that also meet class ``s``'s SLO.

    Per configuration ``i``: its TP degree (GPUs), the SLO capacities ``lp``/``ls`` (req/s) of
    the two classes, the surcharge ``d`` (W per req/s of ``s``), and ``cost[i]``, the least net
    cost (W, less its GPUs' idle draw) of one instance at utilisation ``U`` (a :class:`FreeCost`
    over its pieces in utilisation); per piece end ``e`` (utilisation) of these configurations,
    ``end_cfg``/``end_u``/``end_cost``/``end_piece`` (configuration, end, net cost there, the
    piece's index in ``piece_row``, the model's piece rows); ``pair_a``/``pair_b`` the pairs of
    ends family MM tries and ``pair_least`` the least cost of any of them.
    """

    tp: np.ndarray
    lp: np.ndarray
    ls: np.ndarray
    d: np.ndarray
    cost: list
    costs: FreeCosts
    piece_cfg: np.ndarray
    piece_row: np.ndarray
    piece_lo: np.ndarray
    piece_hi: np.ndarray
    end_cfg: np.ndarray
    end_u: np.ndarray
    end_cost: np.ndarray
    end_piece: np.ndarray
    pair_a: np.ndarray
    pair_b: np.ndarray
    pair_least: float

    @classmethod
    def build(cls, cfg_of_piece, row, tp, lo, hi, net_a, b, lp, ls, d) -> "MixedConfigs":
        """From per-piece arrays (configuration id, model row, TP, utilisation range, net line
        ``net_a + b U``) and per-piece copies of its configuration's ``lp``, ``ls``, ``d``."""
        cfgs, first, inv = np.unique(cfg_of_piece, return_index=True, return_inverse=True)
        cost = [FreeCost(lo[inv == i], hi[inv == i], net_a[inv == i], b[inv == i]) for i in range(len(cfgs))]
        ends_piece = np.r_[np.arange(len(row)), np.arange(len(row))]
        ends_u = np.r_[lo, hi]
        keep = ends_u > 0
        ends_piece, ends_u = ends_piece[keep], ends_u[keep]
        # MM's pairs of ends: only those of opposite comparative advantage (one cheaper for s, the
        # other giving more p per unit of s): otherwise moving s from one to the other never costs
        # more and leaves p carried, until one of them is pure (a plan of M)
        e_cfg = inv[ends_piece]
        pa, pb = np.triu_indices(len(ends_u))
        dd = d[first][e_cfg[pa]] - d[first][e_cfg[pb]]
        ratio = (lp[first] / ls[first])[e_cfg]
        apart = dd * (ratio[pb] - ratio[pa]) > 0
        end_cost = net_a[ends_piece] + b[ends_piece] * ends_u
        pa, pb = pa[apart], pb[apart]
        least = float(np.min(end_cost[pa] + end_cost[pb])) if pa.size else np.inf
        return cls(tp=np.asarray(tp)[first].astype(np.int64), lp=lp[first], ls=ls[first], d=d[first], cost=cost,
                   costs=FreeCosts(cost), piece_cfg=inv, piece_row=np.asarray(row, dtype=np.int64), piece_lo=lo,
                   piece_hi=hi, end_cfg=e_cfg, end_u=ends_u, end_cost=end_cost, end_piece=ends_piece,
                   pair_a=pa, pair_b=pb, pair_least=least)


@dataclass(frozen=True)
class MixedInstance:
    """One instance serving both classes: its piece (index into ``MixedConfigs.piece_row``), its
    utilisation and its loads of ``p`` and ``s`` (req/s)."""

    piece: int
    util: float
    load_p: float
    load_s: float


@dataclass(frozen=True)
class MixPlan:
    """A two-class pool plan: ``value_w`` its model price (W, idle GPUs included); the pure
    instances of each class as (DP piece, load) arrays of ``dp_p``/``dp_s``; the mixed ones; and
    the family that found it."""

    value_w: float
    p_pieces: np.ndarray
    p_loads: np.ndarray
    s_pieces: np.ndarray
    s_loads: np.ndarray
    mixed: tuple[MixedInstance, ...]
    family: str


def _mixed_at(mc: MixedConfigs, i: int, util: float, xp: float, xs: float) -> MixedInstance:
    """Configuration ``i`` at utilisation ``util`` carrying (xp, xs): its cheapest piece."""
    j, u, _ = mc.cost[i].argmin(util)
    pieces = np.flatnonzero(mc.piece_cfg == i)
    return MixedInstance(piece=int(pieces[j]), util=u, load_p=xp, load_s=xs)


def _dp_part(dp: PoolDP, load: float, budget: int) -> tuple[np.ndarray, np.ndarray] | None:
    if load <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    got = dp.solve_units(load, budget)
    return None if got is None else (got[1], got[2])


def search(dp_p: PoolDP, dp_s: PoolDP | None, mc: MixedConfigs | None, load_p: float, load_s: float,
           gpus: int, idle_w: float, shift_s: float = 0.0, memo: dict | None = None) -> MixPlan | None:
    """The cheapest plan of the families above for ``load_p`` of the own class and ``load_s``
    of the spilled one on ``gpus`` GPUs (every GPU not held by an instance idle at ``idle_w``);
    None when none of them carries both loads (or a DP's sizes stop it: DP5). ``shift_s``: the
    solved model's load-cost shift of ``s`` (W per req/s): ``dp_s`` and ``mc.d`` price ``s``
    less it, and ``shift_s * load_s`` comes back in the value, so every candidate is priced
    exactly as the solved model prices its plan, one carrying more than the demand included.
    ``memo``: a dict the caller empties when it likes (the planner: every planning call), where
    family A's per-budget DP values of a load are kept for the requests that follow."""
    Lp, Ls = float(load_p), float(load_s)
    up, us = dp_p.unit, (dp_s.unit if dp_s is not None else 1)
    Bp, Bs = gpus // up, gpus // us
    if not dp_p.extend(Bp) or (dp_s is not None and not dp_s.extend(Bs)):
        return None
    best, how = np.inf, None
    # A first (its incumbent prunes the others): pure instances only
    best, how = _pure(dp_p, dp_s, Lp, Ls, gpus, best, how, memo)
    if mc is None or Lp <= 0 or Ls <= 0 or dp_s is None:
        return _plan(best, how, dp_p, dp_s, mc, Lp, Ls, gpus, idle_w, shift_s)
    need_p, need_s = Lp * (1 - LOAD_RTOL), Ls * (1 - LOAD_RTOL)
    sF, sC, sB, sI = dp_s.formed(Bs)
    short_s = sF < need_s
    sF, sC, sB, sI = sF[short_s], sC[short_s], sB[short_s], sI[short_s]
    # M: one mixed instance on top of a front point of each class: every (configuration, front
    # point of s) pair, against the window of p's front (on the GPUs left) the instance can top up
    rs = Ls - sF
    ci, si = np.nonzero((rs[None, :] <= (mc.ls * mc.costs.reach)[:, None] * (1 + LOAD_RTOL))
                        & (sB[None, :] * us + mc.tp[:, None] <= gpus))
    keys, fl, fc, ends = dp_p._flat()  # every budget's front end to end (one search for all pairs)
    # the pairs with no pure instance of s first (the commonest optimum): a good incumbent prunes the rest
    for part in (sB[si] == 0, sB[si] > 0):
        cq, sq = ci[part], si[part]
        if not cq.size:
            continue
        bud = (gpus - mc.tp[cq] - sB[sq] * us) // up
        # p's window: the points leaving the instance no more p than its utilisation has room for
        room = mc.lp[cq] * (mc.costs.reach[cq] - rs[sq] / mc.ls[cq])
        lo = np.searchsorted(keys, bud + 1j * (Lp - room * (1 + LOAD_RTOL) - 1e-12), side="left")
        # a lower bound per pair: its front point of s, the instance carrying that rest of s alone
        # (its cost does not fall as its utilisation rises), the cheapest point of p's window (a
        # front's costs ascend with its loads)
        first = np.where(lo < ends[bud], fc[np.minimum(lo, len(fc) - 1)], np.inf)
        live = np.flatnonzero(sC[sq] + mc.d[cq] * rs[sq] + mc.costs(rs[sq] / mc.ls[cq], cq) + first < best)
        cq, sq, bud, lo = cq[live], sq[live], bud[live], lo[live]
        hi = np.minimum(np.searchsorted(keys, bud + 1j * need_p, side="left") + 1, ends[bud])
        n = np.maximum(hi - lo, 0)
        if not n.any():
            continue
        owner = np.repeat(np.arange(cq.size), n)
        pos = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
        c, r = cq[owner], sq[owner]
        rp = np.maximum(Lp - fl[pos], 0.0)
        val = sC[r] + fc[pos] + mc.costs(rs[r] / mc.ls[c] + rp / mc.lp[c], c) + mc.d[c] * rs[r]
        j = int(np.argmin(val))
        if val[j] < best:
            b = int(bud[owner[j]])
            rj = int(r[j])  # the front point of s: its budget, index in that front and load
            best, how = float(val[j]), ("M", int(c[j]), int(sB[rj]), int(sI[rj]), float(sF[rj]), b,
                                        int(pos[j] - (ends[b - 1] if b else 0)))
    # MP: a mixed instance at an end carries all of s and fills up with p; the rest of p by its DP
    e_cfg, e_u = mc.end_cfg, mc.end_u
    e_ls, e_lp, e_t = mc.ls[e_cfg], mc.lp[e_cfg], mc.tp[e_cfg]
    ei = np.flatnonzero((Ls <= e_ls * e_u * (1 + LOAD_RTOL)) & (e_t <= gpus))
    if ei.size:
        xs = np.minimum(Ls, e_ls[ei] * e_u[ei])
        xp = np.maximum((e_u[ei] - xs / e_ls[ei]) * e_lp[ei], 0.0)
        rest = Lp - xp
        head = mc.end_cost[ei] + mc.d[e_cfg[ei]] * xs
        live = np.flatnonzero(head + dp_p.lower_values(rest, Bp) < best)  # the others cannot win
        if live.size:
            ei, xp, xs, rest, head = ei[live], xp[live], xs[live], rest[live], head[live]
            val = head + dp_p.values(rest, (gpus - e_t[ei]) // up)
            j = int(np.argmin(val))
            if val[j] < best:
                best, how = float(val[j]), ("MP", int(ei[j]), float(xp[j]), float(xs[j]))
    # MS: a mixed instance at an end carries all of p and fills up with s; the rest of s by its DP
    fits = (Lp <= e_lp * e_u * (1 + LOAD_RTOL)) & (e_t <= gpus)
    ei = np.flatnonzero(fits)
    if ei.size:
        xp = np.minimum(Lp, e_lp[ei] * e_u[ei])
        xs = np.minimum((e_u[ei] - xp / e_lp[ei]) * e_ls[ei], Ls)
        head = mc.end_cost[ei] + mc.d[e_cfg[ei]] * xs
        live = np.flatnonzero(head + dp_s.lower_values(Ls - xs, Bs) < best)
        if live.size:
            ei, xp, xs, head = ei[live], xp[live], xs[live], head[live]
            val = head + dp_s.values(Ls - xs, (gpus - e_t[ei]) // us)
            j = int(np.argmin(val))
            if val[j] < best:
                best, how = float(val[j]), ("MS", int(ei[j]), float(xp[j]), float(xs[j]))
    # MM: two mixed instances at ends carry all of s on top of a front point of p; skipped when
    # even the cheapest pair of ends with the cheapest front point (costs of s >= 0) cannot win
    if mc.pair_least + min(0.0, dp_p.least_cost()) < best:
        best, how = _two_mixed(dp_p, mc, Lp, Ls, gpus, best, how)
    return _plan(best, how, dp_p, dp_s, mc, Lp, Ls, gpus, idle_w, shift_s)


def _two_mixed(dp_p, mc, Lp, Ls, gpus, best, how):
    """Family MM (the incumbent kept unless MM beats it)."""
    up = dp_p.unit
    e_cfg, e_u = mc.end_cfg, mc.end_u
    e_ls, e_lp, e_t = mc.ls[e_cfg], mc.lp[e_cfg], mc.tp[e_cfg]
    a1, a2 = mc.pair_a, mc.pair_b
    t12 = e_t[a1] + e_t[a2]
    cap1, cap2 = e_ls[a1] * e_u[a1], e_ls[a2] * e_u[a2]
    x_lo, x_hi = np.maximum(0.0, Ls - cap2), np.minimum(Ls, cap1)  # s on the first instance
    good = (t12 <= gpus) & (x_lo <= x_hi)
    a1, a2, t12, x_lo, x_hi = a1[good], a2[good], t12[good], x_lo[good], x_hi[good]
    if a1.size:
        d1, d2 = mc.d[e_cfg[a1]], mc.d[e_cfg[a2]]
        # p the pair carries with x of s on the first: p1 (e1 - x / s1) + p2 (e2 - (Ls - x) / s2)
        p0 = e_lp[a1] * e_u[a1] + e_lp[a2] * (e_u[a2] - Ls / e_ls[a2])
        slope = -e_lp[a1] / e_ls[a1] + e_lp[a2] / e_ls[a2]
        base = mc.end_cost[a1] + mc.end_cost[a2] + d2 * Ls
        carried_max = p0 + np.maximum(slope * x_lo, slope * x_hi)
        bud = (gpus - t12) // up
        # a lower bound first: the cheapest s split and the cheapest front point short of nothing
        lb = base + np.minimum((d1 - d2) * x_lo, (d1 - d2) * x_hi)
        cheapest = np.full(a1.size, np.inf)
        for b in np.unique(bud):
            q = np.flatnonzero(bud == b)
            fl, fc = dp_p.f_load[b], dp_p.f_cost[b]
            at = np.searchsorted(fl, Lp - carried_max[q] * (1 + LOAD_RTOL), side="left")
            cheapest[q] = np.where(at < len(fl), fc[np.minimum(at, len(fl) - 1)], np.inf)
        for q in np.flatnonzero(lb + cheapest < best):
            b = bud[q]
            fl, fc = dp_p.f_load[b], dp_p.f_cost[b]
            lo = int(np.searchsorted(fl, Lp - carried_max[q] * (1 + LOAD_RTOL), side="left"))
            short = np.maximum(Lp - fl[lo:], 0.0)  # p the pair must carry beyond each point
            # the cost d1 x + d2 (Ls - x) is linear in x: the best x meeting p0 + slope x >= short
            xs_lo, xs_hi = np.full(short.size, x_lo[q]), np.full(short.size, x_hi[q])
            if abs(slope[q]) > 0:
                x_at = (short - p0[q]) / slope[q]
                if slope[q] > 0:
                    xs_lo = np.maximum(xs_lo, x_at)
                else:
                    xs_hi = np.minimum(xs_hi, x_at)
            x = np.clip(np.where(d1[q] <= d2[q], xs_hi, xs_lo), x_lo[q], x_hi[q])
            feas = (xs_lo <= xs_hi * (1 + LOAD_RTOL) + LOAD_RTOL) & \
                (p0[q] + slope[q] * x >= short * (1 - LOAD_RTOL) - 1e-12)
            if not feas.any():
                continue
            val = np.where(feas, base[q] + (d1[q] - d2[q]) * x + fc[lo:], np.inf)
            j = int(np.argmin(val))
            if val[j] < best:
                best, how = float(val[j]), ("MM", int(a1[q]), int(a2[q]), int(b), lo + j, float(x[j]))
    return best, how


def _pure(dp_p, dp_s, Lp, Ls, gpus, best, how, memo):
    """Family A: pure instances only, each class on its share of the GPUs (the incumbent kept
    unless A beats it)."""
    if dp_s is None and Ls > 0:
        return best, how
    up, us = dp_p.unit, (dp_s.unit if dp_s is not None else 1)
    Bp, Bs = gpus // up, gpus // us
    bp = np.arange(Bp + 1)
    vp = _by_budget(dp_p, Lp, Bp, memo)
    bs = (gpus - bp * up) // us
    vs = _by_budget(dp_s, Ls, Bs, memo)[bs] if dp_s is not None else np.zeros(Bp + 1)
    tot = vp + vs
    i = int(np.argmin(tot))
    if tot[i] < best:
        return float(tot[i]), ("A", int(bp[i]), int(bs[i]))
    return best, how


def _by_budget(dp: PoolDP, load: float, budget: int, memo: dict | None) -> np.ndarray:
    """``dp.values_by_budget(load, budget)``, from ``memo`` where a request before asked for the
    same load on at least as many units (the values of fewer units are a prefix)."""
    if memo is None:
        return dp.values_by_budget(load, budget)
    key = ("values_by_budget", id(dp), load)
    got = memo.get(key)
    if got is None or got[0] is not dp or len(got[1]) <= budget:
        got = memo[key] = (dp, dp.values_by_budget(load, budget))
    return got[1][: budget + 1]


def _plan(best, how, dp_p, dp_s, mc, Lp, Ls, gpus, idle_w, shift_s) -> MixPlan | None:
    """The instances of the winning candidate ``how`` (read back from the DPs' fronts)."""
    if how is None or not np.isfinite(best):
        return None
    empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
    fam = how[0]
    p_part, s_part, mixed = (empty_i, empty_f), (empty_i, empty_f), []
    up = dp_p.unit
    us = dp_s.unit if dp_s is not None else 1
    if fam == "A":
        _, bp, bs = how
        p_part = _dp_part(dp_p, Lp, bp)
        s_part = _dp_part(dp_s, Ls, bs) if dp_s is not None else (empty_i, empty_f)
    elif fam == "M":
        _, i, s_budget, s_idx, s_load, b, pidx = how
        s_part = dp_s.front_instances(s_budget, s_idx)
        p_part = dp_p.front_instances(b, pidx)
        xs = Ls - s_load
        xp = max(Lp - float(dp_p.f_load[b][pidx]), 0.0)
        mixed.append(_mixed_at(mc, i, xs / mc.ls[i] + xp / mc.lp[i], xp, xs))
    elif fam == "MP":
        _, e, xp, xs = how
        i = int(mc.end_cfg[e])
        p_part = _dp_part(dp_p, Lp - xp, (gpus - int(mc.tp[i])) // up)
        mixed.append(MixedInstance(piece=int(mc.end_piece[e]), util=float(mc.end_u[e]), load_p=xp, load_s=xs))
    elif fam == "MS":
        _, e, xp, xs = how
        i = int(mc.end_cfg[e])
        s_part = _dp_part(dp_s, Ls - xs, (gpus - int(mc.tp[i])) // us)
        mixed.append(MixedInstance(piece=int(mc.end_piece[e]), util=float(mc.end_u[e]), load_p=xp, load_s=xs))
    else:  # MM
        _, e1, e2, b, pidx, x = how
        p_part = dp_p.front_instances(b, pidx)
        rest_p = max(Lp - float(dp_p.f_load[b][pidx]), 0.0)
        i1, i2 = int(mc.end_cfg[e1]), int(mc.end_cfg[e2])
        xp1 = mc.lp[i1] * (mc.end_u[e1] - x / mc.ls[i1])
        xp2 = max(min(rest_p - xp1, mc.lp[i2] * (mc.end_u[e2] - (Ls - x) / mc.ls[i2])), 0.0)
        mixed.append(MixedInstance(piece=int(mc.end_piece[e1]), util=float(mc.end_u[e1]), load_p=float(xp1),
                                   load_s=float(x)))
        mixed.append(MixedInstance(piece=int(mc.end_piece[e2]), util=float(mc.end_u[e2]), load_p=float(xp2),
                                   load_s=float(Ls - x)))
    if p_part is None or s_part is None:
        return None
    return MixPlan(value_w=best + idle_w * gpus + shift_s * Ls, p_pieces=p_part[0], p_loads=p_part[1], s_pieces=s_part[0],
                   s_loads=s_part[1], mixed=tuple(mixed), family=fam)
