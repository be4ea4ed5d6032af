"""The pure-integer path: a :class:`LinearModel` solved by OR-Tools CP-SAT.

CP-SAT only knows integer variables and integer coefficients, so the model is *discretised*:

**Columns.** Integer columns are kept: ``x_j = y_j``. Continuous columns are, in dynaplan's
models, loads in req/s; they are put on a grid of ``u = opts.cpsat_load_unit_rps`` (default
1e-3 req/s): ``x_j = u * y_j`` with ``y_j`` integer. A bound is rounded inwards
(``y_j <= floor(ub_j / u)``), so every returned ``x`` is within its bounds. Only loads that are
multiples of ``u`` can be returned: a plan may need up to ``u`` req/s more capacity per load
variable than the continuous optimum (e.g. ``sum x >= L`` forces ``sum x >= ceil(L/u)*u``).

**Infinite bounds.** CP-SAT needs finite domains. A missing bound is derived from the rows by
bound propagation (e.g. ``x_k <= cap_k n_k`` and ``sum tp_k n_k <= G`` bound ``n_k`` and then
``x_k``), relaxed outwards by 1e-9 relative. A column whose bound cannot be derived is an
error (``ValueError`` from :func:`build_cpsat`, ``Status.ERROR`` from :func:`solve`), unless
``build_cpsat(..., default_bound=B)`` is given, which puts ``|x_j| <= B`` on such columns.

**Rows.** Row ``i``, in grid units, has real coefficients ``q_ij = a_ij s_j`` (``s_j`` = 1 or
``u``). It is multiplied by ``F_i = 10**k``, the smallest ``k`` in 0..12 for which every
``F_i q_ij`` is an integer (to ``2e-15 |F_i q_ij|``, the floating-point noise of decimal data):
such a row is **exact**. Otherwise ``k`` is the
smallest one making every nonzero ``|F_i q_ij| >= 1e6`` (coefficient error <= 5e-7 relative),
capped so that the row's activity over the box stays below 2**51, and coefficients are rounded
in the direction that keeps the original row satisfied: for ``<=`` rows rounded up on
non-negative columns (a capacity term ``-F cap n`` becomes ``-floor(F cap) n``), down for
``>=`` rows; with both sides finite, to nearest. Whatever rounding error ``e_ij`` remains is bounded
over the column box, and the integer row sides are tightened by it:
``ceil(F lo - min sum e y) <= sum round(F q) y <= floor(F hi - max sum e y)``.
Hence every solution of the integer model satisfies the original model (up to floating
point; :func:`dynaplan.solvers.solve` re-checks every backend's answer, :mod:`.verify`). The
converse does not hold: the integer model may be infeasible, or have a worse optimum, when the
original optimum needs loads off the grid or inexact rows were tightened — typically a plan
that runs an instance at exactly its capacity when that capacity is not a multiple of ``u``.

**Full-load plans: the outer model and an LP completion.** When the discretisation is not
exact, :func:`solve` also solves the *outer* discretisation (``build_cpsat(relax=True,
relax_objective=True)``: grid bounds rounded outwards, coefficients rounded the other way and
rows widened by the grid error ``sum_j |F_i a_ij u| / 2``), into which every feasible ``x``
maps. Its integer decisions, and those of the restricted solution, are completed by an LP over
the continuous columns with the integer columns fixed (HiGHS): the completion is a solution of
the original model whenever the integer decisions admit one, at loads off the grid; the best
completion (or the restricted solution) is returned. The rounding direction therefore never
loses a plan whose integer decisions the outer model finds; what no step can return is only
a plan whose integers neither CP-SAT model chooses.

**Infeasibility.** Since the integer model is a restriction, its infeasibility proves nothing
unless it is exact (no continuous column, every row exact). ``Status.INFEASIBLE`` only if the
outer discretisation is infeasible too; with no solution and no feasible completion,
``Status.NO_SOLUTION`` with a message suggesting a smaller ``cpsat_load_unit_rps``.

**Objective.** Coefficients become ``w_j = round(c_j s_j / v)`` with
``v = opts.cpsat_objective_unit``. The residual ``r_j = c_j s_j - v w_j`` (``|r_j| <= v/2``) is
what CP-SAT does not see: the reported ``objective`` is recomputed exactly from the original
costs, ``c @ x + offset``. With an exact discretisation the reported ``bound`` is
``v * B + offset + min_box(r @ y)`` where ``B`` is CP-SAT's bound, i.e. widened by the largest
objective rounding error over the column box (``CpsatScaling.objective_error``; zero when all
``c_j s_j`` are multiples of ``v``). Otherwise CP-SAT's bound on the restricted model says
nothing about the original (the grid and the tightened rows cut its optimum off), and the
reported bound is the better of the outer discretisation's bound widened by the grid error
(:func:`_outer_bound`) and the original model's LP relaxation (HiGHS); the status is
``OPTIMAL`` only when the objective is within ``opts.mip_rel_gap`` of that bound. CP-SAT's own gap
(``relative_gap_limit = opts.mip_rel_gap``) is measured on the integer objective ``w @ y``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from ortools.sat.python import cp_model

from dynaplan.solvers.backend import Feature
from dynaplan.solvers.highs import solve_arrays as highs_solve_arrays
from dynaplan.solvers.model import LinearModel, ModelArrays
from dynaplan.solvers.result import Backend, SolveOptions, SolveReport, Solution, Status, StopReason, relative_gap

__all__ = ["CpsatBackend", "CpsatScaling", "FEAS_TOL", "build_cpsat", "derive_bounds", "solve"]

FEAS_TOL = 1e-6           # relative (to activity magnitude, at least 1) tolerance of the re-check
ACTIVITY_MAX = 2.0 ** 53  # largest |coefficient| * |value| sum of a row or the objective
MAX_POW10 = 12            # largest row scale 10**k tried
MIN_INEXACT_COEF = 1e6    # inexact rows: scale until every |coefficient| reaches this
_REL_INT_TOL = 2e-15      # a coefficient is an integer to this relative tolerance (~9 ulps)
_INT_TOL = 1e-9           # a row side or bound: ceil/floor forgive this much (or 2e-15 relative)
MAX_OUTER_ROUNDS = 8      # outer solves whose integer decisions are tried for an LP completion


@dataclass
class CpsatScaling:
    """How the LinearModel maps to the CP-SAT model: ``x = col_unit * y``."""

    col_unit: np.ndarray              # s_j: 1 for integer columns, u for continuous ones
    y_lb: np.ndarray                  # integer domain of y_j
    y_ub: np.ndarray
    derived_bound: np.ndarray         # True where an infinite bound was derived or defaulted
    row_scale: np.ndarray             # F_i = 10**k_i (0 for rows left out: free or empty)
    row_exact: np.ndarray             # True when F_i * a_ij * s_j are all integers
    row_tightening: np.ndarray        # integer units removed from the row's sides by rounding
    obj_coef: np.ndarray              # w_j
    obj_unit: float                   # v
    objective_error: float            # max over the box of |r @ y| (original objective units)
    obj_residual_min: float           # min over the box of r @ y (<= 0): the bound widening
    load_unit: float                  # u
    exact: bool = False               # no continuous column and every row exact: same model
    relaxed: bool = False             # built with relax=True (outer discretisation)
    infeasible: tuple[str, ...] = ()  # reasons the discretised model is trivially infeasible
    variables: list = field(default_factory=list)  # the CP-SAT IntVars, in column order

    def to_x(self, y) -> np.ndarray:
        return self.col_unit * np.asarray(y, dtype=float)


# ------------------------------------------------------------------------------------ bounds
def derive_bounds(m: ModelArrays, passes: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Fill infinite column bounds by propagating the rows' activity bounds (finite ones kept)."""
    lb, ub = m.lb.astype(float).copy(), m.ub.astype(float).copy()
    A = sp.csr_matrix(m.A)
    A.eliminate_zeros()
    if A.nnz == 0:
        return lb, ub
    rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    cols, a = A.indices, A.data
    n_rows = A.shape[0]
    pos = a > 0
    with np.errstate(invalid="ignore", over="ignore"):
        for _ in range(passes):
            if np.isfinite(lb).all() and np.isfinite(ub).all():
                break
            cmin = np.where(pos, a * lb[cols], a * ub[cols])  # smallest contribution, may be -inf
            cmax = np.where(pos, a * ub[cols], a * lb[cols])
            fmin, fmax = np.isfinite(cmin), np.isfinite(cmax)
            smin = np.bincount(rows, np.where(fmin, cmin, 0.0), n_rows)
            smax = np.bincount(rows, np.where(fmax, cmax, 0.0), n_rows)
            nmin = np.bincount(rows, ~fmin, n_rows)
            nmax = np.bincount(rows, ~fmax, n_rows)
            # activity of the other terms of the row
            rmin = np.where(nmin[rows] - ~fmin > 0, -np.inf, smin[rows] - np.where(fmin, cmin, 0.0))
            rmax = np.where(nmax[rows] - ~fmax > 0, np.inf, smax[rows] - np.where(fmax, cmax, 0.0))
            room_hi = m.row_hi[rows] - rmin  # a_j x_j <= room_hi
            room_lo = m.row_lo[rows] - rmax  # a_j x_j >= room_lo
            ub_c = np.where(pos, room_hi / a, room_lo / a)
            lb_c = np.where(pos, room_lo / a, room_hi / a)
            ub_c = np.where(np.isnan(ub_c), np.inf, ub_c)
            lb_c = np.where(np.isnan(lb_c), -np.inf, lb_c)
            new_ub = np.full(len(ub), np.inf)
            new_lb = np.full(len(lb), -np.inf)
            np.minimum.at(new_ub, cols, ub_c)
            np.maximum.at(new_lb, cols, lb_c)
            fill_u = np.isinf(ub) & np.isfinite(new_ub)
            fill_l = np.isinf(lb) & np.isfinite(new_lb)
            if not (fill_u.any() or fill_l.any()):
                break
            ub[fill_u] = new_ub[fill_u] + 1e-9 * np.maximum(1.0, np.abs(new_ub[fill_u]))
            lb[fill_l] = new_lb[fill_l] - 1e-9 * np.maximum(1.0, np.abs(new_lb[fill_l]))
    return lb, ub


