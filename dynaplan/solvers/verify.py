"""The post-solve check every backend's answer passes before anyone sees it.

A solution is returned only when it satisfies the model it claims to solve and its reported
objective is ``c x + offset``:

    max violation of bounds, rows, integrality  <=  VERIFY_TOL * max(1, max_i sum_j |a_ij x_j|)
    |objective - (c x + offset)|               <=  VERIFY_TOL * max(1, |c x + offset|)

(a relative tolerance: HiGHS works to 1e-9 absolute on rows whose activity reaches 1e6; CP-SAT
rounds coefficients of inexact rows at 5e-7 relative). A reported bound above the objective by
more than that tolerance is also refused. A solution that fails becomes ``Status.ERROR`` with
``StopReason.VERIFICATION_FAILED`` and no ``x``: never a plan.
"""

from __future__ import annotations

import numpy as np

from dynaplan.solvers.model import ModelArrays
from dynaplan.solvers.result import Solution, SolveReport, Status, StopReason

VERIFY_TOL = 1e-6


def solution_problem(arrays: ModelArrays, x: np.ndarray, report: SolveReport, abs_a=None) -> str | None:
    """Why ``x`` with ``report`` fails the check above (None when it passes); ``abs_a``: ``|A|``
    of ``arrays`` where the caller keeps it (:meth:`ModelArrays.activity_scale`)."""
    if x.shape != (arrays.n_cols,) or not np.isfinite(x).all():
        return f"a solution of shape {x.shape} with non-finite values for {arrays.n_cols} columns"
    viol = arrays.violation(x)
    scale = arrays.activity_scale(x, abs_a)
    if viol > VERIFY_TOL * scale:
        return f"a solution that violates the model by {viol:.3g} (tolerance {VERIFY_TOL * scale:.3g})"
    obj_x = float(arrays.cost @ x + arrays.offset)
    tol = VERIFY_TOL * max(1.0, abs(obj_x))
    if report.objective is None or abs(obj_x - report.objective) > tol:
        return f"an objective {report.objective} that differs from c.x + offset = {obj_x:.9g}"
    if report.bound is not None and report.bound > obj_x + tol:
        return f"a bound {report.bound:.9g} above the solution's objective {obj_x:.9g}"
    return None


def verified(arrays: ModelArrays, sol: Solution) -> Solution:
    """``sol`` if it passes the check (or has no solution), else an error without ``x``."""
    if sol.x is None:
        return sol
    why = solution_problem(arrays, np.asarray(sol.x, dtype=float), sol.report)
    if why is None:
        return sol
    r = sol.report
    return Solution(x=None, report=r.model_copy(update={
        "status": Status.ERROR, "objective": None, "bound": None, "gap": None,
        "stop_reason": StopReason.VERIFICATION_FAILED,
        "message": f"{r.message}: the backend returned {why}"}))
