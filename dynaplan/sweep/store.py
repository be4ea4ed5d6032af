"""Sweep results on disk: one parquet file per finished scenario, never lost, never duplicated.

Layout of ``out``::

    out/part-<scenario_id>.parquet    one row: the scenario's resolved options, metrics, status, ...
    out/_sweep.json                   the spec and the column schema of the last run
    out/_figures/                     figures of ``dynaplan sweep report --plot``

``pandas.read_parquet(out)`` reads every row (names starting with ``_`` or ``.`` are skipped by
the parquet reader). A row is written to a temporary ``.part-<id>.<pid>.tmp`` beside its
destination and renamed into place, so a file is either whole or absent: a sweep killed at any
moment leaves whole rows, and its scenario ids (the file names) cannot repeat. Every row of a
sweep has the same column types (:func:`schema`), taken from the kind's option annotations and
metric types rather than from the values, so rows written by different runs read as one table.
"""

from __future__ import annotations

import json
import os
import types
import typing
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dynaplan.errors import ValidationError
from dynaplan.sweep.kinds import ScenarioKind

STATUS_OK = "ok"
STATUS_ERROR = "error"
FIXED = {"scenario_id": pa.string(), "kind": pa.string()}
TRAILER = {"status": pa.string(), "error": pa.string(), "wall_time_s": pa.float64(),
           "dynaplan_version": pa.string(), "worker": pa.string(), "finished_at": pa.string()}
_METRIC_TYPES = {"float": pa.float64(), "int": pa.int64(), "str": pa.string()}
PREFIX, SUFFIX = "part-", ".parquet"


def _column_type(annotation) -> pa.DataType:
    """float -> float64, int -> int64, bool -> bool, str or a Literal of str -> string; anything
    else (lists, mappings, unions of several types) is stored as JSON text."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return _column_type(rest[0]) if len(rest) == 1 else pa.string()
    return {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}.get(annotation, pa.string())


def json_columns(kind: ScenarioKind) -> tuple[str, ...]:
    """Options stored as JSON text."""
    return tuple(n for n, f in kind.options.model_fields.items()
                 if _column_type(f.annotation) == pa.string() and not _is_text(f.annotation))


def _is_text(annotation) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return len(rest) == 1 and _is_text(rest[0])
    return annotation is str or (origin is typing.Literal and all(isinstance(a, str) for a in args))


def schema(kind: ScenarioKind, metrics: Iterable[str]) -> pa.Schema:
    """Columns of every row: id and kind, the options, the kept metrics, then status, error,
    wall time, version, worker and finishing time."""
    fields = dict(FIXED)
    for name, f in kind.options.model_fields.items():
        fields[name] = _column_type(f.annotation)
    for m in metrics:
        fields[m] = _METRIC_TYPES[kind.metrics[m]]
    clash = set(fields) & set(TRAILER)
    if clash:
        raise ValueError(f"kind {kind.name!r}: columns {sorted(clash)} clash with the sweep's own")
    fields.update(TRAILER)
    return pa.schema(list(fields.items()))


def _cell(value, typ: pa.DataType, as_json: bool):
    if value is None:
        return None
    if as_json:
        return json.dumps(value, sort_keys=True)
    if typ == pa.float64():
        return float(value)
    if typ == pa.int64():
        return int(value)
    return value if typ != pa.string() else str(value)


class ResultStore:
    """The parquet dataset of one sweep under ``out`` (see the module docstring)."""

    def __init__(self, out: str | Path, kind: ScenarioKind, metrics: Iterable[str]):
        self.out = Path(out)
        self.kind = kind
        self.metrics = tuple(metrics)
        self.schema = schema(kind, self.metrics)
        self._json = set(json_columns(kind))
        if self.out.exists() and not self.out.is_dir():
            raise ValidationError(f"--out {self.out}: exists and is not a directory")

    # ------------------------------------------------------------------ reading
    def path(self, sid: str) -> Path:
        return self.out / f"{PREFIX}{sid}{SUFFIX}"

    def finished(self) -> dict[str, str]:
        """Status of every scenario with a row on disk, by id."""
        if not self.out.is_dir():
            return {}
        files = sorted(self.out.glob(f"{PREFIX}*{SUFFIX}"))
        if not files:
            return {}
        self.check_compatible(files[0])
        t = pq.read_table(files, columns=["scenario_id", "status"]) if len(files) > 1 else pq.read_table(
            files[0], columns=["scenario_id", "status"])
        return dict(zip(t.column("scenario_id").to_pylist(), t.column("status").to_pylist()))

    def check_compatible(self, file: Path) -> None:
        got = pq.read_schema(file).remove_metadata()
        if not got.equals(self.schema):
            raise ValidationError(f"--out {self.out}: holds results of another sweep ({file.name} has other columns "
                                  f"than a {self.kind.name} sweep keeping these metrics); use another --out")

    def read(self, ids: Iterable[str] | None = None) -> pd.DataFrame:
        """The rows on disk (of ``ids``, in their order, when given) as a DataFrame."""
        files = sorted(self.out.glob(f"{PREFIX}*{SUFFIX}")) if self.out.is_dir() else []
        if ids is not None:
            ids = list(ids)
            files = [p for p in (self.path(i) for i in ids) if p.exists()]
        if not files:
            return self.schema.empty_table().to_pandas()
        df = pq.read_table(files, schema=self.schema).to_pandas() if len(files) > 1 else \
            pq.read_table(files[0]).to_pandas()
        if ids is not None:
            order = {sid: i for i, sid in enumerate(ids)}
            df = df.sort_values("scenario_id", key=lambda s: s.map(order), kind="stable")
        return df.reset_index(drop=True)

    # ------------------------------------------------------------------ writing
    def write(self, row: dict) -> Path:
        """Write one scenario's row atomically (temporary file + rename); replaces an older row of the id."""
        self.out.mkdir(parents=True, exist_ok=True)
        cells = {f.name: [_cell(row.get(f.name), f.type, f.name in self._json)] for f in self.schema}
        table = pa.Table.from_pydict(cells, schema=self.schema)
        dest = self.path(row["scenario_id"])
        tmp = self.out / f".{dest.name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as fh:
                pq.write_table(table, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ValidationError(f"--out {self.out}: cannot write {dest.name} ({exc.strerror or exc})") from None
        return dest

    def write_meta(self, doc: dict) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        dest = self.out / "_sweep.json"
        tmp = self.out / f"._sweep.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(doc, indent=2, default=str))
        os.replace(tmp, dest)

    def clean_temporaries(self) -> int:
        """Delete temporaries a killed run left behind (never read: their names start with a dot)."""
        n = 0
        if self.out.is_dir():
            for p in self.out.glob(f".{PREFIX}*.tmp"):
                p.unlink(missing_ok=True)
                n += 1
        return n


def read_results(out: str | Path) -> pd.DataFrame:
    """Every row under ``out`` (what ``pandas.read_parquet(out)`` reads), or a ValidationError naming it."""
    out = Path(out)
    if not out.is_dir() or not any(out.glob(f"{PREFIX}*{SUFFIX}")):
        raise ValidationError(f"{out}: no sweep results (expected {PREFIX}<id>{SUFFIX} files)")
    return pd.read_parquet(out)


__all__ = ["ResultStore", "STATUS_ERROR", "STATUS_OK", "json_columns", "read_results", "schema"]
