"""The contract every solver backend meets, and the registry that finds one by :class:`Backend`.

A backend solves a :class:`~dynaplan.solvers.model.ModelArrays` (minimise ``c x + offset`` s.t.
``row_lo <= A x <= row_hi``, ``lb <= x <= ub``, some columns integer) under
:class:`~dynaplan.solvers.result.SolveOptions` and returns a :class:`~dynaplan.solvers.result.Solution`:
``x`` in column order (None without a solution) and a :class:`SolveReport` with status, stop
reason, objective, a bound valid for the model it was given, gap and times. It does not check
its own answer: :func:`dynaplan.solvers.solve` runs the one shared post-solve verification
(:mod:`dynaplan.solvers.verify`) on whatever any backend returns.

Optional capabilities are declared in :attr:`SolverBackend.features`:

* :attr:`Feature.BOUND_UPDATES`: :meth:`open` returns a :class:`BoundSession` that keeps the
  solver's model and, for arrays that differ only in bounds, row sides, offset and matrix values
  (same sparsity pattern), changes them in place and re-solves (HiGHS);
* :attr:`Feature.HINTS`: ``solve(..., hint=x)`` (and a session's re-solve) starts the search
  from ``x`` (CP-SAT's hints; HiGHS's first incumbent, used only if feasible).

A backend without a capability still works everywhere: :func:`open_session` falls back to a
session that solves afresh, and a hint is ignored.

Adding a backend: a member of :class:`Backend`, a module with a class meeting
:class:`SolverBackend`, and its line in :data:`REGISTRY`. The tests, benchmarks and plots list
backends from :class:`Backend`, so they pick it up.
"""

from __future__ import annotations

import importlib
from enum import Enum
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from dynaplan.solvers.model import ModelArrays
from dynaplan.solvers.result import Backend, SolveOptions, Solution


class Feature(str, Enum):
    BOUND_UPDATES = "bound_updates"  # open(): change bounds/sides/offset/values in place and re-solve
    HINTS = "hints"                  # solve(hint=x): a starting solution


@runtime_checkable
class SolverBackend(Protocol):
    """What :func:`dynaplan.solvers.solve` calls (see the module docstring)."""

    name: ClassVar[Backend]
    features: ClassVar[frozenset[Feature]]

    def solve(self, arrays: ModelArrays, opts: SolveOptions, hint: np.ndarray | None = None) -> Solution:
        """Solve ``arrays``; never raises for solver failures (status ERROR instead)."""
        ...


class BoundSession(Protocol):
    """A model kept inside a solver between solves that change only bounds, row sides, the
    objective offset and matrix values (Feature.BOUND_UPDATES)."""

    def update_bounds_and_resolve(self, arrays: ModelArrays, opts: SolveOptions,
                                  hint: np.ndarray | None = None) -> Solution:
        """Solve ``arrays``, which must have the session's costs, integrality and matrix sparsity
        pattern (its values may differ: :meth:`ModelArrays.with_coefficients`); ``hint``: a
        starting solution, as for :meth:`SolverBackend.solve`."""
        ...


# Backend -> "module:class". Modules import lazily: highspy, Pyomo and OR-Tools load on first use.
REGISTRY: dict[Backend, str] = {
    Backend.HIGHS: "dynaplan.solvers.highs:HighsBackend",
    Backend.PYOMO: "dynaplan.solvers.pyomo_backend:PyomoBackend",
    Backend.CPSAT: "dynaplan.solvers.cpsat:CpsatBackend",
}

_LOADED: dict[Backend, SolverBackend] = {}


def get_backend(backend: Backend | str) -> SolverBackend:
    """The backend object registered for ``backend`` (imported on first use)."""
    backend = Backend(backend)
    if backend not in _LOADED:
        module, _, cls = REGISTRY[backend].partition(":")
        obj = getattr(importlib.import_module(module), cls)()
        if obj.name is not backend:
            raise RuntimeError(f"solver registry: {REGISTRY[backend]} implements {obj.name}, not {backend}")
        _LOADED[backend] = obj
    return _LOADED[backend]


def backends() -> tuple[Backend, ...]:
    """Every registered backend, in :class:`Backend` order."""
    return tuple(b for b in Backend if b in REGISTRY)

