"""ScaleInst: per-class pools of TP8 instances at the maximum clock whose number follows the load.

At every cluster epoch (30 min) pool ``p`` gets ``ceil(F_p / cap_p)`` instances (at least one
while its class has been seen), ``F_p`` the forecast peak of predicted class ``p`` for the next
epoch (default: the larger of the last epoch's peak and the same epoch a day before, +10%) and
``cap_p`` its max load under the SLO on TP8 at the maximum clock. New instances boot for the
transition model's ``start_s`` before they serve.
"""

from __future__ import annotations

import math

from dynaplan.replay.deployment import Deployment, GroupSpec
from dynaplan.replay.policies.common import (capacity_rps, default_cluster_forecaster, default_hardware,
                                             fit_counts, forecast_peak, max_clock, max_servers)
from dynaplan.replay.policy import Observation, Policy
from dynaplan.workload.forecast import Forecaster


class ScaleInst(Policy):
    """Number of instances per pool re-sized every cluster epoch; TP and clock fixed (TP8, max)."""

    name = "ScaleInst"

    def __init__(self, *, hardware: str | None = None, tp: int = 8, forecaster: Forecaster | None = None,
                 headroom: float = 0.1) -> None:
        self.hardware, self.tp, self.forecaster, self.headroom = hardware, tp, forecaster, headroom

    def reset(self, ctx) -> None:
        super().reset(ctx)
        self._fc = self.forecaster or default_cluster_forecaster(ctx, self.headroom)
        self._seen: set[str] = set()

    def decide(self, obs: Observation) -> Deployment | None:
        if obs.level != "cluster" and obs.current is not None:
            return None
        ctx = self.ctx
        hw = default_hardware(ctx, self.hardware)
        f = max_clock(ctx, hw)
        cap = dict(zip(ctx.class_names, capacity_rps(ctx, hw, self.tp, f)))
        fc = forecast_peak(obs, self._fc, ctx.cluster_epoch_s, ctx.class_names)
        self._seen |= {c for c, v in fc.items() if v > 0}
        counts = {c: max(1, math.ceil(fc[c] / cap[c] - 1e-9)) for c in ctx.class_names if c in self._seen}
        if not counts:
            counts = {ctx.class_names[-1]: 1}
        per_server = ctx.profile.hardware[hw].gpus_per_server // self.tp
        counts = fit_counts(counts, max_servers(ctx, hw) * per_server)
        groups = tuple(GroupSpec(c, hw, self.tp, n, f) for c, n in counts.items() if n > 0)
        return Deployment(groups=groups, routing={c: {c: 1.0} for c in counts if counts[c] > 0},
                          note=f"forecast {({c: round(v, 2) for c, v in fc.items()})}")
