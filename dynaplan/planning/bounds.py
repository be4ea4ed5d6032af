"""A global lower bound on the profile's own planning problem (``formulations/bound.md``,
constraints 1-6).

The bound is built from the profile's table and its max loads under the SLOs alone — not from
the pool models' pieces — so it bounds the problem the user posed: instance power is the
profile's linear interpolation over its load points (the share-weighted mix of the classes'
curves for a mixed instance, :meth:`Profile.mixed_power_w`), every GPU of a switched-on server
not held by an instance draws ``idle_power_w``, and servers are whole. It is an LP (instance
counts relaxed); with one hardware type the switched-on servers are made whole by convexity
(two more LPs at the floor and ceiling of the LP's own count, bound.servers). Its structure is
built once per :class:`GlobalBound` and kept inside HiGHS; a call only moves right-hand sides.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from dynaplan.domain.hardware import HardwareType
from dynaplan.profiles.profile import Profile
from dynaplan.solvers.model import LinearModel
from dynaplan.solvers.highs import HighsSession
from dynaplan.solvers.result import SolveOptions, Status

# the LP's feasibility tolerance, in W, taken off the bound so that a solver's rounding never lifts
# it above the optimum (relative to the bound, plus an absolute floor)
BOUND_SLACK_REL = 1e-7


def lower_hull(u: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lines ``(a_j, b_j)`` of the lower convex hull of points ``(u_i, p_i)`` (bound.hull): the
    convex envelope of the piecewise-linear function through them, so ``a_j + b_j u <= p(u)`` on
    ``[min u, max u]``. Points are sorted here; duplicates in ``u`` keep the lowest ``p``."""
    order = np.lexsort((p, u))
    u, p = u[order], p[order]
    keep = np.r_[True, np.diff(u) > 0]
    u, p = u[keep], p[keep]
    hull: list[int] = []
    for i in range(len(u)):
        while len(hull) >= 2:
            i0, i1 = hull[-2], hull[-1]
            # drop i1 when it lies on or above the segment i0 -> i
            if (p[i1] - p[i0]) * (u[i] - u[i0]) >= (p[i] - p[i0]) * (u[i1] - u[i0]):
                hull.pop()
            else:
                break
        hull.append(i)
    if len(hull) == 1:
        return np.array([p[hull[0]]]), np.array([0.0])
    h = np.asarray(hull)
    b = np.diff(p[h]) / np.diff(u[h])
    a = p[h[:-1]] - b * u[h[:-1]]
    return a, b


def min_pools(loaded: list[str], routes: Mapping[str, tuple[str, ...]]) -> int:
    """Fewest pools that give every loaded class a pool its route allows (bound.pools)."""
    if not loaded:
        return 0
    pools = sorted({p for c in loaded for p in routes[c]})
    need = set(loaded)
    for k in range(1, len(pools) + 1):
        for combo in itertools.combinations(pools, k):
            if {c for c in loaded if set(routes[c]) & set(combo)} >= need:
                return k
    return len(pools)


