"""A forecast, checked once per planning call.

Every public entry point of :class:`dynaplan.planning.Planner` turns its forecast into a
:class:`CheckedForecast` once (:func:`check_demand`); the internal steps it calls take that form
and never check again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from dynaplan.planning.problem import check_forecast

# Loads below this are planned as zero: they are under the solvers' feasibility tolerance (1e-9),
# so a solver could not tell serving them from not serving them. check_plan allows the same slack.
LOAD_EPS_RPS = 1e-9
# Positive loads below this are planned at this floor (one request every ~2.8 hours): a class
# with any forecast keeps a route, and no demand sits within a few orders of magnitude of the
# solvers' tolerances (loads of 1e-8..1e-7 req/s made HiGHS allot no server to a class that then
# had none, or fail with "Solve error"). The plan's notes list every load raised this way.
LOAD_FLOOR_RPS = 1e-4


@dataclass(frozen=True)
class CheckedForecast:
    """``forecast_rps``: every class's checked load (req/s); ``demand_rps``: the loads the MILPs
    are given (:func:`plannable`); ``notes``: one per load raised to the floor. Internal to a
    planning call: its dicts are read, never changed."""

    forecast_rps: Mapping[str, float]
    demand_rps: Mapping[str, float]
    notes: tuple[str, ...] = ()


def plannable(forecast: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """The loads the MILPs are given: zero below LOAD_EPS_RPS, at least LOAD_FLOOR_RPS otherwise,
    with a note for every load raised to the floor."""
    demand, notes = {}, []
    for c, v in forecast.items():
        v = float(v)
        if v <= LOAD_EPS_RPS:
            continue
        if v < LOAD_FLOOR_RPS:
            notes.append(f"class {c}: forecast {v:.3g} req/s planned as {LOAD_FLOOR_RPS:g} req/s (minimum plannable load)")
            v = LOAD_FLOOR_RPS
        demand[c] = v
    return demand, notes


def check_demand(forecast: Mapping[str, float] | pd.Series | CheckedForecast,
                 classes: tuple[str, ...]) -> CheckedForecast:
    """Check ``forecast`` (:func:`check_forecast`) and derive its plannable loads; a
    :class:`CheckedForecast` is returned as it is."""
    if isinstance(forecast, CheckedForecast):
        return forecast
    f = check_forecast(forecast, classes)
    demand, notes = plannable(f)
    return CheckedForecast(f, demand, tuple(notes))
