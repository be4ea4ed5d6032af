"""Capacity planning over a horizon: the decomposition's bound against the whole MILP written here
from the problem's own arrays, the (cap.class_hull) rows against brute force, and the period-by-
period (D5) LP against the whole LP."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from dynaplan.capacity import capacity_problem, plan_capacity
from dynaplan.capacity.solve import _PeriodsLP, _subproblem
from dynaplan.formulations.capacity import build_capacity_model
from dynaplan.formulations.capacity_hull import minimal_usages, usage_facets
from dynaplan.solvers import Status
from dynaplan.solvers.highs import solve_arrays
from dynaplan.solvers.result import SolveOptions


def _whole_milp(p) -> float:
    """The capacity MILP of formulations/capacity.md ((cap.demand)-(cap.gpus), (cap.energy), the
    cost objective) written out from the problem's fields, without the valid inequalities, solved
    by scipy's milp: the optimum of the problem the user posed."""
    d = p.demand()
    T, C, H = d.shape[0], len(p.classes), len(p.offers)
    rec = p.recipes
    R = len(rec)
    hw = np.array([p.hardware.index(r.hardware) for r in rec])
    cl = np.array([p.classes.index(r.request_class) for r in rec])
    tp = np.array([r.tp for r in rec], float)
    lmax = np.array([r.max_load_rps for r in rec], float)
    kap = lmax * np.array([r.u_hi for r in rec], float)
    a = np.array([r.static_w for r in rec], float)
    b = np.array([r.w_per_util for r in rec], float) / lmax
    groups = sorted({(hw[i], cl[i], tp[i]) for i in range(R)})
    gi = {g: k for k, g in enumerate(groups)}
    grp = np.array([gi[(hw[i], cl[i], tp[i])] for i in range(R)])
    G = len(groups)
    gpus = np.array([o.gpus_per_server for o in p.offers], float)
    idle = np.array([o.idle_power_w for o in p.offers], float) * (p.idle == "idle")
    k_kwh = p.pue * p.period_s / 3.6e6
    usd_kwh = (np.asarray(p.electricity_usd_per_kwh, float)
               + p.carbon_price_usd_per_t * np.asarray(p.carbon_g_per_kwh, float) / 1e6)
    # columns: y (H) | N (T, G) | n (T, R) | l (T, R) ; energy substituted into the objective
    ny, nN, nn = H, T * G, T * R
    col_N = lambda t, g: ny + t * G + g  # noqa: E731
    col_n = lambda t, i: ny + nN + t * R + i  # noqa: E731
    col_l = lambda t, i: ny + nN + nn + t * R + i  # noqa: E731
    n_cols = ny + nN + 2 * nn
    cost = np.zeros(n_cols)
    cost[:H] = np.array([o.price_usd_per_server_h for o in p.offers]) * p.fleet_h
    const = 0.0
    for t in range(T):
        cost[:H] += usd_kwh[t] * k_kwh * idle * gpus
        for i in range(R):
            cost[col_n(t, i)] += usd_kwh[t] * k_kwh * (a[i] - tp[i] * idle[hw[i]])
            cost[col_l(t, i)] += usd_kwh[t] * k_kwh * b[i]
    rows, cols, vals, lo, hi = [], [], [], [], []

    def row(entries, lo_, hi_):
        r = len(lo)
        for c, v in entries:
            rows.append(r)
            cols.append(c)
            vals.append(v)
        lo.append(lo_)
        hi.append(hi_)

    for t in range(T):
        for c in range(C):   # (cap.demand)
            row([(col_l(t, i), 1.0) for i in range(R) if cl[i] == c], d[t, c], d[t, c])
        for i in range(R):   # (cap.capacity)
            row([(col_l(t, i), 1.0), (col_n(t, i), -kap[i])], -np.inf, 0.0)
        for g in range(G):   # (cap.group)
            row([(col_n(t, i), 1.0) for i in range(R) if grp[i] == g] + [(col_N(t, g), -1.0)], 0.0, 0.0)
        for h in range(H):   # (cap.gpus)
            row([(col_N(t, g), groups[g][2]) for g in range(G) if groups[g][0] == h] + [(h, -gpus[h])], -np.inf, 0.0)
    A = sp.csr_matrix((vals, (rows, cols)), shape=(len(lo), n_cols))
    lb = np.zeros(n_cols)
    ub = np.full(n_cols, np.inf)
    lb[:H] = [o.min_servers for o in p.offers]
    ub[:H] = [o.max_servers for o in p.offers]
    integ = np.zeros(n_cols)
    integ[:H + nN] = 1
    res = milp(cost, constraints=LinearConstraint(A, lo, hi), bounds=Bounds(lb, ub), integrality=integ,
               options={"mip_rel_gap": 1e-7, "time_limit": 600})
    assert res.status == 0, res.message
    return float(res.fun + const)


