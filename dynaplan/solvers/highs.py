"""The fast path: a :class:`LinearModel` passed to HiGHS as arrays through highspy."""

from __future__ import annotations

import time

import highspy
import numpy as np

from dynaplan.solvers.model import LinearModel, ModelArrays
from dynaplan.solvers.result import Backend, SolveOptions, SolveReport, Solution, Status, relative_gap

_MS = highspy.HighsModelStatus
VERIFY_TOL = 1e-6  # relative tolerance of the post-solve check of feasibility and objective


# highspy.Highs wraps the C++ solver with Python callback plumbing and prints a banner when
# constructed; dynaplan uses no callbacks, so it takes the bare binding when present.
_HIGHS_CLASS = getattr(getattr(highspy, "_core", None), "_Highs", highspy.Highs)


def _make_highs(opts: SolveOptions):
    h = _HIGHS_CLASS()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(opts.time_limit_s))
    h.setOptionValue("mip_rel_gap", float(opts.mip_rel_gap))
    h.setOptionValue("threads", int(opts.threads))
    h.setOptionValue("random_seed", int(opts.seed))
    # Loads sit exactly at SLO capacities often; a loose tolerance lets a solution borrow ~1e-6 of
    # capacity in one model and not in another, which breaks comparisons between plans.
    h.setOptionValue("mip_feasibility_tolerance", 1e-9)
    h.setOptionValue("primal_feasibility_tolerance", 1e-9)
    if not opts.highs_heuristics:
        for name in ("mip_heuristic_run_feasibility_jump", "mip_heuristic_run_rins", "mip_heuristic_run_rens",
                     "mip_heuristic_run_root_reduced_cost", "mip_heuristic_run_zi_round",
                     "mip_heuristic_run_shifting"):
            h.setOptionValue(name, False)
        h.setOptionValue("mip_detect_symmetry", False)
    return h


def _pass(h: highspy.Highs, m: ModelArrays) -> None:
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_ = m.n_cols
    lp.num_row_ = len(m.row_lo)
    lp.col_cost_ = m.cost
    lp.col_lower_ = np.where(np.isinf(m.lb), -inf, m.lb)
    lp.col_upper_ = np.where(np.isinf(m.ub), inf, m.ub)
    lp.row_lower_ = np.where(np.isinf(m.row_lo), -inf, m.row_lo)
    lp.row_upper_ = np.where(np.isinf(m.row_hi), inf, m.row_hi)
    lp.offset_ = m.offset
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = m.A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = m.A.indices.astype(np.int32)
    lp.a_matrix_.value_ = m.A.data.astype(float)
    if m.integer.any():
        lp.integrality_ = [highspy.HighsVarType.kInteger if b else highspy.HighsVarType.kContinuous
                           for b in m.integer]
    h.passModel(lp)


def solve_arrays(m: ModelArrays, opts: SolveOptions | None = None, relax: bool = False) -> Solution:
    """Solve a model given as arrays. ``relax=True`` drops integrality (LP relaxation)."""
    opts = opts or SolveOptions()
    if relax and m.integer.any():
        m = ModelArrays(m.cost, m.lb, m.ub, np.zeros_like(m.integer), m.A, m.row_lo, m.row_hi, m.offset)
    t0 = time.perf_counter()
    try:
        h = _make_highs(opts)
        _pass(h, m)
        if h.run() != highspy.HighsStatus.kOk and h.getModelStatus() in (_MS.kNotset, _MS.kSolveError):
            # HiGHS fixes its thread pool at the first solve of a process; a later solve asking for
            # another thread count fails until the scheduler is reset.
            highspy.Highs.resetThreadScheduler(True)
            h = _make_highs(opts)
            _pass(h, m)
            h.run()
    except Exception as exc:  # highspy raises plain exceptions on malformed input
        return Solution(x=None, report=SolveReport(
            status=Status.ERROR, backend=Backend.HIGHS, objective=None, bound=None, gap=None,
            solve_time_s=time.perf_counter() - t0, n_vars=m.n_cols, n_cons=len(m.row_lo),
            message=f"HiGHS failed: {exc}"))
    elapsed = time.perf_counter() - t0
    return _report(h, m, elapsed)


def _report(h: highspy.Highs, m: ModelArrays, elapsed: float) -> Solution:
    ms = h.getModelStatus()
    info = h.getInfo()
    is_mip = bool(m.integer.any())
    has_sol = info.primal_solution_status == 2  # kSolutionStatusFeasible
    x = np.asarray(h.getSolution().col_value, dtype=float) if has_sol else None
    obj = float(info.objective_function_value) if has_sol else None
    bound = float(info.mip_dual_bound) if is_mip else (obj if ms == _MS.kOptimal else None)
    if bound is not None and not np.isfinite(bound):
        bound = None
    if ms == _MS.kOptimal:
        status = Status.OPTIMAL
    elif ms in (_MS.kInfeasible,):
        status = Status.INFEASIBLE
    elif ms == _MS.kUnboundedOrInfeasible:
        status = Status.INFEASIBLE if not has_sol else Status.FEASIBLE
    elif has_sol:
        status = Status.FEASIBLE
    elif ms in (_MS.kTimeLimit, _MS.kIterationLimit, _MS.kSolutionLimit, _MS.kInterrupt):
        status = Status.NO_SOLUTION
    else:
        status = Status.ERROR
    if status == Status.OPTIMAL and is_mip and obj is not None and bound is None:
        bound = obj
    if x is not None:
        # Trust but verify: a solution that breaks the model or whose objective is not what HiGHS
        # says is an error, never a plan.
        scale = max(1.0, float(np.max(np.abs(m.A) @ np.abs(x), initial=0.0)))
        viol = m.violation(x)
        obj_x = float(m.cost @ x + m.offset)
        if viol > VERIFY_TOL * scale or abs(obj_x - obj) > VERIFY_TOL * max(1.0, abs(obj_x)):
            return Solution(x=None, report=SolveReport(
                status=Status.ERROR, backend=Backend.HIGHS, objective=None, bound=None, gap=None,
                solve_time_s=elapsed, n_vars=m.n_cols, n_cons=len(m.row_lo),
                message=f"HiGHS reported {h.modelStatusToString(ms)} with a solution that violates the model "
                        f"by {viol:.3g} or whose objective {obj_x:.9g} differs from the reported {obj:.9g}"))
    return Solution(x=x, report=SolveReport(
        status=status, backend=Backend.HIGHS, objective=obj, bound=bound, gap=relative_gap(obj, bound),
        solve_time_s=elapsed, n_vars=m.n_cols, n_cons=len(m.row_lo),
        message=h.modelStatusToString(ms)))


def solve(model: LinearModel, opts: SolveOptions | None = None) -> Solution:
    return solve_arrays(model.arrays(), opts)
