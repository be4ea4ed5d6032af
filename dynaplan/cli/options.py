"""Checks shared by the commands: option values, output paths and trace-derived sizes.

Each check raises :class:`dynaplan.errors.ValidationError` naming the flag and the value given,
before any work is done, so that a bad flag never costs a solve and never ends in a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError as PydanticValidationError

from dynaplan.errors import ValidationError
from dynaplan.workload.trace import Trace

T = TypeVar("T")

MAX_WINDOWS = 10_000_000
"""Most windows a trace may be cut into (a 1-week trace in 60 ms windows); more is a typo."""


def build_options(make: Callable[[], T], flags: Mapping[str, tuple[str, object]]) -> T:
    """``make()`` (a pydantic options model), with its first error named by flag and value.

    ``flags`` maps a model field to its ``(--flag, value given)``; an error on another field (or
    on the model as a whole) keeps pydantic's message without the flag.
    """
    try:
        return make()
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        loc = err.get("loc") or ()
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        flag = flags.get(str(loc[0])) if loc else None
        raise ValidationError(f"{flag[0]} {flag[1]!r}: {msg[:1].lower() + msg[1:]}" if flag else msg) from None


def check_positive(value: float, flag: str, unit: str) -> float:
    """``value`` if it is a finite number > 0."""
    if not (math.isfinite(value) and value > 0):
        raise ValidationError(f"{flag} {value!r}: expected a positive, finite number of {unit}")
    return value


def check_finite(value: float, flag: str, unit: str) -> float:
    if not math.isfinite(value):
        raise ValidationError(f"{flag} {value!r}: expected a finite number of {unit}")
    return value


def check_out_file(path: Path | None, flag: str) -> Path | None:
    """An output file must not be a directory and its directory must exist."""
    if path is None:
        return None
    if path.is_dir():
        raise ValidationError(f"{flag} {path}: is a directory; expected a file name")
    if not path.parent.is_dir():
        raise ValidationError(f"{flag} {path}: directory {path.parent} does not exist")
    return path


def check_out_dir(path: Path, flag: str) -> Path:
    """An output directory may be created but must not be an existing file."""
    if path.exists() and not path.is_dir():
        raise ValidationError(f"{flag} {path}: exists and is not a directory")
    return path


def check_rate_source(trace: Trace) -> Trace:
    """A trace whose rate is used (scaling, synthetic generation) must span some time."""
    if not (len(trace) > 0 and trace.duration_s > 0):
        raise ValidationError(f"trace {trace.name!r} spans {trace.duration_s:g} s ({len(trace)} request(s)); "
                              "a rate cannot be taken from it")
    return trace


MAX_SYNTHETIC_REQUESTS = 100_000_000
"""Most requests a synthetic trace may have (about 3.7 weeks at the conversation preset's rate)."""


def check_synthetic_size(source: Trace | str, days: float, rate_rps: float | None) -> None:
    """A synthetic trace must have a rate to follow and fit in memory (checked before generating)."""
    from dynaplan.workload.synthetic import PRESETS

    if not (math.isfinite(days) and days > 0):
        return  # generate_trace names a bad --days itself
    name = source.name if isinstance(source, Trace) else str(source)
    rate = rate_rps if rate_rps is not None else PRESETS[name][1] if name in PRESETS else None
    if rate is None and isinstance(source, Trace):
        rate = check_rate_source(source).mean_rate_rps
    if rate is None or not (math.isfinite(rate) and rate > 0):
        return  # generate_trace names a bad --rate itself
    n = days * 86400.0 * rate
    if n > MAX_SYNTHETIC_REQUESTS:
        raise ValidationError(f"{days:g} synthetic day(s) at {rate:g} req/s make about {n:.3g} requests "
                              f"(at most {MAX_SYNTHETIC_REQUESTS:,}); use fewer days or a lower rate")


def check_window(trace: Trace, window_s: float, flag: str, text: str, *, must_fit: bool = False) -> None:
    """A window must not cut the trace into an absurd number of windows (nor, with ``must_fit``,
    be longer than the trace: a peak over a window the trace does not fill is no peak)."""
    span = trace.duration_s
    if must_fit and window_s > span:
        raise ValidationError(f"{flag} {text}: longer than the trace {trace.name!r} ({span:g} s)")
    n = span / window_s
    if n > MAX_WINDOWS:
        raise ValidationError(f"{flag} {text}: cuts the {span:g} s of trace {trace.name!r} into {n:.3g} windows "
                              f"(at most {MAX_WINDOWS:,}); use a longer window")


def write_or_fail(write: Callable[[], object], path: Path, flag: str) -> None:
    """Run ``write()``; an OS error becomes a one-line error naming ``flag`` and ``path``."""
    try:
        write()
    except OSError as exc:
        raise ValidationError(f"{flag} {path}: cannot write ({exc.strerror or exc})") from None


__all__ = ["MAX_SYNTHETIC_REQUESTS", "MAX_WINDOWS", "build_options", "check_finite", "check_out_dir",
           "check_out_file", "check_positive", "check_rate_source", "check_synthetic_size", "check_window",
           "write_or_fail"]
