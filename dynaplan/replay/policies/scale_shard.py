"""ScaleShard: MultiPool's servers, re-sharded every pool epoch at the maximum clock.

Each class pool keeps the servers MultiPool sizes for its peak. Every pool epoch (5 min) the pool
level re-plans its TP mix for the forecast peak of the next epoch (the highest 5-min peak of the
last 30 min, +10%, as DynamoLLM's pool level) with
the pool MILP restricted to the maximum clock (``Planner.plan_pool`` on a max-clock profile, no
spill): fewer, smaller instances at low load, GPUs without an instance idle. Re-shards move
weights GPU-to-GPU (~50 ms) by default.
"""

from __future__ import annotations

from dynaplan.replay.deployment import Deployment
from dynaplan.replay.policies.common import (PoolPlanCache, default_hardware, default_pool_forecaster,
                                             forecast_peak, max_clock, planner_for, restricted_profile)
from dynaplan.replay.policies.multi_pool import peak_sized_pools
from dynaplan.replay.policy import Observation, Policy
from dynaplan.workload.forecast import Forecaster

MIN_LOAD_RPS = 0.01


class ScaleShard(Policy):
    """Per-class pools on fixed servers; the TP mix follows the load; clock fixed at the maximum."""

    name = "ScaleShard"
    sized_for_peak = True  # the servers of every pool, as MultiPool

    def __init__(self, *, hardware: str | None = None, forecaster: Forecaster | None = None,
                 headroom: float = 0.1, peak_scale: float = 1.0) -> None:
        self.hardware, self.forecaster, self.headroom, self.peak_scale = hardware, forecaster, headroom, peak_scale

    def reset(self, ctx) -> None:
        super().reset(ctx)
        hw = default_hardware(ctx, self.hardware)
        self._hw, self._f = hw, max_clock(ctx, hw)
        per_server = ctx.profile.hardware[hw].gpus_per_server // 8
        self._servers = {c: -(-n // per_server) for c, n in peak_sized_pools(ctx, hw, 8, self.peak_scale).items()}
        prof = restricted_profile(ctx.profile, hardware=hw, freq_mhz=self._f)
        self._plans = PoolPlanCache(planner_for(ctx, prof, spill="none", inventory={hw: ctx.inventory[hw]}))
        self._fc = self.forecaster or default_pool_forecaster(ctx, self.headroom)

    def decide(self, obs: Observation) -> Deployment | None:
        ctx = self.ctx
        fc = forecast_peak(obs, self._fc, ctx.pool_epoch_s, ctx.class_names)
        # a pool keeps at least one small instance (planned for MIN_LOAD_RPS) while it has servers
        pools = [self._plans.plan(p, {p: max(fc[p], MIN_LOAD_RPS)}, {self._hw: n}) for p, n in self._servers.items()]
        servers = {p: {self._hw: n} for p, n in self._servers.items()}
        return Deployment.from_pool_plans(pools, {p: {p: 1.0} for p in self._servers}, instance_level=False,
                                          servers=servers)
