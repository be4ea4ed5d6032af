"""The (linking) rows of the cluster and monolithic models (formulations/cluster.md, "Linking
rows"; monolithic.md): coefficients moved with each solve's demand, in place in the HiGHS
session, and no optimum lost. The references are scipy's ``milp`` (HiGHS inside, a separate
solver instance) on the model with the weak coefficients, which (utilisation) and (capacity)
imply; the planner's code builds neither the reference nor its rows' values."""

from __future__ import annotations

import numpy as np
import pytest

from model_milp import model_optimum
from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.planning import Planner
from dynaplan.planning.registry import ModelKind
from dynaplan.profiles import Profile
from dynaplan.solvers import Backend, SolveOptions, solve

H100 = "h100-80gb"




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


@pytest.fixture(scope="module")
def prof():
    return Profile.default()


def test_coefficients_follow_the_demand_and_the_session_matches_fresh_solves(prof, highs_solves):
    """Every cluster solve carries min(L_c, cap) (cap where L_c = 0) and the in-place session's
    answer equals a fresh HiGHS solve of the same arrays."""
    pl = Planner(prof, {H100: 12}, DEFAULT_SLOS)
    seen = highs_solves
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
        ref = model_optimum(arrays)
        assert fresh.report.objective == pytest.approx(ref, rel=1e-7, abs=1e-6)
        assert rep.objective <= ref * (1 + pl.options.cluster_mip_rel_gap) + 1e-6
        assert rep.objective >= ref * (1 - 1e-9) - 1e-6
    assert len({tuple(a.A.data[pos]) for a, _, _ in mine}) >= 2  # the values did move between solves


def test_monolithic_optimum_is_the_weak_models(prof, highs_solves):
    """plan_monolithic's MILP objective is within its gap of the optimum of the model without
    the linking rows' demand coefficients, and never below it."""
    pl = Planner(prof, {H100: 4}, DEFAULT_SLOS, solve_options=SolveOptions(mip_rel_gap=1e-6))
    seen = highs_solves
    for f in _forecasts(pl.classes, 3, 5, 6.0, k=3):
        pl.plan_monolithic(f)
    cm = pl._model(ModelKind.MONOLITHIC)
    pos, _, cap = cm.linking
    mine = [(a, r) for a, _, r in seen if a.index is cm.arrays.index]
    assert len(mine) == 3
    strengthened = 0
    for arrays, rep in mine:
        strengthened += int(np.any(arrays.A.data[pos] != -cap))
        ref = model_optimum(arrays.with_coefficients(pos, -cap))
        assert rep.objective >= ref * (1 - 1e-9) - 1e-6
        assert rep.objective <= ref * (1 + 1e-6) + 1e-6
    assert strengthened == 3


def test_cpsat_models_have_no_linking_rows(prof):
    """CP-SAT puts loads on a grid and may round a demand up past L_c, so it could only use the
    weak coefficients, which (utilisation) and (capacity) imply: its cluster and monolithic
    models are built without the rows (registry._linking); same columns as HiGHS's models, and
    an allotment still serves the forecast."""
    kw = dict(backend="cpsat", solve_options=SolveOptions(time_limit_s=20))
    cp, hi = Planner(prof, {H100: 6}, DEFAULT_SLOS, **kw), Planner(prof, {H100: 6}, DEFAULT_SLOS)
    for kind in (ModelKind.CLUSTER, ModelKind.MONOLITHIC):
        a, b = cp._model(kind), hi._model(kind)
        assert a.linking is None and "linking" not in a.model.con_blocks
        assert b.linking is not None and a.arrays.n_cols == b.arrays.n_cols
        assert a.arrays.n_rows == b.arrays.n_rows - len(b.model.con_blocks["linking"].labels)
    al = cp.allot({"SS": 3.0, "LM": 0.4})
    assert al.servers and all(sum(al.routing[c].values()) == pytest.approx(1.0) for c in ("SS", "LM"))


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


def test_monolithic_rows_only_on_inventories_up_to_the_threshold(prof):
    """monolithic.md: the (linking) rows on inventories of at most LINKING_MAX_SERVERS servers
    (beyond, they slow HiGHS down); the model is otherwise the same (same columns)."""
    from dynaplan.formulations.monolithic import LINKING_MAX_SERVERS

    small = Planner(prof, {H100: LINKING_MAX_SERVERS}, DEFAULT_SLOS)._model(ModelKind.MONOLITHIC)
    large = Planner(prof, {H100: LINKING_MAX_SERVERS + 1}, DEFAULT_SLOS)._model(ModelKind.MONOLITHIC)
    assert small.linking is not None and large.linking is None
    assert small.arrays.n_cols == large.arrays.n_cols
    assert "linking" not in large.model.con_blocks
    rows = len(small.model.con_blocks["linking"].labels)
    assert rows > 0 and large.arrays.n_rows == small.arrays.n_rows - rows
