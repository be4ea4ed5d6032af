"""Oracle: DynamoLLM with perfect knowledge and free transitions — a lower bound, not a policy.

Every pool epoch it re-runs the whole hierarchy (allotment and pools) for the **true** peak of the
next pool epoch (no headroom), every transition is instantaneous and free, and the instance level
picks clocks from the current window's load instead of the previous one's.
"""

from __future__ import annotations

import numpy as np

from dynaplan.replay.policies.dynamollm import DynamoLLM
from dynaplan.replay.policy import Observation


class Oracle(DynamoLLM):
    """Clairvoyant, free transitions, re-allots every pool epoch."""

    name = "Oracle"
    clairvoyant = True
    free_transitions = True

    def __init__(self, *, spill: str = "next") -> None:
        super().__init__(headroom=0.0, replan_tolerance=0.0, spill=spill)

    def decide(self, obs: Observation):
        peak = obs.future_peak(self.ctx.pool_epoch_s)
        fc = dict(zip(self.ctx.class_names, np.asarray(peak, dtype=float).tolist()))
        self._allot(fc)
        return self._deployment(fc)
