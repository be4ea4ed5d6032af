"""The validated inputs of planning: inventory, options, and the operating points.

An *operating point* is one (request class, hardware, TP, clock) with the profile condensed to
what the formulations need (``formulations/pool.md``, "Load representation"):

* ``max_load_rps`` l^max_{k,c}: highest profiled load meeting the class's P99 SLOs (req/s);
* the instance's power as a function of its utilisation ``u = l / l^max`` in [0, 1],
  ``Q(u) = P(u l^max)``, cut into pieces by :func:`power_segments`: piece ``j`` is the line
  ``A_j + B_j u`` on ``[u_lo, u_hi]`` (W), by default the profile's own interpolation between
  consecutive load points (exact; ``segment_error_w`` = 0), with the profile's hold below its
  lightest load as a flat first piece;
* ``static_w`` / ``w_per_util``: the single chord (one piece), used by the cluster level.

Points that cannot meet the SLO at any load are dropped, and so are points dominated by another
of the same class and hardware (no more GPUs, no less capacity, no more power at any load once
the idle power of the GPUs it leaves free is counted); :func:`envelope_pieces` then keeps only
the piece ranges that are the cheapest clock of their TP somewhere (pool.md, "Pre-filtering").
"""

from __future__ import annotations

from typing import Literal

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, field_validator

from dynaplan.domain.slo import DEFAULT_SLOS, SLOTable
from dynaplan.errors import ValidationError
from dynaplan.limits import INVENTORY_SERVERS
from dynaplan.profiles.profile import Profile
from dynaplan.validation import MAX_DURATION_S, InputModel, excerpt, number


