"""Solve a :class:`CapacityProblem` with HiGHS and return a frozen :class:`CapacityPlan`."""

from __future__ import annotations

import time

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dynaplan.capacity.problem import CapacityProblem
from dynaplan.errors import InfeasibleError, NoSolutionError, ValidationError
from dynaplan.formulations.capacity import build_capacity_model, build_share_model, energy_objective_per_kwh
from dynaplan.solvers.highs import solve_arrays
from dynaplan.solvers.result import Backend, Solution, SolveOptions, SolveReport, Status, StopReason, relative_gap


class PeriodDeployment(BaseModel):
    """What runs in one period: instances per (hardware, TP, clock, class) and their load."""

    model_config = ConfigDict(frozen=True)

    period: int
    demand_rps: dict[str, float] = Field(description="Load to serve per class (req/s).")
    groups: tuple[dict, ...] = Field(description="hardware, tp, freq_mhz, request_class, instances, load_rps, "
                                     "capacity_rps (whole SLO capacity of those instances).")
    gpus_used: dict[str, int] = Field(description="GPUs running instances per type (count).")
    it_power_w: float = Field(description="IT power of the fleet in this period (W).")
    energy_kwh: float = Field(description="Facility energy (PUE applied) in this period (kWh).")
    energy_usd: float
    carbon_kg: float
    carbon_usd: float


class CapacityPlan(BaseModel):
    """The answer: fleet, costs, energy, carbon, per-period deployment and how it was solved."""

    model_config = ConfigDict(frozen=True)

    fleet: dict[str, int] = Field(description="Servers per hardware type (count).")
    gpus: dict[str, int] = Field(description="GPUs per hardware type (count).")
    objective: str
    load_basis: str
    horizon_h: float
    cost_usd: float = Field(description="Fleet + energy + carbon price over the horizon (USD).")
    fleet_usd: float
    energy_usd: float
    carbon_usd: float
    cost_usd_per_h: float
    energy_kwh: float
    carbon_kg: float
    peak_power_w: float = Field(description="Highest facility power over the periods (W, PUE applied).")
    power_model_error_kwh: float = Field(
        description="Largest difference between the energy of the piecewise-linear power model used and the "
        "profile's own interpolation for this deployment (kWh, over the horizon).")
    headroom: dict[str, float] = Field(description="Per class, the smallest over periods of "
                                       "1 - load / SLO capacity of the instances serving it (fraction).")
    binding: tuple[str, ...] = Field(description="What limits the answer: availability, slo, budget (epsilon caps).")
    periods: tuple[PeriodDeployment, ...]
    report: SolveReport
    replay: dict | None = Field(default=None, description="Replay of the source trace on the fleet, when asked.")

    def to_json(self) -> str:
        return self.model_dump_json()


def plan_capacity(problem: CapacityProblem, *, time_limit_s: float = 60.0, mip_rel_gap: float = 1e-3,
                  threads: int = 1, method: str = "auto") -> CapacityPlan:
    """Minimise the problem's objective (``formulations/capacity.md``) with HiGHS.

    ``method``: "monolithic" solves the whole MILP at once; "decomposed" (what "auto" picks
    unless an energy or carbon cap couples the periods) generates the fleet-setting periods
    (capacity.md, "Decomposition"): the bound is valid for the whole problem and the gap honest.

    Raises InfeasibleError when the offered hardware (recipes, availability) cannot serve some
    period; NoSolutionError when the time limit ends before any plan is found."""
    if not isinstance(problem, CapacityProblem):
        raise ValidationError(f"plan_capacity: problem is {type(problem).__name__}; expected CapacityProblem "
                              "(build one with capacity_problem or read_melange)")
    if method not in ("auto", "monolithic", "decomposed"):
        raise ValidationError(f"method={method!r}; expected auto, monolithic or decomposed")
    _check_servable(problem)
    opts = SolveOptions(time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap, threads=threads,
                        highs_heuristics=problem.source == "melange")
    coupled = problem.energy_cap_kwh is not None or problem.carbon_cap_kg is not None
    if _shareable(problem) and method == "auto":
        return _share(problem, opts)
    if method == "monolithic" or (method == "auto" and (coupled or problem.n_periods == 1)):
        idx, sol, build_s = _build_and_solve(build_capacity_model, problem, opts)
        return extract_plan(problem, idx, sol.x, sol.report.with_build_time(build_s), opts.mip_rel_gap)
    if coupled:
        raise ValidationError("method='decomposed' cannot take energy_cap_kwh or carbon_cap_kg; use 'monolithic'")
    return _decomposed(problem, opts)


