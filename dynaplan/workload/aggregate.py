"""Per-class load of a trace per time window, and the peak load within each epoch.

Windows are aligned to the trace start (``arrival_s == 0``): window ``w`` covers
``[w * window_s, (w + 1) * window_s)``; there are ``ceil(duration_s / window_s)`` of them (an
arrival exactly at ``duration_s`` counts in the last one). Rates divide by the width of the window
the trace covers: ``window_s``, or less for a last window the trace ends inside (so its rate is
not under-stated; a last sliver under half a window shares the rate of the window before it, so
it cannot spike); ``epoch_peaks`` treats its inner windows alike.

Shape of the results (:class:`LoadTable`): three *wide* DataFrames, one row per window, one
column per class, in the class scheme's order::

    load_rps                 class   SS    SM    SL   ...   LL
    window_start_s
    0.0                            1.2   0.4   0.0  ...  0.8
    300.0                          ...

with the index named ``window_start_s`` (float seconds since the trace start) and the columns
named ``class``. ``LoadTable.long()`` gives the same data indexed by ``(window_start_s, class)``.
Everything is one vectorised pass: ``np.bincount`` over ``window_index * n_classes + class``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dynaplan.domain.classes import DEFAULT_CLASSES, ClassScheme
from dynaplan.errors import ValidationError
from dynaplan.limits import MAX_WINDOWS  # most windows a trace may be cut into (a stated limit)
from dynaplan.validation import checked
from dynaplan.workload.classify import class_index as class_index_of
from dynaplan.workload.trace import Trace


_UNITS_S = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0, "d": 86400.0}


def parse_duration_s(text: str | float | int) -> float:
    """Seconds in a duration such as ``5s``, ``5min``, ``30min``, ``1h``, ``2d`` or ``300``."""
    if isinstance(text, (bool, np.bool_)):
        raise ValidationError(f"duration {text!r}: a boolean; expected seconds or a number with a unit (e.g. 5min)")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
        unit = m.group(2).lower() if m else None
        if m is None or unit not in _UNITS_S and unit != "":
            raise ValidationError(f"duration {text!r}: expected a number with unit ms, s, min, h or d (e.g. 5min)")
        value = float(m.group(1)) * (_UNITS_S[unit] if unit else 1.0)
    if not (value > 0 and math.isfinite(value)):
        raise ValidationError(f"duration {text!r} must be positive")
    return value


@dataclass(frozen=True, eq=False)
class LoadTable:
    """Per-window per-class request and token rates of a trace (see the module docstring).

    Attributes:
        window_s: window length (s).
        peak_window_s: ``None`` for average rates over each window; otherwise each value is the
            highest rate of any ``peak_window_s`` sub-window inside the window (per class and per
            column independently: the class peaks need not be simultaneous).
        load_rps: requests per second.
        input_tokens_per_s: prompt tokens per second.
        output_tokens_per_s: generated tokens per second.
        start: absolute UTC time of window start 0, if known.
        synthetic / label: copied from the trace, so outputs stay labelled.
    """

    window_s: float
    peak_window_s: float | None
    load_rps: pd.DataFrame
    input_tokens_per_s: pd.DataFrame
    output_tokens_per_s: pd.DataFrame
    start: pd.Timestamp | None
    synthetic: bool
    label: str

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.load_rps.columns)

    def long(self) -> pd.DataFrame:
        """Long format: index ``(window_start_s, class)``, one column per quantity."""
        return pd.DataFrame(
            {
                "load_rps": self.load_rps.stack(),
                "input_tokens_per_s": self.input_tokens_per_s.stack(),
                "output_tokens_per_s": self.output_tokens_per_s.stack(),
            }
        )


def _window_sums(
    trace: Trace, classes: np.ndarray, n_classes: int, window_s: float, n_windows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Request count and token sums per (window, class), each shaped (n_windows, n_classes)."""
    key = np.floor_divide(trace.arrival_s, window_s).astype(np.int64)
    np.minimum(key, n_windows - 1, out=key)
    key *= n_classes
    key += classes
    size = n_windows * n_classes
    counts = np.bincount(key, minlength=size).astype(np.float64)
    tok_in = np.bincount(key, weights=trace.input_tokens, minlength=size)
    tok_out = np.bincount(key, weights=trace.output_tokens, minlength=size)
    shape = (n_windows, n_classes)
    return counts.reshape(shape), tok_in.reshape(shape), tok_out.reshape(shape)


def _classes(trace: Trace, class_index, scheme: ClassScheme) -> np.ndarray:
    if class_index is None:
        return class_index_of(trace, scheme)
    classes = np.asarray(class_index)
    if classes.shape != (len(trace),):
        raise ValidationError(f"class_index has shape {classes.shape}; expected ({len(trace)},) for trace {trace.name!r}")
    if classes.size and (classes.min() < 0 or classes.max() >= scheme.n_classes):
        raise ValidationError(f"class_index values must be in 0..{scheme.n_classes - 1} for this class scheme")
    return classes