# ------------------------------------------------------------------------------------ building
def _is_int(v: np.ndarray) -> np.ndarray:
    """Integral up to the floating-point noise of decimal data (relative, so 1e-14 is not 0)."""
    return np.abs(v - np.rint(v)) <= _REL_INT_TOL * np.abs(v)


def _ceil(v: float) -> float:
    return math.ceil(v - max(_INT_TOL, _REL_INT_TOL * abs(v)))


def _floor(v: float) -> float:
    return math.floor(v + max(_INT_TOL, _REL_INT_TOL * abs(v)))


def build_cpsat(model: LinearModel | ModelArrays, opts: SolveOptions | None = None, *,
                default_bound: float | None = None,
                relax: bool = False, relax_objective: bool = False) -> tuple[cp_model.CpModel, CpsatScaling]:
    """The discretised CP-SAT model and its :class:`CpsatScaling` (see the module docstring).

    ``relax=True`` builds the outer discretisation instead, without objective unless
    ``relax_objective``: grid bounds rounded outwards, coefficients rounded the other way and
    row sides widened by the grid error ``sum_j |F a_ij u| / 2`` over continuous columns, so
    that the grid point nearest to any feasible ``x`` satisfies it; its infeasibility proves the
    original model infeasible, and its bound (widened, :func:`_outer_bound`) bounds the
    original model's optimum.

    Raises ``ValueError`` when a column has no finite bound and none can be derived (and
    ``default_bound`` is None), or when a row or the objective cannot be represented within
    CP-SAT's integer range at these units.
    """
    opts = opts or SolveOptions()
    m = model.arrays() if isinstance(model, LinearModel) else model
    names = None
    u = float(opts.cpsat_load_unit_rps)
    v_obj = float(opts.cpsat_objective_unit)

    lb, ub = derive_bounds(m)
    derived = (np.isinf(m.lb) & np.isfinite(lb)) | (np.isinf(m.ub) & np.isfinite(ub))
    free = np.isinf(lb) | np.isinf(ub)
    if free.any():
        if default_bound is None:
            names = m.column_names()
            bad = [names[j] for j in np.flatnonzero(free)[:5]]
            more = f" and {int(free.sum()) - len(bad)} more" if free.sum() > len(bad) else ""
            raise ValueError(
                f"CP-SAT needs finite variable bounds: {', '.join(bad)}{more} "
                "have none and none can be derived from the constraints; give them explicit "
                "bounds (or pass default_bound to build_cpsat)")
        lb = np.where(np.isinf(lb), -float(default_bound), lb)
        ub = np.where(np.isinf(ub), float(default_bound), ub)
        derived |= free

    s = np.where(m.integer, 1.0, u)
    y_lb = np.array([_ceil(b) for b in lb / s], dtype=float) if len(s) else np.zeros(0)
    y_ub = np.array([_floor(b) for b in ub / s], dtype=float) if len(s) else np.zeros(0)
    cont = ~m.integer
    if relax:  # the grid points nearest to the continuous values in [lb, ub]
        y_lb[cont] = np.floor(lb[cont] / u)
        y_ub[cont] = np.ceil(ub[cont] / u)
    ymag = np.maximum(np.abs(y_lb), np.abs(y_ub))
    too_big = ymag > ACTIVITY_MAX
    if too_big.any():
        names = names or m.column_names()
        j = int(np.flatnonzero(too_big)[0])
        raise ValueError(f"CP-SAT: the domain of {names[j]} ({lb[j]:g}..{ub[j]:g}) exceeds 2**53 grid "
                         f"units; raise cpsat_load_unit_rps (now {u:g}) or tighten its bounds")
    infeasible: list[str] = []
    empty = y_lb > y_ub
    if empty.any():
        names = names or m.column_names()
        j = int(np.flatnonzero(empty)[0])
        infeasible.append(f"{names[j]} has no value on the grid within [{m.lb[j]:g}, {m.ub[j]:g}]")
        y_ub = np.where(empty, y_lb, y_ub)  # keep the domains valid; the model is made infeasible

    cp = cp_model.CpModel()
    names = names or m.column_names()
    xs = [cp.new_int_var(int(lo), int(hi), nm) for lo, hi, nm in zip(y_lb, y_ub, names)]

    A = sp.csr_matrix(m.A)
    A.eliminate_zeros()
    A.sort_indices()
    n_rows = A.shape[0]
    row_scale = np.zeros(n_rows)
    row_exact = np.ones(n_rows, dtype=bool)
    row_tight = np.zeros(n_rows)
    row_names = None
    # Fast path, vectorised: rows over integer columns whose coefficients are integers (scale 1,
    # exact, no rounding error): their activity range is all the loop below would compute.
    nz_row = np.repeat(np.arange(n_rows), np.diff(A.indptr))
    q_all = A.data * s[A.indices]
    odd = ~_is_int(q_all) | cont[A.indices]
    plain = (np.bincount(nz_row, odd, n_rows) == 0) & (np.diff(A.indptr) > 0)
    plain &= np.bincount(nz_row, np.abs(q_all) * ymag[A.indices], n_rows) <= ACTIVITY_MAX / 4
    qa, qb = q_all * y_lb[A.indices], q_all * y_ub[A.indices]
    plain_min = np.bincount(nz_row, np.minimum(qa, qb), n_rows)
    plain_max = np.bincount(nz_row, np.maximum(qa, qb), n_rows)
    for i in range(n_rows):
        lo, hi = float(m.row_lo[i]), float(m.row_hi[i])
        if math.isinf(lo) and math.isinf(hi):
            continue
        sl = slice(A.indptr[i], A.indptr[i + 1])
        js = A.indices[sl]
        if plain[i]:
            lo_i = plain_min[i] if math.isinf(lo) else max(_ceil(lo), plain_min[i])
            hi_i = plain_max[i] if math.isinf(hi) else min(_floor(hi), plain_max[i])
            row_scale[i] = 1.0
            if lo_i > hi_i:
                row_names = row_names or m.row_names()
                infeasible.append(f"row {row_names[i]} cannot be met by integers")
                continue
            coef = np.rint(q_all[sl])
            cp.add_linear_constraint(cp_model.LinearExpr.weighted_sum([xs[j] for j in js], [int(c) for c in coef]),
                                     int(lo_i), int(hi_i))
            continue
        if js.size == 0:
            if not (lo - 1e-9 <= 0.0 <= hi + 1e-9):
                row_names = row_names or m.row_names()
                infeasible.append(f"row {row_names[i]} has no terms and excludes 0")
            continue
        q = A.data[sl] * s[js]
        yl, yu, mag = y_lb[js], y_ub[js], ymag[js]
        # the scale: exact if possible, else large enough for small relative rounding error
        exact, k_ok, k_big = False, None, None
        for k in range(MAX_POW10 + 1):
            vk = q * 10.0 ** k
            if float(np.abs(vk) @ mag) > ACTIVITY_MAX / 4:
                break
            k_ok = k
            if _is_int(vk).all():
                exact = True
                break
            if k_big is None and np.abs(vk).min() >= MIN_INEXACT_COEF:
                k_big = k
        if k_ok is None:
            row_names = row_names or m.row_names()
            raise ValueError(f"CP-SAT: row {row_names[i]} overflows 2**53 at these units; raise "
                             f"cpsat_load_unit_rps (now {u:g}) or tighten the bounds of its columns")
        k = k_ok if exact or k_big is None else k_big
        F = 10.0 ** k
        vq = q * F
        up, down = (np.floor, np.ceil) if relax else (np.ceil, np.floor)
        if exact:
            coef = np.rint(vq)
        elif math.isinf(lo):   # only <=: round so that coef*y >= vq*y on the box (<= if relax)
            coef = np.where(yl >= 0, up(vq), np.where(yu <= 0, down(vq), np.rint(vq)))
        elif math.isinf(hi):   # only >=: round so that coef*y <= vq*y on the box (>= if relax)
            coef = np.where(yl >= 0, down(vq), np.where(yu <= 0, up(vq), np.rint(vq)))
        else:
            coef = np.rint(vq)
        # exact rows: what is left is float noise, and counting it would cost a whole unit of side
        e = np.zeros_like(vq) if exact else vq - coef
        e_min = float(np.minimum(e * yl, e * yu).sum())
        e_max = float(np.maximum(e * yl, e * yu).sum())
        act_min = float(np.minimum(coef * yl, coef * yu).sum())
        act_max = float(np.maximum(coef * yl, coef * yu).sum())
        if relax:  # coef @ y = F a x + sum vq (y - x/s) - e @ y for y the grid point nearest x
            grid = float(np.abs(vq[cont[js]]).sum()) / 2
            # coef @ y is an integer, so the widened sides round inwards (less a float margin)
            lo_i = -math.inf if math.isinf(lo) else math.ceil(F * lo - grid - e_max - 1e-6)
            hi_i = math.inf if math.isinf(hi) else math.floor(F * hi + grid - e_min + 1e-6)
        else:
            lo_i = -math.inf if math.isinf(lo) else _ceil(F * lo - e_min)
            hi_i = math.inf if math.isinf(hi) else _floor(F * hi - e_max)
        # sides beyond the reachable activity are redundant; clamp to keep integers in range
        lo_i = max(lo_i, act_min)
        hi_i = min(hi_i, act_max)
        row_scale[i], row_exact[i] = F, exact
        if lo_i > hi_i:
            row_names = row_names or m.row_names()
            infeasible.append(f"row {row_names[i]} cannot be met on the grid once its coefficients "
                              "are rounded")
            continue
        row_tight[i] = max(0.0, -e_min if not math.isinf(lo) else 0.0, e_max if not math.isinf(hi) else 0.0)
        nz = coef != 0
        expr = cp_model.LinearExpr.weighted_sum([xs[j] for j in js[nz]], [int(c) for c in coef[nz]])
        cp.add_linear_constraint(expr, int(lo_i), int(hi_i))

    cs = m.cost * s
    w = np.rint(cs / v_obj)
    if float(np.abs(w) @ ymag) > ACTIVITY_MAX:
        raise ValueError(f"CP-SAT: the objective overflows 2**53 at cpsat_objective_unit={v_obj:g}; "
                         "raise it")
    r = np.where(_is_int(cs / v_obj), 0.0, cs - v_obj * w)  # float noise of exact ratios is no error
    r_min = float(np.minimum(r * y_lb, r * y_ub).sum())
    r_max = float(np.maximum(r * y_lb, r * y_ub).sum())
    nzw = np.flatnonzero(w)
    if nzw.size and (relax_objective or not relax):
        cp.minimize(cp_model.LinearExpr.weighted_sum([xs[j] for j in nzw], [int(c) for c in w[nzw]]))
    if infeasible:
        cp.add_bool_or([])  # the empty clause: false

    scaling = CpsatScaling(
        col_unit=s, y_lb=y_lb.astype(np.int64), y_ub=y_ub.astype(np.int64), derived_bound=derived,
        row_scale=row_scale, row_exact=row_exact, row_tightening=row_tight, obj_coef=w.astype(np.int64),
        obj_unit=v_obj, objective_error=max(0.0, -r_min, r_max), obj_residual_min=min(r_min, 0.0),
        load_unit=u, exact=bool(m.integer.all() and row_exact.all()), relaxed=relax,
        infeasible=tuple(infeasible), variables=xs)
    return cp, scaling


