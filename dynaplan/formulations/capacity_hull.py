"""(cap.class_hull) valid inequalities of the capacity MILP (``formulations/capacity.md``): per
period and class, the facets of the convex hull of the GPU usage vectors that whole instances
carrying the class's load can have. No solving here.

For class ``c`` with load ``d`` and, per hardware type ``h``, the groups ``(h, c, tp)`` of
capacity ``κ_g`` (req/s of one instance at its SLO), a usage vector ``u`` (GPUs per type) is
achievable iff ``Σ_h cap_h(u_h) >= d``, with ``cap_h(u)`` the most load ``u`` GPUs of type ``h``
carry in whole instances (an unbounded knapsack over the TP degrees). Every facet ``w u >= K``
(``w >= 0``) of the convex hull of the achievable set holds for every whole-instance deployment,
so ``Σ_{g in c} w_{h(g)} tp_g N_{t,g} >= K`` is valid for the MILP. ``K`` is recomputed as the
least ``w u`` over every minimal achievable point, so the row is valid whatever the accuracy of
the hull routine that proposed ``w``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from dynaplan.solvers.model import LinearModel

_MAX_POINTS = 200_000   # minimal points of one class above which no hull is taken (rows only tighten)


def gpu_capacity_curve(tp: np.ndarray, cap_rps: np.ndarray, max_gpus: int) -> np.ndarray:
    """``cap(u)`` for ``u = 0..max_gpus``: the most load (req/s) ``u`` GPUs of one type carry in
    whole instances of the given TP degrees and capacities (unbounded knapsack)."""
    c = np.zeros(max_gpus + 1)
    tps = [int(t) for t in tp]
    for u in range(1, max_gpus + 1):
        best = c[u - 1]
        for t, k in zip(tps, cap_rps):
            if t <= u and c[u - t] + k > best:
                best = c[u - t] + k
        c[u] = best
    return c


def minimal_usages(demand_rps: float, per_type: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray | None:
    """Every minimal GPU usage vector (one column per type in ``per_type``, each a (tp, capacity)
    pair of arrays) whose whole instances carry ``demand_rps``; None when there are too many."""
    curves, top = [], []
    for tp, cap in per_type:
        ub = int(np.ceil(demand_rps / np.max(cap / tp) + 1e-9)) + int(np.max(tp))
        c = gpu_capacity_curve(tp, cap, ub)
        u0 = int(np.argmax(c >= demand_rps * (1 - 1e-12)))   # GPUs of this type alone
        curves.append(c[:u0 + 1])
        top.append(u0)
    H = len(per_type)
    n = int(np.prod([t + 1 for t in top[:-1]]))
    if n > _MAX_POINTS:
        return None
    shape = [t + 1 for t in top[:-1]]
    carried = np.zeros(shape)
    for j in range(H - 1):
        carried = carried + curves[j].reshape([-1 if i == j else 1 for i in range(H - 1)])
    rest = demand_rps * (1 - 1e-12) - carried
    last = np.where(rest <= 0, 0, np.searchsorted(curves[-1], rest, side="left")).astype(float)
    last[last > top[-1]] = np.inf
    # minimal only: one GPU fewer of any of the first types needs more of the last
    keep = np.isfinite(last)
    for j in range(H - 1):
        fewer = np.full(shape, np.inf)
        src = [slice(None)] * (H - 1)
        dst = [slice(None)] * (H - 1)
        src[j], dst[j] = slice(0, -1), slice(1, None)
        fewer[tuple(dst)] = last[tuple(src)]
        keep &= fewer > last
    grid = np.argwhere(keep)
    return np.c_[grid, last[keep]].astype(float)


def usage_facets(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Facets ``w u >= K`` (``w >= 0``, max 1) of the convex hull of ``points`` plus the positive
    orthant; ``K`` is the least ``w p`` over ``points``, exact for each ``w``."""
    H = points.shape[1]
    if H == 1:
        return np.ones((1, 1)), np.array([points[:, 0].min()])
    far = 4.0 * (points.max(axis=0) + 1).sum()
    q = np.vstack([points] + [points + far * np.eye(H)[h] for h in range(H)])  # distinct: far > any span
    try:
        eq = ConvexHull(q).equations
    except QhullError:
        try:
            eq = ConvexHull(q, qhull_options="QJ").equations
        except QhullError:
            return np.zeros((0, H)), np.zeros(0)
    w = -eq[:, :H]                                   # the hull is {eq[:, :H] x + eq[:, H] <= 0}
    w = w[(w >= -1e-9).all(axis=1) & (w.max(axis=1) > 1e-9)]
    w = np.clip(w, 0.0, None)
    w = np.unique(np.round(w / w.max(axis=1, keepdims=True), 12), axis=0)
    k = (points @ w.T).min(axis=0)
    keep = k > 1e-9                                  # w u >= 0 holds anyway
    return w[keep], k[keep]


def add_class_hull(m: LinearModel, demand: np.ndarray, groups_start: int, g_hw: np.ndarray, g_cl: np.ndarray,
                   g_tp: np.ndarray, g_cap: np.ndarray, classes) -> int:
    """Add (cap.class_hull) for every period ``t`` and class ``c`` with load in ``demand`` (T, C)
    to the model ``m`` whose instance counts ``N_{t,g}`` start at column ``groups_start`` (period
    major, ``len(g_hw)`` groups). Returns the number of rows added."""
    T, C = demand.shape
    G = len(g_hw)
    rows, cols, vals, lo, labels = [], [], [], [], []
    cache: dict[tuple[int, float], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for t in range(T):
        for c in range(C):
            if demand[t, c] <= 0:
                continue
            gs = np.flatnonzero(g_cl == c)
            if gs.size == 0:
                continue
            hs = np.unique(g_hw[gs])
            key = (c, float(demand[t, c]))
            if key not in cache:
                pts = minimal_usages(demand[t, c], [(g_tp[gs[g_hw[gs] == h]], g_cap[gs[g_hw[gs] == h]]) for h in hs])
                cache[key] = (np.zeros((0, hs.size)), np.zeros(0)) if pts is None else usage_facets(pts)
            w, k = cache[key]
            pos = np.searchsorted(hs, g_hw[gs])
            for wf, kf in zip(w, k):
                coef = wf[pos] * g_tp[gs]
                nz = coef > 0
                rows.append(np.full(int(nz.sum()), len(lo)))
                cols.append(groups_start + t * G + gs[nz])
                vals.append(coef[nz])
                lo.append(kf * (1 - 1e-9) - 1e-9)
                labels.append((t, classes[c], len(lo)))
    if not lo:
        return 0
    m.add_constraints("cap.class_hull", labels, np.concatenate(rows), np.concatenate(cols), np.concatenate(vals),
                      lo=np.array(lo))
    return len(lo)
