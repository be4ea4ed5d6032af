"""Checks shared by the commands: option values, output paths and trace-derived sizes.

The trace-derived limits live in the workload package (:data:`~dynaplan.workload.MAX_WINDOWS`,
:func:`~dynaplan.workload.check_window_count`, :data:`~dynaplan.workload.MAX_SYNTHETIC_REQUESTS`,
:func:`~dynaplan.workload.check_synthetic_size`, :func:`~dynaplan.workload.check_rate_source`), so
library callers get the same errors; they are re-exported here for the commands.

Each check raises :class:`dynaplan.errors.ValidationError` naming the flag and the value given,
before any work is done, so that a bad flag never costs a solve and never ends in a traceback.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError as PydanticValidationError

from dynaplan.errors import InputError, ValidationError
from dynaplan.workload.aggregate import MAX_WINDOWS, check_window_count
from dynaplan.workload.synthetic import MAX_SYNTHETIC_REQUESTS, check_rate_source, check_synthetic_size
from dynaplan.workload.trace import Trace

T = TypeVar("T")


def build_options(make: Callable[[], T], flags: Mapping[str, tuple[str, object]], *,
                  rename_fields: bool = False) -> T:
    """``make()`` (a pydantic options model), with its first error named by flag and value.

    ``flags`` maps a model field to its ``(--flag, value given)``; an error on another field (or
    on the model as a whole) keeps pydantic's message without the flag. With ``rename_fields``,
    a message that starts with its own field's name drops it (the flag comes first instead), and
    the other fields of ``flags`` it names are written as their flags: ``pool_epoch_s must be a
    whole multiple of window_s (5 s)`` becomes ``--pool-epoch '7s': must be a whole multiple of
    --window (5 s)``.
    """
    try:
        return make()
    except (PydanticValidationError, InputError) as exc:  # InputError keeps pydantic's errors()
        err = exc.errors()[0]
        loc = err.get("loc") or ()
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        flag = flags.get(str(loc[0])) if loc else None
        if rename_fields:
            if flag:
                msg = msg.removeprefix(f"{loc[0]} ")
            for field, (name, _) in flags.items():
                msg = re.sub(rf"(?<![\w-]){re.escape(field)}(?!\w)", name, msg)
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


def check_window(trace: Trace, window_s: float, flag: str, text: str, *, must_fit: bool = False) -> None:
    """A window must not cut the trace into an absurd number of windows (nor, with ``must_fit``,
    be longer than the trace: a peak over a window the trace does not fill is no peak)."""
    span = trace.duration_s
    if must_fit and window_s > span:
        raise ValidationError(f"{flag} {text}: longer than the trace {trace.name!r} ({span:g} s)")
    check_window_count(trace, window_s, f"{flag} {text}")


def write_or_fail(write: Callable[[], object], path: Path, flag: str) -> None:
    """Run ``write()``; an OS error becomes a one-line error naming ``flag`` and ``path``."""
    try:
        write()
    except OSError as exc:
        raise ValidationError(f"{flag} {path}: cannot write ({exc.strerror or exc})") from None


__all__ = ["MAX_SYNTHETIC_REQUESTS", "MAX_WINDOWS", "build_options", "check_finite", "check_out_dir",
           "check_out_file", "check_positive", "check_rate_source", "check_synthetic_size", "check_window",
           "write_or_fail"]
