"""The request trace: columnar arrays of arrival time and token counts, plus provenance.

A :class:`Trace` holds one row per request as typed numpy arrays (no per-row Python objects):

- ``arrival_s`` (float64): arrival time in seconds since :attr:`Trace.start`, non-decreasing;
- ``input_tokens`` / ``output_tokens`` (int32): prompt and generated token counts.

Provenance travels with the data: ``synthetic`` and ``label`` say whether the requests were
measured or generated, and ``repairs`` lists every change the loader made to the file's rows.
Traces are written by :func:`save_trace` as a generic CSV (with a ``# dynaplan-trace {json}``
first line carrying the metadata) or parquet (metadata in the schema), and read back by
:func:`dynaplan.workload.loading.load_trace`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Mapping

import numpy as np
import pandas as pd

from dynaplan.errors import ValidationError

CSV_METADATA_PREFIX = "# dynaplan-trace "
"""First line of a CSV written by earlier versions of :func:`save_trace` (the rest of the line is
JSON metadata); still read, no longer written: metadata now goes to :func:`csv_sidecar`."""


def csv_sidecar(path: str | Path) -> Path:
    """``<name>.meta.json`` beside a ``<name>.csv`` or ``<name>.csv.gz``: where the provenance of
    a CSV written by dynaplan goes, so the CSV itself reads with plain ``pandas.read_csv``."""
    path = Path(path)
    low = path.name.lower()
    stem = path.name[:-7] if low.endswith(".csv.gz") else path.name[:-4] if low.endswith(".csv") else path.name
    return path.with_name(stem + ".meta.json")

PARQUET_METADATA_KEY = b"dynaplan-trace"

RepairKind = Literal[
    "sorted", "dropped_duplicates", "jittered_duplicates", "kept_duplicates", "dropped_invalid"
]


@dataclass(frozen=True)
class RepairAction:
    """One kind of change the loader made to a trace file's rows.

    ``first_rows`` are 1-based data-row numbers in the file (the header is not a data row), at
    most five of them, in file order.
    """

    kind: RepairKind
    n_rows: int
    first_rows: tuple[int, ...]
    detail: str

    def __str__(self) -> str:
        rows = ", ".join(map(str, self.first_rows))
        more = ", ..." if self.n_rows > len(self.first_rows) else ""
        return f"{self.kind}: {self.n_rows} row(s) (rows {rows}{more}): {self.detail}"


@dataclass(frozen=True)
class RepairReport:
    """What :func:`load_trace` changed in a file. Empty ``actions`` means nothing was changed."""

    source: str
    rows_read: int
    rows_kept: int
    actions: tuple[RepairAction, ...] = ()

    @property
    def changed(self) -> bool:
        """True when any row was reordered, dropped or altered."""
        return any(a.kind != "kept_duplicates" for a in self.actions) or self.rows_kept != self.rows_read

    def __str__(self) -> str:
        head = f"{self.source}: read {self.rows_read} rows, kept {self.rows_kept}"
        if not self.actions:
            return head + "; no repairs"
        return head + "\n" + "\n".join(f"  - {a}" for a in self.actions)


def _readonly(arr: np.ndarray, dtype) -> np.ndarray:
    view = np.asarray(arr, dtype=dtype).view()
    view.setflags(write=False)
    return view


@dataclass(frozen=True, eq=False)
class Trace:
    """A sequence of LLM inference requests, sorted by arrival time.

    Attributes:
        arrival_s: arrival time of each request, seconds since ``start`` (float64, non-decreasing).
        input_tokens: prompt tokens of each request (int32, >= 0).
        output_tokens: generated tokens of each request (int32, >= 0).
        name: short name (bundled name, file stem or generator name).
        start: absolute UTC time of ``arrival_s == 0``; ``None`` when the source only has
            relative seconds.
        duration_s: span the trace covers, seconds from ``start`` (default: the last arrival).
        synthetic: True when the requests were generated, not measured.
        label: human-readable provenance, e.g. ``"SYNTHETIC: ..."``; printed by the CLI and
            written into every output file.
        source: where the data came from (file path, bundled name or generator call).
        repairs: what the loader changed in the source rows (``None`` for generated traces).
        metadata: extra string key/value provenance (seed, generator parameters, ...).
    """

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    name: str
    start: pd.Timestamp | None = None
    duration_s: float | None = None
    synthetic: bool = False
    label: str = ""
    source: str = ""
    repairs: RepairReport | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = _readonly(self.arrival_s, np.float64)
        n = arr.shape[0] if arr.ndim == 1 else -1
        tokens = []
        for fname in ("input_tokens", "output_tokens"):
            raw = np.asarray(getattr(self, fname))
            if raw.ndim != 1 or raw.shape[0] != n:
                raise ValidationError(
                    f"trace {self.name!r}: {fname} has shape {raw.shape}, expected ({n},) like arrival_s"
                )
            if raw.size and (raw.min() < 0 or raw.max() > np.iinfo(np.int32).max):
                raise ValidationError(f"trace {self.name!r}: {fname} must be in 0..2**31-1")
            tokens.append(_readonly(raw, np.int32))
        if arr.ndim != 1:
            raise ValidationError(f"trace {self.name!r}: arrival_s must be 1-D, got shape {arr.shape}")
        if arr.size:
            if not np.isfinite(arr[0]) or not np.isfinite(arr[-1]) or np.any(arr[1:] < arr[:-1]):
                raise ValidationError(f"trace {self.name!r}: arrival_s must be finite and non-decreasing")
        duration = self.duration_s
        if duration is None:
            duration = float(arr[-1]) if arr.size else 0.0
        elif arr.size and duration < arr[-1]:
            raise ValidationError(
                f"trace {self.name!r}: duration_s={duration} is shorter than the last arrival {arr[-1]}"
            )
        start = self.start
        if start is not None:
            start = pd.Timestamp(start)
            start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
        label = self.label or (f"SYNTHETIC: {self.name}" if self.synthetic else f"measured: {self.name}")
        object.__setattr__(self, "arrival_s", arr)
        object.__setattr__(self, "input_tokens", tokens[0])
        object.__setattr__(self, "output_tokens", tokens[1])
        object.__setattr__(self, "duration_s", float(duration))
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "metadata", MappingProxyType({str(k): str(v) for k, v in self.metadata.items()}))

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    @property
    def n_requests(self) -> int:
        return len(self)

    @property
    def mean_rate_rps(self) -> float:
        """Requests per second over ``duration_s`` (NaN for a zero-length trace)."""
        return len(self) / self.duration_s if self.duration_s > 0 else float("nan")

    def provenance(self) -> dict[str, object]:
        """JSON-able metadata written next to every output derived from this trace."""
        return {
            "name": self.name,
            "synthetic": self.synthetic,
            "label": self.label,
            "source": self.source,
            "start": None if self.start is None else self.start.isoformat(),
            "duration_s": self.duration_s,
            "n_requests": len(self),
            **dict(self.metadata),
        }

    def to_frame(self) -> pd.DataFrame:
        """The requests as a DataFrame (columns ``arrival_s, input_tokens, output_tokens``)."""
        return pd.DataFrame(
            {"arrival_s": self.arrival_s, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        )


def save_trace(trace: Trace, path: str | Path, *, sidecar: bool = True) -> Path:
    """Write ``trace`` as generic CSV (``.csv``, ``.csv.gz``) or parquet (``.parquet``).

    Columns are ``arrival_s, input_tokens, output_tokens``. Provenance (``synthetic``, ``label``,
    ``start``, ...) goes into the sidecar :func:`csv_sidecar` for CSV (so the CSV stays plain, for
    ``pandas.read_csv``; ``sidecar=False`` leaves it to the caller) and into the schema metadata
    for parquet, so :func:`load_trace` restores it.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    meta = json.dumps(trace.provenance(), sort_keys=True)
    table = pa.table(
        {"arrival_s": trace.arrival_s, "input_tokens": trace.input_tokens, "output_tokens": trace.output_tokens}
    )
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        table = table.replace_schema_metadata({PARQUET_METADATA_KEY: meta.encode()})
        pq.write_table(table, path)
        return path
    if not name.endswith((".csv", ".csv.gz")):
        raise ValidationError(f"{path}: unknown trace format; use .csv, .csv.gz or .parquet")
    sink = pa.CompressedOutputStream(str(path), "gzip") if name.endswith(".gz") else pa.OSFile(str(path), "wb")
    with sink:
        pacsv.write_csv(table, sink)
    if sidecar:
        csv_sidecar(path).write_text(meta + "\n", encoding="utf-8")
    return path
