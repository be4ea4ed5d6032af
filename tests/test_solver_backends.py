"""The three solver backends (HiGHS arrays, Pyomo, CP-SAT) on small MILPs with known optima."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynaplan.solvers import Backend, LinearModel, SolveOptions, Status, solve
from dynaplan.solvers.cpsat import FEAS_TOL, build_cpsat
from dynaplan.solvers.model import INF
from dynaplan.solvers.pyomo_backend import build_pyomo, column_vars

BACKENDS = list(Backend)
OPTS = SolveOptions(time_limit_s=10.0, threads=1)


def _tol(backend: Backend, model: LinearModel) -> float:
    """Feasibility tolerance of a returned x: 1e-6, relative to activity magnitude for CP-SAT."""
    return 1e-6 if backend != Backend.CPSAT else FEAS_TOL * max(1.0, _activity(model))


def _activity(model: LinearModel) -> float:
    m = model.arrays()
    ub = np.where(np.isfinite(m.ub), np.abs(m.ub), 0.0)
    return float(np.max(np.abs(m.A) @ ub, initial=0.0))


def _check(sol, model, backend):
    assert sol.report.backend == backend
    assert sol.report.has_solution, sol.report
    assert sol.x is not None and sol.x.shape == (model.n_cols,)
    m = model.arrays()
    assert m.violation(sol.x) <= _tol(backend, model), (backend, m.violation(sol.x))
    assert sol.report.objective == pytest.approx(float(m.cost @ sol.x + m.offset), rel=1e-9, abs=1e-9)
    if sol.report.bound is not None:
        assert sol.report.bound <= sol.report.objective + 1e-6 * max(1.0, abs(sol.report.objective))


# ------------------------------------------------------------------------------ models
def knapsack(weights, values, capacity) -> LinearModel:
    m = LinearModel("knapsack")
    items = [f"item{i}" for i in range(len(weights))]
    x = m.add_vars("take", items, lb=0, ub=1, cost=-np.asarray(values, float), integer=True)
    m.add_constraints("capacity", ["bag"], np.zeros(len(items)), x.cols, weights, hi=capacity)
    return m


def covering(cap, tp, cost, load, gpus, load_cost=0.0, n_ub=INF) -> LinearModel:
    """Integer instances ``n_k``, continuous loads ``x_k <= cap_k n_k``, ``sum x >= L``, GPU budget."""
    k = len(cap)
    kinds = [(f"type{i}", int(tp[i])) for i in range(k)]  # tuple labels
    m = LinearModel("covering")
    n = m.add_vars("instances", kinds, lb=0, ub=n_ub, cost=cost, integer=True)
    x = m.add_vars("load", kinds, lb=0, cost=load_cost)
    idx = np.arange(k)
    m.add_constraints("capacity", kinds, np.r_[idx, idx], np.r_[x.cols, n.cols],
                      np.r_[np.ones(k), -np.asarray(cap, float)], hi=0.0)
    m.add_constraints("demand", ["total"], np.zeros(k), x.cols, np.ones(k), lo=load)
    m.add_constraints("gpu_budget", ["cluster"], np.zeros(k), n.cols, np.asarray(tp, float), hi=gpus)
    return m


def brute_force_covering(cap, tp, cost, load, gpus) -> float:
    best = math.inf
    ranges = [range(int(gpus // t) + 1) for t in tp]
    for ns in itertools.product(*ranges):
        if sum(t * n for t, n in zip(tp, ns)) <= gpus and sum(c * n for c, n in zip(cap, ns)) >= load - 1e-9:
            best = min(best, sum(c * n for c, n in zip(cost, ns)))
    return best


COVER = dict(cap=[12.5, 30.0, 80.0], tp=[1, 2, 4], cost=[1.0, 1.9, 3.5], load=200.0, gpus=16)


def market_split(rows=4, cols=32, seed=3) -> LinearModel:
    """Cornuéjols–Dawande market split: hard to prove optimal for any MILP/CP solver."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 100, size=(rows, cols))
    d = a.sum(axis=1) // 2
    m = LinearModel("market_split")
    x = m.add_vars("x", range(cols), lb=0, ub=1, integer=True)
    sp_ = m.add_vars("surplus", range(rows), lb=0, ub=d, cost=1.0, integer=True)
    sm = m.add_vars("shortfall", range(rows), lb=0, ub=d, cost=1.0, integer=True)
    r, c = np.nonzero(a)
    rr = np.r_[r, np.arange(rows), np.arange(rows)]
    cc = np.r_[x.cols[c], sp_.cols, sm.cols]
    vv = np.r_[a[r, c], -np.ones(rows), np.ones(rows)]
    m.add_constraints("split", range(rows), rr, cc, vv, lo=d, hi=d)
    return m


