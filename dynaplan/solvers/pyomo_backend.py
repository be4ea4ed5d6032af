"""The readable path: a :class:`LinearModel` as a Pyomo ``ConcreteModel``, solved by any Pyomo solver.

:func:`build_pyomo` is the reference translation: one indexed ``Var`` per variable block and one
indexed ``Constraint`` per constraint block, each named as its block and indexed by the block's
labels (tuple labels become multi-dimensional indices), plus ``objective``. Printing it
(``pm.pprint()``) shows the formulation with the names used in ``formulations/*.md``.

:func:`solve` builds that model and solves it with ``opts.pyomo_solver``:

* ``appsi_<name>`` (default ``appsi_highs``): Pyomo's APPSI interface, read natively
  (``best_feasible_objective`` / ``best_objective_bound``);
* a name of Pyomo's new solver interface (``highs``, ``gurobi_direct``, ``scip_direct``, ...):
  read natively (``incumbent_objective`` / ``objective_bound``);
* any other name (``cbc``, ``glpk``, ``cplex``, ``gurobi``, ...): the classic
  ``pyo.SolverFactory`` interface, with its ``SolverResults``.

Time limit, relative gap, threads and seed are passed where the solver has an option for them.
A missing or failing solver gives a :class:`Status.ERROR` report; nothing raises out of Pyomo.

HiGHS keeps one thread pool per process, sized by the first solve: a later solve asking for a
different ``threads`` fails inside HiGHS. When a HiGHS solve ends in an error with no solution,
the pool is reset (:func:`dynaplan.solvers.highs.reset_thread_pool`) and the solve is retried once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr.numeric_expr import LinearExpression

from dynaplan.solvers.backend import Feature
from dynaplan.solvers.model import LinearModel, ModelArrays
from dynaplan.solvers.result import Backend, SolveOptions, SolveReport, Solution, Status, StopReason, relative_gap

__all__ = ["PyomoBackend", "build_pyomo", "column_vars", "solve"]

_COLS_ATTR = "_dynaplan_columns"

# Option names of the classic (file/shell) interfaces: (time limit, relative gap, threads, seed).
_LEGACY_OPTION_NAMES: dict[str, tuple[str | None, str | None, str | None, str | None]] = {
    "cbc": ("sec", "ratioGap", "threads", "randomCbcSeed"),
    "glpk": ("tmlim", "mipgap", None, None),
    "cplex": ("timelimit", "mipgap", "threads", "randomseed"),
    "cplex_direct": ("timelimit", "mip_tolerances_mipgap", "threads", "randomseed"),
    "gurobi": ("TimeLimit", "MIPGap", "Threads", "Seed"),
    "gurobi_direct": ("TimeLimit", "MIPGap", "Threads", "Seed"),
    "gurobi_persistent": ("TimeLimit", "MIPGap", "Threads", "Seed"),
    "scip": ("limits/time", "limits/gap", "parallel/maxnthreads", "randomization/randomseedshift"),
    "xpress": ("maxtime", "miprelstop", "threads", "randomseed"),
}


# ------------------------------------------------------------------------------------ building
def build_pyomo(model: LinearModel | ModelArrays) -> pyo.ConcreteModel:
    """The :class:`LinearModel` (or its arrays, named by their index) as a readable Pyomo
    ``ConcreteModel``.

    Component names are the block names, suffixed with ``_`` if they clash with a Pyomo
    attribute or another component (a block ``load`` becomes ``pm.load_``: Pyomo reserves
    ``load``). Labels that Pyomo cannot use as an index (unhashable,
    duplicated, mixed tuple lengths) are replaced by their string form, or by positions.
    Rows with no coefficient are left out when ``0`` satisfies them and become
    ``Constraint.Infeasible`` otherwise. ``column_vars(pm)`` lists the variables in the
    model's column order.
    """
    m = model.arrays() if isinstance(model, LinearModel) else model
    names = m.names()
    pm = pyo.ConcreteModel(name=names.name)
    columns: list[Any] = [None] * m.n_cols

    for block in names.var_blocks.values():
        keys, dimen = _index_keys(block.labels)
        cols = block.cols
        lb, ub = m.lb[cols], m.ub[cols]
        nonneg = bool(np.all(lb >= 0))
        if block.integer:
            domain = pyo.NonNegativeIntegers if nonneg else pyo.Integers
        else:
            domain = pyo.NonNegativeReals if nonneg else pyo.Reals
        name = _free_name(pm, block.name)
        index = pyo.Set(initialize=keys, dimen=dimen, ordered=True)
        pm.add_component(_free_name(pm, f"{name}_index"), index)
        var = pyo.Var(index, domain=domain, dense=True)
        pm.add_component(name, var)
        for key, j, lo, hi in zip(keys, cols, lb, ub):
            vd = var[key]
            vd.setlb(None if math.isinf(lo) else float(lo))
            vd.setub(None if math.isinf(hi) else float(hi))
            columns[j] = vd

    csr = m.A.tocsr()
    csr.sort_indices()
    indptr, indices, data = csr.indptr, csr.indices, csr.data
    for block in names.con_blocks.values():
        keys, dimen = _index_keys(block.labels)
        name = _free_name(pm, block.name)
        index = pyo.Set(initialize=keys, dimen=dimen, ordered=True)
        pm.add_component(_free_name(pm, f"{name}_index"), index)
        con = pyo.Constraint(index)
        pm.add_component(name, con)
        for key, i in zip(keys, range(block.start, block.stop)):
            lo, hi = float(m.row_lo[i]), float(m.row_hi[i])
            if math.isinf(lo) and math.isinf(hi) and lo < 0 < hi:
                continue  # a free row constrains nothing
            sl = slice(indptr[i], indptr[i + 1])
            nz = data[sl] != 0
            coefs, js = data[sl][nz], indices[sl][nz]
            if coefs.size == 0:
                if not (lo <= 0.0 <= hi):
                    con[key] = pyo.Constraint.Infeasible
                continue
            expr = LinearExpression(constant=0.0, linear_coefs=[float(a) for a in coefs],
                                    linear_vars=[columns[j] for j in js])
            if lo == hi:
                con[key] = expr == lo
            elif math.isinf(lo):
                con[key] = expr <= hi
            elif math.isinf(hi):
                con[key] = expr >= lo
            else:
                con[key] = pyo.inequality(lo, expr, hi)

    nz = np.flatnonzero(m.cost)
    obj_expr = LinearExpression(constant=float(m.offset), linear_coefs=[float(c) for c in m.cost[nz]],
                                linear_vars=[columns[j] for j in nz])
    pm.add_component(_free_name(pm, "objective"), pyo.Objective(expr=obj_expr, sense=pyo.minimize))
    object.__setattr__(pm, _COLS_ATTR, columns)
    return pm


def column_vars(pm: pyo.ConcreteModel) -> list:
    """The variables of a model made by :func:`build_pyomo`, in the LinearModel's column order."""
    return list(getattr(pm, _COLS_ATTR))


