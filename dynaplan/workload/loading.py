"""Load request traces: the Azure LLM inference format, generic CSV/parquet, bundled traces.

Accepted columns (first match wins; pass ``columns=`` to name them yourself):

- arrival: ``TIMESTAMP`` (Azure), ``arrival_s``, ``arrival_time_s``, ``arrived_at``,
  ``arrival_time``, ``timestamp``. Timestamps (``2023-11-16 18:15:46.6805900``, ``2024-05-10
  00:00:00.009930+00:00``, with or without fractional seconds) become seconds since the first
  request, with the first request's time as :attr:`Trace.start` (naive times are taken as UTC).
  Numbers are seconds since the trace start and are kept as they are.
- input tokens: ``ContextTokens`` (Azure), ``input_tokens``, ``num_prefill_tokens``,
  ``prompt_tokens``; output tokens: ``GeneratedTokens`` (Azure), ``output_tokens``,
  ``num_decode_tokens``, ``completion_tokens``.

Files are read column-wise with the pyarrow CSV reader (gzip by extension; CRLF is fine) into
typed numpy arrays, so a 27-million-row week loads in a couple of GiB. Problems — missing
columns, no rows, unparseable or missing values, negative or fractional token counts, rows out
of time order, rows identical to another row — raise :class:`~dynaplan.errors.ValidationError`
naming the file, the row (1-based data row and, for CSV, the line) and the field. With
``repair=True`` the loader instead drops invalid rows, sorts, and drops / jitters / keeps
identical rows, and lists every change in :attr:`Trace.repairs`. Equal timestamps on rows that
differ in their token counts are legitimate (concurrent arrivals at the clock's resolution) and
are always accepted unchanged.
"""

from __future__ import annotations

import gzip
import json
import re
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import Literal, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dynaplan.errors import ValidationError
from dynaplan.limits import check_json_depth
from dynaplan.validation import checked
from dynaplan.workload.trace import CSV_METADATA_PREFIX, PARQUET_METADATA_KEY, Trace, csv_sidecar
from dynaplan.workload.validation import ROLES, DuplicatePolicy, RawColumns, build_trace

BUNDLED_TRACES: Mapping[str, str] = {
    "azure-conv-2023": "AzureLLMInferenceTrace_conv.csv.gz",
    "azure-code-2023": "AzureLLMInferenceTrace_code.csv.gz",
}
"""Bundled trace name -> file in ``dynaplan/workload/data`` (see its ATTRIBUTION.md)."""

ALIASES: Mapping[str, tuple[str, ...]] = {
    "arrival": ("TIMESTAMP", "arrival_s", "arrival_time_s", "arrived_at", "arrival_time", "timestamp"),
    "input": ("ContextTokens", "input_tokens", "num_prefill_tokens", "prompt_tokens"),
    "output": ("GeneratedTokens", "output_tokens", "num_decode_tokens", "completion_tokens"),
}

_NUMBER_RE = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"
_TIMESTAMP_RE = r"^\s*\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*$"
_TIMESTAMP_TZ_RE = r"^\s*\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})\s*$"


def bundled_trace_names() -> tuple[str, ...]:
    """Names accepted by :func:`load_trace` without a file."""
    return tuple(BUNDLED_TRACES)


@checked
def load_trace(
    source: str | Path,
    *,
    repair: bool = False,
    duplicates: DuplicatePolicy | None = None,
    columns: Mapping[str, str] | None = None,
    name: str | None = None,
) -> Trace:
    """Load a trace by bundled name (``azure-conv-2023``, ``azure-code-2023``) or file path.

    Args:
        source: bundled name, or a ``.csv``/``.csv.gz``/``.parquet`` file.
        repair: drop invalid rows and sort out-of-order rows instead of raising; every change
            is listed in the returned trace's ``repairs``.
        duplicates: what to do with rows identical to an earlier row (same timestamp and token
            counts): ``"error"`` (default without ``repair``), ``"drop"`` (default with
            ``repair``; treats them as double-logged), ``"jitter"`` (keep them as distinct
            requests, the k-th copy moved ``k`` ns later), ``"keep"`` (keep as they are).
        columns: ``{"arrival": ..., "input": ..., "output": ...}`` to override column names.
        name: trace name (default: the bundled name or the file name).

    Raises:
        ValidationError: naming file, row and field, for anything not repaired.
    """
    policy: DuplicatePolicy = duplicates or ("drop" if repair else "error")
    if policy not in ("error", "drop", "jitter", "keep"):
        raise ValidationError(f"duplicates={duplicates!r}; expected error, drop, jitter or keep")
    with ExitStack() as stack:
        key = str(source)
        if key in BUNDLED_TRACES:
            ref = resources.files("dynaplan.workload") / "data" / BUNDLED_TRACES[key]
            path = stack.enter_context(resources.as_file(ref))
            label_name, shown = name or key, key
        else:
            path = Path(source)
            if path.is_dir():
                raise ValidationError(f"trace {key!r}: is a directory; expected a CSV or parquet trace file")
            if not path.is_file():
                raise ValidationError(
                    f"trace {key!r}: no such file, and not a bundled trace name "
                    f"(bundled: {', '.join(BUNDLED_TRACES)})"
                )
            label_name, shown = name, str(path)
        lower = path.name.lower()
        if lower.endswith((".parquet", ".pq")):
            cols = _read_parquet(path, shown, columns)
        else:
            cols = _read_csv(path, shown, columns)
    label_name = label_name or cols.meta.get("name") or path.name
    return build_trace(cols, label_name, repair, policy, bundled=key in BUNDLED_TRACES)