class Inventory(InputModel):
    """Servers available per hardware type."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    servers: dict[str, int] = Field(description="Servers available, by hardware type name (count).")

    @field_validator("servers")
    @classmethod
    def _nonneg(cls, v: dict[str, int]) -> dict[str, int]:
        for name, n in v.items():
            if n < 0:
                raise ValueError(f"inventory: {name} has {n} servers; expected >= 0")
            INVENTORY_SERVERS.check(n, f"inventory: {name}", "has")
        return v


class PlannerOptions(InputModel):
    """Time scales and modelling choices of the planner."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cluster_epoch_s: float = Field(default=1800.0, gt=0, le=MAX_DURATION_S, description="Cluster-level period (s).")
    pool_epoch_s: float = Field(default=300.0, gt=0, le=MAX_DURATION_S, description="Pool-level period (s).")
    spill: str = Field(
        default="next",
        description="Which pools may take a class's load: 'none' (own pool only), 'next' (own and "
        "the next larger class's pool) or 'larger' (any pool whose input and output bins are both "
        "at least the class's).",
    )
    prune_dominated: bool = Field(default=True, description="Drop dominated operating points.")
    load_segments: int | None = Field(
        default=None, ge=1, le=64,
        description="Chords of the piecewise-linear power curve per operating point at the pool level "
        "(count); None: one per profile load segment, the profile's own interpolation (exact). Fewer "
        "chords are an approximation (the discretisation study); their error is reported.",
    )
    best_effort: bool = Field(
        default=False,
        description="When the forecast cannot be met, serve as much as possible and report the "
        "unserved load instead of raising InfeasibleError.",
    )
    transition_amortisation_s: float | None = Field(
        default=None, gt=0, le=MAX_DURATION_S,
        description="Epoch over which a transition's energy is spread when planning from a state (s); "
        "None: the pool epoch. Longer means stronger hysteresis.",
    )
    # Why these defaults, with the measurements behind them: benchmarks/RESULTS.md (target b) for
    # the cluster gap, benchmarks/pool_exactness.py for the pool gap.
    cluster_mip_rel_gap: float | None = Field(
        default=1e-3, ge=0,
        description="Relative MIP gap of the cluster level (fraction); None: SolveOptions.mip_rel_gap. "
        "The cluster objective (whole-server recipes, chords) is an estimate the pool level "
        "re-optimises inside the allotment, so a tighter gap here buys little.",
    )
    pool_mip_rel_gap: float | None = Field(
        default=1e-7, ge=0,
        description="Relative MIP gap of the pool level (fraction); None: SolveOptions.mip_rel_gap. The "
        "pool models are small (tens of pieces), so their optimum is proven almost exactly.",
    )
    pool_dp: bool = Field(
        default=True,
        description="Solve single-class pools on one hardware type by the exact dynamic programme "
        "(formulations/pool.md, DP1-DP5) instead of the pool MILP when the backend is HiGHS, the "
        "pieces are exact (load_segments None), there is no current state and no best effort; "
        "False: always the MILP.",
    )
    workers: int = Field(
        default=1, ge=1, le=64,
        description="Threads one Planner.plan call may use (count): with 2 or more the global bound is "
        "solved alongside the cluster and pool levels, and with the HiGHS backend the pools of one "
        "allotment are solved side by side (HiGHS releases the GIL; every pool has its own model and "
        "solver). The plan is the same for every value; 1 (default) runs everything in the calling "
        "thread (formulations/cluster.md, 'Threads').",
    )
    large_pool: Literal["auto", "exact", "bulk"] = Field(
        default="auto",
        description="How a pool beyond the pool DP's 64 GPUs on one hardware type is solved when the "
        "backend is HiGHS, the pieces are exact, there is no current state and no best effort: "
        "'bulk', the LP relaxation's bulk as whole servers plus an exact residual of a few servers "
        "(formulations/pool.md, \"Large pools\"; within a small stated gap of the optimum, not proven "
        "optimal); 'exact', the pool MILP (proven to pool_mip_rel_gap); 'auto' (default): 'bulk' "
        "inside Planner.plan (whose report states its gap against the global bound) and 'exact' "
        "for Planner.plan_pool.",
    )
    mixed_pool: Literal["auto", "search", "exact"] = Field(
        default="auto",
        description="How a pool serving its own class and one spilled class on one hardware type (at most "
        "64 GPUs) is solved when the backend is HiGHS, the pieces are exact, there is no current state and "
        "no best effort: 'search', the two-class search over the structures the pool model's optima take "
        "(formulations/pool.md, \"Two-class pools\"; a plan of the model, checked against it, in about a "
        "millisecond; not proven optimal); 'exact', the pool MILP (proven to pool_mip_rel_gap in the "
        "model's pricing); 'auto' (default): 'search' inside Planner.plan (whose report states its gap "
        "against the global bound) and 'exact' for Planner.plan_pool. Mixed pools' reports claim no "
        "bound either way.",
    )
    cluster_search: Literal["ladder", "single"] = Field(
        default="ladder",
        description="How Planner.plan (no state, no allotment given) runs the cluster level: 'ladder', "
        "the inventory ladder of formulations/cluster.md (up to 3 hierarchical plans at caps set by the "
        "forecast; closest to the monolithic optimum, monotone in the inventory); 'single', one "
        "allotment on the inventory then polishing (several times faster, for schedulers with a tight "
        "latency budget; no monotonicity guarantee). Either way the plan's gap is stated against "
        "the global bound.",
    )
    time_budget_s: float | None = Field(
        default=None, ge=0, le=MAX_DURATION_S,
        description="Soft wall-time budget of one Planner.plan call (s; no state, no allotment given). "
        "The first allotment, its pools and the global bound always run; a further ladder rung or "
        "polishing round starts, and polishing solves a new pool request, only while the call is "
        "inside the budget (formulations/cluster.md, 'Time budget'). The plan then depends on the "
        "machine's speed, and the ladder's inventory-monotonicity guarantee holds only for the rungs "
        "it reached; its gap is stated against the global bound as always. None (default): every "
        "step runs; 0: only the mandatory ones.",
    )
    unserved_penalty_w_per_rps: float = Field(
        default=1e6, gt=0, le=1e12, description="Best-effort penalty per unserved req/s, in objective units (W)."
    )

    @field_validator("spill")
    @classmethod
    def _spill(cls, v: str) -> str:
        if v not in ("none", "next", "larger"):
            raise ValueError(f"spill must be 'none', 'next' or 'larger', got {v!r}")
        return v