def _outer_bound(m: ModelArrays, sc: CpsatScaling, b_int: float) -> float:
    """A lower bound on the original model's optimum from CP-SAT's bound ``b_int`` on ``w @ y``
    over the outer discretisation ``sc``: every feasible ``x`` has a grid point ``y`` there with
    ``c @ x >= v (w @ y) + min_box(r @ y) - sum_cont |c_j| u / 2``."""
    grid = float(np.abs(m.cost[~m.integer]).sum()) * sc.load_unit / 2
    return sc.obj_unit * b_int + m.offset + sc.obj_residual_min - grid


# ------------------------------------------------------------------------------------ solving
_STATUS = {
    cp_model.OPTIMAL: Status.OPTIMAL,
    cp_model.FEASIBLE: Status.FEASIBLE,
    cp_model.INFEASIBLE: Status.INFEASIBLE,
    cp_model.MODEL_INVALID: Status.ERROR,
    cp_model.UNKNOWN: Status.NO_SOLUTION,
}
_STOP = {
    cp_model.OPTIMAL: StopReason.CONVERGED,
    cp_model.FEASIBLE: StopReason.TIME_LIMIT,   # CP-SAT stops short of a proof only at its limits
    cp_model.INFEASIBLE: StopReason.INFEASIBLE,
    cp_model.MODEL_INVALID: StopReason.BACKEND_ERROR,
    cp_model.UNKNOWN: StopReason.TIME_LIMIT,
}
_HAS_SOLUTION = (cp_model.OPTIMAL, cp_model.FEASIBLE)