# ----------------------------------------------------------------------------------------------
# Readers
# ----------------------------------------------------------------------------------------------


def _check_meta(meta, source: str, where: str) -> dict:
    """dynaplan provenance metadata: a JSON object whose known keys have the right types."""
    if not isinstance(meta, dict):
        raise ValidationError(f"{source}: {where}: dynaplan metadata must be a JSON object, got {type(meta).__name__}")
    types = {"name": str, "label": str, "source": str, "start": str, "synthetic": bool,
             "duration_s": (int, float), "n_requests": int}
    for key, want in types.items():
        v = meta.get(key)
        if v is None:
            continue
        if not isinstance(v, want) or (want is not bool and isinstance(v, bool)):
            names = " or ".join(t.__name__ for t in (want if isinstance(want, tuple) else (want,)))
            raise ValidationError(f"{source}: {where}: dynaplan metadata {key!r} must be {names}, got {v!r}")
    d = meta.get("duration_s")
    if d is not None and not (np.isfinite(d) and d >= 0):
        raise ValidationError(f"{source}: {where}: dynaplan metadata 'duration_s' must be a finite number >= 0, "
                              f"got {d!r}")
    if meta.get("start") is not None:
        try:
            pd.Timestamp(meta["start"])
        except (ValueError, TypeError):
            raise ValidationError(f"{source}: {where}: dynaplan metadata 'start' is not a timestamp: "
                                  f"{meta['start']!r}") from None
    return meta


def _resolve(found: list[str], source: str, columns: Mapping[str, str] | None) -> dict[str, str]:
    columns = dict(columns or {})
    unknown = set(columns) - set(ALIASES)
    if unknown:
        raise ValidationError(f"columns= has unknown roles {sorted(unknown)}; expected arrival, input, output")
    names = {}
    lowered = {c.lower(): c for c in found}
    for role, aliases in ALIASES.items():
        if role in columns:
            if columns[role] not in found:
                raise ValidationError(f"{source}: column {columns[role]!r} ({role}) not found; columns are {found}")
            names[role] = columns[role]
            continue
        hit = next((a for a in aliases if a in found), None) or next(
            (lowered[a.lower()] for a in aliases if a.lower() in lowered), None
        )
        if hit is None:
            raise ValidationError(
                f"{source}: missing the {role} column; expected one of {list(aliases)}, found {found}"
            )
        names[role] = hit
    for role, col in names.items():
        if found.count(col) > 1:
            raise ValidationError(f"{source}: column {col!r} ({role}) appears {found.count(col)} times in the header")
    return names


