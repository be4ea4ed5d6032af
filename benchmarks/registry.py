"""The benchmark registry: scenarios register a ``build(point)`` function and their size sweep.

Two kinds of entries, in the style of linopy's benchmark registry:

* a **sweep** (:func:`register_sweep`): ``build(point)`` makes one problem of the given size and
  returns a :class:`Case`; the driver (:mod:`benchmarks.driver`) times ``build`` apart from
  ``Case.run`` (the solve) over repeated runs, for every backend, and records medians, p95,
  objective, bound, gap and an untimed check of the result;
* a **study** (:func:`register_study`): a ``run(ctx)`` function that compares things rather than
  sweeping one size (time against optimality, hierarchy against monolithic, discretisation,
  the planner targets). It writes its own CSV through ``ctx``.

A :class:`Point` is one size on one dimension of a sweep (``servers=400``, ``classes=25``,
...): every other dimension stays at its base value, so each dimension's scaling can be fitted
on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Sweep = Mapping[str, tuple]


@dataclass(frozen=True, order=True)
class Point:
    """One size of a sweep: ``dimension`` set to ``value``, every other dimension at its base."""

    dimension: str
    value: float

    def __str__(self) -> str:
        v = int(self.value) if float(self.value).is_integer() else self.value
        return f"{self.dimension}={v}"


@dataclass(frozen=True)
class Outcome:
    """What one solve produced, read after the clock stopped."""

    status: str  # optimal | feasible | infeasible | no_solution | error | done (no solver)
    objective: float | None = None
    bound: float | None = None
    gap: float | None = None
    parts_s: Mapping[str, float] = field(default_factory=dict)  # where the solve's time went (s)
    metrics: Mapping[str, Any] = field(default_factory=dict)  # power_w, servers, instances, ...


@dataclass(frozen=True)
class Case:
    """A built problem of one size.

    ``run(backend, opts)`` is the timed solve; ``read(result)`` turns its return value into an
    :class:`Outcome` and ``check(result)`` verifies it independently (``(ok, message)``); neither
    is timed. ``info`` describes the problem (variables, constraints, pools, ...).
    """

    run: Callable[[str, Any], Any]
    read: Callable[[Any], Outcome]
    check: Callable[[Any], tuple[bool, str]]
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepScenario:
    name: str
    build: Callable[[Point], Case]
    sweep: Sweep  # dimension -> sizes (full run)
    quick: Sweep  # dimension -> sizes (--quick)
    backends: tuple[str, ...]  # every backend this scenario can run
    backend_dims: tuple[str, ...] | None = None  # dimensions run on every backend (None: all); others: highs
    quick_backends: tuple[str, ...] | None = None
    repeats: int = 5
    quick_repeats: int = 1
    warmup: bool = True  # one untimed run per (point, backend) before the timed ones
    time_limit_s: float = 10.0
    quick_time_limit_s: float = 2.0
    same_model: bool = True  # every backend solves the identical model (so their bounds are comparable)
    description: str = ""
    kind: str = "sweep"

    def points(self, quick: bool) -> list[Point]:
        sweep = self.quick if quick else self.sweep
        return [Point(d, v) for d, values in sweep.items() for v in values]

    def backends_for(self, point: Point, quick: bool) -> tuple[str, ...]:
        if quick and self.quick_backends is not None:
            return self.quick_backends
        if self.backend_dims is None or point.dimension in self.backend_dims:
            return self.backends
        return self.backends[:1]


@dataclass(frozen=True)
class Study:
    name: str
    run: Callable[[Any], None]  # run(ctx): measures and writes its CSV through ctx
    description: str = ""
    kind: str = "study"


REGISTRY: dict[str, SweepScenario | Study] = {}


def register_sweep(name: str, *, sweep: Sweep, quick: Sweep, backends: tuple[str, ...], **kw):
    """Decorator: register ``build(point) -> Case`` as the sweep scenario ``name``."""

    def deco(build: Callable[[Point], Case]) -> Callable[[Point], Case]:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} registered twice")
        REGISTRY[name] = SweepScenario(name=name, build=build, sweep=dict(sweep), quick=dict(quick),
                                       backends=tuple(backends), description=(build.__doc__ or "").strip(), **kw)
        return build

    return deco


def register_study(name: str):
    """Decorator: register ``run(ctx)`` as the study ``name``."""

    def deco(run: Callable[[Any], None]) -> Callable[[Any], None]:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} registered twice")
        REGISTRY[name] = Study(name=name, run=run, description=(run.__doc__ or "").strip())
        return run

    return deco


# Measurements kept outside the registry, and why: each needs what a registered scenario cannot
# give it (a fresh process per run for its own peak memory, minutes per run, or tables for the
# documentation rather than timings). `python -m benchmarks` lists them; each runs on its own.
OUTSIDE: dict[str, str] = {
    "benchmarks/bound_allot_speed.py": "the global bound's and the cluster level's own calls, recorded from the "
                                       "hierarchy's epoch plans and replayed with the new and the old solver "
                                       "settings interleaved call by call (a before/after ratio in one run)",
    "benchmarks/pool_bulk.py": "the bulk + residual figures of formulations/pool.md (Large pools): two planners "
                                "(large_pool exact vs auto) interleaved on the hierarchy scenario's forecasts, "
                                "and random pools against the pool MILP at gap 1e-9; a comparison, not a build(size)",
    "benchmarks/melange_speed.py": "the Mélange part of the registered capacity study alone (its instances and "
                                   "melange_pulp come from benchmarks.scenarios.capacity), run interleaved per "
                                   "instance without the horizon and hardware parts, for quick comparisons",
    "benchmarks/plan_time.py": "a breakdown of plan() calls (mixed-pool, single-pool and cluster solves, by "
                               "wrapping Planner methods) and the hierarchy corpus under other PlannerOptions: "
                               "diagnostics of the targets and hier_vs_mono studies, not a build(size)",
    "benchmarks/replay_speed.py": "replay speed and peak memory: the week run needs a fresh subprocess per "
                                  "repeat (its peak RSS must be its own) and takes minutes; the hour run times "
                                  "whole replays, not a build(size) apart from a solve",
    "benchmarks/trace_aggregation.py": "trace aggregation over ~27M requests: peak RSS, tracemalloc peaks and a "
                                       "1.1 GB CSV load in a subprocess, which a sweep's repeated in-process "
                                       "timing cannot measure",
    "dynaplan/replay/experiments.py": "not a timing benchmark: the energy/SLO experiments whose tables "
                                      "docs/results.md reports (published-system comparison), run as "
                                      "python -m dynaplan.replay.experiments",
}
