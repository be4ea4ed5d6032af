"""Scenario and study modules; importing this package registers them all, in run order."""

from benchmarks.scenarios import (  # noqa: F401  (registration order = run order)
    pool,
    cluster,
    instance,
    monolithic,
    hierarchy,
    trace,
    pareto,
    hier_vs_mono,
    discretisation,
    exactness,
    targets,
    capacity,
    sweep,
)