def _peek_csv(path: Path, source: str) -> tuple[dict, list[str], str | None, int]:
    """Metadata line, header fields, first data line and number of lines before the header."""
    gz = path.name.lower().endswith(".gz")
    opener = gzip.open if gz else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            lines = []
            for line in fh:
                lines.append(line.rstrip("\r\n"))
                if len(lines) == 3:
                    break
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{source}: not a UTF-8 text CSV (byte {exc.object[exc.start]:#04x} at offset "
                              f"{exc.start}{' after gunzip' if gz else ''}); expected a CSV or parquet trace") from None
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ValidationError(f"{source}: cannot read {'gzip ' if gz else ''}file ({exc.__class__.__name__}: "
                              f"{' '.join(str(exc).split())})") from None
    meta, skip = {}, 0
    if lines and lines[0].startswith(CSV_METADATA_PREFIX.strip()):
        try:
            text = lines[0][len(CSV_METADATA_PREFIX.strip()):]
            check_json_depth(text, f"{source}: line 1: dynaplan metadata")
            meta = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{source}: line 1: unreadable dynaplan metadata ({exc})") from None
        meta = _check_meta(meta, source, "line 1")
        lines, skip = lines[1:], 1
    elif csv_sidecar(path).is_file():  # provenance beside the CSV (save_trace, trace generate)
        side = csv_sidecar(path)
        try:
            text = side.read_text(encoding="utf-8")
            check_json_depth(text, f"{side}: dynaplan metadata")
            meta = json.loads(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationError(f"{side}: unreadable dynaplan metadata ({exc.__class__.__name__}: {exc})") from None
        meta = _check_meta(meta, str(side), "dynaplan metadata")
    if not lines or not lines[0].strip():
        raise ValidationError(f"{source}: empty file (no header line)")
    header = [h.strip().strip('"') for h in lines[0].split(",")]
    first = lines[1] if len(lines) > 1 and lines[1].strip() else None
    return meta, header, first, skip


def _arrival_kind(value: str) -> Literal["number", "time", "time_tz"]:
    value = value.strip().strip('"')
    if re.match(_NUMBER_RE, value):
        return "number"
    return "time_tz" if re.match(_TIMESTAMP_TZ_RE, value) else "time"


def _read_csv(path: Path, source: str, columns: Mapping[str, str] | None) -> RawColumns:
    meta, header, first, skip = _peek_csv(path, source)
    names = _resolve(header, source, columns)
    if first is None:
        raise ValidationError(f"{source}: no data rows after the header")
    first_fields = [f.strip() for f in first.split(",")]
    idx = header.index(names["arrival"])
    kind = _arrival_kind(first_fields[idx] if idx < len(first_fields) else "")
    atype = {"number": pa.float64(), "time": pa.timestamp("ns"), "time_tz": pa.timestamp("ns", tz="UTC")}[kind]
    read = pacsv.ReadOptions(skip_rows=skip, block_size=1 << 24)
    include = [names["arrival"], names["input"], names["output"]]
    typed = pacsv.ConvertOptions(
        include_columns=include,
        column_types={names["arrival"]: atype, names["input"]: pa.int32(), names["output"]: pa.int32()},
    )
    line_offset = skip + 2
    try:
        table = pacsv.read_csv(path, read_options=read, convert_options=typed)
    except pa.ArrowInvalid:
        table = None
    except (OSError, EOFError) as exc:  # e.g. a gzip stream cut short
        detail = " ".join(str(exc).split())
        raise ValidationError(f"{source}: cannot read ({exc.__class__.__name__}: {detail})") from None
    if table is None or any(table.column(c).null_count for c in include):
        # the slow path reports a bad or missing value with the text as written ('nan', 'NA', '')
        del table
        text = pacsv.ConvertOptions(
            include_columns=include, column_types={c: pa.string() for c in include}, null_values=[],
            strings_can_be_null=False,
        )
        try:
            table = pacsv.read_csv(path, read_options=read, convert_options=text)
        except pa.ArrowInvalid as exc:
            raise ValidationError(f"{source}: malformed CSV: {' '.join(str(exc).split())}") from None
        except (OSError, EOFError) as exc:
            raise ValidationError(f"{source}: cannot read ({exc.__class__.__name__}: {' '.join(str(exc).split())})") \
                from None
        return _from_text(table, names, kind, source, line_offset, meta)
    cols = {role: table.column(names[role]) for role in ROLES}
    del table  # let _from_typed free each column once converted
    return _from_typed(cols, names, source, line_offset, meta)


def _read_parquet(path: Path, source: str, columns: Mapping[str, str] | None) -> RawColumns:
    try:
        pfile = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"{source}: not a readable parquet file ({exc})") from None
    schema = pfile.schema_arrow
    names = _resolve(list(schema.names), source, columns)
    meta = {}
    if schema.metadata and PARQUET_METADATA_KEY in schema.metadata:
        try:
            text = schema.metadata[PARQUET_METADATA_KEY].decode()
            check_json_depth(text, f"{source}: dynaplan metadata in the parquet schema")
            meta = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationError(f"{source}: unreadable dynaplan metadata in the parquet schema ({exc})") from None
        meta = _check_meta(meta, source, "parquet schema")
    try:
        table = pfile.read(columns=[names["arrival"], names["input"], names["output"]])
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"{source}: not a readable parquet file ({' '.join(str(exc).split())})") from None
    if table.num_rows == 0:
        raise ValidationError(f"{source}: no data rows")
    atype = table.column(names["arrival"]).type
    text_arrival = pa.types.is_string(atype) or pa.types.is_large_string(atype)
    if text_arrival or any(pa.types.is_string(table.column(names[r]).type) for r in ("input", "output")) or any(
        table.column(c).null_count for c in table.column_names
    ):  # text, or missing values: the slow path reports them as written
        if text_arrival:
            kind = _arrival_kind(table.column(names["arrival"])[0].as_py() or "")
        else:
            kind = ("time_tz" if atype.tz else "time") if pa.types.is_timestamp(atype) else "number"
        table = table.cast(pa.schema([(c, pa.string()) for c in table.column_names]))
        return _from_text(table, names, kind, source, None, meta)
    cols = {role: table.column(names[role]) for role in ROLES}
    del table
    if pa.types.is_timestamp(atype):
        cols["arrival"] = cols["arrival"].cast(pa.timestamp("ns", tz="UTC" if atype.tz else None))
    return _from_typed(cols, names, source, None, meta)


