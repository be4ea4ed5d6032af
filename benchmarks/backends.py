"""Solving one :class:`~dynaplan.solvers.LinearModel` with every backend the benchmarks compare.

* ``highs``: dynaplan's fast path, the model's arrays passed to HiGHS through highspy;
* ``pyomo``: dynaplan's Pyomo backend (``build_pyomo`` + APPSI HiGHS): the same solver behind a
  modelling layer, so the difference to ``highs`` is the modelling layer's cost;
* ``cpsat``: dynaplan's OR-Tools CP-SAT backend (loads discretised to integers);
* ``pulp``: PuLP + CBC, the tool the published DynamoLLM system used. Not a dynaplan backend:
  the same LinearModel is rebuilt here from ``model.arrays()``; PuLP is imported lazily and the
  backend is skipped when it is missing (``pip install dynaplan[pulp]``).

:func:`solve_model` returns a :class:`MilpResult` with the solution and the time split into
``translate_s`` (building the backend's own model) and ``solver_s`` (the solver call).
"""

from __future__ import annotations

import importlib.util
import math
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dynaplan.solvers import Backend, LinearModel, SolveOptions, solve
from dynaplan.solvers.model import ModelArrays

PLANNER_BACKENDS = tuple(b.value for b in Backend)  # what dynaplan.Planner itself can use
EXTERNAL_BACKENDS = ("pulp",)                       # compared by the benchmarks only
ALL_BACKENDS = PLANNER_BACKENDS + EXTERNAL_BACKENDS
REFERENCE_BACKEND = Backend.HIGHS.value             # the one others are compared against


@dataclass(frozen=True)
class MilpResult:
    x: np.ndarray | None
    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    translate_s: float
    solver_s: float
    message: str
    arrays: ModelArrays
    backend: str


@lru_cache(maxsize=None)
def available(backend: str) -> bool:
    """Whether ``backend`` can run here (only PuLP + CBC is optional; non-solver steps always run)."""
    if backend != "pulp":
        return True
    if importlib.util.find_spec("pulp") is None:
        return False
    import pulp

    return bool(pulp.PULP_CBC_CMD(msg=False).available())


def solve_model(model: LinearModel, backend: str, opts: SolveOptions, arrays: ModelArrays | None = None
                ) -> MilpResult:
    """Solve ``model`` with ``backend`` under ``opts`` (time limit, gap, threads, seed).

    ``arrays`` (``model.arrays()``, made once at build time) are what every dynaplan backend
    solves, as the planner does (each translates them into its own model, timed as its build);
    PuLP is rebuilt from them here.
    """
    arrays = model.arrays() if arrays is None else arrays
    if backend in EXTERNAL_BACKENDS:
        return _solve_pulp(model, arrays, opts)
    sol = solve(arrays, backend, opts)
    r = sol.report
    return MilpResult(x=sol.x, status=r.status.value, objective=r.objective, bound=r.bound, gap=r.gap,
                      translate_s=r.build_time_s, solver_s=r.solve_time_s, message=r.message,
                      arrays=arrays, backend=backend)


def _solve_pulp(model: LinearModel, a: ModelArrays, opts: SolveOptions) -> MilpResult:
    import pulp

    t0 = time.perf_counter()
    prob = pulp.LpProblem(model.name.replace("[", "_").replace("]", "_"), pulp.LpMinimize)
    xs = [pulp.LpVariable(f"x{j}", lowBound=None if math.isinf(lo) else float(lo),
                          upBound=None if math.isinf(hi) else float(hi),
                          cat=pulp.LpInteger if integer else pulp.LpContinuous)
          for j, (lo, hi, integer) in enumerate(zip(a.lb, a.ub, a.integer))]
    nz = np.flatnonzero(a.cost)
    prob += pulp.LpAffineExpression([(xs[j], float(a.cost[j])) for j in nz], constant=float(a.offset))
    csr = a.A.tocsr()
    for i in range(csr.shape[0]):
        lo, hi = float(a.row_lo[i]), float(a.row_hi[i])
        sl = slice(csr.indptr[i], csr.indptr[i + 1])
        expr = pulp.LpAffineExpression([(xs[j], float(v)) for j, v in zip(csr.indices[sl], csr.data[sl])])
        if lo == hi:
            prob += expr == lo, f"r{i}"
        else:
            if not math.isinf(lo):
                prob += expr >= lo, f"r{i}l"
            if not math.isinf(hi):
                prob += expr <= hi, f"r{i}u"
    translate_s = time.perf_counter() - t0
    solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=max(float(opts.time_limit_s), 0.01),
                               gapRel=float(opts.mip_rel_gap), threads=int(opts.threads))
    t1 = time.perf_counter()
    try:
        prob.solve(solver)
    except pulp.PulpSolverError as exc:
        return MilpResult(None, "error", None, None, None, translate_s, time.perf_counter() - t1, str(exc), a, "pulp")
    solver_s = time.perf_counter() - t1
    # sol_status: 1 optimal, 2 integer feasible (stopped early), 0 no solution, -1 infeasible, -2 unbounded
    sol_status = prob.sol_status
    x = None
    if sol_status in (1, 2):
        vals = [v.varValue for v in xs]
        x = np.array([0.0 if v is None else float(v) for v in vals])
    status = {1: "optimal", 2: "feasible", 0: "no_solution", -1: "infeasible", -2: "error", -3: "error"}.get(
        sol_status, "error")
    obj = float(a.cost @ x + a.offset) if x is not None else None
    # CBC through PuLP's command line reports no dual bound; an optimal status means the gap is met
    return MilpResult(x, status, obj, None, None, translate_s, solver_s,
                      f"pulp/cbc: {pulp.LpStatus[prob.status]}", a, "pulp")


def check_milp(res: MilpResult, rel_tol: float = 1e-6) -> tuple[bool, str]:
    """A solution exists, its objective is finite and it satisfies the model (rows, bounds, integrality)."""
    if res.status not in ("optimal", "feasible"):
        return False, f"status {res.status}: {res.message}"
    if res.x is None or res.objective is None or not math.isfinite(res.objective):
        return False, f"no finite objective ({res.message})"
    a = res.arrays
    scale = max(1.0, float(np.max(np.abs(a.A) @ np.abs(res.x), initial=0.0)))
    viol = a.violation(res.x)
    if viol > rel_tol * scale:
        return False, f"solution violates the model by {viol:.3g} (scale {scale:.3g})"
    obj = float(a.cost @ res.x + a.offset)
    if abs(obj - res.objective) > 1e-6 * max(1.0, abs(obj)):
        return False, f"reported objective {res.objective:.8g} != c.x {obj:.8g}"
    return True, ""