class GlobalBound:
    """The bound's model for one planner: configurations of the inventory's hardware that meet at
    least one class's SLO, every class they may carry, and the inventory."""

    def __init__(self, profile: Profile, max_load: pd.DataFrame, hardware: Mapping[str, HardwareType],
                 inventory: Mapping[str, int], classes: tuple[str, ...], routes: Mapping[str, tuple[str, ...]],
                 unserved_penalty_w_per_rps: float | None = None) -> None:
        self.classes = tuple(classes)
        self.routes = dict(routes)
        self.penalty = unserved_penalty_w_per_rps
        self._session: HighsSession | None = None
        self._pools_cache: dict[tuple[str, ...], int] = {}
        ml = max_load[(max_load["max_load_rps"] > 0) & max_load["hardware"].isin(list(hardware))
                      & max_load["request_class"].isin(self.classes)].copy()
        t0 = time.perf_counter()
        self._build(profile, ml, hardware, inventory)
        self.build_time_s = time.perf_counter() - t0

    # ---------------------------------------------------------------- data
    def _build(self, profile: Profile, ml: pd.DataFrame, hardware, inventory) -> None:
        table = profile.table
        model_name = ml["model"].iloc[0] if len(ml) else None
        table = table[table["model"] == model_name]
        key = ["hardware", "tp", "freq_mhz"]
        arcs = ml[key + ["request_class", "max_load_rps"]].sort_values(key + ["request_class"]).reset_index(drop=True)
        cfgs = arcs[key].drop_duplicates().reset_index(drop=True)
        cfg_pos = {tuple(r): i for i, r in enumerate(cfgs.itertuples(index=False, name=None))}
        arc_k = np.array([cfg_pos[t] for t in arcs[key].itertuples(index=False, name=None)], dtype=np.int64)
        lmax = arcs["max_load_rps"].to_numpy(float)
        pts = table.merge(arcs, on=key + ["request_class"])
        pts = pts[pts["load_rps"] <= pts["max_load_rps"] * (1 + 1e-12)]
        by_arc = {g: (d["load_rps"].to_numpy(float), d["power_w"].to_numpy(float))
                  for g, d in pts.groupby(key + ["request_class"], sort=False)}
        n_cfg, n_arc = len(cfgs), len(arcs)
        # (bound.hull) per arc: the lines of the convex envelope of the class's curve in utilisation
        hull_arc, hull_a, hull_b = [], [], []
        for i, r in enumerate(arcs.itertuples(index=False, name=None)):
            load, pw = by_arc[r[:4]]
            u = np.r_[0.0, load / lmax[i]]
            p = np.r_[pw[np.argmin(load)], pw]  # the profile holds its first value below the lightest point
            a, b = lower_hull(u, p)
            hull_arc.append(np.full(len(a), i))
            hull_a.append(a)
            hull_b.append(b)
        cat = lambda xs, dt=float: np.concatenate(xs) if xs else np.zeros(0, dt)  # noqa: E731
        hull_arc, hull_a, hull_b = cat(hull_arc, np.int64), cat(hull_a), cat(hull_b)
        hws = sorted(hardware)
        h_of = cfgs["hardware"].map({h: i for i, h in enumerate(hws)}).to_numpy()
        cls_pos = {c: i for i, c in enumerate(self.classes)}
        self._model(cfgs, arcs, arc_k, arcs["request_class"].map(cls_pos).to_numpy(), lmax,
                    hull_arc, hull_a, hull_b, h_of, cfgs["tp"].to_numpy(float), hws, hardware, inventory)

    # ---------------------------------------------------------------- model
    def _model(self, cfgs, arcs, arc_k, arc_c, lmax, hull_arc, hull_a, hull_b, h_of, tp, hws, hardware,
               inventory) -> None:
        n_cfg, n_arc, n_h, n_cls = len(cfgs), len(arcs), len(hull_arc), len(self.classes)
        e = np.array([hardware[h].idle_power_w for h in hws], dtype=float)
        g = np.array([hardware[h].gpus_per_server for h in hws], dtype=float)
        servers = np.array([inventory.get(h, 0) for h in hws], dtype=float)
        m = LinearModel("global_bound")
        cfg_labels = list(cfgs.itertuples(index=False, name=None))
        arc_labels = list(arcs[["hardware", "tp", "freq_mhz", "request_class"]].itertuples(index=False, name=None))
        z = m.add_vars("z", arc_labels)
        share = m.add_vars("N", arc_labels)
        t = m.add_vars("t", arc_labels, cost=1.0)
        # idle power e_h (G_h Y_h - sum tp n): the instances' GPUs are taken off the servers' idle draw
        n = m.add_vars("n", cfg_labels, cost=-e[h_of] * tp)
        # Y is relaxed here; bound() restores its integrality by convexity (bound.servers)
        y = m.add_vars("Y", hws, ub=servers, cost=e * g)
        u = m.add_vars("u", self.classes, cost=self.penalty) if self.penalty is not None else None
        ar = np.arange(n_arc)
        # (bound.demand) sum_k z[k,c] (+ u_c) >= L_c
        rows, cols, vals = [arc_c], [z.cols], [np.ones(n_arc)]
        if u is not None:
            rows.append(np.arange(n_cls))
            cols.append(u.cols)
            vals.append(np.ones(n_cls))
        m.add_constraints("demand", self.classes, np.concatenate(rows), np.concatenate(cols),
                          np.concatenate(vals), lo=0.0)
        # (bound.capacity) z[k,c] / lmax[k,c] <= N[k,c]: class c's utilisation within its share of instances
        m.add_constraints("capacity", arc_labels, np.r_[ar, ar], np.r_[z.cols, share.cols],
                          np.r_[1.0 / lmax, -np.ones(n_arc)], hi=0.0)
        # (bound.shares) sum_c N[k,c] = n_k
        m.add_constraints("shares", cfg_labels, np.r_[arc_k, np.arange(n_cfg)], np.r_[share.cols, n.cols],
                          np.r_[np.ones(n_arc), -np.ones(n_cfg)], lo=0.0, hi=0.0)
        # (bound.power) a_j N[k,c] + b_j z[k,c] / lmax[k,c] <= t[k,c] for every hull line j of (k, c)
        hr = np.arange(n_h)
        m.add_constraints("power", hr, np.r_[hr, hr, hr],
                          np.r_[share.cols[hull_arc], z.cols[hull_arc], t.cols[hull_arc]],
                          np.r_[hull_a, hull_b / lmax[hull_arc], -np.ones(n_h)], hi=0.0)
        # (bound.packing) sum_{k on h} tp_k n_k <= G_h Y_h
        m.add_constraints("packing", hws, np.r_[h_of, np.arange(len(hws))], np.r_[n.cols, y.cols],
                          np.r_[tp, -g], hi=0.0)
        # (bound.pools) sum_h Y_h >= P and sum_k n_k >= P: every pool that serves load holds a
        # server and an instance; P = fewest pools the loaded classes' routes allow (0 in best effort)
        m.add_constraints("pools", ("servers", "instances"), np.r_[np.zeros(len(hws)), np.ones(n_cfg)],
                          np.r_[y.cols, n.cols], np.ones(len(hws) + n_cfg), lo=0.0)
        self.model = m
        self.arrays = m.arrays()

    def bound(self, demand_rps: Mapping[str, float], opts: SolveOptions | None = None) -> tuple[float | None, float]:
        """``(bound in W, seconds)`` for the demand; the bound includes the unserved penalty in
        best-effort mode; ``None`` when the model has no solution (then the forecast is infeasible)
        or the solve failed."""
        t0 = time.perf_counter()
        dem = np.array([float(demand_rps.get(c, 0.0)) for c in self.classes])
        loaded = [c for c, v in zip(self.classes, dem) if v > 0]
        p_min = 0 if self.penalty is not None else self._min_pools(loaded)
        arrays = self.arrays.with_block_bounds(rows={"demand": (dem, None), "pools": (float(p_min), None)})
        opts = (opts or SolveOptions()).model_copy(update={"mip_rel_gap": 0.0, "highs_heuristics": False})
        if self._session is None:
            self._session = HighsSession(self.arrays, opts, warm_lp=True)
        b, x = self._solve(arrays, opts)
        yb = self.model.var_blocks["Y"]
        if b is not None and len(yb.labels) == 1:
            # (bound.servers) the LP's value is convex in the servers switched on, so the best
            # whole number of servers is the floor or the ceiling of the LP's own
            y = float(x[yb.start])
            lo_y, hi_y = np.floor(y + 1e-9), np.ceil(y - 1e-9)
            if hi_y > lo_y:
                vals = []
                for v in (lo_y, hi_y):
                    if arrays.lb[yb.start] - 1e-9 <= v <= arrays.ub[yb.start] + 1e-9:
                        vals.append(self._solve(arrays.with_block_bounds(cols={"Y": (v, v)}), opts)[0])
                vals = [v for v in vals if v is not None] or [None]
                b = min(vals) if None not in vals else b
        if b is None:
            return None, time.perf_counter() - t0
        return max(0.0, b - BOUND_SLACK_REL * abs(b) - 1e-6), time.perf_counter() - t0

    def _min_pools(self, loaded: list[str]) -> int:
        """:func:`min_pools`, remembered by the set of loaded classes (a search over pool subsets
        that costs more than the LPs' warm re-solves; the routes are fixed per bound)."""
        key = tuple(loaded)
        if key not in self._pools_cache:
            self._pools_cache[key] = min_pools(loaded, self.routes)
        return self._pools_cache[key]

    def _solve(self, arrays, opts) -> tuple[float | None, np.ndarray | None]:
        """The LP's optimum and solution (``None`` when not solved to optimality; a fixed server
        count the inventory cannot hold is infeasible, which also gives ``None``)."""
        rep_x = self._session.update_bounds_and_resolve(arrays, opts)
        rep = rep_x.report
        if rep.status is not Status.OPTIMAL or rep.objective is None:
            return None, None
        return float(rep.objective), rep_x.x