def _build_and_solve(build, p: CapacityProblem, opts: SolveOptions):
    """Build ``build(p)`` (timed apart from the solve), solve it, refuse an unsolved answer;
    returns the model's index, the solution and the build time (s)."""
    t0 = time.perf_counter()
    model, idx = build(p)
    arrays = model.arrays()
    build_s = time.perf_counter() - t0
    sol = solve_arrays(arrays, opts)
    _raise_unsolved(p, sol.report)
    return idx, sol, build_s


def _shareable(p: CapacityProblem) -> bool:
    return (p.n_periods == 1 and p.shared_instances and p.energy_cap_kwh is None and p.carbon_cap_kg is None
            and all(r.static_w == 0 and r.w_per_util == 0 for r in p.recipes)
            and len({(r.request_class, r.hardware) for r in p.recipes}) == len(p.recipes))


def _share(p: CapacityProblem, opts: SolveOptions) -> CapacityPlan:
    """Mélange-shaped problems through the load-free model (capacity.md, "Mélange configs")."""
    ix, sol, build_s = _build_and_solve(build_share_model, p, opts)
    full, idx = build_capacity_model(p)
    x = np.zeros(full.n_cols)
    x[idx.fleet] = sol.x[ix["fleet"]]
    d = p.demand()[0]
    where = {(r.request_class, r.hardware): i for i, r in enumerate(p.recipes)}
    for (c, h, kap, _), mv in zip(ix["pairs"], sol.x[ix["slices"]]):
        i = where[(p.classes[c], p.hardware[h])]
        load = d[c] * mv / ix["S"]
        x[idx.load.start + i] = load
        x[idx.instances.start + i] = load / kap
        x[idx.groups.start + idx.group_of[i]] += load / kap
    return extract_plan(p, idx, x, sol.report.with_build_time(build_s), opts.mip_rel_gap)


def _raise_unsolved(problem: CapacityProblem, rep: SolveReport) -> None:
    if rep.status == Status.INFEASIBLE:
        raise InfeasibleError("capacity: no fleet within the availability serves every period under the SLOs "
                              f"({', '.join(f'{o.hardware} <= {o.max_servers}' for o in problem.offers)})")
    if not rep.has_solution:
        raise NoSolutionError(f"capacity: no plan found ({rep.message}, {rep.solve_time_s:.1f} s)", report=rep)


def _subproblem(p: CapacityProblem, periods, *, fleet=None, fleet_cost: bool = True) -> CapacityProblem:
    """The problem restricted to ``periods``; the fleet fixed to ``fleet`` and/or not priced."""
    ts = list(periods)
    offers = p.offers
    if fleet is not None:
        offers = tuple(o.model_copy(update={"min_servers": int(fleet[j]), "max_servers": int(fleet[j])})
                       for j, o in enumerate(offers))
    if not fleet_cost:
        offers = tuple(o.model_copy(update={"price_usd_per_server_h": 0.0}) for o in offers)
    return p.model_copy(update={
        "demand_rps": tuple(p.demand_rps[t] for t in ts), "offers": offers,
        "electricity_usd_per_kwh": tuple(p.electricity_usd_per_kwh[t] for t in ts),
        "carbon_g_per_kwh": tuple(p.carbon_g_per_kwh[t] for t in ts), "fleet_hours_h": p.fleet_h})


