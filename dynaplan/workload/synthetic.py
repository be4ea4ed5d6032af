"""Seeded synthetic traces of any length: week-long load without the week-long files.

Model (see ``docs/workload.md`` for the derivation). The arrival process is a doubly
stochastic (Cox) Poisson process with intensity, in requests per second,

    lambda(t) = mean_rate_rps * E(t) * M_slow(t) * M_fast(t)

where

- ``E(t)`` is the weekly **envelope**, piecewise constant per minute and normalised to a week
  mean of 1. Its shape is ``1 + c * s(t)**gamma`` with ``s`` a daily raised cosine peaking at
  ``peak_hour_utc`` on top of a ``night_floor``, scaled by a weight per day of the week; ``c``
  and ``gamma`` are solved so that the **hourly** rate of the envelope over one week has
  exactly the published max/mean and max/min ratios (DynamoLLM, HPCA 2025: conversation 1.7x
  and 3.3x, coding 2.8x and 34.6x);
- ``M_slow`` (one value per ``slow_window_s``, default 60 s) and ``M_fast`` (one per
  ``fast_window_s``, default 1 s) are independent gamma variables of mean 1 whose variances are
  fitted to the source trace's burstiness (squared coefficient of variation of the rate at the
  two windows, :func:`measure_burstiness`). They are renormalised so every slow window keeps
  the slow multiplier's mass and every envelope window (hour) keeps its envelope mass: the
  bursts move load within an hour, never between hours.

Given the intensity, counts per fast window are Poisson and arrivals uniform inside it. Token
counts are resampled jointly (input, output) with replacement from the source trace. The
result is deterministic for a seed and is labelled synthetic (``Trace.synthetic``, ``label``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, model_validator

from dynaplan.errors import ValidationError
from dynaplan.limits import MAX_TRACE_REQUESTS
from dynaplan.validation import InputModel, checked, number
from dynaplan.workload.aggregate import MAX_WINDOWS, check_window_count
from dynaplan.workload.loading import load_trace
from dynaplan.workload.trace import Trace

MINUTES_PER_WEEK = 7 * 24 * 60
DEFAULT_START = pd.Timestamp("2024-05-13 00:00:00", tz="UTC")
"""A Monday 00:00 UTC in the week of the Azure 2024 week-long traces."""
MAX_SYNTHETIC_REQUESTS = MAX_TRACE_REQUESTS
"""Most requests a synthetic trace may have (about 3.7 weeks at the conversation preset's rate):
the limit of every trace in memory, :data:`dynaplan.limits.MAX_TRACE_REQUESTS`."""


class EnvelopeSpec(InputModel):
    """Targets and shape of the weekly rate envelope (ratios of the hourly rate over a week)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    peak_to_mean: float = Field(gt=1, description="max/mean of the windowed rate over a week (-)")
    peak_to_valley: float = Field(gt=1, description="max/min of the windowed rate over a week (-)")
    window_s: float = Field(3600.0, description="window the ratios refer to (s); divides a day")
    peak_hour_utc: float = Field(17.0, ge=0, lt=24, description="hour of day of the daily peak (UTC, h)")
    night_floor: float = Field(0.2, gt=0, lt=1, description="shape at the daily valley relative to its peak (-)")
    day_weights: tuple[float, float, float, float, float, float, float] = Field(
        (1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.75), description="shape weight of Monday..Sunday (-)"
    )

    @model_validator(mode="after")
    def _check(self) -> "EnvelopeSpec":
        if self.peak_to_valley <= self.peak_to_mean:
            raise ValueError("peak_to_valley must exceed peak_to_mean")
        if 86400 % self.window_s or self.window_s % 60:
            raise ValueError("window_s must be a whole number of minutes dividing a day")
        if min(self.day_weights) <= 0:
            raise ValueError("day_weights must be positive")
        return self


class BurstSpec(InputModel):
    """Short-time burstiness: variances of the two gamma rate multipliers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slow_window_s: float = Field(60.0, gt=0, description="window of the slow multiplier (s)")
    fast_window_s: float = Field(1.0, gt=0, description="window of the fast multiplier (s)")
    slow_rate_cv2: float = Field(0.0, ge=0, description="variance of the slow multiplier (mean 1) (-)")
    fast_rate_cv2: float = Field(0.0, ge=0, description="variance of the fast multiplier (mean 1) (-)")

    @model_validator(mode="after")
    def _check(self) -> "BurstSpec":
        ratio = self.slow_window_s / self.fast_window_s
        if ratio < 2 or abs(ratio - round(ratio)) > 1e-9 or 3600 % self.slow_window_s:
            raise ValueError("slow_window_s must be a multiple (>= 2x) of fast_window_s and divide an hour")
        return self

    @classmethod
    def from_trace(cls, trace: Trace, slow_window_s: float = 60.0, fast_window_s: float = 1.0) -> "BurstSpec":
        """Fit the multiplier variances to ``trace``'s rate variability at the two windows.

        The fast multipliers are renormalised to mean 1 inside every slow window, so the squared
        CV of the rate is ``v_s`` at the slow window and ``(1+v_s)(1+v_f)-1`` at the fast one;
        both are matched to :func:`measure_burstiness` of ``trace`` (``v_f`` clamped at 0).
        """
        cf, cs = measure_burstiness(trace, (fast_window_s, slow_window_s)).rate_cv2
        v_s = max(0.0, cs)
        v_f = max(0.0, (1 + cf) / (1 + v_s) - 1)
        return cls(slow_window_s=slow_window_s, fast_window_s=fast_window_s, slow_rate_cv2=v_s, fast_rate_cv2=v_f)


CONVERSATION_ENVELOPE = EnvelopeSpec(
    peak_to_mean=1.7, peak_to_valley=3.3, peak_hour_utc=18.0, night_floor=0.3,
    day_weights=(1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.75),
)
CODING_ENVELOPE = EnvelopeSpec(
    peak_to_mean=2.8, peak_to_valley=34.6, peak_hour_utc=17.0, night_floor=0.1,
    day_weights=(1.0, 1.0, 1.0, 1.0, 1.0, 0.45, 0.4),
)
PRESETS: dict[str, tuple[EnvelopeSpec, float]] = {
    # envelope, mean rate of the Azure 2024 week (rows / 604,800 s)
    "azure-conv-2023": (CONVERSATION_ENVELOPE, 27_303_999 / 604_800),
    "azure-code-2023": (CODING_ENVELOPE, 16_803_695 / 604_800),
}


@dataclass(frozen=True)
class BurstinessStats:
    """Rate variability of a trace at short windows (after dividing out each hour's mean).

    ``rate_cv2[i]``: squared CV of the underlying rate at ``window_s[i]``, i.e.
    ``(var - mean) / mean**2`` of the per-window counts; ``index_of_dispersion[i]``:
    ``var / mean`` (1 for Poisson); ``interarrival_cv``: CV of the gaps between arrivals.
    """

    window_s: tuple[float, ...]
    rate_cv2: tuple[float, ...]
    index_of_dispersion: tuple[float, ...]
    interarrival_cv: float


def measure_burstiness(trace: Trace, window_s=(1.0, 60.0), detrend_window_s: float = 3600.0) -> BurstinessStats:
    """Short-window variability of ``trace``, pooled over its hours (``detrend_window_s``).

    Counts of complete windows are grouped by hour; per hour ``(var - mean)/mean**2`` and
    ``var/mean`` are computed (ddof=1) and averaged over hours weighted by their windows, so the
    daily envelope does not count as burstiness.
    """
    cv2s, idcs = [], []
    for w in window_s:
        if not (w > 0 and math.isfinite(w)):
            raise ValidationError(f"burstiness window {w!r}: expected a positive number of seconds")
        check_window_count(trace, w, f"burstiness window {w:g} s")
        n = int(trace.duration_s // w)
        if n < 2:
            raise ValidationError(f"trace {trace.name!r} is too short to measure burstiness at {w} s")
        idx = (trace.arrival_s // w).astype(np.int64)
        counts = np.bincount(idx[idx < n], minlength=n).astype(np.float64)
        group = (np.arange(n) * w // detrend_window_s).astype(np.int64)
        k = np.bincount(group).astype(np.float64)
        s1, s2 = np.bincount(group, counts), np.bincount(group, counts**2)
        ok = (k >= 2) & (s1 > 0)
        mean = s1[ok] / k[ok]
        var = (s2[ok] - k[ok] * mean**2) / (k[ok] - 1)
        weight = k[ok] / k[ok].sum()
        cv2s.append(float(np.sum(weight * (var - mean) / mean**2)))
        idcs.append(float(np.sum(weight * var / mean)))
    gaps = np.diff(trace.arrival_s)
    cv = float(gaps.std() / gaps.mean()) if gaps.size > 1 and gaps.mean() > 0 else float("nan")
    return BurstinessStats(tuple(float(w) for w in window_s), tuple(cv2s), tuple(idcs), cv)


def envelope_ratios(trace: Trace, window_s: float = 3600.0) -> tuple[float, float]:
    """(max/mean, max/min) of the request rate over the complete ``window_s`` windows of a trace."""
    if not (window_s > 0 and math.isfinite(window_s)):
        raise ValidationError(f"window_s={window_s!r}: expected a positive number of seconds")
    check_window_count(trace, window_s)
    n = int(trace.duration_s // window_s)
    if n < 2:
        raise ValidationError(f"trace {trace.name!r} has fewer than two complete {window_s} s windows")
    idx = (trace.arrival_s // window_s).astype(np.int64)
    counts = np.bincount(idx[idx < n], minlength=n).astype(np.float64)
    return float(counts.max() / counts.mean()), float(counts.max() / counts.min()) if counts.min() > 0 else math.inf


# ----------------------------------------------------------------------------------------------
# Envelope
# ----------------------------------------------------------------------------------------------


def _weekly_shape(spec: EnvelopeSpec) -> np.ndarray:
    """Shape ``s`` in (0, 1] per minute of the week, Monday 00:00 UTC first."""
    minute = np.arange(MINUTES_PER_WEEK)
    hour = (minute + 0.5) / 60.0
    daily = 0.5 * (1.0 + np.cos(2 * np.pi * (hour % 24 - spec.peak_hour_utc) / 24))
    day = (minute // 1440).astype(np.int64)
    return np.asarray(spec.day_weights)[day] * (spec.night_floor + (1 - spec.night_floor) * daily)


def weekly_envelope(spec: EnvelopeSpec) -> np.ndarray:
    """Rate multiplier per minute of the week (Monday 00:00 UTC first), week mean exactly 1.

    Solves ``E = 1 + c * s**gamma`` so that the ``spec.window_s`` means of ``E`` have
    max/min = ``peak_to_valley`` (closed form for ``c`` given ``gamma``) and max/mean =
    ``peak_to_mean`` (bisection on ``gamma``).
    """
    s = _weekly_shape(spec)
    per = int(spec.window_s // 60)
    r1, r2 = spec.peak_to_valley, spec.peak_to_mean

    def peak_to_mean(gamma: float) -> float | None:
        h = (s**gamma).reshape(-1, per).mean(axis=1)
        den = h.max() - r1 * h.min()
        if den <= 0:
            return None
        rate = 1 + (r1 - 1) / den * h
        return float(rate.max() / rate.mean())

    grid = np.geomspace(0.02, 100, 300)
    vals = [(g, peak_to_mean(g)) for g in grid]
    feasible = [(g, v) for g, v in vals if v is not None]
    bracket = next(((a, b) for (a, fa), (b, fb) in zip(feasible, feasible[1:]) if (fa - r2) * (fb - r2) <= 0), None)
    if bracket is None:
        got = [v for _, v in feasible]
        span = f"{min(got):.3g}..{max(got):.3g}" if got else "none"
        raise ValidationError(
            f"envelope: peak_to_mean={r2} is not reachable with peak_to_valley={r1} and this shape "
            f"(reachable: {span}); change night_floor or day_weights"
        )
    lo, hi = bracket
    f_lo = peak_to_mean(lo) - r2
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        f_mid = peak_to_mean(mid)
        if f_mid is not None and (f_mid - r2) * f_lo > 0:
            lo, f_lo = mid, f_mid - r2
        else:
            hi = mid
    gamma = hi
    h = (s**gamma).reshape(-1, per).mean(axis=1)
    c = (r1 - 1) / (h.max() - r1 * h.min())
    env = 1 + c * s**gamma
    return env / env.mean()


# ----------------------------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------------------------


def check_rate_source(trace: Trace, what: str = "trace") -> Trace:
    """``trace`` if a mean rate can be taken from it (for scaling or synthetic generation): it must
    span some time and hold requests. Otherwise :class:`ValidationError` naming the trace."""
    if not (len(trace) > 0 and trace.duration_s > 0):
        raise ValidationError(f"{what} {trace.name!r} spans {trace.duration_s:g} s ({len(trace)} request(s)); "
                              "a rate cannot be taken from it")
    return trace


def _positive(x) -> bool:
    """``x`` is a finite number > 0 (a boolean is not a number)."""
    if isinstance(x, (bool, np.bool_)):
        return False
    try:
        return bool(math.isfinite(x) and x > 0)
    except (TypeError, ValueError):
        return False


def _check_requests(days: float, rate: float) -> float:
    n = days * 86400.0 * rate
    if n > MAX_SYNTHETIC_REQUESTS:
        raise ValidationError(f"{days:g} synthetic day(s) at {rate:g} req/s make about {n:.3g} requests "
                              f"(at most {MAX_SYNTHETIC_REQUESTS:,}); use fewer days or a lower rate")
    return n


def check_synthetic_size(source: str | Path | Trace, days: float, mean_rate_rps: float | None = None) -> float | None:
    """About how many requests :func:`generate_trace` would make, checked against
    :data:`MAX_SYNTHETIC_REQUESTS` before anything is generated (or, for a preset or an explicit
    rate, loaded).

    The rate is ``mean_rate_rps``, else the preset's for a bundled name, else a :class:`Trace`
    source's own mean rate (which it must have: :func:`check_rate_source`). Returns ``None``
    where the rate is not known without loading ``source`` or where ``days`` or the rate is
    invalid (:func:`generate_trace` names those); raises :class:`ValidationError` if too large.
    """
    if not _positive(days):
        return None
    name = source.name if isinstance(source, Trace) else str(source)
    rate = mean_rate_rps if mean_rate_rps is not None else PRESETS[name][1] if name in PRESETS else None
    if rate is None and isinstance(source, Trace):
        rate = check_rate_source(source, "source trace").mean_rate_rps
    if rate is None or not _positive(rate):
        return None
    return _check_requests(days, rate)


def _gamma_multipliers(rng: np.random.Generator, var: float, n: int, group: int) -> np.ndarray:
    """Mean-1 gamma draws; the variance is inflated by group/(group-1) to offset renormalisation."""
    if var <= 0:
        return np.ones(n)
    v = var * group / (group - 1)
    return rng.gamma(1.0 / v, v, size=n)


def _chunk_arrivals(rng, env_min, t0_s, hours, rate_rps, burst: BurstSpec, minute0: int) -> np.ndarray:
    """Arrivals (s since trace start) in ``hours`` whole hours starting at ``t0_s``."""
    dt = burst.fast_window_s
    per_slow = int(round(burst.slow_window_s / dt))
    slow_per_hour = int(round(3600 / burst.slow_window_s))
    n_fast = int(round(hours * 3600 / dt))
    t_fast = t0_s + np.arange(n_fast) * dt
    minute = (minute0 + (np.arange(n_fast) * dt // 60).astype(np.int64)) % MINUTES_PER_WEEK
    env = env_min[minute]
    m_fast = _gamma_multipliers(rng, burst.fast_rate_cv2, n_fast, per_slow).reshape(-1, per_slow)
    env2 = env.reshape(-1, per_slow)
    w_slow = env2.sum(axis=1)
    m_fast *= (w_slow / (env2 * m_fast).sum(axis=1))[:, None]
    m_slow = _gamma_multipliers(rng, burst.slow_rate_cv2, w_slow.size, slow_per_hour).reshape(-1, slow_per_hour)
    w2 = w_slow.reshape(-1, slow_per_hour)
    m_slow *= (w2.sum(axis=1) / (w2 * m_slow).sum(axis=1))[:, None]
    lam = rate_rps * dt * (env2 * m_fast * m_slow.reshape(-1, 1)).ravel()
    counts = rng.poisson(lam)
    arrivals = np.repeat(t_fast, counts) + rng.random(int(counts.sum())) * dt
    arrivals.sort()
    return arrivals


@checked
def generate_trace(
    source: str | Path | Trace = "azure-conv-2023",
    *,
    days: float = 7.0,
    mean_rate_rps: float | None = None,
    envelope: EnvelopeSpec | None = None,
    burst: BurstSpec | None = None,
    seed: int = 0,
    start: pd.Timestamp | str = DEFAULT_START,
    name: str | None = None,
) -> Trace:
    """A synthetic trace of ``days`` days whose tokens are resampled from ``source``.

    Args:
        source: bundled name, file or :class:`Trace` giving the token distribution (and, for
            the bundled names, the default envelope and mean rate: conversation 45.1 req/s with
            :data:`CONVERSATION_ENVELOPE`, coding 27.8 req/s with :data:`CODING_ENVELOPE`, the
            2024 Azure week traces' means). Other sources default to the conversation envelope
            and the source's own mean rate.
        days: length of the trace (any positive number; hours are generated whole and cut).
        mean_rate_rps: mean arrival rate over a whole week (req/s).
        envelope: weekly envelope targets and shape.
        burst: short-time burstiness (default: fitted to ``source`` by :meth:`BurstSpec.from_trace`).
        seed: seed of the numpy generator; equal arguments give identical traces.
        start: absolute UTC start (default a Monday 00:00); sets the day of week and hour.
        name: trace name (default ``synthetic-<source>-<days>d-seed<seed>``).
    """
    if not _positive(days):
        raise ValidationError(f"days must be a positive number, got {days}")
    if mean_rate_rps is not None and not _positive(mean_rate_rps):
        raise ValidationError(f"mean_rate_rps must be a positive number, got {mean_rate_rps}")
    number(seed, "seed", lo=0, integer=True)
    check_synthetic_size(source, days, mean_rate_rps)  # before loading, where the rate is known
    src = source if isinstance(source, Trace) else load_trace(source)
    preset = PRESETS.get(str(source) if not isinstance(source, Trace) else src.name)
    envelope = envelope or (preset[0] if preset else CONVERSATION_ENVELOPE)
    if mean_rate_rps is not None:
        rate = mean_rate_rps
    elif preset:
        rate = preset[1]
    else:
        rate = check_rate_source(src, "source trace").mean_rate_rps
        _check_requests(days, rate)
    if len(src) == 0:
        raise ValidationError(f"source trace {src.name!r} has no requests to resample tokens from")
    burst = burst or BurstSpec.from_trace(src)
    n_fast = 86400.0 / burst.fast_window_s
    if n_fast > MAX_WINDOWS:
        raise ValidationError(f"burst.fast_window_s={burst.fast_window_s:g} s cuts each generated day into "
                              f"{n_fast:.3g} windows (at most {MAX_WINDOWS:,}); use a longer fast window")
    start = pd.Timestamp(start)
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    env_min = weekly_envelope(envelope)
    week0 = (start - pd.Timedelta(days=start.weekday())).normalize()
    minute0 = int((start - week0) // pd.Timedelta(minutes=1))

    rng = np.random.default_rng(seed)
    duration_s = days * 86400.0
    total_hours = math.ceil(duration_s / 3600)
    chunks, hour = [], 0
    while hour < total_hours:
        h = min(24, total_hours - hour)
        chunks.append(_chunk_arrivals(rng, env_min, hour * 3600.0, h, rate, burst, minute0 + hour * 60))
        hour += h
    arrival_s = np.concatenate(chunks) if chunks else np.empty(0)
    del chunks
    arrival_s = arrival_s[: np.searchsorted(arrival_s, duration_s, side="right")]
    pick = rng.integers(0, len(src), size=arrival_s.size)
    name = name or f"synthetic-{src.name}-{days:g}d-seed{seed}"
    label = (
        f"SYNTHETIC: {days:g} days generated by dynaplan from {src.name} (seed {seed}, "
        f"{rate:.3g} req/s mean, hourly peak/mean {envelope.peak_to_mean:g}, peak/valley "
        f"{envelope.peak_to_valley:g})"
    )
    meta = {
        "generator": "dynaplan.workload.synthetic.generate_trace",
        "seed": seed, "days": days, "mean_rate_rps": rate, "token_source": src.name,
        "envelope": envelope.model_dump_json(), "burst": burst.model_dump_json(),
    }
    return Trace(
        arrival_s=arrival_s,
        input_tokens=src.input_tokens[pick],
        output_tokens=src.output_tokens[pick],
        name=name,
        start=start,
        duration_s=duration_s,
        synthetic=True,
        label=label,
        source=f"generate_trace({src.name!r}, days={days:g}, seed={seed})",
        metadata=meta,
    )