def _plain(label):
    if isinstance(label, np.generic):
        return label.item()
    if isinstance(label, tuple):
        return tuple(_plain(v) for v in label)
    return label


def _index_keys(labels: tuple) -> tuple[list, int | None]:
    """Index keys for Pyomo and the set's dimension: the labels themselves when usable."""
    keys = [_plain(lab) for lab in labels]
    keys = [k[0] if isinstance(k, tuple) and len(k) == 1 else k for k in keys]
    dims = {len(k) if isinstance(k, tuple) else 1 for k in keys}
    flat = all(not isinstance(v, tuple) for k in keys if isinstance(k, tuple) for v in k)
    try:
        unique = len(set(keys)) == len(keys)
    except TypeError:  # unhashable label
        unique = False
    if unique and flat and len(dims) <= 1 and None not in keys:
        return keys, (dims.pop() if dims else 1)
    strings = [",".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in keys]
    if len(set(strings)) == len(strings):
        return strings, 1
    return list(range(len(keys))), 1


def _free_name(pm: pyo.ConcreteModel, name: str) -> str:
    # Pyomo reserves its Block attributes (``load``, ``name``, ``write``, ...): ``load`` -> ``load_``
    while pm.component(name) is not None or hasattr(pm, name):
        name += "_"
    return name