@pytest.mark.parametrize("periods,hardware,peak", [(4, ("h100-80gb", "a100-80gb"), 40.0),
                                                    (3, ("h100-80gb", "a100-80gb", "h200-141gb"), 30.0)])
def test_decomposed_bound_below_the_whole_milp_optimum(periods, hardware, peak):
    p = capacity_problem(peak_rps=peak, periods=periods, hardware=list(hardware))
    plan = plan_capacity(p, time_limit_s=120, method="decomposed")
    rep = plan.report
    opt = _whole_milp(p)
    tol = 1e-7 * max(abs(opt), 1.0)
    assert rep.bound <= opt + tol                          # a valid bound of the whole problem
    assert rep.objective >= opt - tol                      # the realised plan is a feasible point
    assert (rep.objective - opt) / rep.objective <= rep.gap + 1e-9
    assert rep.status == Status.OPTIMAL and rep.gap <= 1e-3


def _brute_usages(demand, per_type):
    """Every GPU usage vector of whole-instance deployments carrying ``demand`` (instances up to
    the count one type alone needs), by enumeration."""
    items = [(h, t, k) for h, (tps, caps) in enumerate(per_type) for t, k in zip(tps, caps)]
    ranges = [range(int(np.ceil(demand / k)) + 1) for _, _, k in items]
    out = []
    for n in itertools.product(*ranges):
        if sum(c * k for c, (_, _, k) in zip(n, items)) >= demand:
            u = np.zeros(len(per_type))
            for c, (h, t, _) in zip(n, items):
                u[h] += c * t
            out.append(u)
    return np.array(out)


@pytest.mark.parametrize("seed", range(12))
def test_class_hull_rows_hold_for_every_deployment_and_touch_one(seed):
    rng = np.random.default_rng(seed)
    H = int(rng.integers(1, 4))
    per_type = []
    for _ in range(H):
        tps = np.sort(rng.choice([1.0, 2.0, 4.0, 8.0], size=int(rng.integers(1, 3)), replace=False))
        per_type.append((tps, rng.uniform(1.0, 6.0, tps.size) * tps ** 0.8))
    demand = float(rng.uniform(2.0, 14.0))
    w, k = usage_facets(minimal_usages(demand, per_type))
    u = _brute_usages(demand, per_type)
    assert len(k) >= 1
    lhs = u @ w.T
    assert (lhs >= k - 1e-9).all()                          # valid for every deployment
    assert np.allclose(lhs.min(axis=0), k, rtol=1e-9)       # and tight: some deployment attains K


def test_periods_lp_by_blocks_equals_the_whole_lp():
    p = capacity_problem(peak_rps=120.0, periods=8, hardware=["h100-80gb", "a100-80gb"])
    model, idx = build_capacity_model(p)
    y_ub = np.rint(model.arrays().ub[idx.fleet]).astype(int)
    out = np.arange(1, 8)
    opts = SolveOptions(time_limit_s=60)
    olp = _PeriodsLP(p, out, y_ub, opts)
    assert olp.block is not None
    sub_m, ix = build_capacity_model(_subproblem(p, out, fleet=y_ub, fleet_cost=False))
    arr = sub_m.arrays()
    fleets = [np.array([12.0, 4.0]), np.array([9.5, 7.25]), np.array([20.0, 0.0])]
    got = []
    for y in fleets:
        r = olp.at(y)
        lb, ub = arr.lb.copy(), arr.ub.copy()
        lb[ix.fleet] = y
        ub[ix.fleet] = y
        whole = solve_arrays(arr.with_bounds(lb=lb, ub=ub), opts, relax=True)
        assert r is not None and whole.report.status == Status.OPTIMAL
        assert r[2] == pytest.approx(whole.report.objective, rel=1e-7)
        got.append(r)
    for y, (_, _, phi, g) in zip(fleets, got):       # subgradients: cuts under phi at every other fleet
        for y2, (_, _, phi2, _) in zip(fleets, got):
            assert phi + g @ (y2 - y) <= phi2 + 1e-6 * max(1.0, abs(phi2))
    assert olp.at(np.array([0.0, 0.0])) is None and olp.unserved
