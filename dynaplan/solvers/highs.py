"""The fast path: a model's arrays passed to HiGHS through highspy (:class:`HighsBackend`)."""

from __future__ import annotations

import time

import highspy
import numpy as np

from dynaplan.solvers.model import ModelArrays
from dynaplan.solvers.backend import Feature
from dynaplan.solvers.result import (Backend, SolveOptions, SolveReport, Solution, Status, StopReason,
                                     relative_gap)

_MS = highspy.HighsModelStatus


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
    if opts.mip_max_nodes is not None:
        h.setOptionValue("mip_max_nodes", int(opts.mip_max_nodes))
    if opts.highs_lean_root:
        h.setOptionValue("mip_allow_restart", False)
        h.setOptionValue("mip_allow_cut_separation_at_nodes", False)
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


def reset_thread_pool() -> None:
    """HiGHS fixes its thread pool at the first solve of a process; a later solve asking for
    another thread count fails (model status "not set" / "solve error") until the pool is reset.
    The one place this workaround lives: this backend and the Pyomo backend's HiGHS solvers
    (:mod:`.pyomo_backend`) call it and retry once."""
    highspy.Highs.resetThreadScheduler(True)


def _run(h, m: ModelArrays, opts: SolveOptions):
    """Run ``h``; on the thread-pool failure, reset the pool and run a fresh solver once.
    Returns the solver that ran last."""
    if h.run() != highspy.HighsStatus.kOk and h.getModelStatus() in (_MS.kNotset, _MS.kSolveError):
        reset_thread_pool()
        h = _make_highs(opts)
        _pass(h, m)
        h.run()
    return h


def _start(h, m: ModelArrays, hint: np.ndarray | None) -> None:
    """Offer ``hint`` (a value per column) to a MIP solve as its first incumbent (HiGHS's
    ``setSolution``). HiGHS checks it itself: an infeasible hint is not used, and a feasible one
    only changes the search, never what counts as optimal; an LP ignores it."""
    if hint is None or not m.integer.any():
        return
    hint = np.asarray(hint, dtype=float)
    if hint.shape != (m.n_cols,) or not np.all(np.isfinite(hint)):
        raise ValueError(f"hint: expected {m.n_cols} finite values, one per column")
    sol = highspy.HighsSolution()
    sol.col_value = hint.tolist()
    sol.value_valid = True
    h.setSolution(sol)


def solve_arrays(m: ModelArrays, opts: SolveOptions | None = None, relax: bool = False,
                 hint: np.ndarray | None = None) -> Solution:
    """Solve a model given as arrays, unverified (:func:`dynaplan.solvers.solve` verifies);
    ``relax=True`` drops integrality (LP relaxation); ``hint``: a starting solution
    (:func:`_start`)."""
    opts = opts or SolveOptions()
    if relax:
        m = m.relaxed()
    t0 = time.perf_counter()
    try:
        h = _make_highs(opts)
        _pass(h, m)
        _start(h, m, hint)
        h = _run(h, m, opts)
    except Exception as exc:  # highspy raises plain exceptions on malformed input
        return _failure(m, time.perf_counter() - t0, exc)
    return _report(h, m, time.perf_counter() - t0, hinted=hint is not None and bool(m.integer.any()))


def _failure(m: ModelArrays, elapsed: float, exc: Exception) -> Solution:
    return Solution(x=None, report=SolveReport(
        status=Status.ERROR, backend=Backend.HIGHS, objective=None, bound=None, gap=None,
        solve_time_s=elapsed, n_vars=m.n_cols, n_cons=m.n_rows, message=f"HiGHS failed: {exc}",
        stop_reason=StopReason.BACKEND_ERROR))


_STOP = {
    _MS.kOptimal: StopReason.CONVERGED, _MS.kInfeasible: StopReason.INFEASIBLE,
    _MS.kUnbounded: StopReason.UNBOUNDED, _MS.kUnboundedOrInfeasible: StopReason.UNBOUNDED_OR_INFEASIBLE,
    _MS.kTimeLimit: StopReason.TIME_LIMIT, _MS.kIterationLimit: StopReason.OTHER_LIMIT,
    _MS.kSolutionLimit: StopReason.OTHER_LIMIT, _MS.kInterrupt: StopReason.OTHER_LIMIT,
    _MS.kObjectiveBound: StopReason.OTHER_LIMIT, _MS.kObjectiveTarget: StopReason.OTHER_LIMIT,
}


