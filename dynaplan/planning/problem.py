"""The validated inputs of planning: inventory, SLOs, epochs, and the operating points.

An *operating point* is one (request class, hardware, TP, clock) with the profile condensed to
what the linear formulations need (``formulations/pool.md``, section "Load representation"):

* ``max_load_rps``  l^max_{k,c}: highest profiled load meeting the class's P99 SLOs (req/s);
* ``static_w`` a_{k,c} and ``w_per_rps`` b_{k,c}: the chord of the profile's power curve from
  its lightest load point to ``max_load_rps``, so an instance at load l draws about a + b l (W);
* ``chord_error_w``: the largest distance between the chord and the profile's piecewise-linear
  power on [0, l^max] (W per instance) — the bound on the per-instance power error of the
  linear model.

Points that cannot meet the SLO at any load are dropped; so are points dominated by another of
the same class and hardware (no more GPUs, no more static or marginal power, no less capacity).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dynaplan.domain.slo import DEFAULT_SLOS, SLOTable
from dynaplan.errors import ValidationError
from dynaplan.profiles.profile import Profile


class Inventory(BaseModel):
    """Servers available per hardware type."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    servers: dict[str, int] = Field(description="Servers available, by hardware type name (count).")

    @field_validator("servers")
    @classmethod
    def _nonneg(cls, v: dict[str, int]) -> dict[str, int]:
        for name, n in v.items():
            if n < 0:
                raise ValueError(f"inventory: {name} has {n} servers; expected >= 0")
        return v


class PlannerOptions(BaseModel):
    """Time scales and modelling choices of the planner."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cluster_epoch_s: float = Field(default=1800.0, gt=0, description="Cluster-level period (s).")
    pool_epoch_s: float = Field(default=300.0, gt=0, description="Pool-level period (s).")
    instance_epoch_s: float = Field(default=5.0, gt=0, description="Instance-level period (s).")
    spill: str = Field(
        default="next",
        description="Which pools may take a class's load: 'none' (own pool only), 'next' (own and "
        "the next larger class's pool) or 'larger' (any pool whose input and output bins are both "
        "at least the class's).",
    )
    prune_dominated: bool = Field(default=True, description="Drop dominated operating points.")
    best_effort: bool = Field(
        default=False,
        description="When the forecast cannot be met, serve as much as possible and report the "
        "unserved load instead of raising InfeasibleError.",
    )
    unserved_penalty_w_per_rps: float = Field(
        default=1e6, gt=0, description="Best-effort penalty per unserved req/s, in objective units (W)."
    )

    @field_validator("spill")
    @classmethod
    def _spill(cls, v: str) -> str:
        if v not in ("none", "next", "larger"):
            raise ValueError(f"spill must be 'none', 'next' or 'larger', got {v!r}")
        return v


def operating_points(profile: Profile, slos: SLOTable, prune_dominated: bool = True) -> pd.DataFrame:
    """Condense a profile into SLO-feasible operating points (one vectorised pass).

    Returns one row per feasible (model, hardware, tp, freq_mhz, request_class) with
    ``max_load_rps``, ``static_w``, ``w_per_rps``, ``chord_error_w`` and ``dominated``
    (dropped from the frame when ``prune_dominated``).
    """
    mls = profile.max_load_under_slo(slos).reset_index()  # keeps the profile's group_id
    tab = profile.table
    starts, ends = profile.group_bounds  # rows are sorted by group, then load
    gid = np.repeat(np.arange(len(starts)), ends - starts)
    load = tab["load_rps"].to_numpy()
    power = tab["power_w"].to_numpy()
    l0, p0 = load[starts], power[starts]
    lmax = mls["max_load_rps"].to_numpy()
    pmax = mls["power_w"].to_numpy()
    span = lmax - l0
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(span > 0, (pmax - p0) / np.where(span > 0, span, 1.0), 0.0)
    intercept = p0 - slope * l0
    chord_rows = intercept[gid] + slope[gid] * load
    in_range = load <= lmax[gid] * (1 + 1e-12)
    dev = np.where(in_range, np.abs(power - chord_rows), 0.0)
    err = np.maximum.reduceat(dev, starts)
    err = np.maximum(err, np.abs(slope) * l0)  # below the lightest point the profile is held at p0
    out = mls.assign(static_w=intercept, w_per_rps=slope, chord_error_w=err)
    out = out[out["feasible"] & (out["max_load_rps"] > 0)].drop(columns=["feasible"])
    out = out.reset_index(drop=True)
    out["dominated"] = _dominated(out)
    if prune_dominated:
        out = out[~out["dominated"]].reset_index(drop=True)
    return out


def _dominated(ops: pd.DataFrame) -> np.ndarray:
    """Point i is dominated by j (same model, class, hardware) if j uses no more GPUs, has no
    more static and marginal power and no less capacity, and is strictly better in one."""
    dom = np.zeros(len(ops), dtype=bool)
    for _, idx in ops.groupby(["model", "request_class", "hardware"]).indices.items():
        sub = ops.iloc[idx]
        tp = sub["tp"].to_numpy()[:, None]
        a = sub["static_w"].to_numpy()[:, None]
        b = sub["w_per_rps"].to_numpy()[:, None]
        cap = sub["max_load_rps"].to_numpy()[:, None]
        # [i, j]: j dominates i
        weak = (tp.T <= tp) & (a.T <= a) & (b.T <= b) & (cap.T >= cap)
        strict = (tp.T < tp) | (a.T < a) | (b.T < b) | (cap.T > cap)
        d = weak & strict
        # identical points: keep the first (lowest clock) only
        same = (tp.T == tp) & (a.T == a) & (b.T == b) & (cap.T == cap)
        d |= same & np.tril(np.ones_like(same, dtype=bool), k=-1)
        dom[idx] = d.any(axis=1)
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


def check_forecast(forecast: Mapping[str, float] | pd.Series, class_names: tuple[str, ...]) -> dict[str, float]:
    """Per-class load forecast (req/s) as a plain dict; unknown classes or bad values raise."""
    f = dict(forecast.items()) if isinstance(forecast, pd.Series) else dict(forecast)
    unknown = sorted(set(f) - set(class_names))
    if unknown:
        raise ValidationError(f"forecast: unknown request class(es) {unknown}; known: {list(class_names)}")
    out = {}
    for c in class_names:
        v = float(f.get(c, 0.0))
        if not np.isfinite(v) or v < 0:
            raise ValidationError(f"forecast: class {c} load {v!r} req/s; expected a finite value >= 0")
        out[c] = v
    return out


__all__ = ["DEFAULT_SLOS", "Inventory", "PlannerOptions", "check_forecast", "operating_points", "spill_targets"]
