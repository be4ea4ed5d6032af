"""The load a replay steps through: requests per 5-s window by (predicted class, true class).

Requests are routed by their **predicted** class (the router knows only that) and served at the
latency of their **true** class, so the replay needs the joint count per window. It is one
``np.bincount`` over ``window * C^2 + predicted * C + true``, done in chunks of the trace so a
27M-request week stays within a few hundred MiB; its marginals are exactly
:func:`dynaplan.workload.aggregate_load` of the predicted and of the true classes (tested).

**Rates seen by instances.** A 5-s count of a handful of requests is not a steady-state arrival
rate, and an instance's batch holds the requests of the last several seconds (an LL request lives
~20 s). The profile's latency and power are steady-state functions of the rate, so the replay
evaluates each window at the trailing mean rate over ``rate_window_s`` (default 30 s, six
windows; the first windows average what exists). Requests are counted exactly per window; only
the rate that sets latency and power is smoothed. ``rate_window_s = window_s`` disables it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dynaplan.errors import ValidationError
from dynaplan.limits import TRACE_REQUESTS
from dynaplan.workload.classify import Classification
from dynaplan.workload.trace import Trace

_CHUNK = 4_000_000


@dataclass(frozen=True, eq=False)
class WindowLoad:
    """Per-window joint request counts and smoothed rates (see the module docstring).

    Attributes:
        window_s: window length (s).
        rate_window_s: trailing window of the smoothed rates (s).
        class_names: class names, scheme order (C).
        counts: (W, C, C) requests arriving in each window by [predicted, true] class (float32).
        rates: (W, C, C) trailing-mean arrival rate by [predicted, true] class (req/s, float64).
        start: absolute UTC time of window 0, if the trace has one.
        label / synthetic: the trace's provenance.
        n_requests: requests in the trace.
        duration_s: the trace's duration (s).
        predictor_accuracy: measured share of requests whose predicted class is the true one.
    """

    window_s: float
    rate_window_s: float
    class_names: tuple[str, ...]
    counts: np.ndarray
    rates: np.ndarray
    start: pd.Timestamp | None
    label: str
    synthetic: bool
    n_requests: int
    duration_s: float
    predictor_accuracy: float

    @property
    def n_windows(self) -> int:
        return self.counts.shape[0]

    def predicted_rps(self) -> np.ndarray:
        """(W, C) smoothed rate by predicted class (req/s)."""
        return self.rates.sum(axis=2)

    def true_rps(self) -> np.ndarray:
        """(W, C) smoothed rate by true class (req/s)."""
        return self.rates.sum(axis=1)


def window_load(trace: Trace, classification: Classification, *, window_s: float = 5.0,
                rate_window_s: float = 30.0) -> WindowLoad:
    """Joint per-window counts and smoothed rates of ``trace`` (vectorised, chunked)."""
    if not (window_s > 0 and math.isfinite(window_s)):
        raise ValidationError(f"window_s={window_s!r}; expected a positive number of seconds")
    if rate_window_s < window_s:
        raise ValidationError(f"rate_window_s={rate_window_s} must be >= window_s={window_s}")
    if classification.true_class.shape != (len(trace),):
        raise ValidationError(f"classification has {classification.true_class.shape[0]} requests, "
                              f"trace {trace.name!r} has {len(trace)}")
    names = classification.names
    c = len(names)
    n_w = max(1, math.ceil(trace.duration_s / window_s - 1e-9))
    size = n_w * c * c
    counts = np.zeros(size, dtype=np.float64)
    for a in range(0, len(trace), _CHUNK):
        b = min(a + _CHUNK, len(trace))
        key = np.floor_divide(trace.arrival_s[a:b], window_s).astype(np.int64)
        np.minimum(key, n_w - 1, out=key)
        key *= c * c
        key += classification.predicted_class[a:b].astype(np.int64) * c
        key += classification.true_class[a:b]
        counts += np.bincount(key, minlength=size)
        del key
    counts = counts.reshape(n_w, c, c)
    k = max(1, int(round(rate_window_s / window_s)))
    rates = trailing_mean(counts, k) / window_s
    return WindowLoad(window_s=float(window_s), rate_window_s=float(k * window_s), class_names=tuple(names),
                      counts=counts.astype(np.float32), rates=rates, start=trace.start, label=trace.label,
                      synthetic=trace.synthetic, n_requests=len(trace), duration_s=float(trace.duration_s),
                      predictor_accuracy=classification.measured_accuracy)


def trailing_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Mean of rows ``max(0, w-k+1) .. w`` for every row ``w`` (axis 0)."""
    if k <= 1:
        return x.astype(np.float64, copy=True)
    cs = np.cumsum(x, axis=0, dtype=np.float64)
    out = cs.copy()
    out[k:] -= cs[:-k]
    n = np.minimum(np.arange(1, x.shape[0] + 1), k).astype(np.float64)
    out /= n.reshape((-1,) + (1,) * (x.ndim - 1))
    return out


