"""DynamoLLM: all three knobs through the hierarchical planner at the published time scales.

* **Cluster level** (every cluster epoch, 30 min): ``Planner.allot`` for the forecast peak of the
  next epoch (default: the larger of the last epoch's peak and the same epoch a day before, +10%)
  — servers per pool and the routing of each predicted class over its own and the next pool. A
  forecast beyond the inventory is scaled down until it fits (every class keeps its pools).
* **Pool level** (every pool epoch, 5 min): ``Planner.plan_pool`` for every pool inside its
  servers, for the forecast peak of the next pool epoch (the highest 5-min peak of the last 30 min,
  +10%) routed as the allotment says; a pool is re-planned only when its servers change or a class's load moves by more
  than ``replan_tolerance`` (the hysteresis that stops reconfiguring for noise).
* **Instance level** (every window, 5 s): the engine's clock choice (groups have no fixed clock).

Plans are cached by (pool, servers, loads rounded up to a 5% grid), so recurring loads cost no
solve.
"""

from __future__ import annotations

from dynaplan.replay.deployment import Deployment
from dynaplan.replay.policies.common import (PoolPlanCache, default_cluster_forecaster, default_pool_forecaster,
                                             forecast_peak, planner_for, quantise)
from dynaplan.replay.policy import Observation, Policy
from dynaplan.workload.forecast import Forecaster


class DynamoLLM(Policy):
    """Hierarchical planning: allotment every cluster epoch, pools every pool epoch, clocks every window."""

    name = "DynamoLLM"

    def __init__(self, *, cluster_forecaster: Forecaster | None = None, pool_forecaster: Forecaster | None = None,
                 headroom: float = 0.1, replan_tolerance: float = 0.05, spill: str = "next") -> None:
        self.cluster_forecaster, self.pool_forecaster = cluster_forecaster, pool_forecaster
        self.headroom, self.replan_tolerance, self.spill = headroom, replan_tolerance, spill

    def reset(self, ctx) -> None:
        super().reset(ctx)
        self.planner = planner_for(ctx, spill=self.spill)
        self._plans = PoolPlanCache(self.planner)
        self._cfc = self.cluster_forecaster or default_cluster_forecaster(ctx, self.headroom)
        self._pfc = self.pool_forecaster or default_pool_forecaster(ctx, self.headroom)
        self.allotment = None
        self._pools: dict[str, tuple] = {}   # pool -> (servers, planned loads, PoolPlan)
        self.allot_calls = 0

    def _allot(self, forecast: dict[str, float]) -> None:
        """Cluster level. When the forecast does not fit the inventory, the best-effort allotment
        would drop whole classes (the ones that cost most capacity per req/s); instead the forecast
        is scaled down until it fits, so every class keeps pools and the shortfall is shared."""
        f = {c: quantise(v) for c, v in forecast.items()}
        total = sum(f.values())
        scale = 1.0
        for _ in range(8):
            self.allotment = self.planner.allot({c: v * scale for c, v in f.items()})
            self.allot_calls += 1
            served = sum(v * min(1.0, sum((self.allotment.routing.get(c) or {}).values())) for c, v in f.items())
            if total <= 0 or served >= 0.999 * total:
                break
            scale *= 0.97 * served / total

    def _pool_loads(self, forecast: dict[str, float]) -> dict[str, dict[str, float]]:
        routed: dict[str, dict[str, float]] = {}
        for c, v in forecast.items():
            for p, share in (self.allotment.routing.get(c) or {}).items():
                if v * share > 0:
                    routed.setdefault(p, {})[c] = v * share
        return routed

    def _changed(self, old: dict[str, float], new: dict[str, float]) -> bool:
        tol = self.replan_tolerance
        for c in set(old) | set(new):
            a, b = old.get(c, 0.0), new.get(c, 0.0)
            if abs(b - a) > tol * max(a, 1e-9):
                return True
        return False

    def _deployment(self, forecast: dict[str, float]) -> Deployment:
        routed = self._pool_loads(forecast)
        plans = []
        for p, srv in self.allotment.servers.items():
            loads = routed.get(p, {})
            prev = self._pools.get(p)
            if prev is not None and prev[0] == srv and not self._changed(prev[1], loads):
                plans.append(prev[2])
                continue
            pp = self._plans.plan(p, loads, srv)
            self._pools[p] = (dict(srv), dict(loads), pp)
            plans.append(pp)
        self._pools = {p: v for p, v in self._pools.items() if p in self.allotment.servers}
        return Deployment.from_pool_plans(plans, self.allotment.routing, instance_level=True,
                                          servers=self.allotment.servers)

    def decide(self, obs: Observation) -> Deployment | None:
        ctx = self.ctx
        pool_fc = forecast_peak(obs, self._pfc, ctx.pool_epoch_s, ctx.class_names)
        if obs.level == "cluster" or self.allotment is None:
            self._allot(forecast_peak(obs, self._cfc, ctx.cluster_epoch_s, ctx.class_names))
        elif self._unrouted(pool_fc):  # traffic of a class the allotment gave no pool (e.g. the
            # first requests after epochs of none): the cluster level re-plans now, not at the
            # next cluster epoch
            cluster_fc = forecast_peak(obs, self._cfc, ctx.cluster_epoch_s, ctx.class_names)
            self._allot({c: max(v, pool_fc.get(c, 0.0)) for c, v in cluster_fc.items()})
        return self._deployment(pool_fc)

    def _unrouted(self, forecast: dict[str, float]) -> bool:
        return any(v > 0 and sum((self.allotment.routing.get(c) or {}).values()) <= 0 for c, v in forecast.items())
