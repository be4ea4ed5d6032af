"""The global bound's warm re-solves (bound.md, "Cost"): the bound kept in one HiGHS session and
re-solved from the last basis for many demands is the number a cold solve of the same LPs gives.

The reference is scipy's ``linprog`` on the bound's own arrays (a separate solver instance, cold
every time), with the whole-server step of bound.servers (floor and ceiling of the LP's servers)
redone here; the bound's validity against exact optima is tested in test_hierarchy_bounds.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.planning import Planner, PlannerOptions
from dynaplan.planning.bounds import BOUND_SLACK_REL, GlobalBound, min_pools
from dynaplan.profiles import Profile
from dynaplan.solvers import LinearModel, SolveOptions
from dynaplan.solvers.highs import HighsSession

H100 = "h100-80gb"


@pytest.fixture(scope="module")
def prof():
    return Profile.default()


def _lp(arrays, y_col=None, y=None):
    """``(optimum, x)`` of the LP given as arrays, by scipy (``None`` when infeasible); ``Y`` fixed
    at ``y`` when given."""
    lb, ub = arrays.lb.copy(), arrays.ub.copy()
    if y_col is not None:
        lb[y_col] = ub[y_col] = y
    A = arrays.A.tocsr()
    lo, hi = arrays.row_lo, arrays.row_hi
    up = np.isfinite(hi)
    dn = np.isfinite(lo)
    A_ub = sp.vstack([A[up], -A[dn]]).tocsr()
    b_ub = np.r_[hi[up], -lo[dn]]
    res = linprog(arrays.cost, A_ub=A_ub, b_ub=b_ub, bounds=list(zip(lb, np.where(np.isinf(ub), None, ub))),
                  method="highs-ds")
    if res.status != 0:
        return None, None
    return float(res.fun + arrays.offset), res.x


def _reference_bound(gb: GlobalBound, demand: dict[str, float]) -> float | None:
    """bound.md's bound computed afresh: the relaxed LP, then the LPs with the servers fixed at the
    floor and ceiling of its own (one hardware type), less the solver slack."""
    dem = np.array([float(demand.get(c, 0.0)) for c in gb.classes])
    loaded = [c for c, v in zip(gb.classes, dem) if v > 0]
    p_min = 0 if gb.penalty is not None else min_pools(loaded, gb.routes)
    arrays = gb.arrays.with_block_bounds(rows={"demand": (dem, None), "pools": (float(p_min), None)})
    b, x = _lp(arrays)
    if b is None:
        return None
    yb = gb.model.var_blocks["Y"]
    if len(yb.labels) == 1:
        y = float(x[yb.start])
        lo_y, hi_y = np.floor(y + 1e-9), np.ceil(y - 1e-9)
        if hi_y > lo_y:
            vals = [_lp(arrays, yb.start, v)[0] for v in (lo_y, hi_y) if arrays.lb[yb.start] <= v <= arrays.ub[yb.start]]
            vals = [v for v in vals if v is not None]
            b = min(vals) if vals else b
    return max(0.0, b - BOUND_SLACK_REL * abs(b) - 1e-6)


def _demands(classes, n, seed, scale):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        v = rng.uniform(0, scale, len(classes)) * (rng.random(len(classes)) < 0.6)
        out.append({c: float(x) for c, x in zip(classes, v)})
    return out


@pytest.mark.parametrize("servers,scale,best_effort", [(40, 25.0, False), (3, 12.0, False), (3, 40.0, True)])
def test_warm_bound_equals_cold_reference_over_many_demands(prof, servers, scale, best_effort):
    """60 demands in a row on one planner (the session re-solved warm every time), each against a
    cold reference solve; a small inventory makes some of them infeasible (bound None) between
    feasible ones, which must not disturb the next."""
    opts = PlannerOptions(best_effort=True) if best_effort else PlannerOptions()
    pl = Planner(prof, {H100: servers}, DEFAULT_SLOS, options=opts)
    demands = _demands(pl.classes, 60, seed=servers, scale=scale)
    got = [pl.global_bound(d) for d in demands]
    gb = pl._bound
    n_none = 0
    for d, b in zip(demands, got):
        ref = _reference_bound(gb, d)
        if ref is None:
            assert b is None, d
            n_none += 1
            continue
        assert b == pytest.approx(ref, rel=1e-9, abs=1e-6), d
    if servers == 3 and not best_effort:
        assert 0 < n_none < len(demands)  # the infeasible case is exercised between feasible ones
    # the first feasible demand again after all the others: the same number
    i = next(i for i, b in enumerate(got) if b is not None)
    assert pl.global_bound(demands[i]) == pytest.approx(got[i], rel=1e-9, abs=1e-6)


def test_warm_and_cold_sessions_give_the_same_bound(prof):
    """The warm session (kept basis) against the cold one (clearSolver before every solve)."""
    pl = Planner(prof, {H100: 40}, DEFAULT_SLOS)
    pl.global_bound({"LL": 1.0})
    warm = pl._bound
    cold = GlobalBound(prof, pl.max_load, pl.hardware, dict(pl.inventory.servers), pl.classes, pl.routes, None)
    cold._session = HighsSession(cold.arrays, SolveOptions().model_copy(
        update={"mip_rel_gap": 0.0, "highs_heuristics": False}), warm_lp=False)
    for d in _demands(pl.classes, 40, seed=7, scale=30.0):
        bw, bc = warm.bound(d, pl.solve_options)[0], cold.bound(d, pl.solve_options)[0]
        assert (bw is None) == (bc is None)
        if bw is not None:
            assert bw == pytest.approx(bc, rel=1e-9, abs=1e-6), d


def test_warm_session_refuses_a_mip():
    m = LinearModel("mip")
    n = m.add_vars("n", ["a"], lb=0, ub=5, cost=[1.0], integer=True)
    m.add_constraints("demand", ["a"], np.zeros(1), n.cols, np.ones(1), lo=1.5)
    arrays = m.arrays()
    with pytest.raises(ValueError, match="warm_lp"):
        HighsSession(arrays, SolveOptions(), warm_lp=True)