def _run(cp: cp_model.CpModel, opts: SolveOptions, time_limit: float):
    solver = cp_model.CpSolver()
    p = solver.parameters
    p.max_time_in_seconds = time_limit
    p.num_workers = int(opts.threads)
    p.random_seed = int(opts.seed)
    p.relative_gap_limit = float(opts.mip_rel_gap)
    p.log_search_progress = False
    if opts.cpsat_linearization_level is not None:
        p.linearization_level = int(opts.cpsat_linearization_level)
    t = time.perf_counter()
    code = solver.solve(cp)
    return code, solver, time.perf_counter() - t


def _complete(m: ModelArrays, x: np.ndarray, opts: SolveOptions) -> np.ndarray | None:
    """The best continuous columns for the integer columns of ``x``: an LP (HiGHS) with the
    integer columns fixed at their values. None when no continuous completion is feasible.

    This is how a plan off CP-SAT's load grid is found: the grid may miss it (a load exactly at
    an instance's capacity that is not a multiple of the grid unit), the LP does not."""
    if m.integer.all():
        return None
    xi = np.rint(x[m.integer])
    lb, ub = m.lb.copy(), m.ub.copy()
    lb[m.integer] = xi
    ub[m.integer] = xi
    lp = highs_solve_arrays(m.with_bounds(lb=lb, ub=ub).relaxed(), opts)
    if lp.report.status is not Status.OPTIMAL or lp.x is None:
        return None
    out = lp.x.copy()
    out[m.integer] = xi
    return out


