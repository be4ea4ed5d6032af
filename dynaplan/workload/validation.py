"""Validate and repair the raw columns of a trace file, then build the :class:`Trace`.

Checks, in this order (each names the file, the 1-based data row, the CSV line and the field):

1. values: missing, unparseable, non-finite, negative, fractional or > 2**31-1 token counts;
   unparseable, negative or non-finite arrival times;
2. time order: every row's arrival must not be earlier than the previous row's;
3. identical rows: same arrival time *and* token counts as another row. Rows that only share a
   timestamp are legitimate concurrent arrivals and are accepted unchanged.

Without ``repair`` the first problem raises :class:`ValidationError`. With ``repair`` invalid
rows are dropped, rows are stably sorted by time, and identical rows are handled by the
duplicate policy; each change becomes a :class:`RepairAction` in the trace's report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from dynaplan.errors import ValidationError
from dynaplan.workload.trace import RepairAction, RepairReport, Trace

ROLES = ("arrival", "input", "output")
DuplicatePolicy = Literal["error", "drop", "jitter", "keep"]
JITTER_NS = 1
"""Jitter step: the k-th extra copy of an identical row is moved k nanoseconds later."""

_INT32_MAX = np.iinfo(np.int32).max
_PROVENANCE_KEYS = ("name", "synthetic", "label", "source", "start", "duration_s", "n_requests")
_POLICY_KIND = {"drop": "dropped_duplicates", "jitter": "jittered_duplicates", "keep": "kept_duplicates"}


@dataclass
class RawColumns:
    """Raw columns of a file before validation (one entry per data row)."""

    source: str
    names: dict[str, str]  # role -> column name in the file
    arrival: np.ndarray  # int64 ns (timestamps) or float64 s
    arrival_is_time: bool
    input: np.ndarray  # float64
    output: np.ndarray  # float64
    invalid: dict[str, list[tuple[np.ndarray, str]]]  # role -> [(mask, reason)]
    raw_text: dict[str, pa.ChunkedArray] = field(default_factory=dict)  # role -> strings (slow path)
    line_offset: int | None = None  # line number of data row 1, CSV only
    meta: dict = field(default_factory=dict)

    def where(self, row0: int) -> str:
        row = f"row {row0 + 1}"
        return f"{row} (line {row0 + self.line_offset})" if self.line_offset is not None else row

    def value(self, role: str, row0: int) -> str:
        if role in self.raw_text:
            return repr(self.raw_text[role][row0].as_py())
        val = getattr(self, role)[row0]
        if role == "arrival" and self.arrival_is_time:
            return repr(str(pd.Timestamp(int(val))))
        return f"{float(val):g}"


def value_checks(cols: RawColumns) -> None:
    """Add masks for bad numbers: negative/fractional/huge tokens, negative/non-finite seconds."""
    for role in ("input", "output"):
        v = getattr(cols, role)
        if np.issubdtype(v.dtype, np.integer):
            checks = [(v < 0, "negative token count")]
            if v.dtype.itemsize > 4:
                checks.append((v > _INT32_MAX, "token count above 2**31-1"))
        else:
            with np.errstate(invalid="ignore"):
                checks = [
                    (~np.isfinite(v), "not a finite number"),
                    (v < 0, "negative token count"),
                    (np.isfinite(v) & (v != np.floor(v)), "not a whole number of tokens"),
                    (v > _INT32_MAX, "token count above 2**31-1"),
                ]
        cols.invalid[role].extend((m, r) for m, r in checks if m.any())
    if not cols.arrival_is_time:
        v = cols.arrival
        for mask, reason in ((~np.isfinite(v), "not a finite number of seconds"), (v < 0, "negative arrival time")):
            if mask.any():
                cols.invalid["arrival"].append((mask, reason))


def _first_rows(rows: np.ndarray) -> tuple[int, ...]:
    return tuple(int(r) + 1 for r in np.sort(rows)[:5])


@dataclass
class _Rows:
    """The rows still in play; ``row_id[i]`` is the 0-based file row of row ``i`` (None = identity)."""

    arrival: np.ndarray
    inp: np.ndarray
    out: np.ndarray
    row_id: np.ndarray | None = None

    def take(self, sel: np.ndarray) -> None:
        """Keep rows ``sel`` (boolean mask or positions), in that order."""
        self.arrival, self.inp, self.out = self.arrival[sel], self.inp[sel], self.out[sel]
        self.row_id = (np.flatnonzero(sel) if sel.dtype == bool else sel) if self.row_id is None else self.row_id[sel]

    def file_row(self, pos):
        return pos if self.row_id is None else self.row_id[pos]


def _drop_invalid(cols: RawColumns, rows: _Rows, repair: bool, actions: list) -> None:
    """Step 1: rows with an invalid value (raise, or drop them with a report)."""
    bad = np.zeros(len(rows.arrival), dtype=bool)
    for items in cols.invalid.values():
        for mask, _ in items:
            bad |= mask
    if not bad.any():
        return
    if not repair:
        row0 = int(np.flatnonzero(bad)[0])
        role, reason = next((r, why) for r, items in cols.invalid.items() for m, why in items if m[row0])
        raise ValidationError(
            f"{cols.source}: {cols.where(row0)}, field {cols.names[role]!r}: {reason}, got "
            f"{cols.value(role, row0)} ({int(bad.sum())} invalid row(s) in all; pass repair=True "
            "(CLI: --repair) to drop them)"
        )
    for role, items in cols.invalid.items():
        for mask, reason in items:
            idx = np.flatnonzero(mask)
            actions.append(RepairAction("dropped_invalid", int(idx.size), _first_rows(idx),
                                        f"field {cols.names[role]!r}: {reason}"))
    rows.take(~bad)
    if rows.arrival.size == 0:
        raise ValidationError(f"{cols.source}: no valid data rows")


def _sort(cols: RawColumns, rows: _Rows, repair: bool, actions: list) -> None:
    """Step 2: rows earlier than their predecessor (raise, or stably sort all rows)."""
    back = np.flatnonzero(rows.arrival[1:] < rows.arrival[:-1]) + 1
    if not back.size:
        return
    ids = rows.file_row(back)
    if not repair:
        r, prev = int(ids[0]), int(rows.file_row(back[0] - 1))
        raise ValidationError(
            f"{cols.source}: {cols.where(r)}, field {cols.names['arrival']!r}: {cols.value('arrival', r)} "
            f"is earlier than row {prev + 1} ({cols.value('arrival', prev)}); rows must be sorted by time "
            f"({back.size} row(s) out of order; pass repair=True, CLI --repair, to sort)"
        )
    rows.take(np.argsort(rows.arrival, kind="stable"))
    actions.append(RepairAction("sorted", int(back.size), _first_rows(ids),
                                "rows earlier than their predecessor; all rows stably sorted by time"))


def _duplicates(cols: RawColumns, rows: _Rows, policy: DuplicatePolicy, actions: list) -> None:
    """Step 3: rows identical to an earlier row (raise, drop, jitter or keep)."""
    dup, orig = _duplicate_positions(rows.arrival, rows.inp, rows.out)
    if not dup.size:
        return
    ids = rows.file_row(dup)
    if policy == "error":
        r, o = int(ids[0]), int(rows.file_row(orig[0]))
        raise ValidationError(
            f"{cols.source}: {cols.where(r)}: identical to row {o + 1} (same "
            f"{cols.names['arrival']!r}, {cols.names['input']!r} and {cols.names['output']!r}; "
            f"{dup.size} such row(s)); pass duplicates='drop' (double-logged), 'jitter' or 'keep' "
            "(distinct requests), or repair=True (CLI --repair; drops them)"
        )
    if policy == "drop":
        keep = np.ones(rows.arrival.size, dtype=bool)
        keep[dup] = False
        rows.take(keep)
        detail = "identical to an earlier row (same time and token counts)"
    elif policy == "jitter":
        jittered = _jitter(rows.arrival, dup, cols.arrival_is_time)
        order = np.argsort(jittered, kind="stable")
        rows.take(order)
        rows.arrival = jittered[order]
        detail = f"identical to an earlier row; k-th copy moved k*{JITTER_NS} ns later"
    else:
        detail = "identical to an earlier row; kept unchanged as distinct requests"
    actions.append(RepairAction(_POLICY_KIND[policy], int(dup.size), _first_rows(ids), detail))


def _seconds(cols: RawColumns, rows: _Rows) -> tuple[np.ndarray, pd.Timestamp | None]:
    """Arrival seconds since the start, and the absolute start (first timestamp) if known."""
    if not cols.arrival_is_time:
        return rows.arrival, (pd.Timestamp(cols.meta["start"]) if cols.meta.get("start") else None)
    arrival, rows.arrival = rows.arrival, None
    cols.arrival = cols.input = cols.output = None  # raw columns (if copied) can be freed now
    t0 = int(arrival[0])
    if arrival.flags.writeable:
        arrival -= t0  # in place: the array belongs to this load
    else:  # a read-only view of Arrow memory
        arrival = arrival - t0
    arrival_s = arrival.astype(np.float64)
    del arrival
    arrival_s /= 1e9
    return arrival_s, pd.Timestamp(t0, tz="UTC")


def build_trace(cols: RawColumns, name: str, repair: bool, policy: DuplicatePolicy, bundled: bool) -> Trace:
    """Validate ``cols`` (values, order, identical rows), repair if asked, return the Trace."""
    value_checks(cols)
    n_read = len(cols.arrival)
    actions: list[RepairAction] = []
    rows = _Rows(cols.arrival, cols.input, cols.output)
    _drop_invalid(cols, rows, repair, actions)
    _sort(cols, rows, repair, actions)
    _duplicates(cols, rows, policy, actions)
    inp, out = rows.inp, rows.out
    arrival_s, start = _seconds(cols, rows)

    meta = cols.meta
    duration = meta.get("duration_s") if not cols.arrival_is_time else None
    if duration is not None and float(duration) < arrival_s[-1]:
        duration = None
    label = meta.get("label") or ("measured: " + name + (" (bundled, CC-BY-4.0 Azure Public Dataset)"
                                                          if bundled else f" ({cols.source})"))
    return Trace(
        arrival_s=arrival_s,
        input_tokens=inp.astype(np.int32, copy=False),
        output_tokens=out.astype(np.int32, copy=False),
        name=name,
        start=start,
        duration_s=None if duration is None else float(duration),
        synthetic=bool(meta.get("synthetic", False)),
        label=label,
        source=cols.source,
        repairs=RepairReport(cols.source, n_read, int(arrival_s.size), tuple(actions)),
        metadata={k: v for k, v in meta.items() if k not in _PROVENANCE_KEYS},
    )


def _duplicate_positions(arrival: np.ndarray, inp: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (time order) of rows identical to an earlier row, and of the row each repeats.

    Only rows sharing a timestamp with a neighbour are compared, so the cost is proportional to
    the number of ties. The first copy of each set of identical rows is not a duplicate.
    """
    tie = np.flatnonzero(arrival[1:] == arrival[:-1])
    if tie.size == 0:
        return tie, tie
    cand = np.unique(np.concatenate([tie, tie + 1]))
    order = np.lexsort((cand, out[cand], inp[cand], arrival[cand]))
    c = cand[order]
    same = (arrival[c[1:]] == arrival[c[:-1]]) & (inp[c[1:]] == inp[c[:-1]]) & (out[c[1:]] == out[c[:-1]])
    dup, orig = c[1:][same], c[:-1][same]
    by_pos = np.argsort(dup)
    return dup[by_pos], orig[by_pos]


def _jitter(arrival: np.ndarray, dup: np.ndarray, is_time: bool) -> np.ndarray:
    """Arrival times with the k-th extra copy in a run of equal timestamps moved k * JITTER_NS later."""
    arrival = arrival.copy()
    is_dup = np.zeros(arrival.size, dtype=np.int64)
    is_dup[dup] = 1
    run_start = np.r_[True, arrival[1:] != arrival[:-1]]
    csum = np.cumsum(is_dup)
    base = np.maximum.accumulate(np.where(run_start, csum - is_dup, 0))
    k = (csum - base)[dup]
    if is_time:
        arrival[dup] += k * JITTER_NS
    else:
        arrival[dup] += k * np.maximum(JITTER_NS * 1e-9, 4 * np.spacing(arrival[dup]))
    return arrival