# ------------------------------------------------------------------------------------ solving
@contextlib.contextmanager
def _quiet_pyomo():
    """Silence Pyomo's loggers (warnings about unknown solvers, suboptimal loads, ...)."""
    loggers = [logging.getLogger(n) for n in ("pyomo", "pyomo.solvers", "pyomo.opt", "pyomo.contrib")]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, saved):
            lg.setLevel(lvl)


class PyomoBackend:
    """The model as a readable Pyomo model (:func:`build_pyomo`), solved by ``opts.pyomo_solver``."""

    name = Backend.PYOMO
    features: frozenset[Feature] = frozenset()

    def solve(self, arrays: ModelArrays, opts: SolveOptions, hint: np.ndarray | None = None) -> Solution:
        return solve(arrays, opts)


def solve(model: LinearModel | ModelArrays, opts: SolveOptions | None = None) -> Solution:
    """Build :func:`build_pyomo` and solve it with ``opts.pyomo_solver`` (unverified:
    :func:`dynaplan.solvers.solve` verifies)."""
    opts = opts or SolveOptions()
    arrays = model.arrays() if isinstance(model, LinearModel) else model
    n_vars, n_cons = arrays.n_cols, arrays.n_rows

    def fail(msg: str, solve_time: float = 0.0, build_time: float = 0.0) -> Solution:
        return Solution(x=None, report=SolveReport(
            status=Status.ERROR, backend=Backend.PYOMO, objective=None, bound=None, gap=None,
            solve_time_s=solve_time, build_time_s=build_time, n_vars=n_vars, n_cons=n_cons,
            message=f"pyomo/{opts.pyomo_solver}: {msg}", stop_reason=StopReason.BACKEND_ERROR))

    t0 = time.perf_counter()
    try:
        with _quiet_pyomo():
            pm = build_pyomo(arrays)
    except Exception as exc:
        return fail(f"building the Pyomo model failed: {type(exc).__name__}: {exc}",
                    build_time=time.perf_counter() - t0)
    build_time = time.perf_counter() - t0

    name = opts.pyomo_solver
    t1 = time.perf_counter()
    try:
        with _quiet_pyomo():
            runner = _runner_for(name)
            outcome = runner(pm, opts)
            if outcome.kind == "error" and not outcome.has_solution and _uses_highs(name):
                from dynaplan.solvers.highs import reset_thread_pool

                reset_thread_pool()
                pm = build_pyomo(arrays)  # a fresh model: the failed solver may hold the old one
                outcome = runner(pm, opts)
    except _Unavailable as exc:
        return fail(str(exc), time.perf_counter() - t1, build_time)
    except Exception as exc:  # a solver interface failing: report, never raise
        return fail(f"solve failed: {type(exc).__name__}: {exc}", time.perf_counter() - t1, build_time)
    solve_time = time.perf_counter() - t1
    return _to_solution(pm, arrays, outcome, opts, solve_time, build_time)


class _Unavailable(Exception):
    pass


class _Outcome:
    """What a solver interface reported, in the backend's vocabulary."""

    def __init__(self, kind: str, has_solution: bool, bound: float | None, message: str):
        self.kind = kind  # optimal | infeasible | inf_or_unbd | unbounded | time_limit | limit | error
        self.has_solution = has_solution
        self.bound = bound
        self.message = message


def _uses_highs(name: str) -> bool:
    return name.lower() in ("appsi_highs", "highs")


def _runner_for(name: str):
    from pyomo.contrib.appsi.base import SolverFactory as AppsiFactory
    from pyomo.contrib.solver.common.factory import SolverFactory as V2Factory

    if name.startswith("appsi_") and name[len("appsi_"):] in AppsiFactory:
        return lambda pm, opts: _solve_appsi(name[len("appsi_"):], pm, opts)
    if name in V2Factory:
        return lambda pm, opts: _solve_v2(name, pm, opts)
    return lambda pm, opts: _solve_legacy(name, pm, opts)


