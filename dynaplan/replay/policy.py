"""The policy interface: what a policy is told, what it may see, what it returns.

A policy is called at every pool epoch (5 min by default) with an :class:`Observation`; at the
start of a cluster epoch (30 min) ``obs.level == "cluster"``. It returns a
:class:`~dynaplan.replay.deployment.Deployment` (the cluster it wants) or ``None`` (keep the
current one). The engine applies the change with its real delays and costs and serves every 5-s
window; groups without a fixed clock get theirs from the instance level every window.

What a policy may see:

* ``obs.history_rps`` / ``obs.history_raw_rps``: per-window rates by **predicted** class up to
  now (the smoothed rate instances see, and the raw 5-s rate) — never a window of the future;
* ``ctx.prehistory_windows`` windows before the trace: the replay has no data before the trace
  starts, so the first ``prehistory_s`` of the trace, mirrored in time (the window just before
  the start is the first window, the one before that the second, ...), stand in for the time
  before it (the cluster has been running; default one cluster epoch). ``prehistory_s=0``
  starts blind;
* ``ctx.peak`` (:class:`PeakLoad`) only with ``sized_for_peak = True``: the static baselines are
  sized for the trace's peak, the one piece of future knowledge capacity planning assumes;
* ``obs.future_rps`` only with ``clairvoyant = True`` (the Oracle), which also makes the
  instance level pick clocks from the current window's load instead of the previous one's.

``free_transitions = True`` makes every transition instantaneous and free (the Oracle's bound).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import pandas as pd

from dynaplan.domain.slo import SLOTable
from dynaplan.profiles.profile import Profile
from dynaplan.domain.transitions import TransitionCosts
from dynaplan.replay.deployment import Deployment
from dynaplan.replay.tables import ProfileTables


@dataclass(frozen=True, eq=False)
class PeakLoad:
    """The trace's peak load, for policies sized for peak.

    ``joint_rps`` is (windows, predicted, true) — the smoothed rates instances see —, so a static
    policy can size each pool for the peak utilisation of the traffic it will really receive.
    """

    joint_rps: np.ndarray
    class_names: tuple[str, ...]

    def per_class_rps(self) -> dict[str, float]:
        """Peak smoothed rate of every predicted class (each at its own peak), req/s."""
        return dict(zip(self.class_names, self.joint_rps.sum(axis=2).max(axis=0).tolist()))

    def peak_utilisation(self, route: np.ndarray, inv_capacity: np.ndarray) -> float:
        """max over windows of ``sum_{c,t} route[c] rate[w,c,t] inv_capacity[t]``: the instances a
        pool taking share ``route[c]`` of every predicted class needs at its peak window."""
        u = np.einsum("wct,c,t->w", self.joint_rps, route, inv_capacity)
        return float(u.max()) if u.size else 0.0


@dataclass(frozen=True, eq=False)
class ReplayContext:
    """What a policy knows from the start (set by the engine before the first decision)."""

    profile: Profile
    tables: ProfileTables
    slos: SLOTable
    inventory: Mapping[str, int]
    class_names: tuple[str, ...]
    window_s: float
    pool_epoch_s: float
    cluster_epoch_s: float
    duration_s: float
    n_windows: int
    prehistory_windows: int
    transition_costs: TransitionCosts
    model: str
    peak: PeakLoad | None = None


@dataclass(frozen=True, eq=False)
class Observation:
    """What a policy sees at one decision (see the module docstring)."""

    now_s: float
    window: int
    level: Literal["cluster", "pool"]
    history_rps: np.ndarray
    history_raw_rps: np.ndarray
    current: Deployment | None
    window_s: float
    future_rps: np.ndarray | None = None

    def peaks(self, epoch_s: float, *, raw: bool = False, last: int | None = None) -> pd.DataFrame:
        """Per-class peak rate of every complete ``epoch_s`` epoch of the history (only the ``last``
        ones if given), epochs ending at ``now`` (oldest first; index = epoch start in s, negative
        before the trace)."""
        h = self.history_raw_rps if raw else self.history_rps
        e = max(1, int(round(epoch_s / self.window_s)))
        m = h.shape[0] // e
        if last is not None:
            m = min(m, last)
        if m == 0:
            return pd.DataFrame(np.zeros((0, h.shape[1])))
        block = h[h.shape[0] - m * e:].reshape(m, e, -1).max(axis=1)
        index = self.now_s - epoch_s * np.arange(m, 0, -1)
        return pd.DataFrame(block, index=pd.Index(index, name="epoch_start_s"))

    def future_peak(self, horizon_s: float) -> np.ndarray:
        """Clairvoyant only: per-class peak of the smoothed rate over ``[now, now + horizon_s)``."""
        if self.future_rps is None:
            raise PermissionError("only a clairvoyant policy sees the future")
        e = max(1, int(round(horizon_s / self.window_s)))
        part = self.future_rps[self.window:self.window + e]
        return part.max(axis=0) if part.size else np.zeros(self.future_rps.shape[1])


class Policy(ABC):
    """A replay policy: ``reset(ctx)`` once, then ``decide(obs)`` at every pool epoch."""

    name: ClassVar[str] = "policy"
    clairvoyant: ClassVar[bool] = False
    free_transitions: ClassVar[bool] = False
    sized_for_peak: ClassVar[bool] = False

    def reset(self, ctx: ReplayContext) -> None:
        """Called once before the first decision; keep ``ctx`` and build planners here."""
        self.ctx = ctx

    @abstractmethod
    def decide(self, obs: Observation) -> Deployment | None:
        """The deployment wanted from now on, or ``None`` to keep the current one."""

    @property
    def label(self) -> str:
        return getattr(self, "display_name", None) or self.name