def _solve(p: CapacityProblem, opts: SolveOptions, relax: bool = False):
    model, idx = build_capacity_model(p)
    sol = solve_arrays(model.arrays(), opts, relax=relax)
    return sol, idx


def _marginal_energy_lb(p: CapacityProblem, idx, t: int) -> float:
    """(D4) A lower bound on period ``t``'s objective above its fleet's idle power, for any fleet:
    each class at the least energy per request of any recipe's capacity point (the per-instance
    power above idle is convex in the relaxation and >= 0 at zero load, so its ratio to the load
    is least at a vertex)."""
    idle_w = np.array([o.idle_power_w for o in p.offers]) * (p.idle == "idle")
    a = idx.static_w - idx.tp * idle_w[idx.hw_of]
    if (a < 0).any():
        return 0.0
    per_rps = (a + idx.w_per_rps * idx.cap_rps) / idx.cap_rps  # W per req/s at each capacity point
    best = np.full(len(p.classes), np.inf)
    np.minimum.at(best, idx.class_of, per_rps)
    d = p.demand()[t]
    best = np.where(d > 0, best, 0.0)
    return float(energy_objective_per_kwh(p)[t] * idx.kwh_per_w * (d @ best))


def _other_periods(p: CapacityProblem, out: np.ndarray, y: np.ndarray, opts: SolveOptions, deadline: float,
                   budget: float = 0.0):
    """(D2) Deployments of the periods ``out`` on the fixed fleet ``y``: one LP over them all, each
    group's instance count rounded up (capacity is kept: L_g <= kappa_g N_g); a period whose
    rounded instances do not fit the fleet is solved as its own MILP. Returns
    ({period: (solution, index, position)}, periods the fleet cannot serve)."""
    per_t: dict[int, tuple] = {}
    bad: list[int] = []
    if out.size == 0:
        return per_t, bad
    sub = _subproblem(p, out, fleet=y, fleet_cost=False)
    lp, ix = _solve(sub, opts, relax=True)
    if lp.report.status == Status.INFEASIBLE or lp.x is None:
        todo = list(out)
        x = None
    else:
        x = lp.x.copy()
        G = ix.n_groups
        L = np.zeros((len(out), G))
        np.add.at(L, (slice(None), ix.group_of), x[ix.load].reshape(len(out), ix.n_recipes))
        kmax = np.zeros(G)
        np.maximum.at(kmax, ix.group_of, np.array([r.max_load_rps for r in p.recipes]))
        Nv = np.minimum(np.ceil(L / kmax[None, :] - 1e-9), np.ceil(x[ix.groups].reshape(len(out), G) - 1e-7))
        x[ix.groups] = Nv.ravel()
        g_hw = np.array([k[0] for k in ix.group_keys], dtype=np.int64)
        g_tp = np.array([k[2] for k in ix.group_keys], dtype=float)
        used = np.zeros((len(out), len(p.offers)))
        np.add.at(used, (slice(None), g_hw), Nv * g_tp[None, :])
        fits = (used <= (np.array([o.gpus_per_server for o in p.offers]) * y)[None, :] + 1e-9).all(axis=1)
        for k, t in enumerate(out):
            if fits[k]:
                per_t[int(t)] = (Solution(x=x, report=lp.report), ix, k)
        todo = [t for k, t in enumerate(out) if not fits[k]]
    for t in todo:
        left = max(deadline - time.perf_counter(), 0.25 * opts.time_limit_s)
        sub_t = _subproblem(p, [int(t)], fleet=y, fleet_cost=False)
        est = float(lp.report.objective or 0.0) / max(len(out), 1) if x is not None else 0.0
        gap_t = float(np.clip(budget / max(est, 1e-12), opts.mip_rel_gap, 0.5))
        sol_t, idx_t = _solve(sub_t, opts.model_copy(update={"time_limit_s": left, "mip_rel_gap": gap_t}))
        if sol_t.report.status == Status.INFEASIBLE:
            bad.append(int(t))
            if len(bad) >= 4:
                break
            continue
        _raise_unsolved(p, sol_t.report)
        per_t[int(t)] = (sol_t, idx_t, 0)
    return per_t, bad


