"""Planner inputs from files and traces: per-class load forecasts."""

from __future__ import annotations

import csv
import gzip
import math
from pathlib import Path


from dynaplan.domain.classes import DEFAULT_CLASSES, ClassScheme
from dynaplan.errors import ValidationError, require_file
from dynaplan.validation import checked, number
from dynaplan.workload.aggregate import aggregate_load
from dynaplan.workload.trace import Trace


@checked
def peak_forecast(trace: Trace, *, window_s: float | str = 60.0, target_mean_rps: float | None = None,
                  scheme: ClassScheme = DEFAULT_CLASSES) -> dict[str, float]:
    """Per-class peak arrival rate over ``window_s`` windows of ``trace`` (req/s).

    With ``target_mean_rps`` the trace is scaled so its mean total rate equals that value (the
    class mix and the shape over time are kept): a one-hour trace can then stand for a cluster
    of a given size.
    """
    table = aggregate_load(trace, window_s=window_s, scheme=scheme).load_rps
    scale = 1.0
    if target_mean_rps is not None:
        number(target_mean_rps, "target_mean_rps", lo=0.0, lo_open=True, unit="req/s")
        mean = float(table.sum(axis=1).mean())
        if mean <= 0:
            raise ValidationError(f"trace {trace.label}: no requests to scale")
        scale = target_mean_rps / mean
    return {c: float(v) * scale for c, v in table.max(axis=0).items()}


@checked
def read_forecast(path: str | Path, scheme: ClassScheme = DEFAULT_CLASSES) -> dict[str, float]:
    """A forecast CSV with columns ``request_class`` and ``load_rps`` (req/s), one row per class.

    Other columns are ignored; ``.csv.gz`` is read too. Any problem (no rows, a missing or
    repeated column, a row with more or fewer fields than the header, an unknown or repeated
    class, a load that is not a finite number >= 0) raises :class:`ValidationError` naming the
    file, the row (and line) and the field.
    """
    path = Path(path)
    require_file(path, "a forecast CSV file", "forecast")
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            lines = [(n, row) for n, row in enumerate(csv.reader(fh), start=1) if any(c.strip() for c in row)]
    except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
        raise ValidationError(f"{path}: cannot read forecast CSV ({exc.__class__.__name__}: {exc})") from None
    if not lines:
        raise ValidationError(f"{path}: empty file; expected a header request_class,load_rps and one row per class")
    header = [h.strip() for h in lines[0][1]]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise ValidationError(f"{path}: column(s) {repeated} appear more than once in the header")
    missing = [c for c in ("request_class", "load_rps") if c not in header]
    if missing:
        raise ValidationError(f"{path}: missing column(s) {missing}; expected request_class, load_rps "
                              f"(comma-separated), found {header}")
    if len(lines) == 1:
        raise ValidationError(f"{path}: no data rows; expected one row per class")
    i_cls, i_load = header.index("request_class"), header.index("load_rps")
    out: dict[str, float] = {}
    for row, (line, fields) in enumerate(lines[1:], start=1):
        where = f"{path}: row {row} (line {line})"
        if len(fields) != len(header):
            raise ValidationError(f"{where}: {len(fields)} field(s); the header has {len(header)}")
        c, raw = fields[i_cls].strip(), fields[i_load].strip()
        if not c:
            raise ValidationError(f"{where}, field 'request_class': empty value")
        if c not in scheme.names:
            raise ValidationError(f"{where}, field 'request_class': unknown class {c!r}; known: {list(scheme.names)}")
        try:
            v = float(raw)
        except ValueError:
            v = None
        if v is None or not math.isfinite(v) or v < 0:
            raise ValidationError(f"{where}, field 'load_rps': {raw!r}; expected a finite number >= 0 (req/s)")
        if c in out:
            raise ValidationError(f"{where}: class {c} appears twice")
        out[c] = v
    return out