def _numpy(col: pa.ChunkedArray, dtype) -> np.ndarray:
    if col.null_count:
        col = col.fill_null(0)
    return col.to_numpy().astype(dtype, copy=False)


def _from_typed(cols: dict[str, pa.ChunkedArray], names: dict, source: str, line_offset, meta) -> RawColumns:
    """Typed columns to numpy, one at a time (each Arrow column is released once converted).

    Timestamps become int64 ns; integer token columns stay integers (int32 from the CSV
    reader), float ones become float64 and are checked for whole numbers later.
    """
    is_time = pa.types.is_timestamp(cols["arrival"].type)
    invalid: dict[str, list] = {r: [] for r in ROLES}
    values = {}
    for role in ROLES:
        col = cols.pop(role)
        if col.null_count:
            invalid[role].append((pc.is_null(col).to_numpy(zero_copy_only=False), "missing value"))
        if role == "arrival" and is_time:
            values[role] = _numpy(col.cast(pa.int64()), np.int64)
        elif role != "arrival" and pa.types.is_integer(col.type):
            values[role] = _numpy(col, np.int32 if col.type == pa.int32() else np.int64)
        else:
            values[role] = _numpy(col.cast(pa.float64()), np.float64)
        del col
    pa.default_memory_pool().release_unused()
    return RawColumns(source, names, values["arrival"], is_time, values["input"], values["output"],
                      invalid, line_offset=line_offset, meta=meta)


def _from_text(table: pa.Table, names: dict, kind: str, source: str, line_offset, meta) -> RawColumns:
    """Slow path for files the typed reader rejects: parse string columns value by value."""
    invalid: dict[str, list] = {r: [] for r in ROLES}
    values, raw = {}, {}
    for role in ROLES:
        col = table.column(names[role]).fill_null("")
        raw[role] = col
        if role == "arrival" and kind != "number":
            pattern, target = (_TIMESTAMP_TZ_RE, pa.timestamp("ns", tz="UTC")) if kind == "time_tz" else (
                _TIMESTAMP_RE, pa.timestamp("ns"))
            ok = pc.match_substring_regex(col, pattern).to_numpy(zero_copy_only=False)
            style = "with a zone offset like +00:00" if kind == "time_tz" else "without a zone offset"
            reason = f"not a timestamp {style} (as in the first row)"
            values[role] = _cast_where(col, ok, target, pa.int64(), np.int64)
        else:
            ok = pc.match_substring_regex(col, _NUMBER_RE).to_numpy(zero_copy_only=False)
            reason = "not a number"
            values[role] = _cast_where(col, ok, pa.float64(), pa.float64(), np.float64)
        empty = pc.equal(pc.utf8_trim_whitespace(col), "").to_numpy(zero_copy_only=False)
        if empty.any():
            invalid[role].append((empty, "missing value"))
        if (~ok & ~empty).any():
            invalid[role].append((~ok & ~empty, reason))
    return RawColumns(source, names, values["arrival"], kind != "number", values["input"], values["output"],
                    invalid, raw_text=raw, line_offset=line_offset, meta=meta)


def _cast_where(col: pa.ChunkedArray, ok: np.ndarray, target, as_type, dtype) -> np.ndarray:
    """Cast the strings where ``ok`` (others become 0); values the cast rejects clear ``ok``."""
    out = np.zeros(len(col), dtype=dtype)
    while True:
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return out
        subset = pc.utf8_trim_whitespace(col.take(pa.array(idx)))
        try:
            out[idx] = _numpy(subset.cast(target).cast(as_type), dtype)
            return out
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad = _first_failing(subset, target)
            ok[idx[bad]] = False


def _first_failing(col: pa.ChunkedArray, target) -> int:
    """Index of the first value whose cast fails (binary search over slices)."""
    lo, hi = 0, len(col)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            col.slice(lo, mid - lo).cast(target)
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    return lo


