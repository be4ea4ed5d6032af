"""Planner inputs from files and traces: per-class load forecasts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dynaplan.domain.classes import DEFAULT_CLASSES, ClassScheme
from dynaplan.errors import ValidationError
from dynaplan.workload.aggregate import aggregate_load
from dynaplan.workload.trace import Trace


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
        if not np.isfinite(target_mean_rps) or target_mean_rps <= 0:
            raise ValidationError(f"target_mean_rps={target_mean_rps!r}; expected a positive number")
        mean = float(table.sum(axis=1).mean())
        if mean <= 0:
            raise ValidationError(f"trace {trace.label}: no requests to scale")
        scale = target_mean_rps / mean
    return {c: float(v) * scale for c, v in table.max(axis=0).items()}


def read_forecast(path: str | Path, scheme: ClassScheme = DEFAULT_CLASSES) -> dict[str, float]:
    """A forecast CSV with columns ``request_class`` and ``load_rps`` (req/s), one row per class."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"{path}: forecast file not found")
    try:
        df = pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise ValidationError(f"{path}: cannot read forecast CSV ({exc})") from None
    missing = {"request_class", "load_rps"} - set(df.columns)
    if missing:
        raise ValidationError(f"{path}: missing column(s) {sorted(missing)}; expected request_class, load_rps")
    out: dict[str, float] = {}
    for i, (c, v) in enumerate(zip(df["request_class"].astype(str), pd.to_numeric(df["load_rps"], errors="coerce"))):
        if c not in scheme.names:
            raise ValidationError(f"{path}: row {i + 1}, field 'request_class': unknown class {c!r}")
        if not np.isfinite(v) or v < 0:
            raise ValidationError(f"{path}: row {i + 1}, field 'load_rps': {df['load_rps'].iloc[i]!r}; expected >= 0")
        if c in out:
            raise ValidationError(f"{path}: row {i + 1}: class {c} appears twice")
        out[c] = float(v)
    return out
