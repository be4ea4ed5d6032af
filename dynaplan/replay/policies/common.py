"""Pieces the bundled policies share: capacities, restricted planners, forecasts, a plan cache."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dynaplan.errors import ValidationError
from dynaplan.planning import Planner, PlannerOptions
from dynaplan.profiles.profile import Profile
from dynaplan.replay.deployment import Deployment
from dynaplan.replay.policy import Observation, Policy, ReplayContext
from dynaplan.workload.forecast import Forecaster, LastPeakForecaster, SeasonalForecaster


def default_hardware(ctx: ReplayContext, hardware: str | None) -> str:
    """``hardware`` or the inventory's first hardware type."""
    hw = hardware or next(iter(ctx.inventory))
    if hw not in ctx.inventory:
        raise ValidationError(f"hardware {hw!r} is not in the inventory {dict(ctx.inventory)}")
    return hw


class StaticPolicy(Policy):
    """A cluster sized once for the trace's peak from TP ``tp`` instances on ``hardware`` (default:
    the inventory's first type), ``peak_scale`` times that peak, never changed afterwards.
    Subclasses give the deployment in :meth:`initial`."""

    sized_for_peak = True

    def __init__(self, *, hardware: str | None = None, tp: int = 8, peak_scale: float = 1.0) -> None:
        self.hardware, self.tp, self.peak_scale = hardware, tp, peak_scale

    def decide(self, obs: Observation) -> Deployment | None:
        if obs.current is not None:
            return None
        return self.initial(self.ctx, default_hardware(self.ctx, self.hardware))

    def initial(self, ctx: ReplayContext, hardware: str) -> Deployment:
        raise NotImplementedError


def max_clock(ctx: ReplayContext, hardware: str) -> int:
    return ctx.profile.hardware[hardware].max_clock_mhz


def capacity_rps(ctx: ReplayContext, hardware: str, tp: int, freq_mhz: int) -> np.ndarray:
    """Per class, the capacity of one instance used to add loads (``ProfileTables.ref``), req/s."""
    t = ctx.tables
    k = t.key_of(hardware, tp)
    return t.ref[k, t.clock_col(k, freq_mhz), :].copy()


def max_servers(ctx: ReplayContext, hardware: str) -> int:
    return int(ctx.inventory[hardware])


def fit_counts(counts: Mapping[str, int], limit: int) -> dict[str, int]:
    """Scale integer counts down (largest remainders first) so they sum to at most ``limit``."""
    total = sum(counts.values())
    if total <= limit:
        return dict(counts)
    raw = {k: v * limit / total for k, v in counts.items()}
    out = {k: int(math.floor(v)) for k, v in raw.items()}
    for k in sorted(raw, key=lambda q: raw[q] - out[q], reverse=True)[: limit - sum(out.values())]:
        out[k] += 1
    return out


def restricted_profile(profile: Profile, *, hardware: str, freq_mhz: int | None = None,
                       tp: int | None = None) -> Profile:
    """The profile restricted to one hardware type and optionally one clock and one TP degree."""
    t = profile.table
    m = t["hardware"] == hardware
    if freq_mhz is not None:
        m &= t["freq_mhz"] == freq_mhz
    if tp is not None:
        m &= t["tp"] == tp
    cols = [c for c in t.columns if c != "energy_per_request_j"]
    return Profile(t.loc[m, cols].reset_index(drop=True), source=f"{profile.source} [{hardware}"
                   f"{'' if freq_mhz is None else f' @{freq_mhz}MHz'}{'' if tp is None else f' TP{tp}'}]",
                   hardware=profile.hardware, classes=profile.classes, complete=False)


def planner_for(ctx: ReplayContext, profile: Profile | None = None, *, spill: str = "next",
                inventory: Mapping[str, int] | None = None) -> Planner:
    opts = PlannerOptions(best_effort=True, spill=spill, cluster_epoch_s=ctx.cluster_epoch_s,
                          pool_epoch_s=ctx.pool_epoch_s)
    return Planner(profile or ctx.profile, dict(inventory or ctx.inventory), ctx.slos, options=opts,
                   transition_costs=ctx.transition_costs, model=ctx.model)


