"""Trace replay: step a trace through a policy at the hierarchy's time scales and account for it.

    from dynaplan.replay import prepare, replay, compare, comparison_table
    from dynaplan.replay.policies import DynamoLLM, SinglePool, make_policies
    inp = prepare(trace, inventory={"h100-80gb": 40})
    results = compare(inp, make_policies("all"))
    comparison_table(results)

Modules: :mod:`.engine` (the loop and the accounting), :mod:`.policy` (the interface),
:mod:`.deployment` (what a policy returns), :mod:`.state` (servers, boots, transitions),
:mod:`.evaluate` (one vectorised pass over windows), :mod:`.tables` (profile lookups),
:mod:`.load` (per-window load), :mod:`.latency` (latency percentiles), :mod:`.grid` (carbon and
price series), :mod:`.policies` (the bundled policies). See ``docs/results.md``.
"""

from dynaplan.replay.deployment import Deployment, GroupSpec
from dynaplan.replay.engine import (ReplayInput, ReplayOptions, ReplayResult, ReplaySummary, compare,
                                    comparison_table, prepare, replay)
from dynaplan.replay.grid import GridSeries, HourlySeries, caiso_carbon_intensity, caiso_price, read_hourly_series
from dynaplan.replay.load import WindowLoad, scale_trace, window_load
from dynaplan.replay.policy import Observation, PeakLoad, Policy, ReplayContext

__all__ = [
    "Deployment", "GridSeries", "GroupSpec", "HourlySeries", "Observation", "PeakLoad", "Policy", "ReplayContext",
    "ReplayInput", "ReplayOptions", "ReplayResult", "ReplaySummary", "WindowLoad", "caiso_carbon_intensity",
    "caiso_price", "compare", "comparison_table", "prepare", "read_hourly_series", "replay", "scale_trace",
    "window_load",
]
