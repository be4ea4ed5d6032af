"""dynaplan's benchmark suite: a registry of scenarios, each a ``build(size)`` function and its sweep.

Run ``python -m benchmarks`` (everything), ``python -m benchmarks --scenario pool --quick`` (a
subset, small sizes) or ``python -m benchmarks --list``. Results (CSV, PNG, ``summary.md``,
``machine.json``) go to ``benchmarks/out/`` unless ``--out`` says otherwise; ``RESULTS.md``
reads the latest full run. Benchmarks measure, tests verify: nothing here asserts a time.

:mod:`benchmarks.registry` holds the registry; :mod:`benchmarks.scenarios` the scenario and
study modules (importing it registers them); :mod:`benchmarks.driver` times build apart from
solve. ``benchmarks/trace_aggregation.py`` is also a standalone script.
"""

from benchmarks.registry import REGISTRY, Case, Outcome, Point, Study, SweepScenario, register_study, register_sweep


def load_scenarios() -> dict:
    """Import every scenario module (registering it) and return the registry, in run order."""
    import benchmarks.scenarios  # noqa: F401  (registers on import)

    return REGISTRY


__all__ = ["REGISTRY", "Case", "Outcome", "Point", "Study", "SweepScenario", "load_scenarios", "register_study",
           "register_sweep"]
