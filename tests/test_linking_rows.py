"""The (linking) rows of the cluster and monolithic models (formulations/cluster.md, "Linking
rows"; monolithic.md): coefficients moved with each solve's demand, in place in the HiGHS
session, and no optimum lost. The references are scipy's ``milp`` (HiGHS inside, a separate
solver instance) on the model with the weak coefficients, which (utilisation) and (capacity)
imply; the planner's code builds neither the reference nor its rows' values."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.planning import Planner
from dynaplan.planning.registry import ModelKind
from dynaplan.profiles import Profile
from dynaplan.solvers import Backend, SolveOptions, solve
from dynaplan.solvers import highs as highs_mod

H100 = "h100-80gb"


def _optimum(arrays) -> float:
    res = milp(arrays.cost, constraints=LinearConstraint(sp.csr_matrix(arrays.A), arrays.row_lo, arrays.row_hi),
               bounds=Bounds(arrays.lb, arrays.ub), integrality=arrays.integer.astype(int),
               options={"mip_rel_gap": 1e-9, "time_limit": 120})
    assert res.status == 0, res.message
    return float(res.fun + arrays.offset)


def _forecasts(classes, n, seed, scale, k=None):
    """``n`` random forecasts; ``k``: that many classes each (else each class with odds 0.6)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        if k is None:
            v = rng.uniform(0, scale, len(classes)) * (rng.random(len(classes)) < 0.6)
            f = {c: float(x) for c, x in zip(classes, v)}
        else:
            f = {str(c): float(rng.uniform(0.1, scale)) for c in rng.choice(list(classes), k, replace=False)}
        out.append(f if any(x > 0 for x in f.values()) else {"LL": scale / 2})
    return out


def _spy(monkeypatch) -> list:
    seen = []
    orig = highs_mod.HighsSession.update_bounds_and_resolve

    def spy(self, arrays, opts, hint=None):
        sol = orig(self, arrays, opts, hint)
        seen.append((arrays, opts, sol.report))
        return sol

    monkeypatch.setattr(highs_mod.HighsSession, "update_bounds_and_resolve", spy)
    return seen


@pytest.fixture(scope="module")
def prof():
    return Profile.default()


def test_coefficients_follow_the_demand_and_the_session_matches_fresh_solves(prof, monkeypatch):
    """Every cluster solve carries min(L_c, cap) (cap where L_c = 0) and the in-place session's
    answer equals a fresh HiGHS solve of the same arrays."""
    pl = Planner(prof, {H100: 12}, DEFAULT_SLOS)
    seen = _spy(monkeypatch)
    for f in _forecasts(pl.classes, 4, 3, 12.0):
        pl.allot(f)
    cm = pl._model(ModelKind.CLUSTER)
    pos, cls, cap = cm.linking
    dblock = cm.model.con_blocks["demand"]
    mine = [(a, o, r) for a, o, r in seen if a.index is cm.arrays.index]
    assert len(mine) >= 4
    for arrays, opts, rep in mine:
        demand = arrays.row_lo[dblock.start:dblock.stop][cls]
        want = np.where(demand > 0, np.minimum(demand, cap), cap)
        assert np.array_equal(-arrays.A.data[pos], want)
        fresh = solve(arrays, Backend.HIGHS, opts.model_copy(update={"mip_rel_gap": 1e-9}))
        ref = _optimum(arrays)
        assert fresh.report.objective == pytest.approx(ref, rel=1e-7, abs=1e-6)
        assert rep.objective <= ref * (1 + pl.options.cluster_mip_rel_gap) + 1e-6
        assert rep.objective >= ref * (1 - 1e-9) - 1e-6
    assert len({tuple(a.A.data[pos]) for a, _, _ in mine}) >= 2  # the values did move between solves


def test_monolithic_optimum_is_the_weak_models(prof, monkeypatch):
    """plan_monolithic's MILP objective is within its gap of the optimum of the model without
    the linking rows' demand coefficients, and never below it."""
    pl = Planner(prof, {H100: 4}, DEFAULT_SLOS, solve_options=SolveOptions(mip_rel_gap=1e-6))
    seen = _spy(monkeypatch)
    for f in _forecasts(pl.classes, 3, 5, 6.0, k=3):
        pl.plan_monolithic(f)
    cm = pl._model(ModelKind.MONOLITHIC)
    pos, _, cap = cm.linking
    mine = [(a, r) for a, _, r in seen if a.index is cm.arrays.index]
    assert len(mine) == 3
    strengthened = 0
    for arrays, rep in mine:
        strengthened += int(np.any(arrays.A.data[pos] != -cap))
        ref = _optimum(arrays.with_coefficients(pos, -cap))
        assert rep.objective >= ref * (1 - 1e-9) - 1e-6
        assert rep.objective <= ref * (1 + 1e-6) + 1e-6
    assert strengthened == 3


def test_cpsat_keeps_the_weak_coefficients(prof, monkeypatch):
    """CP-SAT puts loads on a grid and may round a demand up past L_c: its cluster model keeps
    the weak rows (cap), which (utilisation) and (capacity) imply."""
    pl = Planner(prof, {H100: 6}, DEFAULT_SLOS, backend="cpsat", solve_options=SolveOptions(time_limit_s=20))
    got = []
    orig = Planner._solve

    def spy(self, arrays, *a, **k):
        got.append(arrays)
        return orig(self, arrays, *a, **k)

    monkeypatch.setattr(Planner, "_solve", spy)
    pl.allot({"SS": 3.0, "LM": 0.4})
    cm = pl._model(ModelKind.CLUSTER)
    pos, _, cap = cm.linking
    cluster = [a for a in got if a.index is cm.arrays.index]
    assert cluster and all(np.array_equal(a.A.data[pos], -cap) for a in cluster)


def test_with_coefficients_keeps_the_pattern(prof):
    pl = Planner(prof, {H100: 2}, DEFAULT_SLOS)
    cm = pl._model(ModelKind.CLUSTER)
    pos, _, cap = cm.linking
    a = cm.arrays
    b = a.with_coefficients(pos, -cap * 0.5)
    assert np.array_equal(b.A.indices, a.A.indices) and np.array_equal(b.A.indptr, a.A.indptr)
    assert np.array_equal(b.A.data[pos], -cap * 0.5) and a.A.data[pos][0] != b.A.data[pos][0]
    with pytest.raises(ValueError, match="sparsity"):
        a.with_coefficients(pos[:1], [0.0])
    with pytest.raises(ValueError, match="no entry"):
        empty_col = int(np.flatnonzero(np.diff(a.A.indptr) < a.n_rows)[0])
        rows_there = set(a.A.indices[a.A.indptr[empty_col]:a.A.indptr[empty_col + 1]])
        a.positions([next(r for r in range(a.n_rows) if r not in rows_there)], [empty_col])