def scale_trace(trace: Trace, factor: float, *, seed: int = 0, jitter_s: float = 120.0,
                label: str | None = None) -> Trace:
    """``trace`` with its request rate multiplied by ``factor``, by superposing copies.

    ``floor(factor)`` copies of every request plus one more with probability ``frac(factor)``
    (``factor < 1`` thins the trace); every copy after the first moves by an independent uniform
    offset in ``[-jitter_s, jitter_s]`` (reflected at the trace's ends), so copies of one burst do not
    coincide — more users, same diurnal shape. Token counts are kept. The label says so.

    The result's size, about ``factor * len(trace)`` requests, is checked against
    :data:`dynaplan.limits.MAX_TRACE_REQUESTS` before anything is allocated; the error names
    ``label`` (the caller's flag, e.g. ``--rate 1e7``; default the factor). The copies are built
    in one vectorised step (the same random draws, in the same order, as one copy at a time).
    """
    if isinstance(factor, (bool, np.bool_)) or not (factor > 0 and math.isfinite(factor)):
        raise ValidationError(f"rate scale factor {factor!r}; expected a positive number")
    TRACE_REQUESTS.check(factor * len(trace), label or f"rate scale factor x{factor:.3g}",
                         f"scales the {len(trace):,} requests of trace {trace.name!r} to")
    if abs(factor - 1.0) < 1e-12:
        return trace
    rng = np.random.default_rng(seed)
    n = len(trace)
    whole = int(math.floor(factor))
    parts_t, parts_i, parts_o = [], [], []
    if whole > 0:
        offsets = np.zeros(n * whole)
        offsets[n:] = rng.uniform(-jitter_s, jitter_s, n * (whole - 1))  # copy k > 0 draws n offsets in turn
        parts_t.append(np.tile(trace.arrival_s, whole) + offsets)
        parts_i.append(np.tile(trace.input_tokens, whole))
        parts_o.append(np.tile(trace.output_tokens, whole))
    frac = factor - whole
    if frac > 1e-12:
        keep = rng.random(n) < frac
        t = trace.arrival_s[keep]
        if whole > 0:
            t = t + rng.uniform(-jitter_s, jitter_s, t.size)
        parts_t.append(t)
        parts_i.append(trace.input_tokens[keep])
        parts_o.append(trace.output_tokens[keep])
    t = np.concatenate(parts_t)
    d = trace.duration_s
    t = np.where(t < 0, -t, t)              # reflect at the ends: no pile-up at 0 or at the end
    t = np.clip(np.where(t > d, 2 * d - t, t), 0.0, d)
    order = np.argsort(t, kind="stable")
    label = f"{trace.label} [rate x{factor:.3g} by superposing jittered copies, seed {seed}]"
    return Trace(arrival_s=t[order], input_tokens=np.concatenate(parts_i)[order],
                 output_tokens=np.concatenate(parts_o)[order], name=trace.name, start=trace.start,
                 duration_s=trace.duration_s, synthetic=trace.synthetic, label=label, source=trace.source,
                 metadata={**dict(trace.metadata), "rate_scale": f"{factor:.6g}", "rate_scale_seed": str(seed)})


__all__ = ["WindowLoad", "scale_trace", "trailing_mean", "window_load"]
