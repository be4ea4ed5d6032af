"""Scenario sweeps: hundreds of capacity plans or replays, on one machine or a Dask cluster.

    from dynaplan.sweep import run_sweep, read_spec
    df = run_sweep(read_spec("examples/sweep_capacity.toml"), "sweep-out")

:mod:`.spec` (the sweep spec), :mod:`.kinds` (what a scenario is: ``replay``, ``capacity``),
:mod:`.expand` (scenarios and their stable ids), :mod:`.store` (one parquet file per scenario),
:mod:`.engine` (running them on Dask ``distributed``), :mod:`.report` (tables and figures).
See ``docs/sweeps.md``.
"""

from dynaplan.sweep.engine import run_sweep
from dynaplan.sweep.expand import Scenario, expand, scenario_id
from dynaplan.sweep.kinds import KINDS, ScenarioKind, register
from dynaplan.sweep.spec import Range, SweepSpec, as_spec, read_spec
from dynaplan.sweep.store import ResultStore, read_results

__all__ = ["KINDS", "Range", "ResultStore", "Scenario", "ScenarioKind", "SweepSpec", "as_spec", "expand",
           "read_results", "read_spec", "register", "run_sweep", "scenario_id"]
