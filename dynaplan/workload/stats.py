"""Summary statistics of a trace: size, rates, class mix, token percentiles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dynaplan.domain.classes import DEFAULT_CLASSES, ClassScheme
from dynaplan.workload.classify import class_index
from dynaplan.workload.trace import Trace

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True, eq=False)
class TraceStats:
    """What ``dynaplan trace stats`` prints.

    Attributes:
        n_requests, duration_s, mean_rate_rps: size and mean arrival rate (req/s).
        n_tied_timestamps: rows whose arrival equals the previous row's (legitimate
            concurrent arrivals; see :mod:`dynaplan.workload.validation`).
        class_mix: index ``class``; columns ``requests``, ``share``, ``load_rps`` (mean),
            ``mean_input_tokens``, ``mean_output_tokens``.
        token_percentiles: index ``tokens`` (``input``/``output``); columns ``min``, ``mean``,
            ``p50``, ``p90``, ``p95``, ``p99``, ``max``.
    """

    name: str
    synthetic: bool
    label: str
    start: pd.Timestamp | None
    n_requests: int
    duration_s: float
    mean_rate_rps: float
    n_tied_timestamps: int
    class_mix: pd.DataFrame
    token_percentiles: pd.DataFrame


def trace_stats(trace: Trace, scheme: ClassScheme = DEFAULT_CLASSES) -> TraceStats:
    """Compute :class:`TraceStats` of ``trace`` (vectorised)."""
    n = len(trace)
    k = scheme.n_classes
    classes = class_index(trace, scheme)
    counts = np.bincount(classes, minlength=k).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_in = np.bincount(classes, weights=trace.input_tokens, minlength=k) / counts
        mean_out = np.bincount(classes, weights=trace.output_tokens, minlength=k) / counts
        share = counts / n if n else np.full(k, np.nan)
        rate = counts / trace.duration_s if trace.duration_s > 0 else np.full(k, np.nan)
    mix = pd.DataFrame(
        {"requests": counts, "share": share, "load_rps": rate, "mean_input_tokens": mean_in,
         "mean_output_tokens": mean_out},
        index=pd.Index(scheme.names, name="class"),
    )
    rows = {}
    for label, arr in (("input", trace.input_tokens), ("output", trace.output_tokens)):
        if n:
            q = np.percentile(arr, PERCENTILES)
            rows[label] = [arr.min(), arr.mean(), *q, arr.max()]
        else:
            rows[label] = [np.nan] * (3 + len(PERCENTILES))
    pct = pd.DataFrame.from_dict(rows, orient="index", columns=["min", "mean", *[f"p{p}" for p in PERCENTILES], "max"])
    pct.index.name = "tokens"
    ties = int(np.count_nonzero(trace.arrival_s[1:] == trace.arrival_s[:-1]))
    return TraceStats(trace.name, trace.synthetic, trace.label, trace.start, n, trace.duration_s,
                      trace.mean_rate_rps, ties, mix, pct.astype(float))