def solve(model: LinearModel | ModelArrays, opts: SolveOptions | None = None,
          hint: np.ndarray | None = None) -> Solution:
    """Solve the discretised model with CP-SAT; x, objective and bound in original units.

    Unverified: :func:`dynaplan.solvers.solve` runs the shared check (:mod:`.verify`).

    Exact discretisations (pure-integer models with integer-representable rows) are CP-SAT's
    answer as it is. Otherwise the integer model is a restriction of the original, and three
    more steps keep the answer useful and its claims honest:

    1. the *outer* discretisation (``build_cpsat(relax=True, relax_objective=True)``) is solved
       in the time left: its infeasibility proves the original infeasible, its bound widened by
       the grid error (:func:`_outer_bound`) is a bound of the original;
    2. the integer decisions of both CP-SAT solutions are completed by an LP over the
       continuous columns (:func:`_complete`): the outer solution's integers typically hold the
       plans the grid loses (an instance at exactly its capacity), and the LP also takes the
       grid's slack off the restricted solution's loads; the best feasible completion is returned;
    3. the bound is the better of (1) and the original's LP relaxation (HiGHS), and the status
       is ``OPTIMAL`` only when the objective is within ``opts.mip_rel_gap`` of it.

    ``INFEASIBLE`` is reported only when proven for the original model; when no step finds a
    solution of a feasible-looking model the status is ``NO_SOLUTION`` and the message says why.
    """
    opts = opts or SolveOptions()
    m = model.arrays() if isinstance(model, LinearModel) else model
    n_vars, n_cons = m.n_cols, m.n_rows

    def report(status, stop, *, x=None, obj=None, bound=None, solve_time=0.0, build_time=0.0, msg=""):
        return Solution(x=x, report=SolveReport(
            status=status, backend=Backend.CPSAT, objective=obj, bound=bound, gap=relative_gap(obj, bound),
            solve_time_s=solve_time, build_time_s=build_time, n_vars=n_vars, n_cons=n_cons,
            message=f"cpsat: {msg}", stop_reason=stop))

    t0 = time.perf_counter()
    try:
        cp, sc = build_cpsat(m, opts)
    except Exception as exc:
        return report(Status.ERROR, StopReason.BACKEND_ERROR, build_time=time.perf_counter() - t0,
                      msg=f"building the CP-SAT model failed: {exc}")
    if hint is not None:  # NaN: no hint for that column
        hint = np.asarray(hint, dtype=float)
        y_hint = np.clip(np.rint(np.where(np.isnan(hint), 0.0, hint) / sc.col_unit), sc.y_lb, sc.y_ub)
        for j in np.flatnonzero(~np.isnan(hint)):
            cp.add_hint(sc.variables[j], int(y_hint[j]))
    build_time = time.perf_counter() - t0

    try:
        code, solver, solve_time = _run(cp, opts, float(opts.time_limit_s))
    except Exception as exc:
        return report(Status.ERROR, StopReason.BACKEND_ERROR, build_time=build_time,
                      msg=f"CP-SAT failed: {type(exc).__name__}: {exc}")
    status, stop = _STATUS.get(code, Status.ERROR), _STOP.get(code, StopReason.BACKEND_ERROR)
    name = solver.status_name(code)
    if status == Status.ERROR:
        return report(status, stop, solve_time=solve_time, build_time=build_time,
                      msg=f"{name}: {cp.validate() or 'CP-SAT reported an error'}")
    detail = (f"load unit {sc.load_unit:g} req/s, objective unit {sc.obj_unit:g}, "
              f"objective rounding error <= {sc.objective_error:.3g}")
    x = sc.to_x(solver.response_proto.solution) if code in _HAS_SOLUTION else None

    if sc.exact:  # the integer model is the original model: CP-SAT's answer and bound stand
        if np.any(sc.obj_coef):
            b_int = solver.best_objective_bound
        else:  # without an objective, w @ y = 0 is proven once a solution is found
            b_int = 0.0 if status == Status.OPTIMAL else math.nan
        bound = sc.obj_unit * b_int + m.offset + sc.obj_residual_min if math.isfinite(b_int) else None
        if status == Status.INFEASIBLE:
            why = "; ".join(sc.infeasible) or "CP-SAT proved it"
            return report(status, stop, solve_time=solve_time, build_time=build_time, msg=f"INFEASIBLE ({why})")
        if x is None:
            return report(status, stop, bound=bound, solve_time=solve_time, build_time=build_time,
                          msg=f"{name}: no solution within {opts.time_limit_s:g} s")
        obj = float(m.cost @ x + m.offset)
        bound = None if bound is None else min(bound, obj)  # float noise: never above obj in exact terms
        return report(status, stop, x=x, obj=obj, bound=bound, solve_time=solve_time, build_time=build_time,
                      msg=f"{name} ({detail})")

    # ---- a restriction: outer discretisation, LP completions, the original's bounds
    t1 = time.perf_counter()
    bounds: list[float] = []
    code_o, outer_note = None, ""
    try:
        cp_o, sc_o = build_cpsat(m, opts, relax=True, relax_objective=True)
        left = max(0.05, float(opts.time_limit_s) - solve_time - (time.perf_counter() - t1))
        code_o, solver_o, _ = _run(cp_o, opts, left)
        if code_o in _HAS_SOLUTION and math.isfinite(solver_o.best_objective_bound):
            bounds.append(_outer_bound(m, sc_o, solver_o.best_objective_bound))
    except Exception as exc:  # noqa: BLE001 - the LP bound and the restricted solution stand alone then
        outer_note = f"; the outer discretisation failed: {exc}"
    code_first = code_o
    if code_o == cp_model.INFEASIBLE:
        why = "; ".join(sc.infeasible) or "no solution on the load grid with the rounded rows"
        return report(Status.INFEASIBLE, StopReason.INFEASIBLE, solve_time=solve_time + time.perf_counter() - t1,
                      build_time=build_time, msg=f"INFEASIBLE (proven on the outer discretisation; {why})")
    lp = highs_solve_arrays(m, opts, relax=True).report
    if lp.status == Status.OPTIMAL and lp.bound is not None:
        bounds.append(lp.bound)
    candidates = [] if x is None else [x]
    done = None if x is None else _complete(m, x, opts)
    if done is not None:
        candidates.append(done)
    # The outer model's integer decisions, completed by the LP. When a completion is infeasible
    # (the outer model borrowed up to a grid unit of capacity), that assignment is forbidden and
    # the outer model re-solved, a few times while time is left and the gap is open (the bounds
    # above come from the first outer solve only: the forbidden assignments are cuts of it).
    ints = np.flatnonzero(m.integer)
    for _ in range(MAX_OUTER_ROUNDS):
        if code_o not in _HAS_SOLUTION or (time.perf_counter() - t1) + solve_time > float(opts.time_limit_s):
            break
        x_o = sc_o.to_x(solver_o.response_proto.solution)
        done = _complete(m, x_o, opts)
        if done is not None:
            candidates.append(done)
            break
        if not ints.size:
            break
        cp_o.add_forbidden_assignments([sc_o.variables[j] for j in ints],
                                       [tuple(int(v) for v in np.rint(x_o[ints]))])
        left = max(0.05, float(opts.time_limit_s) - solve_time - (time.perf_counter() - t1))
        code_o, solver_o, _ = _run(cp_o, opts, left)
        if candidates and code_o in _HAS_SOLUTION and bounds:
            best = min(float(m.cost @ c + m.offset) for c in candidates)
            if (relative_gap(best, max(bounds)) or 0.0) <= opts.mip_rel_gap:
                break
    solve_time += time.perf_counter() - t1
    if not candidates:
        why = "; ".join(sc.infeasible) or f"{name} on the load grid"
        found = "is feasible" if code_first in _HAS_SOLUTION else "was not decided"
        return report(Status.NO_SOLUTION, stop, bound=max(bounds) if bounds else None, solve_time=solve_time,
                      build_time=build_time,
                      msg=f"no solution: the discretised model gave none ({why}) and its relaxation {found}, "
                          f"with no feasible LP completion; the original model may be feasible; try a "
                          f"smaller cpsat_load_unit_rps (now {sc.load_unit:g}){outer_note}")
    objs = [float(m.cost @ c + m.offset) for c in candidates]
    # the best candidate satisfying the original model (the completions are HiGHS LP optima)
    feasible = [i for i, c in enumerate(candidates) if m.violation(c) <= FEAS_TOL * m.activity_scale(c)]
    best = min(feasible or range(len(candidates)), key=objs.__getitem__)
    x, obj = candidates[best], objs[best]
    bound = min(max(bounds), obj) if bounds else None
    closed = bound is not None and (relative_gap(obj, bound) or 0.0) <= opts.mip_rel_gap
    how = "CP-SAT on the load grid" if best == 0 and x is candidates[0] and code in _HAS_SOLUTION else (
        "CP-SAT's integer decisions, loads completed by an LP")
    status = Status.OPTIMAL if closed else Status.FEASIBLE
    stop = StopReason.CONVERGED if closed else (StopReason.TIME_LIMIT if code != cp_model.OPTIMAL
                                                else StopReason.UNKNOWN)
    detail += f"; {how}; bound: the original model's (outer discretisation and LP relaxation){outer_note}"
    return report(status, stop, x=x, obj=obj, bound=bound, solve_time=solve_time, build_time=build_time,
                  msg=f"{name} ({detail})")


class CpsatBackend:
    """OR-Tools CP-SAT on the discretised model (see the module docstring)."""

    name = Backend.CPSAT
    features = frozenset({Feature.HINTS})

    def solve(self, arrays: ModelArrays, opts: SolveOptions, hint: np.ndarray | None = None) -> Solution:
        return solve(arrays, opts, hint)