def _decomposed(p: CapacityProblem, opts: SolveOptions) -> CapacityPlan:
    """Fleet-setting periods S, grown until the fleet serves every period (capacity.md, (D1)-(D4))."""
    t0 = time.perf_counter()
    deadline = t0 + opts.time_limit_s
    d = p.demand()
    model, idx = build_capacity_model(p)
    c_t = energy_objective_per_kwh(p)
    idle_kwh = idx.kwh_per_w * np.array([o.idle_power_w * o.gpus_per_server for o in p.offers]) * (p.idle == "idle")
    lb_t = np.array([_marginal_energy_lb(p, idx, t) for t in range(p.n_periods)])
    S = [int(np.argmax(d.sum(axis=1)))]
    iters = 0
    while True:
        iters += 1
        out = np.setdiff1d(np.arange(p.n_periods), S)
        extra = tuple((c_t[out].sum() * idle_kwh).tolist())
        left = max(deadline - time.perf_counter(), 0.25 * opts.time_limit_s)
        sub = _subproblem(p, S).model_copy(update={"fleet_extra_per_server": extra})
        # the requested gap is shared: a quarter to the S-problem, a quarter to the other periods' MILPs,
        # the rest for their bounds (D4)
        sol_s, idx_s = _solve(sub, opts.model_copy(update={"time_limit_s": left,
                                                           "mip_rel_gap": 0.25 * opts.mip_rel_gap}))  # (D1)
        _raise_unsolved(p, sol_s.report)
        y = np.rint(sol_s.x[idx_s.fleet]).astype(int)
        # the other periods' MILPs share a quarter of the requested gap (in objective units) evenly
        budget = 0.25 * opts.mip_rel_gap * max(sol_s.report.objective or 0.0, 0.0) / max(len(out), 1)
        per_t, bad = _other_periods(p, out, y, opts, deadline, budget)  # (D2)
        if not bad:
            break
        S = sorted(set(S) | set(bad))  # (D3)
    # (D4) the S-problem's bound (it carries the other periods' idle energy) plus their marginal bounds
    bound = (sol_s.report.bound if sol_s.report.bound is not None else -np.inf) + float(lb_t[out].sum())
    x = np.zeros(model.n_cols)
    P = idx.n_recipes
    x[idx.fleet] = y
    G = idx.n_groups
    pieces = {t: (sol_s, idx_s, k) for k, t in enumerate(S)} | per_t
    for t, (sol, ix, k) in pieces.items():
        x[idx.groups.start + t * G: idx.groups.start + (t + 1) * G] = sol.x[ix.groups.start + k * G: ix.groups.start + (k + 1) * G]
        for blk in ("instances", "load"):
            src = getattr(ix, blk)
            dst = getattr(idx, blk)
            x[dst.start + t * P: dst.start + (t + 1) * P] = sol.x[src.start + k * P: src.start + (k + 1) * P]
        x[idx.energy.start + t] = sol.x[ix.energy.start + k]
    elapsed = time.perf_counter() - t0
    rep = SolveReport(status=Status.FEASIBLE, backend=Backend.HIGHS, objective=None, bound=float(bound), gap=None,
                      solve_time_s=elapsed, n_vars=model.n_cols, n_cons=model.n_rows,
                      message=f"decomposed: {len(S)} fleet-setting period(s), {iters} round(s)",
                      stop_reason=StopReason.CONVERGED)
    plan = extract_plan(p, idx, x, rep, opts.mip_rel_gap)
    if plan.report.status != Status.OPTIMAL:
        plan = plan.model_copy(update={"report": plan.report.model_copy(update={"stop_reason": StopReason.OTHER_LIMIT})})
    return plan