# ------------------------------------------------------------------------------ known optima
@pytest.mark.parametrize("backend", BACKENDS)
def test_knapsack_optimum(backend):
    w, v, cap = [12, 7, 11, 8, 9], [24, 13, 23, 15, 16], 26
    best = max(sum(vi for vi, t in zip(v, take) if t)
               for take in itertools.product([0, 1], repeat=len(w))
               if sum(wi for wi, t in zip(w, take) if t) <= cap)
    assert best == 51  # items 1, 2, 3: weight 26
    model = knapsack(w, v, cap)
    sol = solve(model, backend, OPTS)
    _check(sol, model, backend)
    assert sol.report.status == Status.OPTIMAL
    assert sol.report.objective == pytest.approx(-best, abs=1e-6)
    assert sol.report.bound == pytest.approx(-best, abs=1e-6)
    np.testing.assert_allclose(sol.x, [0, 1, 1, 1, 0], atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_covering_optimum(backend):
    assert brute_force_covering(**COVER) == pytest.approx(9.9)  # 2 x type2 + type1 + type0
    model = covering(**COVER)
    sol = solve(model, backend, OPTS)
    _check(sol, model, backend)
    assert sol.report.status == Status.OPTIMAL
    assert sol.report.objective == pytest.approx(9.9, abs=1e-6)
    np.testing.assert_allclose(sol.x[:3], [1, 1, 2], atol=1e-6)
    assert sol.x[3:].sum() >= 200.0 - 1e-6
    assert sol.report.n_vars == 6 and sol.report.n_cons == 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_covering_with_load_cost(backend):
    # loads cost 0.0123 per req/s: CP-SAT rounds 0.0123 * 1e-3 / 1e-3 to 0, and widens its bound
    model = covering(**COVER, load_cost=0.0123)
    sol = solve(model, backend, OPTS)
    _check(sol, model, backend)
    assert sol.report.objective == pytest.approx(9.9 + 0.0123 * 200.0, abs=1e-6)


def test_cpsat_objective_rounding_is_bounded():
    model = covering(**COVER, load_cost=0.0123)
    opts = OPTS.model_copy(update={"cpsat_objective_unit": 1e-2})
    _, sc = build_cpsat(model, opts)
    # r_j = 0.0123 * 1e-3 per grid unit on loads, at most 320000 units each
    assert sc.objective_error == pytest.approx(0.0123e-3 * (200000 + 240000 + 320000), rel=1e-9)
    sol = solve(model, Backend.CPSAT, opts)
    ref = solve(model, Backend.HIGHS, OPTS)
    _check(sol, model, Backend.CPSAT)
    assert sol.report.objective <= ref.report.objective + sc.objective_error + 1e-6
    assert sol.report.bound <= ref.report.objective + 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_infeasible(backend):
    model = covering(**{**COVER, "gpus": 9})  # 9 GPUs give at most 2*80 + 30 = 190 < 200
    sol = solve(model, backend, OPTS)
    assert sol.report.status == Status.INFEASIBLE, sol.report
    assert sol.x is None and sol.report.objective is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_limit_returns_best_found_or_nothing(backend):
    model = market_split()
    limit = 0.3
    sol = solve(model, backend, OPTS.model_copy(update={"time_limit_s": limit}))
    assert sol.report.status in (Status.FEASIBLE, Status.NO_SOLUTION), sol.report
    assert sol.report.solve_time_s < limit + 2.0
    if sol.report.status == Status.FEASIBLE:
        _check(sol, model, backend)
        assert sol.report.gap is None or sol.report.gap > 0
    else:
        assert sol.x is None


# ------------------------------------------------------------------------------ backend specifics
def test_pyomo_model_is_readable():
    model = covering(**COVER)
    pm = build_pyomo(model)
    # "load" is reserved by Pyomo (Block.load): the block becomes load_
    assert {"instances", "load_", "capacity", "demand", "gpu_budget", "objective"} <= {
        c.name for c in pm.component_objects()}
    assert list(pm.instances.keys()) == [("type0", 1), ("type1", 2), ("type2", 4)]
    assert pm.instances["type2", 4].is_integer() and pm.load_["type2", 4].is_continuous()
    body = str(pm.capacity["type1", 2].body)
    assert "load_[type1,2]" in body and "30.0*instances[type1,2]" in body
    assert pm.capacity["type1", 2].upper == 0 and pm.demand["total"].lower == 200
    assert [v.name for v in column_vars(pm)] == [n.replace("load", "load_") for n in model.column_names()]


def test_pyomo_unavailable_solver_is_an_error_report():
    sol = solve(covering(**COVER), Backend.PYOMO, OPTS.model_copy(update={"pyomo_solver": "no_such_solver"}))
    assert sol.report.status == Status.ERROR and sol.x is None
    assert "no_such_solver" in sol.report.message and "not available" in sol.report.message


def test_pyomo_highs_new_interface_agrees():
    sol = solve(covering(**COVER), Backend.PYOMO, OPTS.model_copy(update={"pyomo_solver": "highs"}))
    assert sol.report.status == Status.OPTIMAL
    assert sol.report.objective == pytest.approx(9.9, abs=1e-6)


def test_cpsat_unbounded_column_is_a_clear_error():
    model = LinearModel("free")
    x = model.add_vars("load", ["a", "b"], lb=0, cost=1.0)
    model.add_constraints("demand", ["d"], [0, 0], x.cols, [1.0, 1.0], lo=5.0)  # no upper bound
    sol = solve(model, Backend.CPSAT, OPTS)
    assert sol.report.status == Status.ERROR
    assert "load[a]" in sol.report.message and "bound" in sol.report.message
    with pytest.raises(ValueError, match="finite variable bounds"):
        build_cpsat(model, OPTS)
    _, sc = build_cpsat(model, OPTS, default_bound=1e3)
    assert sc.y_ub.tolist() == [1_000_000, 1_000_000] and sc.derived_bound.all()


def test_cpsat_inexact_coefficients_stay_feasible():
    # capacities 1/3 and 1/7 req/s per instance: no power of ten makes them integral
    cap, tp, cost = [1 / 3, 1 / 7], [1, 1], [1.0, 0.45]
    model = covering(cap, tp, cost, load=1.9, gpus=30)  # optimum has capacity slack
    _, sc = build_cpsat(model, OPTS)
    assert not sc.row_exact[:2].any() and sc.row_exact[2:].all()
    sol = solve(model, Backend.CPSAT, OPTS)
    _check(sol, model, Backend.CPSAT)
    ref = solve(model, Backend.HIGHS, OPTS)
    # a restriction of the original model: never better, here equal
    assert sol.report.objective >= ref.report.objective - 1e-6
    assert sol.report.objective == pytest.approx(ref.report.objective, abs=1e-6)


def test_cpsat_load_grid_is_a_restriction():
    # demand 200.0004 req/s is off the 1e-3 grid: CP-SAT must serve 200.001
    model = covering(cap=[100.0005], tp=[1], cost=[1.0], load=200.0004, gpus=8)
    sol = solve(model, Backend.CPSAT, OPTS)
    _check(sol, model, Backend.CPSAT)
    assert sol.x[1] == pytest.approx(200.001, abs=1e-9)
    assert sol.report.objective == pytest.approx(2.0)


def test_cpsat_finds_plans_at_exactly_full_capacity():
    """Capacity exactly equals demand off the load grid: the grid alone cannot represent the
    optimum (one instance at full load), the outer discretisation's integer decision completed
    by an LP does; the answer is the original model's optimum and proven so."""
    c = 42.8605883
    model = covering(cap=[c], tp=[1], cost=[1.0], load=c, gpus=1)
    ref = solve(model, Backend.HIGHS, OPTS)
    assert ref.report.status == Status.OPTIMAL
    sol = solve(model, Backend.CPSAT, OPTS)
    _check(sol, model, Backend.CPSAT)
    assert sol.report.status == Status.OPTIMAL
    assert sol.report.objective == pytest.approx(ref.report.objective, rel=1e-9)
    assert "completed by an LP" in sol.report.message


def test_cpsat_full_capacity_pool_matches_highs():
    """Issue #11's reproduction (SM at 25.8438 req/s on one H100 server: 1,698.9 W vs 1,464.1 W
    before) and pools whose loads are exact multiples of configurations' max loads under the
    SLO, so that their best plans run instances at exactly full load. CP-SAT within its stated
    tolerance (``mip_rel_gap``) of HiGHS, its bound valid for the original model."""
    from dynaplan.domain.slo import DEFAULT_SLOS
    from dynaplan.planning.planner import Planner
    from dynaplan.profiles.profile import Profile

    prof = Profile.default()
    cases = [("SM", 1, [25.8438]), ("SM", 1, []), ("LL", 1, []), ("MS", 2, [])]
    checked = 0
    for cls, n, extra in cases:
        srv = {"h100-80gb": n}
        pls = {b: Planner(prof, srv, DEFAULT_SLOS, solve_options=OPTS, backend=b) for b in (Backend.HIGHS, Backend.CPSAT)}
        ops = pls[Backend.HIGHS].ops
        caps = np.sort(ops.loc[ops["request_class"] == cls, "max_load_rps"].to_numpy())
        loads = extra or [float(caps[-1]), float(caps[len(caps) // 2]), 2 * float(caps[len(caps) // 3])]
        for load in loads:
            ref = pls[Backend.HIGHS].plan_pool(cls, {cls: load}, srv).report
            cp = pls[Backend.CPSAT].plan_pool(cls, {cls: load}, srv).report
            assert cp.status in (Status.OPTIMAL, Status.FEASIBLE), (cls, load, cp)
            assert cp.objective <= ref.objective * (1 + OPTS.mip_rel_gap) + 1e-6, (cls, load, cp, ref)
            assert cp.bound is not None and cp.bound <= ref.objective * (1 + 1e-9), (cls, load, cp)
            checked += 1
    assert checked == 10


def test_cpsat_pure_integer_infeasibility_is_direct():
    model = knapsack([3, 5], [1, 1], 10)
    model.add_constraints("at_least", ["w"], [0, 0], [0, 1], [3, 5], lo=11)
    sol = solve(model, Backend.CPSAT, OPTS)
    assert sol.report.status == Status.INFEASIBLE
    assert "outer" not in sol.report.message  # exact: no second solve


# ------------------------------------------------------------------------------ properties
@st.composite
def covering_instances(draw, exact: bool):
    k = draw(st.integers(1, 4))
    if exact:  # capacities with 2 decimals and loads with 3: on the CP-SAT grid
        cap = [draw(st.integers(50, 20000)) / 100 for _ in range(k)]
        load = draw(st.integers(1, 400_000)) / 1000
    else:
        cap = [draw(st.floats(0.3, 200.0)) for _ in range(k)]
        load = draw(st.floats(0.01, 400.0))
    tp = [draw(st.sampled_from([1, 2, 4, 8])) for _ in range(k)]
    cost = [draw(st.integers(1, 500)) / 100 for _ in range(k)]
    # a budget that admits at least one single-type plan
    need = min(t * math.ceil(load / c) for t, c in zip(tp, cap))
    gpus = need + draw(st.integers(0, 16))
    return dict(cap=cap, tp=tp, cost=cost, load=load, gpus=gpus)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(covering_instances(exact=True))
def test_property_backends_agree(inst):
    model = covering(**inst)
    sols = {b: solve(model, b, OPTS) for b in BACKENDS}
    for b, sol in sols.items():
        _check(sol, model, b)
        # CP-SAT says "optimal" only when a bound of the original model certifies it
        ok = (Status.OPTIMAL, Status.FEASIBLE) if b is Backend.CPSAT else (Status.OPTIMAL,)
        assert sol.report.status in ok, (b, sol.report)
    ref = sols[Backend.HIGHS].report.objective
    tol = 1e-6 * max(1.0, abs(ref))
    assert sols[Backend.PYOMO].report.objective == pytest.approx(ref, abs=tol)
    # on-grid data and cent costs: CP-SAT's discretisation reaches the optimum
    cp = sols[Backend.CPSAT].report
    assert cp.objective == pytest.approx(ref, abs=tol)
    # and its bound is a bound of the original model, never above the true optimum
    assert cp.bound is not None and cp.bound <= ref + tol


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(covering_instances(exact=False))
def test_property_cpsat_is_feasible_restriction(inst):
    model = covering(**inst)
    ref = solve(model, Backend.HIGHS, OPTS)
    _check(ref, model, Backend.HIGHS)
    sol = solve(model, Backend.CPSAT, OPTS)
    # the model is feasible: CP-SAT may miss it on its grid but must never claim infeasibility
    assert sol.report.status != Status.INFEASIBLE, sol.report
    if sol.report.status == Status.NO_SOLUTION:  # the optimum's capacity slack is below the grid
        assert "cpsat_load_unit_rps" in sol.report.message
        return
    _check(sol, model, Backend.CPSAT)
    assert sol.report.objective >= ref.report.objective - 1e-6 * max(1.0, abs(ref.report.objective))
    # a bound or an "optimal" claim refers to the original model: never above its optimum
    tol = 1e-6 * max(1.0, abs(ref.report.objective))
    if sol.report.bound is not None:
        assert sol.report.bound <= ref.report.objective + tol, sol.report
    if sol.report.status == Status.OPTIMAL:
        assert sol.report.objective <= ref.report.objective * (1 + OPTS.mip_rel_gap) + tol, sol.report


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tamper", ["infeasible", "objective", "bound"])
def test_every_backend_is_verified_before_its_answer_is_returned(monkeypatch, backend, tamper):
    """One post-solve check for all backends: a solution that breaks the model, an objective
    that is not c.x + offset, or a bound above the objective comes back as an error without a
    solution (never a plan), whichever backend produced it."""
    from dynaplan.solvers import StopReason, get_backend

    model = knapsack([12, 7, 11, 8, 9], [24, 13, 23, 15, 16], 26)
    be = get_backend(backend)
    good = solve(model, backend, OPTS)
    assert good.report.status == Status.OPTIMAL and good.x is not None
    real = type(be).solve

    def tampered(self, arrays, opts, hint=None):
        sol = real(self, arrays, opts, hint)
        if tamper == "infeasible":
            return sol.model_copy(update={"x": np.ones(arrays.n_cols)})  # every item: over the capacity
        key = "objective" if tamper == "objective" else "bound"
        return sol.model_copy(update={"report": sol.report.model_copy(
            update={key: sol.report.objective + 10.0})})

    monkeypatch.setattr(type(be), "solve", tampered)
    bad = solve(model, backend, OPTS)
    assert bad.x is None and bad.report.status == Status.ERROR
    assert bad.report.stop_reason is StopReason.VERIFICATION_FAILED
    assert {"infeasible": "violates the model", "objective": "differs from", "bound": "above"}[tamper] in \
        bad.report.message


def test_backend_registry_is_complete_and_derived_from_the_enum():
    from dynaplan.solvers import REGISTRY, SolverBackend, backends, get_backend

    assert set(REGISTRY) == set(Backend) and backends() == tuple(Backend)
    for b in Backend:
        be = get_backend(b)
        assert isinstance(be, SolverBackend) and be.name is b


@pytest.mark.parametrize("backend", BACKENDS)
def test_bound_session_equals_fresh_solves(backend):
    """open_session re-solves with new bounds (in place for HiGHS) and answers as fresh solves do."""
    from dynaplan.solvers import open_session

    model = covering(cap=[10.0, 25.0, 7.5], tp=[1, 2, 1], cost=[1.0, 2.1, 0.8], load=30.0, gpus=8)
    base = model.arrays()
    session = open_session(base, backend, OPTS)
    for load, gpus in ((30.0, 8), (55.5, 8), (12.0, 3), (80.0, 2), (20.0, 8)):
        arr = base.with_block_bounds(rows={"demand": (load, None), "gpu_budget": (None, gpus)})
        fresh, again = solve(arr, backend, OPTS), session.update_bounds_and_resolve(arr, OPTS)
        assert again.report.status == fresh.report.status, (load, gpus)
        if fresh.report.objective is not None:
            assert again.report.objective == pytest.approx(fresh.report.objective, rel=1e-9)
            assert again.report.objective == pytest.approx(
                brute_force_covering([10.0, 25.0, 7.5], [1, 2, 1], [1.0, 2.1, 0.8], load, gpus), rel=1e-6)


def test_stop_reason_is_data():
    from dynaplan.solvers import StopReason

    assert solve(knapsack([3], [1], 10), Backend.HIGHS, OPTS).report.stop_reason is StopReason.CONVERGED
    model = knapsack([3, 5], [1, 1], 10)
    model.add_constraints("at_least", ["w"], [0, 0], [0, 1], [3, 5], lo=11)
    for b in BACKENDS:
        r = solve(model, b, OPTS).report
        assert r.status == Status.INFEASIBLE and r.stop_reason in (
            StopReason.INFEASIBLE, StopReason.UNBOUNDED_OR_INFEASIBLE), (b, r)


# ------------------------------------------------------------------------------ model copies
@pytest.mark.parametrize("method", ["with_row_bounds", "with_col_bounds"])
def test_bound_copies_leave_the_original_intact(method):
    """A copy with new bounds is a model of its own: adding a block to it (or changing its
    bounds again) never reaches the original (regression: the copy used to share its lists)."""
    model = covering(cap=[10.0, 25.0], tp=[1, 2], cost=[1.0, 2.0], load=30.0, gpus=8)
    before = model.arrays()
    names = (list(model.var_blocks), list(model.con_blocks), model.column_names(), model.row_names())
    if method == "with_row_bounds":
        copy = model.with_row_bounds("demand", lo=[50.0])
    else:
        copy = model.with_col_bounds("instances", ub=[1.0, 1.0])
    extra = copy.add_vars("extra", ["e"], lb=0, ub=1, cost=1.0)
    copy.add_constraints("extra_row", ["r"], [0], [extra.start], [1.0], lo=1.0)
    after = model.arrays()
    assert (list(model.var_blocks), list(model.con_blocks), model.column_names(), model.row_names()) == names
    for field in ("cost", "lb", "ub", "integer", "row_lo", "row_hi"):
        np.testing.assert_array_equal(getattr(after, field), getattr(before, field), err_msg=field)
    assert (after.A != before.A).nnz == 0
    assert copy.n_cols == model.n_cols + 1 and copy.n_rows == model.n_rows + 1
    # the copy keeps its own new bounds and its added block
    a = copy.arrays()
    if method == "with_row_bounds":
        assert a.row_lo[copy.con_blocks["demand"].start] == 50.0
    else:
        np.testing.assert_array_equal(a.ub[copy.var_blocks["instances"].cols], [1.0, 1.0])
