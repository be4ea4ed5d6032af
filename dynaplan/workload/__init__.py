"""The workload layer: request traces, synthetic weeks, request classes, load and forecasts.

- :mod:`~dynaplan.workload.trace`: the :class:`Trace` (typed columnar arrays + provenance).
- :mod:`~dynaplan.workload.loading`: :func:`load_trace` for Azure/generic CSV and parquet and
  the bundled Azure 2023 traces (``azure-conv-2023``, ``azure-code-2023``).
- :mod:`~dynaplan.workload.synthetic`: :func:`generate_trace`, week-long seeded traces.
- :mod:`~dynaplan.workload.classify`: true and predicted request classes.
- :mod:`~dynaplan.workload.aggregate`: per-window per-class rates and per-epoch peaks.
- :mod:`~dynaplan.workload.forecast`: next-epoch peak forecasters and their errors.

This layer imports only :mod:`dynaplan.domain` and :mod:`dynaplan.errors`.
"""

from dynaplan.workload.aggregate import (
    MAX_WINDOWS,
    LoadTable,
    aggregate_load,
    check_window_count,
    epoch_peaks,
    parse_duration_s,
)
from dynaplan.workload.classify import (
    DEFAULT_PREDICTOR_ACCURACY,
    Classification,
    class_index,
    classify_trace,
    predict_classes,
)
from dynaplan.workload.forecast import (
    EWMAForecaster,
    Forecaster,
    LastPeakForecaster,
    OracleForecaster,
    SeasonalForecaster,
    forecast_errors,
)
from dynaplan.workload.loading import BUNDLED_TRACES, bundled_trace_names, load_trace
from dynaplan.workload.stats import TraceStats, trace_stats
from dynaplan.workload.synthetic import (
    CODING_ENVELOPE,
    CONVERSATION_ENVELOPE,
    MAX_SYNTHETIC_REQUESTS,
    BurstSpec,
    EnvelopeSpec,
    check_rate_source,
    check_synthetic_size,
    envelope_ratios,
    generate_trace,
    measure_burstiness,
    weekly_envelope,
)
from dynaplan.workload.trace import RepairAction, RepairReport, Trace, save_trace

__all__ = [
    "BUNDLED_TRACES",
    "BurstSpec",
    "CODING_ENVELOPE",
    "CONVERSATION_ENVELOPE",
    "Classification",
    "DEFAULT_PREDICTOR_ACCURACY",
    "EWMAForecaster",
    "EnvelopeSpec",
    "Forecaster",
    "LastPeakForecaster",
    "LoadTable",
    "MAX_SYNTHETIC_REQUESTS",
    "MAX_WINDOWS",
    "OracleForecaster",
    "RepairAction",
    "RepairReport",
    "SeasonalForecaster",
    "Trace",
    "TraceStats",
    "aggregate_load",
    "bundled_trace_names",
    "check_rate_source",
    "check_synthetic_size",
    "check_window_count",
    "class_index",
    "classify_trace",
    "envelope_ratios",
    "epoch_peaks",
    "forecast_errors",
    "generate_trace",
    "load_trace",
    "measure_burstiness",
    "parse_duration_s",
    "predict_classes",
    "save_trace",
    "trace_stats",
    "weekly_envelope",
]
