"""The cluster level's lean HiGHS root (cluster.md, "Cost"): every cluster MILP the planner solves
with it is within the cluster gap of its optimum, computed independently by scipy's ``milp`` on
the arrays the planner passed to HiGHS with the linking rows' demand coefficients taken back to
the weak ones (cluster.md, "Linking rows": the strengthening changes no optimum); the pool and
bound models never get it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.planning import Planner
from dynaplan.planning.registry import ModelKind
from dynaplan.profiles import Profile
from dynaplan.solvers import SolveOptions
from dynaplan.solvers import highs as highs_mod

H100 = "h100-80gb"


def _scipy_optimum(arrays) -> float | None:
    A = sp.csr_matrix(arrays.A)
    res = milp(arrays.cost, constraints=LinearConstraint(A, arrays.row_lo, arrays.row_hi),
               bounds=Bounds(arrays.lb, arrays.ub), integrality=arrays.integer.astype(int),
               options={"mip_rel_gap": 1e-9})
    if res.status != 0:
        return None
    return float(res.fun + arrays.offset)


@pytest.fixture(scope="module")
def prof():
    return Profile.default()


def _small_pool(pl, arrays) -> bool:
    """Whether ``arrays`` is a pool model fixed to at most 64 GPUs (its server columns ``y``)."""
    for (kind, pool), cm in pl._models.items():
        if kind is ModelKind.POOL and cm.arrays.index is arrays.index:
            yb = cm.model.var_blocks["y"]
            gpus = sum(arrays.ub[yb.start + i] * pl.hardware[h].gpus_per_server for i, (_, h) in enumerate(yb.labels))
            return gpus <= 64
    return False


def test_lean_root_cluster_solves_are_within_the_gap_of_the_optimum(prof, highs_solves):
    pl = Planner(prof, {H100: 40}, DEFAULT_SLOS)
    gap = pl.options.cluster_mip_rel_gap
    seen = highs_solves
    rng = np.random.default_rng(11)
    for _ in range(4):
        f = {c: float(v) for c, v in zip(pl.classes, rng.uniform(0, 20, len(pl.classes)) * (rng.random(9) < 0.7))}
        f = f if any(v > 0 for v in f.values()) else {"LL": 5.0}
        pl.plan(f)
    cm = pl._model(ModelKind.CLUSTER)
    pos, _, cap = cm.linking
    checked = strong = 0
    for arrays, opts, rep in seen:
        is_cluster = arrays.index is cm.arrays.index
        # bound and pool models beyond 64 GPUs: HiGHS's defaults (small pools: test_pool_lean_root.py)
        assert bool(opts.highs_lean_root) == (is_cluster or _small_pool(pl, arrays))
        if not is_cluster or rep.objective is None:
            continue
        # the reference is the model without the demand's linking coefficients (cluster.md,
        # "Linking rows"): the weak ones, implied by (utilisation) and (capacity)
        strong += int(np.any(arrays.A.data[pos] != -cap))
        opt = _scipy_optimum(arrays.with_coefficients(pos, -cap))
        assert opt is not None
        assert rep.objective >= opt * (1 - 1e-9) - 1e-6
        assert rep.objective <= opt * (1 + gap) + 1e-6
        assert rep.bound <= opt * (1 + 1e-9) + 1e-6
        checked += 1
    assert checked >= 4
    assert strong >= 4  # the solves checked were strengthened ones


def test_lean_root_is_off_unless_asked():
    assert SolveOptions().highs_lean_root is None
    h = highs_mod._make_highs(SolveOptions())
    assert h.getOptionValue("mip_allow_restart")[1] is True
    assert h.getOptionValue("mip_allow_cut_separation_at_nodes")[1] is True
    h = highs_mod._make_highs(SolveOptions(highs_lean_root=True))
    assert h.getOptionValue("mip_allow_restart")[1] is False
    assert h.getOptionValue("mip_allow_cut_separation_at_nodes")[1] is False


def test_options_can_force_the_lean_root_off(prof, monkeypatch):
    pl = Planner(prof, {H100: 40}, DEFAULT_SLOS, solve_options=SolveOptions(highs_lean_root=False))
    seen = []
    orig = highs_mod.HighsSession.update_bounds_and_resolve
    monkeypatch.setattr(highs_mod.HighsSession, "update_bounds_and_resolve",
                        lambda self, a, o, hint=None: seen.append(o.highs_lean_root) or orig(self, a, o, hint))
    pl.allot({"LL": 10.0, "SS": 3.0})
    assert seen and not any(seen)
