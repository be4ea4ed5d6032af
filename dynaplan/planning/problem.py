"""The validated inputs of planning: inventory, options, and the operating points.

An *operating point* is one (request class, hardware, TP, clock) with the profile condensed to
what the formulations need (``formulations/pool.md``, "Load representation"):

* ``max_load_rps`` l^max_{k,c}: highest profiled load meeting the class's P99 SLOs (req/s);
* the instance's power as a function of its utilisation ``u = l / l^max`` in [0, 1],
  ``Q(u) = P(u l^max)``, replaced by a concave piecewise-linear curve through a few profile load
  points: :func:`power_segments` gives each piece's line ``A_j + B_j u`` (W), and
  ``segment_error_w`` bounds the distance between that curve and the profile's (W per instance);
* ``static_w`` / ``w_per_util``: the single chord (one piece), used by the cluster level.

Points that cannot meet the SLO at any load are dropped, and so are points dominated by another
of the same class and hardware (no more GPUs, no less capacity, no more power at any load).
"""

from __future__ import annotations

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
    instance_epoch_s: float = Field(default=5.0, gt=0, le=MAX_DURATION_S, description="Instance-level period (s).")
    spill: str = Field(
        default="next",
        description="Which pools may take a class's load: 'none' (own pool only), 'next' (own and "
        "the next larger class's pool) or 'larger' (any pool whose input and output bins are both "
        "at least the class's).",
    )
    prune_dominated: bool = Field(default=True, description="Drop dominated operating points.")
    load_segments: int = Field(
        default=3, ge=1, le=64,
        description="Pieces of the piecewise-linear power curve per operating point at the pool level "
        "(count); 1 is the single chord. Breakpoints are profile load points, so with as many pieces as "
        "load points the curve is the profile's own interpolation.",
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
    cluster_mip_rel_gap: float | None = Field(
        default=1e-3, ge=0,
        description="Relative MIP gap of the cluster level (fraction); None: SolveOptions.mip_rel_gap. "
        "The cluster objective (whole-server recipes, chords) is an estimate the pool level "
        "re-optimises inside the allotment, so proving it to 0.01% buys nothing: at 12,500 servers "
        "1e-3 instead of 1e-4 cut the hierarchy's p95 from 312 to 114 ms and moved the plans' "
        "energy by at most 0.026% (benchmarks/RESULTS.md, target b).",
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
    if prune_dominated:
        out = out[~out["dominated"]].reset_index(drop=True)
    return out


def power_segments(profile: Profile, ops: pd.DataFrame, n_segments: int) -> pd.DataFrame:
    """Piecewise-linear power in utilisation for every operating point (pool.segments).

    Breakpoints are the lightest profiled load ``l_0`` and ``n_segments`` load points of the
    profile up to ``l^max``, spread evenly over the points available. Piece ``j`` is the line
    through ``Q(u_{j-1})`` and ``Q(u_j)``; the first is extended down to ``u = 0``. Returns one
    row per (operating point, piece) with ``segment``, ``u_hi``, ``static_w`` (A_j, W) and
    ``w_per_util`` (B_j, W per unit utilisation), and ``segment_error_w``: the largest
    ``|Q(u) - min_j (A_j + B_j u)|`` over the profile's load points in [0, l^max] and u = 0 (W).
    For a concave profile the lower envelope of the lines is the interpolant through the
    breakpoints, so the error is zero at the breakpoints and small between them.
    """
    starts, ends = profile.group_bounds
    load = profile.table["load_rps"].to_numpy()
    power = profile.table["power_w"].to_numpy()
    rows = []
    for i, (gid, lmax) in enumerate(zip(ops["group_id"].to_numpy(), ops["max_load_rps"].to_numpy())):
        s, e = starts[gid], ends[gid]
        lg, pg = load[s:e], power[s:e]
        m = int(np.searchsorted(lg, lmax * (1 + 1e-12), side="right"))  # points with load <= lmax
        u, q = lg[:m] / lmax, pg[:m]
        if m == 1:
            idx = np.array([0, 0])
        else:
            k = min(n_segments, m - 1)
            idx = np.unique(np.r_[0, np.rint(np.linspace(0, m - 1, k + 1)[1:]).astype(int)])
        ub, qb = u[idx], q[idx]
        if len(idx) < 2 or ub[-1] <= ub[0]:
            a, b, hi = np.array([qb[-1]]), np.array([0.0]), np.array([1.0])
        else:
            b = np.diff(qb) / np.diff(ub)
            a = qb[:-1] - b * ub[:-1]
            hi = ub[1:]
        grid_u = np.r_[0.0, u]
        grid_q = np.r_[q[0], q]  # the profile holds its first value below the lightest load
        env = np.min(a[:, None] + b[:, None] * grid_u[None, :], axis=0)
        err = float(np.max(np.abs(grid_q - env)))
        for j in range(len(a)):
            rows.append((i, j, float(hi[j]), float(a[j]), float(b[j]), err))
    seg = pd.DataFrame(rows, columns=["op", "segment", "u_hi", "static_w", "w_per_util", "segment_error_w"])
    keys = ops[["model", "hardware", "tp", "freq_mhz", "request_class"]].reset_index(drop=True)
    return pd.concat([keys.iloc[seg["op"].to_numpy()].reset_index(drop=True), seg.drop(columns=["op"])], axis=1)


def envelope_pieces(ops: pd.DataFrame, segments: pd.DataFrame, grid_points: int = 256) -> pd.DataFrame:
    """Keep only the power pieces on the lower envelope over clocks (pool.envelope).

    The instance level later runs every instance at the least-power clock for its load, so the
    pool level only needs, for each (class, hardware, TP), the pieces that are the cheapest way to
    carry some load: piece ``j`` of clock ``f`` draws ``A_j + B_j l / l^max_f`` (W) at load ``l``
    for ``0 <= l <= l^max_f``. A piece is kept when it is the minimum among the pieces able to
    carry ``l`` at one of ``grid_points`` loads spread over ``[0, max_f l^max_f]`` or at one of the
    capacities ``l^max_f``. Exact for instances serving their own class (a dropped piece is never
    cheaper than a kept one at the grid loads); spilled classes see only the kept clocks.
    """
    seg = segments.merge(ops[["hardware", "tp", "freq_mhz", "request_class", "max_load_rps"]],
                         on=["hardware", "tp", "freq_mhz", "request_class"], how="inner")
    keep = np.zeros(len(seg), dtype=bool)
    for _, idx in seg.groupby(["model", "request_class", "hardware", "tp"]).indices.items():
        cap = seg["max_load_rps"].to_numpy()[idx]
        a = seg["static_w"].to_numpy()[idx]
        b = seg["w_per_util"].to_numpy()[idx] / cap
        loads = np.unique(np.r_[np.linspace(0.0, cap.max(), grid_points), cap])
        cost = a[:, None] + b[:, None] * loads[None, :]
        cost[cap[:, None] < loads[None, :] * (1 - 1e-12)] = np.inf
        keep[idx[np.unique(np.argmin(cost, axis=0))]] = True
    return segments.loc[keep].reset_index(drop=True)


def _dominated(profile: Profile, ops: pd.DataFrame) -> np.ndarray:
    """Point i is dominated by j (same model, class, hardware) when j uses no more GPUs, carries at
    least as much load under the SLO, and draws no more power than i at every load in [0, l^max_i]
    (both curves are piecewise linear, so comparing at the union of their load points is exact).
    Identical points keep the first (lowest clock)."""
    starts, ends = profile.group_bounds
    load = profile.table["load_rps"].to_numpy()
    power = profile.table["power_w"].to_numpy()
    dom = np.zeros(len(ops), dtype=bool)
    gids = ops["group_id"].to_numpy()
    tps = ops["tp"].to_numpy()
    caps = ops["max_load_rps"].to_numpy()
    for _, idx in ops.groupby(["model", "request_class", "hardware"]).indices.items():
        for i in idx:
            si, ei = starts[gids[i]], ends[gids[i]]
            for j in idx:
                if i == j or dom[j] or tps[j] > tps[i] or caps[j] < caps[i]:
                    continue
                sj, ej = starts[gids[j]], ends[gids[j]]
                pts = np.union1d(load[si:ei], load[sj:ej])
                pts = np.r_[0.0, pts[pts <= caps[i]]]
                pi = np.interp(pts, load[si:ei], power[si:ei])
                pj = np.interp(pts, load[sj:ej], power[sj:ej])
                if np.all(pj <= pi):
                    strictly = tps[j] < tps[i] or caps[j] > caps[i] or np.any(pj < pi)
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
