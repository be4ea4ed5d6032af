"""Solver backends behind one contract (:mod:`.backend`). Only modules in this package import
highspy, pyomo or OR-Tools.

:func:`solve` finds the backend in the registry, solves, and runs the shared post-solve check
(:mod:`.verify`) on the answer; :func:`open_session` does the same for a sequence of solves of
one model that differ only in bounds (in place where the backend can, afresh otherwise).
"""

from __future__ import annotations

import numpy as np

from dynaplan.solvers.backend import REGISTRY, BoundSession, Feature, SolverBackend, backends, get_backend
from dynaplan.solvers.model import LinearModel, ModelArrays
from dynaplan.solvers.result import (STATUS_RANK, Backend, SolveOptions, SolveReport, Solution, Status, StopReason,
                                     relative_gap, worst_status)
from dynaplan.solvers.verify import verified

__all__ = ["Backend", "BoundSession", "Feature", "LinearModel", "ModelArrays", "REGISTRY", "STATUS_RANK",
           "SolveOptions", "SolveReport", "Solution", "SolverBackend", "Status", "StopReason", "backends",
           "get_backend", "open_session", "relative_gap", "solve", "worst_status"]


def solve(model: LinearModel | ModelArrays, backend: Backend | str = Backend.HIGHS,
          opts: SolveOptions | None = None, hint: np.ndarray | None = None) -> Solution:
    """Solve ``model`` with the named backend and verify the answer (:mod:`.verify`).

    ``hint`` (a value per column) is a starting solution for backends with
    :attr:`Feature.HINTS`, ignored by the others.
    """
    arrays = model.arrays() if isinstance(model, LinearModel) else model
    be = get_backend(backend)
    return verified(arrays, be.solve(arrays, opts or SolveOptions(), hint))


class _Session:
    """Verifying wrapper of a backend's :class:`BoundSession` (or of fresh solves)."""

    def __init__(self, be: SolverBackend, arrays: ModelArrays, opts: SolveOptions) -> None:
        self._inner = be.open(arrays, opts) if Feature.BOUND_UPDATES in be.features else None
        self._be = be

    def update_bounds_and_resolve(self, arrays: ModelArrays, opts: SolveOptions | None = None,
                                  hint: np.ndarray | None = None) -> Solution:
        opts = opts or SolveOptions()
        if Feature.HINTS not in self._be.features:
            hint = None
        sol = (self._inner.update_bounds_and_resolve(arrays, opts, hint) if self._inner is not None
               else self._be.solve(arrays, opts, hint))
        return verified(arrays, sol)


def open_session(arrays: ModelArrays, backend: Backend | str = Backend.HIGHS,
                 opts: SolveOptions | None = None) -> BoundSession:
    """A session for repeated solves of ``arrays`` with other bounds, row sides or offset
    (:meth:`ModelArrays.with_block_bounds`): in place for backends with
    :attr:`Feature.BOUND_UPDATES`, by fresh solves otherwise; every answer verified."""
    return _Session(get_backend(backend), arrays, opts or SolveOptions())
