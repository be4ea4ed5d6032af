"""Large pools by "bulk + residual": the maths of formulations/pool.md, "Large pools (bulk + residual)".

Two pure pieces the planner (:meth:`dynaplan.planning.planner.Planner._plan_pool_bulk`) combines:

* :class:`PoolLPBound` (BR1): a valid lower bound on a single-class pool's optimum, the
  Lagrangian dual of the pool MILP's LP relaxation over its pieces' ends, maximised exactly
  over the multiplier of the demand row (so it equals the LP relaxation's value);
* :func:`bulk_instances` (BR2): the bulk, whole servers of every piece the LP relaxation uses,
  leaving at least ``residual_servers`` servers (and the LP's fractional remainder) to the
  exact residual solve.
"""

from __future__ import annotations

import numpy as np

# BR2: servers left to the residual solve (the DP solves it exactly up to pool_dp.MAX_GPUS = 64
# GPUs, i.e. 8 H100 servers). On 48 random single-class pools of 9-20 servers, 8 finds the
# optimum in all, 4 is up to 6.0e-3 above it in 6 (formulations/pool.md, "Large pools").
RESIDUAL_SERVERS = 8
# a fractional server count within this of an integer is that integer (LP solutions carry the
# solver's rounding)
SERVER_TOL = 1e-7


class PoolLPBound:
    """BR1 for one (single-class pool, hardware type), built once from its pieces.

    ``tp``, ``lo_rps``, ``hi_rps``, ``a_w``, ``b_w_per_rps``: per piece, TP degree, load range
    and line (an instance on the piece at load ``l`` draws ``a + b l`` W, the profile's power);
    ``idle_w``: one idle GPU's power. :meth:`bound` is ``max_{lambda >= 0} phi(lambda)`` with

        phi(lambda) = e G S + lambda L + G S min(0, min_i (c_i - lambda l_i) / t_i)

    over the piece ends ``i`` (load ``l_i``, TP ``t_i``, net power ``c_i = a + b l_i - e t_i``).
    """

    def __init__(self, tp, lo_rps, hi_rps, a_w, b_w_per_rps, idle_w: float) -> None:
        tp = np.asarray(tp, dtype=float)
        lo, hi = np.asarray(lo_rps, dtype=float), np.asarray(hi_rps, dtype=float)
        a, b = np.asarray(a_w, dtype=float), np.asarray(b_w_per_rps, dtype=float)
        self.idle_w = float(idle_w)
        t = np.r_[tp, tp]
        load = np.r_[lo, hi]
        cost = np.r_[a + b * lo, a + b * hi] - self.idle_w * t
        d, g = load / t, cost / t  # per GPU: load carried, net power
        # the empty GPU (d = 0, g = 0) is the "min(0, ...)" term
        d, g = np.r_[0.0, d], np.r_[0.0, g]
        # keep the lines not dominated (another with at least the load per GPU at no more net
        # power per GPU is no higher for every lambda >= 0)
        order = np.lexsort((g, -d))
        gs = g[order]
        keep = np.r_[True, gs[1:] < np.minimum.accumulate(gs)[:-1]]
        self.d, self.g = d[order][keep], g[order][keep]
        # the maximum of the concave piecewise-linear phi is at lambda = 0 or where two lines cross
        i, j = np.triu_indices(len(self.d), 1)
        dd = self.d[i] - self.d[j]
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = (self.g[i] - self.g[j]) / dd
        cross = cross[(dd != 0) & np.isfinite(cross) & (cross > 0)]
        self.lambdas = np.unique(np.r_[0.0, cross])
        self.envelope = np.min(self.g[None, :] - self.lambdas[:, None] * self.d[None, :], axis=1)

    def bound(self, load_rps: float, gpus: int) -> float:
        """BR1's value (W) for ``load_rps`` on a pool of ``gpus`` GPUs (its servers' GPUs): a lower
        bound on every plan (instances plus idle GPUs); finite (the empty GPU's line is always in)."""
        phi = self.idle_w * gpus + self.lambdas * float(load_rps) + gpus * self.envelope
        return float(np.max(phi))


def bulk_instances(n_lp: np.ndarray, tp: np.ndarray, gpus_per_server: int, servers: int,
                   residual_servers: int = RESIDUAL_SERVERS, min_servers: float = 0.0,
                   lp_servers_total: float | None = None, spread: bool = True) -> np.ndarray:
    """BR2: instances per piece fixed as the bulk, from the LP relaxation's instances ``n_lp``
    (per piece, on one hardware type of ``gpus_per_server`` GPUs ``G``; ``tp`` its TP degrees).

    Each piece keeps ``floor(n_lp t / G)`` whole servers of its instances (``G / t`` per server;
    ``t`` divides ``G``); then, while the LP's instances left out of the bulk fill fewer than
    ``residual_servers - 1`` servers, or the bulk leaves fewer than ``residual_servers`` of the
    pool's ``servers``, the pieces give servers back: with ``spread`` one at a time each, largest
    first; else the largest piece all it can, then the next. So the residual
    holds about ``residual_servers - 1`` servers of the LP's instances plus one server of room
    (where the integer optimum may re-mix them), never more instances than the LP's on any piece.
    A piece to which the LP gives fewer than ``min_servers`` servers stays out of the bulk.
    ``lp_servers_total``: the LP's servers in use when ``n_lp`` is only some of its pieces
    (default: those of ``n_lp``).
    """
    tp = np.asarray(tp, dtype=np.int64)
    per_server = gpus_per_server // tp
    lp_servers = np.maximum(np.asarray(n_lp, dtype=float), 0.0) / per_server
    whole = np.floor(lp_servers + SERVER_TOL).astype(np.int64)
    whole[lp_servers < min_servers] = 0
    cap = min(int(servers) - int(residual_servers),
              int(np.floor((float(lp_servers.sum()) if lp_servers_total is None else float(lp_servers_total))
                           - (int(residual_servers) - 1) + SERVER_TOL)))
    excess = int(whole.sum()) - max(cap, 0)
    while excess > 0 and whole.any():  # at most R rounds (the caps are within R of the LP's servers)
        for i in np.argsort(-whole, kind="stable"):  # one server from each piece, largest first
            if excess == 0 or whole[i] == 0:
                break
            take = 1 if spread else min(excess, int(whole[i]))
            whole[i] -= take
            excess -= take
    return whole * per_server
