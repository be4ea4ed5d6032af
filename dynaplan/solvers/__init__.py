"""Solver backends. Only modules in this package import highspy, pyomo or OR-Tools."""

from dynaplan.solvers.model import LinearModel, ModelArrays
from dynaplan.solvers.result import Backend, SolveOptions, SolveReport, Solution, Status

__all__ = ["Backend", "LinearModel", "ModelArrays", "SolveOptions", "SolveReport", "Solution", "Status", "solve"]


def solve(model: LinearModel, backend: Backend | str = Backend.HIGHS, opts: SolveOptions | None = None) -> Solution:
    """Solve ``model`` with the named backend (imported lazily)."""
    backend = Backend(backend)
    if backend is Backend.HIGHS:
        from dynaplan.solvers import highs as mod
    elif backend is Backend.PYOMO:
        from dynaplan.solvers import pyomo_backend as mod
    else:
        from dynaplan.solvers import cpsat as mod
    return mod.solve(model, opts)