def _check_servable(p: CapacityProblem) -> None:
    d = p.demand()
    have = {r.request_class for r in p.recipes}
    for c_i, c in enumerate(p.classes):
        if d[:, c_i].max() > 0 and c not in have:
            raise InfeasibleError(f"capacity: class {c} has load but no operating point of "
                                  f"{', '.join(p.hardware)} meets its SLO")


def _objective_weights(p: CapacityProblem) -> tuple[float, float, float]:
    return {"cost": (1.0, 0.0, 0.0), "energy": (0.0, 1.0, 0.0), "carbon": (0.0, 0.0, 1.0),
            "weighted": p.weights}[p.objective]


def realise(p: CapacityProblem, idx, x: np.ndarray):
    """The deployment a solution stands for, with its power recomputed (capacity.md, (R1)-(R2)):
    per period and group g, N_g whole instances share the group's load evenly and each runs the
    piece (clock) of least power able to carry that load. Returns (fleet, N, load per group,
    chosen recipe per group, IT power of the instances per group (W))."""
    T, G = idx.n_periods, idx.n_groups
    y = np.rint(x[idx.fleet]).astype(int)
    N = x[idx.groups].reshape(T, G)
    if not p.shared_instances:
        N = np.rint(N)
    load_p = np.clip(x[idx.load].reshape(T, idx.n_recipes), 0.0, None)
    L = np.zeros((T, G))
    np.add.at(L, (slice(None), idx.group_of), load_p)
    lmax = np.array([r.max_load_rps for r in p.recipes])
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(N > 0, L / np.where(N > 0, N, 1.0), 0.0)   # load of one instance (req/s)
    cost = idx.static_w[None, :] + idx.w_per_rps[None, :] * per[:, idx.group_of]   # (T, P)
    cost = np.where(lmax[None, :] >= per[:, idx.group_of] * (1 - 1e-9) - 1e-9, cost, np.inf)
    best = np.full((T, G), -1, dtype=np.int64)
    best_w = np.full((T, G), np.inf)
    for i in range(idx.n_recipes):
        g = idx.group_of[i]
        better = cost[:, i] < best_w[:, g]
        best_w[better, g] = cost[better, i]
        best[better, g] = i
    inst_w = np.where(N > 0, N * np.where(np.isfinite(best_w), best_w, 0.0), 0.0)
    return y, N, L, best, inst_w, np.isfinite(best_w) | (N <= 0)