def _report(h: highspy.Highs, m: ModelArrays, elapsed: float, hinted: bool = False) -> Solution:
    ms = h.getModelStatus()
    info = h.getInfo()
    is_mip = bool(m.integer.any())
    has_sol = info.primal_solution_status == 2  # kSolutionStatusFeasible
    x = np.asarray(h.getSolution().col_value, dtype=float) if has_sol else None
    obj = float(info.objective_function_value) if has_sol else None
    bound = float(info.mip_dual_bound) if is_mip else (obj if ms == _MS.kOptimal else None)
    unreliable = False
    if hinted and x is not None:
        # HiGHS 1.16: when the offered start is the incumbent it stops with, the objective and
        # dual bound it reports may leave out the objective offset of the columns its presolve
        # removed. The incumbent's own value c @ x + offset is exact; HiGHS's bound and its
        # optimality claim are then not to be trusted: the report keeps the solution, its
        # true objective and no bound (status feasible)
        true_obj = float(m.cost @ x + m.offset)
        if abs(true_obj - obj) > 1e-9 * max(1.0, abs(obj)):
            unreliable, obj, bound = True, true_obj, None
    if bound is not None and not np.isfinite(bound):
        bound = None
    stop = _STOP.get(ms, StopReason.BACKEND_ERROR)
    if ms == _MS.kOptimal:
        status = Status.OPTIMAL
    elif ms in (_MS.kInfeasible,):
        status = Status.INFEASIBLE
    elif ms == _MS.kUnboundedOrInfeasible:
        # dynaplan's models are bounded below (non-negative costs on bounded columns), so HiGHS's
        # "unbounded or infeasible" without a solution means infeasible; the stop reason keeps
        # what HiGHS said
        status = Status.INFEASIBLE if not has_sol else Status.FEASIBLE
    elif has_sol:
        status = Status.FEASIBLE
    elif stop in (StopReason.TIME_LIMIT, StopReason.OTHER_LIMIT):
        status = Status.NO_SOLUTION
    else:
        status = Status.ERROR
    message = h.modelStatusToString(ms)
    if unreliable:
        status = Status.FEASIBLE
        message += "; HiGHS's figures for the offered start disagree with it: objective recomputed, no bound"
    elif status == Status.OPTIMAL and is_mip and obj is not None and bound is None:
        bound = obj
    return Solution(x=x, report=SolveReport(
        status=status, backend=Backend.HIGHS, objective=obj, bound=bound, gap=relative_gap(obj, bound),
        solve_time_s=elapsed, n_vars=m.n_cols, n_cons=m.n_rows, message=message, stop_reason=stop))


class HighsSession:
    """A model kept inside HiGHS: later solves change column bounds, row sides, the objective
    offset and matrix values (same sparsity pattern) in place (``changeColsBounds``/
    ``changeRowsBounds``/``changeCoeff``) instead of passing the model again.
    By default HiGHS restarts its search from scratch after such a change (``clearSolver``), so the
    answer is the one a fresh solve gives; what is saved is copying the model into the solver.

    ``warm_lp=True`` (LPs only; a model with integer columns refuses it) keeps HiGHS's simplex
    basis between solves instead: bound and side changes leave the last optimal basis dual
    feasible, so HiGHS skips presolve and its dual simplex starts from that basis (a few pivots
    instead of a solve from scratch). The optimum is the LP's optimum as from a fresh solve, to
    the simplex tolerances; on a degenerate LP the optimal vertex returned may be another one.
    """

    def __init__(self, arrays: ModelArrays, opts: SolveOptions, warm_lp: bool = False) -> None:
        if warm_lp and arrays.integer.any():
            raise ValueError("HighsSession: warm_lp is for LPs; this model has integer columns")
        self._arrays = arrays
        self._h = None
        self._opts = opts
        self._warm = warm_lp

    def update_bounds_and_resolve(self, arrays: ModelArrays, opts: SolveOptions,
                                  hint: np.ndarray | None = None) -> Solution:
        base = self._arrays
        coeffs = np.zeros(0, dtype=np.int64)  # positions in A.data whose value changes
        if arrays.A is not base.A:
            same = (arrays.A.shape == base.A.shape and np.array_equal(arrays.A.indptr, base.A.indptr)
                    and np.array_equal(arrays.A.indices, base.A.indices))
            if not same:
                raise ValueError("HighsSession: the matrix's sparsity pattern differs from the session's model")
            coeffs = np.flatnonzero(arrays.A.data != base.A.data)
        if arrays.cost is not base.cost or arrays.integer is not base.integer:
            if not (np.array_equal(arrays.cost, base.cost) and np.array_equal(arrays.integer, base.integer)):
                raise ValueError("HighsSession: the arrays differ from the session's model beyond bounds, "
                                 "offset and matrix values")
        t0 = time.perf_counter()
        try:
            if self._h is None or opts != self._opts:
                self._h = _make_highs(opts)
                _pass(self._h, arrays)
                self._opts = opts
            else:
                h, inf = self._h, highspy.kHighsInf
                if not self._warm:
                    self._h.clearSolver()
                for lo_new, hi_new, lo_old, hi_old, change in (
                        (arrays.lb, arrays.ub, base.lb, base.ub, h.changeColsBounds),
                        (arrays.row_lo, arrays.row_hi, base.row_lo, base.row_hi, h.changeRowsBounds)):
                    idx = np.flatnonzero((lo_new != lo_old) | (hi_new != hi_old)).astype(np.int32)
                    if idx.size:
                        change(int(idx.size), idx, np.where(np.isinf(lo_new[idx]), -inf, lo_new[idx]),
                               np.where(np.isinf(hi_new[idx]), inf, hi_new[idx]))
                if arrays.offset != base.offset:
                    h.changeObjectiveOffset(float(arrays.offset))
                if coeffs.size:
                    col_of = np.repeat(np.arange(arrays.A.shape[1]), np.diff(arrays.A.indptr))
                    for j in coeffs:
                        h.changeCoeff(int(arrays.A.indices[j]), int(col_of[j]), float(arrays.A.data[j]))
            self._arrays = arrays
            _start(self._h, arrays, hint)
            self._h = _run(self._h, arrays, opts)
        except Exception as exc:  # highspy raises plain exceptions on malformed input
            self._h = None
            return _failure(arrays, time.perf_counter() - t0, exc)
        return _report(self._h, arrays, time.perf_counter() - t0, hinted=hint is not None and bool(arrays.integer.any()))


class HighsBackend:
    """HiGHS through highspy, the model passed as arrays (the planner's default)."""

    name = Backend.HIGHS
    features = frozenset({Feature.BOUND_UPDATES, Feature.HINTS})

    def solve(self, arrays: ModelArrays, opts: SolveOptions, hint: np.ndarray | None = None) -> Solution:
        return solve_arrays(arrays, opts, hint=hint)

    def open(self, arrays: ModelArrays, opts: SolveOptions) -> HighsSession:
        return HighsSession(arrays, opts)