def _solve_appsi(name: str, pm, opts: SolveOptions) -> _Outcome:
    from pyomo.contrib.appsi.base import SolverFactory as AppsiFactory, TerminationCondition as TC

    solver = AppsiFactory(name)
    avail = solver.available()
    if int(avail) <= 0:
        raise _Unavailable(f"solver appsi_{name} is not available ({avail!s})")
    cfg = solver.config
    cfg.load_solution = False
    cfg.stream_solver = False
    cfg.time_limit = float(opts.time_limit_s)
    cfg.mip_gap = float(opts.mip_rel_gap)
    if name == "highs":
        solver.highs_options = {"threads": int(opts.threads), "random_seed": int(opts.seed)}
    elif name in _LEGACY_OPTION_NAMES:  # cbc, cplex, gurobi take their native option names
        _, _, th, sd = _LEGACY_OPTION_NAMES[name]
        extra = {k: v for k, v in ((th, int(opts.threads)), (sd, int(opts.seed))) if k}
        for attr in (f"{name}_options", "options"):
            if hasattr(solver, attr):
                setattr(solver, attr, {**getattr(solver, attr), **extra})
                break
    res = solver.solve(pm)
    tc = res.termination_condition
    has_sol = res.best_feasible_objective is not None
    if has_sol:
        res.solution_loader.load_vars()
    kind = {TC.optimal: "optimal", TC.infeasible: "infeasible", TC.infeasibleOrUnbounded: "inf_or_unbd",
            TC.unbounded: "unbounded", TC.maxTimeLimit: "time_limit", TC.maxIterations: "limit",
            TC.objectiveLimit: "limit", TC.interrupted: "limit", TC.minStepLength: "limit"}.get(tc, "error")
    return _Outcome(kind, has_sol, _finite(res.best_objective_bound), str(tc).split(".")[-1])


def _solve_v2(name: str, pm, opts: SolveOptions) -> _Outcome:
    from pyomo.contrib.solver.common.factory import SolverFactory as V2Factory
    from pyomo.contrib.solver.common.results import SolutionStatus as SS, TerminationCondition as TC

    solver = V2Factory(name)
    avail = solver.available()
    if not avail:
        raise _Unavailable(f"solver {name} is not available ({avail!s})")
    solver_options: dict[str, Any] = {}
    if name == "highs":
        solver_options["random_seed"] = int(opts.seed)
    elif name in _LEGACY_OPTION_NAMES and _LEGACY_OPTION_NAMES[name][3]:
        solver_options[_LEGACY_OPTION_NAMES[name][3]] = int(opts.seed)
    res = solver.solve(pm, load_solutions=False, raise_exception_on_nonoptimal_result=False, tee=False,
                       time_limit=float(opts.time_limit_s), rel_gap=float(opts.mip_rel_gap),
                       threads=int(opts.threads), solver_options=solver_options)
    has_sol = res.solution_status in (SS.feasible, SS.optimal)
    if has_sol:
        res.solution_loader.load_vars()
    tc = res.termination_condition
    kind = {TC.convergenceCriteriaSatisfied: "optimal", TC.provenInfeasible: "infeasible",
            TC.infeasibleOrUnbounded: "inf_or_unbd", TC.unbounded: "unbounded",
            TC.maxTimeLimit: "time_limit", TC.iterationLimit: "limit", TC.objectiveLimit: "limit",
            TC.minStepLength: "limit", TC.interrupted: "limit", TC.locallyInfeasible: "limit"}.get(tc, "error")
    if kind == "optimal" and not has_sol:
        kind = "error"
    return _Outcome(kind, has_sol, _finite(res.objective_bound), str(tc).split(".")[-1])