def extract_plan(p: CapacityProblem, idx, x: np.ndarray, report: SolveReport, tol: float = 1e-3) -> CapacityPlan:
    """Read the deployment off the solution (:func:`realise`) and recompute every number from it;
    the report's objective is the realised plan's, its bound the solver's (a valid lower bound)."""
    T, G = idx.n_periods, idx.n_groups
    y, N, L, best, inst_w, servable = realise(p, idx, x)
    gpus = np.array([o.gpus_per_server for o in p.offers])
    idle_w = np.array([o.idle_power_w for o in p.offers]) * (p.idle == "idle")
    H = len(p.offers)
    g_hw = np.array([k[0] for k in idx.group_keys], dtype=np.int64)
    g_cl = np.array([k[1] for k in idx.group_keys], dtype=np.int64)
    g_tp = np.array([k[2] for k in idx.group_keys], dtype=float)
    used = np.zeros((T, H))
    np.add.at(used, (slice(None), g_hw), N * g_tp[None, :])
    it_w = inst_w.sum(axis=1) + ((gpus * y)[None, :] - used) @ idle_w
    kwh = it_w * idx.kwh_per_w
    el = np.asarray(p.electricity_usd_per_kwh)
    kg = kwh * np.asarray(p.carbon_g_per_kwh) / 1000.0
    e_usd, c_usd = kwh * el, kg / 1000.0 * p.carbon_price_usd_per_t
    fleet_usd = float(idx.fleet_usd_per_server @ y)
    err_kwh = float(sum(N[t, g] * idx.error_w[best[t, g]] for t in range(T) for g in range(G) if N[t, g] > 0
                        and best[t, g] >= 0) * idx.kwh_per_w)
    d = p.demand()
    lmax = np.array([r.max_load_rps for r in p.recipes])
    gcap = np.zeros(G)
    np.maximum.at(gcap, idx.group_of, lmax)
    cap_c = np.zeros((T, len(p.classes)))
    np.add.at(cap_c, (slice(None), g_cl), N * gcap[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        head = np.where(d > 0, 1.0 - d / np.where(cap_c > 0, cap_c, np.nan), np.nan)
    headroom = {c: (float(np.nanmin(head[:, i])) if np.isfinite(head[:, i]).any() else 1.0)
                for i, c in enumerate(p.classes)}
    periods = []
    for t in range(T):
        groups = []
        for g in np.flatnonzero(N[t] > 1e-9):
            r = p.recipes[best[t, g]] if best[t, g] >= 0 else None
            h, c, tp = idx.group_keys[g]
            groups.append({"hardware": p.hardware[h], "tp": int(tp), "freq_mhz": r.freq_mhz if r else None,
                           "request_class": p.classes[c],
                           "instances": float(N[t, g]) if p.shared_instances else int(N[t, g]),
                           "load_rps": float(L[t, g]), "capacity_rps": float(N[t, g] * gcap[g])})
        periods.append(PeriodDeployment(
            period=t, demand_rps={c: float(d[t, j]) for j, c in enumerate(p.classes)}, groups=tuple(groups),
            gpus_used={h: int(round(used[t, j])) for j, h in enumerate(p.hardware)},
            it_power_w=float(it_w[t]), energy_kwh=float(kwh[t]), energy_usd=float(e_usd[t]), carbon_kg=float(kg[t]),
            carbon_usd=float(c_usd[t])))
    binding = []
    if any(y[j] >= o.max_servers for j, o in enumerate(p.offers)) or any(
            y[j] <= o.min_servers and o.min_servers > 0 for j, o in enumerate(p.offers)):
        binding.append("availability")
    if any(v < 0.05 for v in headroom.values()):
        binding.append("slo")
    if (p.energy_cap_kwh is not None and kwh.sum() >= p.energy_cap_kwh * (1 - 1e-6)) or (
            p.carbon_cap_kg is not None and kg.sum() >= p.carbon_cap_kg * (1 - 1e-6)):
        binding.append("budget")
    total = fleet_usd + float(e_usd.sum() + c_usd.sum())
    wc, we, wk = _objective_weights(p)
    objective = wc * total + we * float(kwh.sum()) + wk * float(kg.sum())
    if report.has_solution:
        bound = None if report.bound is None else min(report.bound, objective)
        gap = relative_gap(objective, bound)
        proven = servable.all() and gap is not None and gap <= tol + 1e-9
        report = report.model_copy(update={"objective": objective, "bound": bound, "gap": gap,
                                           "status": Status.OPTIMAL if proven else Status.FEASIBLE})
    return CapacityPlan(
        fleet={h: int(y[j]) for j, h in enumerate(p.hardware)},
        gpus={h: int(y[j] * gpus[j]) for j, h in enumerate(p.hardware)},
        objective=p.objective, load_basis=p.load_basis, horizon_h=p.horizon_h, cost_usd=total, fleet_usd=fleet_usd,
        energy_usd=float(e_usd.sum()), carbon_usd=float(c_usd.sum()), cost_usd_per_h=total / p.horizon_h,
        energy_kwh=float(kwh.sum()), carbon_kg=float(kg.sum()),
        peak_power_w=float(it_w.max() * p.pue), power_model_error_kwh=err_kwh, headroom=headroom,
        binding=tuple(binding), periods=tuple(periods), report=report)


