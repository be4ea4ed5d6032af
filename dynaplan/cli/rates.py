"""One meaning of ``--rate`` and ``--peak-rps`` in every command.

* ``--rate R``: the **mean arrival rate of the trace the command uses**, all classes, over the
  trace's own span (req/s). A measured trace is scaled to it (:func:`dynaplan.replay.load.scale_trace`);
  a synthetic one is generated so that its mean over the generated days is R (the library's
  ``mean_rate_rps`` is a mean over a whole week, which a 1-day trace starting on a Monday
  exceeds by ~7%: the weekly mean is corrected from a first, pilot generation).
* ``--peak-rps P``: the **highest rate over aligned 1-minute windows** of that trace, all classes
  (req/s) — the default peak window of ``dynaplan plan``. Reached the same way.

Scaling superposes jittered copies, which smooths 1-minute peaks, so a peak target is corrected
on the scaled trace (a few passes). Both land within sampling noise of the target (about 1%);
the commands print the measured value.
"""

from __future__ import annotations

from dynaplan.errors import ValidationError
from dynaplan.workload.aggregate import aggregate_load
from dynaplan.workload.synthetic import check_rate_source, check_synthetic_size, generate_trace
from dynaplan.workload.trace import Trace

PEAK_WINDOW_S = 60.0
"""Window of ``--peak-rps`` (s)."""

RATE_HELP = ("Mean arrival rate of the trace used, all classes, over its whole span (req/s).")
PEAK_HELP = ("Peak arrival rate of the trace used: the highest rate over aligned 1-minute windows, all "
             "classes (req/s). Exclusive with --rate.")


def peak_rps(trace: Trace, window_s: float = PEAK_WINDOW_S) -> float:
    """Highest total arrival rate over aligned ``window_s`` windows (req/s); the last, partial
    window counts over the time it covers."""
    if len(trace) == 0 or trace.duration_s <= 0:
        return 0.0
    if trace.duration_s < window_s:
        return len(trace) / trace.duration_s
    rates = aggregate_load(trace, window_s=window_s).load_rps.sum(axis=1)
    full = int(trace.duration_s // window_s)
    return float(rates.iloc[:full].max()) if full else float(rates.max())


def check_rate_flags(rate: float | None, peak: float | None) -> None:
    if rate is not None and peak is not None:
        raise ValidationError("--rate and --peak-rps: give one of them, not both")
    for flag, v in (("--rate", rate), ("--peak-rps", peak)):
        if v is not None and not (v > 0 and v < float("inf")):
            raise ValidationError(f"{flag} {v!r}: expected a positive, finite number of req/s")


def synthetic(source, days: float, seed: int, *, rate: float | None = None, peak: float | None = None
              ) -> tuple[Trace, str]:
    """A synthetic trace of ``days`` days from ``source`` with mean ``rate`` or 1-minute peak
    ``peak`` (req/s; neither: the source's preset rate) and a note saying which."""
    check_rate_flags(rate, peak)
    if rate is None and peak is None:
        tr = generate_trace(source, days=days, seed=seed)
        return tr, (f"generated at the preset rate of {getattr(source, 'name', source)} (a weekly mean; "
                    f"{tr.mean_rate_rps:.1f} req/s over these {days:g} day(s))")
    if rate is not None:
        check_synthetic_size(source, days, rate)
        weekly = rate
        pilot = generate_trace(source, days=days, seed=seed, mean_rate_rps=weekly)
        got = check_rate_source(pilot, "synthetic trace").mean_rate_rps
        weekly *= rate / got
        tr = generate_trace(source, days=days, seed=seed, mean_rate_rps=weekly)
        return tr, f"generated at {tr.mean_rate_rps:.1f} req/s mean (--rate {rate:g})"
    weekly = peak / 3.0  # a first guess of peak/mean; corrected from the pilot
    check_synthetic_size(source, days, weekly)
    pilot = generate_trace(source, days=days, seed=seed, mean_rate_rps=weekly)
    got = peak_rps(pilot)
    if got <= 0:
        raise ValidationError(f"--peak-rps {peak:g}: the synthetic trace has no requests to scale")
    weekly *= peak / got
    tr = generate_trace(source, days=days, seed=seed, mean_rate_rps=weekly)
    return tr, (f"generated with a 1-min peak of {peak_rps(tr):.1f} req/s (--peak-rps {peak:g}), "
                f"{tr.mean_rate_rps:.1f} req/s mean")


def scaled(trace: Trace, seed: int, *, rate: float | None = None, peak: float | None = None) -> tuple[Trace, str]:
    """A measured ``trace`` scaled to mean ``rate`` or 1-minute peak ``peak`` (req/s)."""
    from dynaplan.replay.load import scale_trace

    check_rate_flags(rate, peak)
    check_rate_source(trace)
    if rate is not None:
        tr = scale_trace(trace, rate / trace.mean_rate_rps, seed=seed, label=f"--rate {rate:g}")
        return tr, f"rate scaled to {tr.mean_rate_rps:.1f} req/s mean (--rate {rate:g})"
    p0 = peak_rps(trace)
    if p0 <= 0:
        raise ValidationError(f"--peak-rps {peak:g}: trace {trace.name!r} has no requests to scale")
    factor = peak / p0
    tr = scale_trace(trace, factor, seed=seed, label=f"--peak-rps {peak:g}")
    for _ in range(3):  # copies are jittered, which smooths 1-min peaks: correct the factor on the result
        got = peak_rps(tr)
        if abs(got / peak - 1) < 0.01:
            break
        factor *= peak / got
        tr = scale_trace(trace, factor, seed=seed, label=f"--peak-rps {peak:g}")
    return tr, (f"rate scaled to a 1-min peak of {peak_rps(tr):.1f} req/s (--peak-rps {peak:g}), "
                f"{tr.mean_rate_rps:.1f} req/s mean")


__all__ = ["PEAK_HELP", "PEAK_WINDOW_S", "RATE_HELP", "check_rate_flags", "peak_rps", "scaled", "synthetic"]