def _solve_legacy(name: str, pm, opts: SolveOptions) -> _Outcome:
    from pyomo.opt import SolutionStatus as SS, TerminationCondition as TC

    solver = pyo.SolverFactory(name)
    if solver is None or not solver.available(exception_flag=False):
        raise _Unavailable(f"solver {name!r} is not available (not installed or unknown to Pyomo)")
    tl, gap, th, sd = _LEGACY_OPTION_NAMES.get(name, (None, None, None, None))
    options = {k: v for k, v in ((tl, float(opts.time_limit_s)), (gap, float(opts.mip_rel_gap)),
                                 (th, int(opts.threads)), (sd, int(opts.seed))) if k}
    kwargs: dict[str, Any] = {"tee": False, "load_solutions": False}
    if tl is None:
        kwargs["timelimit"] = float(opts.time_limit_s)
    res = solver.solve(pm, options=options, **kwargs)
    tc = res.solver.termination_condition
    has_sol = False
    if len(res.solution) > 0 and res.solution(0).status in (SS.optimal, SS.feasible, SS.bestSoFar,
                                                               SS.globallyOptimal, SS.locallyOptimal):
        pm.solutions.load_from(res)
        has_sol = True
    kind = {TC.optimal: "optimal", TC.globallyOptimal: "optimal", TC.locallyOptimal: "optimal",
            TC.feasible: "limit", TC.infeasible: "infeasible", TC.infeasibleOrUnbounded: "inf_or_unbd",
            TC.unbounded: "unbounded", TC.maxTimeLimit: "time_limit", TC.maxIterations: "limit",
            TC.maxEvaluations: "limit", TC.minStepLength: "limit", TC.minFunctionValue: "limit",
            TC.userInterrupt: "limit", TC.resourceInterrupt: "limit"}.get(tc, "error")
    bound = None
    with contextlib.suppress(Exception):
        bound = _finite(float(res.problem.lower_bound))
    return _Outcome(kind, has_sol, bound, str(tc))


def _finite(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _to_solution(pm, m: ModelArrays, out: _Outcome, opts: SolveOptions, solve_time: float,
                 build_time: float) -> Solution:
    x = obj = None
    if out.has_solution:
        vals = [vd.value for vd in column_vars(pm)]
        # a variable in no constraint and with zero cost may come back unset: use a bound or 0
        x = np.array([v if v is not None else _rest(m.lb[j], m.ub[j]) for j, v in enumerate(vals)],
                     dtype=float)
        obj = float(m.cost @ x + m.offset)
    bound = out.bound
    has_sol = x is not None
    if out.kind == "optimal" and has_sol:
        status = Status.OPTIMAL
        if bound is None:
            bound = obj
    elif out.kind == "infeasible":
        status = Status.INFEASIBLE
    elif out.kind == "inf_or_unbd":
        status = Status.FEASIBLE if has_sol else Status.INFEASIBLE
    elif has_sol:
        status = Status.FEASIBLE
    elif out.kind in ("limit", "time_limit"):
        status = Status.NO_SOLUTION
    else:
        status = Status.ERROR
    if not has_sol:
        bound = bound if status == Status.NO_SOLUTION else None
    return Solution(x=x, report=SolveReport(
        status=status, backend=Backend.PYOMO, objective=obj, bound=bound, gap=relative_gap(obj, bound),
        solve_time_s=solve_time, build_time_s=build_time, n_vars=m.n_cols, n_cons=m.n_rows,
        message=f"pyomo/{opts.pyomo_solver}: {out.message}", stop_reason=_STOP[out.kind]))


_STOP = {"optimal": StopReason.CONVERGED, "infeasible": StopReason.INFEASIBLE,
         "inf_or_unbd": StopReason.UNBOUNDED_OR_INFEASIBLE, "unbounded": StopReason.UNBOUNDED,
         "time_limit": StopReason.TIME_LIMIT, "limit": StopReason.OTHER_LIMIT, "error": StopReason.BACKEND_ERROR}


def _rest(lb: float, ub: float) -> float:
    if lb <= 0.0 <= ub:
        return 0.0
    return float(lb) if math.isfinite(lb) else float(ub)
