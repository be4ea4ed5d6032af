"""SinglePool: every request on one pool of TP8 instances at the maximum clock, sized for the peak.

The pool has ``ceil(peak_scale x max_w sum_t rate[w, t] / cap_t)`` instances, ``cap_t`` the max
load under the SLO of class ``t`` on TP8 at the maximum clock (the peak utilisation of the whole
trace, at the smoothed rate instances see), capped by the inventory. ``peak_scale > 1`` sizes the
cluster for a higher design peak than the trace reaches (a cluster provisioned for a busier
time). Nothing changes during the replay.
"""

from __future__ import annotations

import math

import numpy as np

from dynaplan.replay.deployment import Deployment, GroupSpec
from dynaplan.replay.policies.common import StaticPolicy, capacity_rps, max_clock, max_servers
from dynaplan.replay.policy import ReplayContext


class SinglePool(StaticPolicy):
    """One pool, TP ``tp`` (8) at the maximum clock, sized for the trace's peak."""

    name = "SinglePool"

    def initial(self, ctx: ReplayContext, hw: str) -> Deployment:
        f = max_clock(ctx, hw)
        cap = capacity_rps(ctx, hw, self.tp, f)
        u = ctx.peak.peak_utilisation(np.ones(len(ctx.class_names)), 1.0 / cap)
        per_server = ctx.profile.hardware[hw].gpus_per_server // self.tp
        n = min(max(1, math.ceil(u * self.peak_scale - 1e-9)), max_servers(ctx, hw) * per_server)
        return Deployment(groups=(GroupSpec("all", hw, self.tp, n, f),),
                          routing={c: {"all": 1.0} for c in ctx.class_names},
                          note=f"{n} x TP{self.tp}@{f} for a peak utilisation of {u:.2f} instances")