def operating_points(profile: Profile, slos: SLOTable, prune_dominated: bool = True,
                     hardware: Iterable[str] | None = None, model: str | None = None) -> pd.DataFrame:
    """Condense a profile into SLO-feasible operating points (one vectorised pass).

    Returns one row per feasible (model, hardware, tp, freq_mhz, request_class) with the
    profile ``group_id``, ``max_load_rps``, ``power_w`` (at max load), ``static_w`` and
    ``w_per_util`` (the chord of ``Q`` from the lightest load point to ``u = 1``) and
    ``dominated`` (rows dropped when ``prune_dominated``). ``hardware`` / ``model`` keep only
    those points (before the pruning, which compares points of one hardware type and model only).
    """
    mls = profile.max_load_under_slo(slos).reset_index()  # keeps the profile's group_id
    starts, _ = profile.group_bounds
    load = profile.table["load_rps"].to_numpy()
    power = profile.table["power_w"].to_numpy()
    l0, p0 = load[starts], power[starts]
    lmax = mls["max_load_rps"].to_numpy()
    pmax = mls["power_w"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        u0 = np.where(lmax > 0, l0 / np.where(lmax > 0, lmax, 1.0), 0.0)
        slope = np.where(1 - u0 > 1e-12, (pmax - p0) / np.where(1 - u0 > 1e-12, 1 - u0, 1.0), 0.0)
    out = mls.assign(static_w=p0 - slope * u0, w_per_util=slope)
    keep = out["feasible"] & (out["max_load_rps"] > 0)
    if hardware is not None:
        keep &= out["hardware"].isin(list(hardware))
    if model is not None:
        keep &= out["model"] == model
    out = out[keep].drop(columns=["feasible"]).reset_index(drop=True)
    out["dominated"] = _dominated(profile, out)
    return non_dominated(out) if prune_dominated else out


def non_dominated(points: pd.DataFrame) -> pd.DataFrame:
    """The points of :func:`operating_points` that the dominance pruning keeps (pool.md, "Pre-filtering")."""
    return points[~points["dominated"]].reset_index(drop=True)


def power_segments(profile: Profile, ops: pd.DataFrame, n_segments: int | None = None) -> pd.DataFrame:
    """Piecewise-linear power in utilisation for every operating point (pool.md, "Load representation").

    Breakpoints are profile load points up to ``l^max``: all of them when ``n_segments`` is None
    (the profile's own interpolation, exact), else the lightest, ``l^max`` and points spread
    evenly between them (``n_segments`` chords). Piece ``j`` holds utilisations
    ``[u_lo, u_hi]`` and draws ``A_j + B_j u`` there: a chord between consecutive breakpoints, and
    below the lightest load point ``u_0`` a flat piece ``[0, u_0]`` at ``Q(u_0)`` (the profile holds
    its first value below its lightest load, ``Profile.interpolate``). Returns one row per
    (operating point, piece) with ``segment``, ``u_lo``, ``u_hi``, ``static_w`` (A_j, W),
    ``w_per_util`` (B_j, W per unit utilisation) and ``segment_error_w``: the largest
    ``|Q(u) - model(u)|`` over the profile's load points in [0, l^max] (W; 0 with every point).
    """
    rows = []
    for i, (gid, lmax) in enumerate(zip(ops["group_id"].to_numpy(), ops["max_load_rps"].to_numpy())):
        lg, q = profile.points_up_to(gid, lmax)
        m = len(lg)
        u = lg / lmax
        k = m - 1 if n_segments is None else min(n_segments, m - 1)
        idx = np.unique(np.r_[0, np.rint(np.linspace(0, m - 1, k + 1)[1:]).astype(int)]) if m > 1 else np.array([0])
        ub, qb = u[idx], q[idx]
        err = float(np.max(np.abs(q - np.interp(u, ub, qb))))
        lo, hi, a, b = [], [], [], []
        if ub[0] > 0:  # the profile's hold below its lightest load
            lo.append(0.0), hi.append(min(float(ub[0]), 1.0)), a.append(float(qb[0])), b.append(0.0)
        for j in range(len(idx) - 1):
            slope = (qb[j + 1] - qb[j]) / (ub[j + 1] - ub[j])
            lo.append(float(ub[j])), hi.append(float(ub[j + 1])), a.append(float(qb[j] - slope * ub[j])), b.append(float(slope))
        for j in range(len(a)):
            rows.append((i, j, lo[j], hi[j], a[j], b[j], err))
    seg = pd.DataFrame(rows, columns=["op", "segment", "u_lo", "u_hi", "static_w", "w_per_util", "segment_error_w"])
    keys = ops[["model", "hardware", "tp", "freq_mhz", "request_class"]].reset_index(drop=True)
    return pd.concat([keys.iloc[seg["op"].to_numpy()].reset_index(drop=True), seg.drop(columns=["op"])], axis=1)


def envelope_pieces(ops: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """Keep only the pieces on the lower envelope over clocks (pool.envelope); exact.

    Within one (model, class, hardware, TP) every piece is a line on a load interval
    ``[u_lo l^max, u_hi l^max]`` (req/s). The intervals are cut at every piece's end points; on
    each elementary interval a piece is dropped when another piece covering it draws no more
    power at both its ends (lines: then at every load in it), strictly less at one or, on a tie,
    comes first. An instance on a dropped part can move to the dominating piece at the same load
    and TP (same GPUs, so the same idle power of the rest), so no optimum is lost. The parts kept
    of each piece are merged back into runs; each run is a piece with its own ``[u_lo, u_hi]``.
    """
    seg = segments.merge(ops[["model", "hardware", "tp", "freq_mhz", "request_class", "max_load_rps"]],
                         on=["model", "hardware", "tp", "freq_mhz", "request_class"], how="inner")
    cap = seg["max_load_rps"].to_numpy(dtype=float)
    lo_l, hi_l = seg["u_lo"].to_numpy() * cap, seg["u_hi"].to_numpy() * cap
    a, b = seg["static_w"].to_numpy(dtype=float), seg["w_per_util"].to_numpy(dtype=float) / cap
    out = []  # (row, u_lo, u_hi)
    for _, idx in seg.groupby(["model", "request_class", "hardware", "tp"]).indices.items():
        grid = np.unique(np.r_[lo_l[idx], hi_l[idx]])
        x0, x1 = grid[:-1], grid[1:]
        tol = 1e-12 * max(1.0, float(grid[-1]))
        cover = (lo_l[idx, None] <= x0[None, :] + tol) & (hi_l[idx, None] >= x1[None, :] - tol)
        left = np.where(cover, a[idx, None] + b[idx, None] * x0[None, :], np.inf)
        right = np.where(cover, a[idx, None] + b[idx, None] * x1[None, :], np.inf)
        le_l = left[:, None, :] <= left[None, :, :]  # [j, i, t]: j no worse than i at the left end
        le_r = right[:, None, :] <= right[None, :, :]
        strict = (left[:, None, :] < left[None, :, :]) | (right[:, None, :] < right[None, :, :])
        first = np.arange(len(idx))[:, None, None] < np.arange(len(idx))[None, :, None]
        dom = (cover[:, None, :] & le_l & le_r & (strict | first)).any(axis=0)
        keep = cover & ~dom
        for r in np.flatnonzero(keep.any(axis=1)):
            kt = np.r_[False, keep[r], False].astype(np.int8)
            st, en = np.flatnonzero(np.diff(kt) == 1), np.flatnonzero(np.diff(kt) == -1)
            for s0, e0 in zip(st, en):
                out.append((idx[r], x0[s0] / cap[idx[r]], x1[e0 - 1] / cap[idx[r]]))
    if not out:
        return segments.iloc[:0].reset_index(drop=True)
    rows = np.array([o[0] for o in out], dtype=np.int64)
    res = seg.iloc[rows].drop(columns=["max_load_rps"]).reset_index(drop=True)
    res["u_lo"] = [min(max(o[1], 0.0), 1.0) for o in out]
    res["u_hi"] = [min(max(o[2], 0.0), 1.0) for o in out]
    key = ["model", "hardware", "tp", "freq_mhz", "request_class"]
    res = res.sort_values(key + ["u_lo"]).reset_index(drop=True)
    res["segment"] = res.groupby(key).cumcount()
    return res


def _dominated(profile: Profile, ops: pd.DataFrame) -> np.ndarray:
    """Point i is dominated by j (same model, class, hardware) when j uses no more GPUs, carries at
    least as much load under the SLO, and j's power plus the idle power of the GPUs it leaves free,
    ``P_j(l) + e_h (tp_i - tp_j)``, is no more than ``P_i(l)`` at every load in [0, l^max_i]: an
    instance of i is then replaced by one of j at the same load and the freed GPUs idle, at no more
    pool power (pool.md, "Pre-filtering"). Both curves are piecewise linear (held below their
    lightest load), so comparing at 0 and the union of their load points is exact. Identical
    points keep the first (lowest clock)."""
    starts, ends = profile.group_bounds
    load = profile.table["load_rps"].to_numpy()
    power = profile.table["power_w"].to_numpy()
    dom = np.zeros(len(ops), dtype=bool)
    gids = ops["group_id"].to_numpy()
    tps = ops["tp"].to_numpy()
    caps = ops["max_load_rps"].to_numpy()
    for (_, _, hw), idx in ops.groupby(["model", "request_class", "hardware"]).indices.items():
        idle_w = float(profile.hardware[hw].idle_power_w)
        for i in idx:
            si, ei = starts[gids[i]], ends[gids[i]]
            for j in idx:
                if i == j or dom[j] or tps[j] > tps[i] or caps[j] < caps[i]:
                    continue
                sj, ej = starts[gids[j]], ends[gids[j]]
                pts = np.union1d(load[si:ei], load[sj:ej])
                pts = np.r_[0.0, pts[pts <= caps[i]]]
                pi = np.interp(pts, load[si:ei], power[si:ei])
                pj = np.interp(pts, load[sj:ej], power[sj:ej]) + idle_w * (tps[i] - tps[j])
                if np.all(pj <= pi):
                    strictly = caps[j] > caps[i] or np.any(pj < pi)
                    if strictly or j < i:
                        dom[i] = True
                        break
    return dom


def spill_targets(class_names: tuple[str, ...], n_out_bins: int, policy: str) -> dict[str, tuple[str, ...]]:
    """For each class, the pools (named by class) that may serve it, its own pool first."""
    out = {}
    for i, c in enumerate(class_names):
        ri, ci = divmod(i, n_out_bins)
        targets = [c]
        if policy == "next" and i + 1 < len(class_names):
            targets.append(class_names[i + 1])
        elif policy == "larger":
            for j, d in enumerate(class_names):
                rj, cj = divmod(j, n_out_bins)
                if j != i and rj >= ri and cj >= ci:
                    targets.append(d)
        out[c] = tuple(targets)
    return out


MAX_FORECAST_RPS = 1e12
"""Largest per-class load a forecast may ask for (req/s). Far beyond any cluster (a million H100
servers carry well under 1e8 req/s of Llama2-70B), and small enough that instance counts, GPU
counts and every solver coefficient derived from it stay finite and exact to a few digits."""


def check_forecast(forecast: Mapping[str, float] | pd.Series, class_names: tuple[str, ...]) -> dict[str, float]:
    """Per-class load forecast (req/s) as a plain dict; unknown classes or bad values raise.

    A load is a real number in [0, :data:`MAX_FORECAST_RPS`]; booleans, strings, None and NaN
    are refused, before anything is computed from them."""
    if isinstance(forecast, pd.Series):
        f = dict(forecast.items())
    elif isinstance(forecast, Mapping):
        f = dict(forecast)
    else:
        raise ValidationError(f"forecast: {type(forecast).__name__} {excerpt(forecast)}; expected a mapping of "
                              "request class to load (req/s), e.g. {'SS': 12.5}")
    unknown = sorted((k for k in f if k not in class_names), key=repr)
    if unknown:
        raise ValidationError(f"forecast: unknown request class(es) {excerpt(unknown)}; known: {list(class_names)}")
    return {c: number(f.get(c, 0.0), f"forecast: class {c} load", lo=0.0, hi=MAX_FORECAST_RPS, unit="req/s")
            for c in class_names}


__all__ = ["DEFAULT_SLOS", "Inventory", "MAX_FORECAST_RPS", "PlannerOptions", "check_forecast", "envelope_pieces", "operating_points",
           "power_segments",
           "spill_targets"]
