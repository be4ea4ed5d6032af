"""Request-latency distributions of a replay, from the profile's P50 and P99 at each window's load.

Every (window, instance group, true class) cell serves ``n`` requests at a load where the profile
gives a P50 and a P99 of TTFT (and of TBT). The cell's latency is taken as log-normal through
those two quantiles, ``ln L ~ N(ln P50, s^2)`` with ``s = ln(P99/P50) / 2.3263``, and discretised
into 8 probability bands (masses 0.5, 0.3, 0.1, 0.05, 0.03, 0.01, 0.005, 0.005, each represented by
the quantile at its middle). The bands of all cells, weighted by ``n``, go into a histogram on a
logarithmic grid (1 ms .. 10^6 ms, ~0.6% per bin) per true class, from which any percentile is
read by log-linear interpolation inside its bin. Requests that no instance serves (their pool is
down) count at the top of the grid. TBT is weighted per request, not per token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtri

_EDGES_P = np.array([0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 1.0])
MASSES = np.diff(_EDGES_P)
Z = ndtri((_EDGES_P[:-1] + _EDGES_P[1:]) / 2)
Z99 = float(ndtri(0.99))
LO_MS, HI_MS, N_BINS = 1.0, 1e6, 2400
_LOG_LO, _LOG_STEP = np.log(LO_MS), (np.log(HI_MS) - np.log(LO_MS)) / N_BINS
METRICS = ("ttft", "tbt")


@dataclass
class LatencyHistogram:
    """Request counts per (metric, class, log-latency bin)."""

    n_classes: int
    counts: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for m in METRICS:
            self.counts.setdefault(m, np.zeros(self.n_classes * N_BINS))

    def add(self, metric: str, cls: np.ndarray, p50_ms: np.ndarray, p99_ms: np.ndarray, n: np.ndarray) -> None:
        """Add ``n`` requests of class ``cls`` with the given quantiles (flat arrays of one length)."""
        if cls.size == 0:
            return
        p50 = np.maximum(p50_ms, LO_MS)
        s = np.maximum(np.log(np.maximum(p99_ms, p50) / p50), 0.0) / Z99
        logv = np.log(p50)[:, None] + s[:, None] * Z[None, :]
        b = np.clip(((logv - _LOG_LO) / _LOG_STEP).astype(np.int64), 0, N_BINS - 1)
        idx = (cls.astype(np.int64)[:, None] * N_BINS + b).ravel()
        w = (n[:, None] * MASSES[None, :]).ravel()
        self.counts[metric] += np.bincount(idx, weights=w, minlength=self.n_classes * N_BINS)

    def add_unserved(self, per_class: np.ndarray) -> None:
        """Requests nobody served: at the top of the grid, for every metric."""
        for m in METRICS:
            self.counts[m].reshape(self.n_classes, N_BINS)[:, -1] += per_class

    def percentile(self, metric: str, q: float, cls: int | None = None) -> float:
        """The ``q``-th percentile (0..100) of ``metric`` over all classes or one (ms; NaN if empty)."""
        h = self.counts[metric].reshape(self.n_classes, N_BINS)
        h = h.sum(axis=0) if cls is None else h[cls]
        total = h.sum()
        if total <= 0:
            return float("nan")
        cdf = np.cumsum(h) / total
        i = int(np.searchsorted(cdf, q / 100.0, side="left"))
        i = min(i, N_BINS - 1)
        below = cdf[i - 1] if i > 0 else 0.0
        frac = (q / 100.0 - below) / max(cdf[i] - below, 1e-300)
        return float(np.exp(_LOG_LO + (i + np.clip(frac, 0.0, 1.0)) * _LOG_STEP))