@dataclass(frozen=True)
class MaxForecaster(Forecaster):
    """Element-wise maximum of two forecasters (e.g. yesterday's same slot and the last peak)."""

    first: Forecaster
    second: Forecaster

    def backtest(self, peaks: pd.DataFrame, horizon_only: bool = False) -> pd.DataFrame:
        a = self.first.backtest(peaks, horizon_only)
        b = self.second.backtest(peaks, horizon_only)
        return np.fmax(a, b)


@dataclass(frozen=True)
class RecentPeakForecaster(Forecaster):
    """Next peak = the highest of the last ``epochs`` epoch peaks, times ``1 + headroom``.

    The pool level's default with ``epochs`` = one cluster epoch of pool epochs (the last 30 min
    in 5-min epochs): a burst seen recently is provisioned for again, not forgotten after 5 min.
    """

    epochs: int = 6
    headroom: float = 0.1

    def backtest(self, peaks: pd.DataFrame, horizon_only: bool = False) -> pd.DataFrame:
        recent = peaks.rolling(max(1, self.epochs), min_periods=1).max()
        return LastPeakForecaster(headroom=self.headroom).backtest(recent, horizon_only)


def default_pool_forecaster(ctx: ReplayContext, headroom: float = 0.1) -> Forecaster:
    """The highest pool-epoch peak of the last cluster epoch, times ``1 + headroom``."""
    return RecentPeakForecaster(epochs=max(1, int(round(ctx.cluster_epoch_s / ctx.pool_epoch_s))), headroom=headroom)


def default_cluster_forecaster(ctx: ReplayContext, headroom: float = 0.1) -> Forecaster:
    """Max of the last epoch's peak and the same epoch one day earlier, times ``1 + headroom``."""
    per_day = max(1, int(round(86400 / ctx.cluster_epoch_s)))
    return MaxForecaster(LastPeakForecaster(headroom=headroom),
                         SeasonalForecaster(period_epochs=per_day, headroom=headroom))


def forecast_peak(obs: Observation, forecaster: Forecaster, epoch_s: float,
                  names: tuple[str, ...], max_epochs: int = 400) -> dict[str, float]:
    """The next epoch's per-class peak from the last ``max_epochs`` epoch peaks of the history
    (enough for a daily season of 30-min epochs several times over). A history shorter than one
    epoch (a trace shorter than the cluster epoch: its mirrored start is all there is before it)
    is one epoch of its own length, so the forecast is its peak, not zero; empty history: zeros."""
    peaks = obs.peaks(epoch_s, last=max_epochs)
    if len(peaks) == 0 and len(obs.history_rps) > 0:
        peaks = obs.peaks(len(obs.history_rps) * obs.window_s)
    if len(peaks) == 0:
        return {c: 0.0 for c in names}
    peaks.columns = list(names)
    fc = forecaster.forecast(peaks)
    return {c: float(max(0.0, v)) if np.isfinite(v) else 0.0 for c, v in fc.items()}


def quantise(x: float, ratio: float = 1.05, floor_rps: float = 1e-3) -> float:
    """Round a load up onto a geometric grid (so near-equal forecasts share a cached plan)."""
    if x <= floor_rps:
        return 0.0 if x <= 0 else floor_rps
    return float(ratio ** math.ceil(math.log(x) / math.log(ratio) - 1e-9))


class PoolPlanCache:
    """Pool-level plans by (pool, servers, quantised loads), so repeated loads cost no solve."""

    def __init__(self, planner: Planner) -> None:
        self.planner = planner
        self._cache: dict = {}
        self.solves = 0
        self.hits = 0

    def plan(self, pool: str, loads: Mapping[str, float], servers: Mapping[str, int]):
        q = {c: quantise(v) for c, v in loads.items() if v > 0}
        key = (pool, tuple(sorted(servers.items())), tuple(sorted(q.items())))
        hit = self._cache.get(key)
        if hit is not None:
            self.hits += 1
            return hit
        self.solves += 1
        pp = self.planner.plan_pool(pool, q, servers)
        self._cache[key] = pp
        return pp


__all__ = ["MaxForecaster", "PoolPlanCache", "RecentPeakForecaster", "capacity_rps", "default_cluster_forecaster",
           "default_hardware", "default_pool_forecaster",
           "fit_counts", "forecast_peak", "max_clock", "max_servers", "planner_for", "quantise",
           "restricted_profile"]