def _per_second(x: np.ndarray, trace: Trace, window_s: float) -> np.ndarray:
    """Sums per window ``x`` (n_windows, n_classes) as rates over the width of each window the
    trace covers.

    A window the trace ends inside covers ``c < window_s`` of it: its rate divides by ``c`` when
    ``c`` is at least half a window. A sliver under half a window is joined to the window before
    it (both get the rate over ``window_s + c``), so an arrival just past a window boundary cannot
    make a spike of 1/c. A trace shorter than one window has its rate over its span, or over
    ``window_s`` if that span is (within 1e-9 of a window) zero. Windows after the trace's end
    hold nothing and keep ``window_s``. Every request is counted once: the sum over windows of
    rate x covered width is the trace's count.
    """
    out = x / window_s
    last = min(x.shape[0], _n_windows(trace, window_s)) - 1  # the window the trace ends inside
    covered = trace.duration_s - last * window_s
    if not 0 < covered < window_s:
        return out
    if last == 0:
        if covered >= 1e-9 * window_s:
            out[0] = x[0] / covered
    elif covered >= window_s / 2:
        out[last] = x[last] / covered
    else:
        out[last - 1:last + 1] = (x[last - 1] + x[last]) / (window_s + covered)
    return out


def _n_windows(trace: Trace, window_s: float) -> int:
    return max(1, math.ceil(trace.duration_s / window_s - 1e-9))


def check_window_count(trace: Trace, window_s: float, label: str | None = None) -> float:
    """The number of ``window_s`` windows ``trace`` is cut into, if it is at most :data:`MAX_WINDOWS`.

    Otherwise raises :class:`ValidationError` naming ``label`` (default ``window_s=<value> s``),
    the trace, its span and the window count, before anything of that size is allocated.
    """
    span = trace.duration_s
    n = span / window_s
    if n > MAX_WINDOWS:
        label = f"window_s={window_s:g} s" if label is None else label
        raise ValidationError(f"{label}: cuts the {span:g} s of trace {trace.name!r} into {n:.3g} windows "
                              f"(at most {MAX_WINDOWS:,}); use a longer window")
    return n


def _frame(values: np.ndarray, window_s: float, names) -> pd.DataFrame:
    index = pd.Index(np.arange(values.shape[0]) * window_s, name="window_start_s")
    return pd.DataFrame(values, index=index, columns=pd.Index(list(names), name="class"))


@checked
def aggregate_load(
    trace: Trace,
    class_index: np.ndarray | None = None,
    *,
    window_s: float | str = 300.0,
    scheme: ClassScheme = DEFAULT_CLASSES,
) -> LoadTable:
    """Mean request and token rates per class in every ``window_s`` window.

    A last window the trace covers only in part (its ``duration_s`` is not a whole number of
    windows) is divided by the width it covers, not by ``window_s``: its rate is the rate of the
    requests in it, as for every other window. A last window covered for less than half its
    width is joined to the one before it (see :func:`_per_second`).

    Args:
        trace: the requests.
        class_index: class of every request (e.g. ``Classification.predicted_class``); default
            the true class from ``scheme``.
        window_s: window length in seconds, or a string like ``"5s"``, ``"5min"``.
        scheme: class scheme naming the columns.
    """
    window_s = parse_duration_s(window_s)
    check_window_count(trace, window_s)
    classes = _classes(trace, class_index, scheme)
    n_windows = _n_windows(trace, window_s)
    counts, tok_in, tok_out = _window_sums(trace, classes, scheme.n_classes, window_s, n_windows)
    names = scheme.names
    return LoadTable(
        window_s=window_s,
        peak_window_s=None,
        load_rps=_frame(_per_second(counts, trace, window_s), window_s, names),
        input_tokens_per_s=_frame(_per_second(tok_in, trace, window_s), window_s, names),
        output_tokens_per_s=_frame(_per_second(tok_out, trace, window_s), window_s, names),
        start=trace.start,
        synthetic=trace.synthetic,
        label=trace.label,
    )


@checked
def epoch_peaks(
    trace: Trace,
    class_index: np.ndarray | None = None,
    *,
    epoch_s: float | str = 1800.0,
    inner_window_s: float | str = 60.0,
    scheme: ClassScheme = DEFAULT_CLASSES,
) -> LoadTable:
    """Per class, the highest ``inner_window_s`` rate within every ``epoch_s`` epoch.

    This is what the cluster level of DynamoLLM sizes pools for (predicted peak of the next
    30-min epoch). ``epoch_s`` must be a whole multiple of ``inner_window_s``. The three
    quantities peak independently (``output_tokens_per_s`` is the highest output-token rate of
    any sub-window, not the one at the request-rate peak).
    """
    epoch_s, inner_s = parse_duration_s(epoch_s), parse_duration_s(inner_window_s)
    check_window_count(trace, inner_s, f"inner_window_s={inner_s:g} s")
    ratio = epoch_s / inner_s
    if ratio > MAX_WINDOWS:
        raise ValidationError(f"epoch_s={epoch_s:g} s holds {ratio:.3g} inner windows of {inner_s:g} s "
                              f"(at most {MAX_WINDOWS:,}); use a shorter epoch or a longer inner window")
    if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
        raise ValidationError(f"epoch_s={epoch_s} must be a whole multiple of inner_window_s={inner_s}")
    ratio = int(round(ratio))
    classes = _classes(trace, class_index, scheme)
    n_epochs = _n_windows(trace, epoch_s)
    counts, tok_in, tok_out = _window_sums(trace, classes, scheme.n_classes, inner_s, n_epochs * ratio)
    names = scheme.names

    def peak(x: np.ndarray) -> pd.DataFrame:  # a partial inner window: over its covered width
        return _frame(_per_second(x, trace, inner_s).reshape(n_epochs, ratio, -1).max(axis=1), epoch_s, names)

    return LoadTable(
        window_s=epoch_s,
        peak_window_s=inner_s,
        load_rps=peak(counts),
        input_tokens_per_s=peak(tok_in),
        output_tokens_per_s=peak(tok_out),
        start=trace.start,
        synthetic=trace.synthetic,
        label=trace.label,
    )
