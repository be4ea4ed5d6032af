"""MultiPool: one static pool per (predicted) class, TP8 instances at the maximum clock, each sized
for its own peak; ScaleFreq is the same cluster with clocks left to the instance level.

Pool ``p`` takes the requests predicted as class ``p`` and gets ``ceil(max_w sum_t rate[w, p, t] /
cap_t)`` instances (the peak utilisation of the traffic it really receives, mis-predictions
included) times ``peak_scale`` (> 1: a design peak above the trace's), at least one for a class
that occurs. If the pools together exceed the inventory they are scaled down in proportion.
"""

from __future__ import annotations

import math

import numpy as np

from dynaplan.replay.deployment import Deployment, GroupSpec
from dynaplan.replay.policies.common import StaticPolicy, capacity_rps, fit_counts, max_clock, max_servers
from dynaplan.replay.policy import ReplayContext


def peak_sized_pools(ctx: ReplayContext, hardware: str, tp: int, peak_scale: float = 1.0) -> dict[str, int]:
    """Instances of TP ``tp`` at the max clock per class pool, sized for each pool's peak."""
    cap = capacity_rps(ctx, hardware, tp, max_clock(ctx, hardware))
    names = ctx.class_names
    occurs = ctx.peak.joint_rps.sum(axis=(0, 2)) > 0
    counts = {}
    for i, c in enumerate(names):
        if not occurs[i]:
            continue
        route = np.zeros(len(names))
        route[i] = 1.0
        counts[c] = max(1, math.ceil(peak_scale * ctx.peak.peak_utilisation(route, 1.0 / cap) - 1e-9))
    per_server = ctx.profile.hardware[hardware].gpus_per_server // tp
    return fit_counts(counts, max_servers(ctx, hardware) * per_server)


class MultiPool(StaticPolicy):
    """Static per-class pools of TP ``tp`` (8) at the maximum clock, sized for each pool's peak."""

    name = "MultiPool"
    instance_level = False

    def initial(self, ctx: ReplayContext, hw: str) -> Deployment:
        f = None if self.instance_level else max_clock(ctx, hw)
        counts = peak_sized_pools(ctx, hw, self.tp, self.peak_scale)
        groups = tuple(GroupSpec(c, hw, self.tp, n, f) for c, n in counts.items())
        return Deployment(groups=groups, routing={c: {c: 1.0} for c in counts},
                          note=f"static pools {counts}")


class ScaleFreq(MultiPool):
    """MultiPool's instances with the clock of every instance set every window by the instance level."""

    name = "ScaleFreq"
    instance_level = True
