"""Time against optimality: solve time vs the gap of the returned plan's true power to the exact
optimum (or to a valid lower bound), time limits 1 ms .. 10 s.

Cases, each solved by every backend under every time limit:

* ``pool LL servers=40``: a single-class pool (the 40-server plan's largest pool that serves its
  own class only, LL at this writing, its load scaled to 40 servers; 4 servers with ``--quick``), the pool MILP
  of formulations/pool.md with exact pieces. Reference: the **exact optimum** of the profile's
  problem from the independent solver of ``tests/reference_solver.py`` (load-point enumeration
  plus a DP over GPUs, from ``Profile.table`` alone); the pool MILP at ``mip_rel_gap=0`` is solved
  too and must agree with it within 1e-6 relative (a check).
* ``cluster servers=40`` (the whole-server recipe MILP, formulations/cluster.md; its plan is
  every chosen server filled with its recipe) and ``monolithic servers=40 / 400``
  (formulations/monolithic.md). Reference: the monolithic MILP at ``mip_rel_gap=0`` with a long
  limit (60 s; 2 s with ``--quick``), heuristics on, status recorded. That is the optimum of the
  *model*, not proven for the profile's problem: the model prices an instance serving a spilled
  class by a surcharge exact at full utilisation only, and its pruning is proven for a pool's own
  class (pool.md, "Mixed pools: what the report claims"). The profile's optimum lies in
  ``[lower_bound_w, best_true_w]``: the global bound (formulations/bound.md, valid for the
  profile's problem) and the least true power any run of the case found. Each backend solves
  the model as the planner builds it for that backend: CP-SAT's without the (linking) rows
  (cluster.md, "Linking rows"), the others' with them (the monolithic one at most 200 servers).

The hierarchy (cluster + pools, time limit per solve) is put on the monolithic panels.

Every returned plan is measured by its **true power**: the solution is read back into pools
(``dynaplan.planning.decode.pool_plans``) and ``check_plan`` recomputes the power from the
profile's table (interpolation over its load points, idle GPUs of the pool's servers).

Rows: ``scenario, backend, time_limit_s, solve_s`` (wall of the call), ``status, objective,
bound, gap`` (as the solver reports them: for the MILPs, of the model), ``true_objective`` (W),
``check_ok, check_msg`` (check_plan of the plan), ``reference_w`` (true power of the reference
plan), ``reference_kind``, ``reference_status``, ``reference_proven`` (the reference is the
proven optimum of the profile's problem), ``lower_bound_w``, ``best_true_w``, and the signed gaps
``gap_to_exact`` = (true_objective - reference_w) / reference_w where the reference is proven
(NaN elsewhere), ``gap_to_reference`` (the same against the reference, proven or not) and
``gap_to_bound`` = (true_objective - lower_bound_w) / true_objective. For hierarchy rows
``gap_recomputed_error`` = the plan's reported gap less the one recomputed from its true power
and its bound.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from dynaplan.domain.hardware import H100_80GB
from dynaplan.formulations import cluster as cluster_f
from dynaplan.formulations import monolithic as mono_f
from dynaplan.formulations import network as nw
from dynaplan.formulations import pool as pool_f
from dynaplan.planning import check_plan
from dynaplan.planning.decode import pool_plans

from benchmarks import inputs
from benchmarks.registry import Case, Point, register_study
from benchmarks.scenarios.common import HIER_BACKENDS, MILP_BACKENDS, milp_case, plan_of_pools
from benchmarks.scenarios.hierarchy import run_hierarchy

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from reference_solver import pool_optimum_w  # noqa: E402  (independent of dynaplan.planning)

LIMITS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
QUICK_LIMITS = (0.001, 0.01, 0.1)
CASES = (("pool", 40), ("cluster", 40), ("monolithic", 40), ("monolithic", 400))
QUICK_CASES = (("pool", 4), ("cluster", 40))
REF_LIMIT_S, QUICK_REF_LIMIT_S = 60.0, 2.0
AGREE_RTOL = 1e-6  # the pool MILP at gap 0 against the independent exact optimum


@dataclass
class ParetoCase:
    """A built MILP with what it takes to measure its plans: ``decode(x)`` -> (true power, check
    ok, message); ``reference()`` -> the reference columns of every row."""

    label: str
    case: Case
    decode: Callable[[np.ndarray], tuple[float, bool, str]]
    reference: Callable[[], tuple[dict, str]]
    hierarchy_setting: inputs.Setting | None = None  # the setting the hierarchy rows plan (monolithic panels)


def _measure(pl, st, inventory, na, x, pools, forecast, mode) -> tuple[float, bool, str]:
    """True power of solution ``x`` (W) as check_plan recomputes it from the profile's table, with
    its verdict: ``x`` is read into pools as the planner reads its own solutions."""
    epoch_s = pl.options.pool_epoch_s
    pps = pool_plans(na, x, st.profile, pl.hardware, pools, epoch_s, {})
    plan = plan_of_pools(pps, forecast, mode, epoch_s)
    chk = check_plan(st.profile, inventory, st.slos, plan, forecast=forecast, options=pl.options)
    return chk.power_w, chk.ok, "; ".join(chk.violations[:3])


def largest_single_class_pool(servers: int):
    """(pool class, load in req/s, servers): the 40-server HiGHS plan's largest pool serving its
    own class only (the largest serving its own class at all when every pool also serves a
    spilled one), its own class's load scaled to ``servers`` servers."""
    plan = inputs.hierarchical_plan(Point("servers", inputs.BASE_SERVERS))
    single = [pp for pp in plan.pools if set(pp.served_rps) == {pp.pool}] \
        or [pp for pp in plan.pools if pp.served_rps.get(pp.pool, 0.0) > 0]
    pp = max(single, key=lambda p: (sum(p.servers.values()), p.served_rps[p.pool]))
    n = sum(pp.servers.values())
    return pp.pool, pp.served_rps[pp.pool] * servers / n, servers


def pool_case(servers: int, ref_limit_s: float) -> ParetoCase:
    st = inputs.setting(Point("servers", inputs.BASE_SERVERS))
    pl = inputs.planner(st)
    pool, load, n = largest_single_class_pool(servers)
    inv = {H100_80GB.name: n}
    model, net, blocks = pool_f.build(pl.ops, pl.segments, pool, {pool: load}, inv, pl.hardware,
                                      routed_ops=pl.routed_ops)
    na = nw.net_arrays(net, blocks)
    case = milp_case(model)

    def decode(x):
        return _measure(pl, st, inv, na, x, (pool,), {pool: load}, "pool")

    def reference():
        prof, hw, slo = st.profile, st.profile.hardware[H100_80GB.name], st.slos[pool]
        exact = pool_optimum_w(prof.table, prof.models[0], H100_80GB.name, hw.gpus_per_server, hw.idle_power_w,
                               pool, slo.ttft_ms, slo.tbt_ms, load, n)
        milp = case.run("highs", inputs.solve_options(ref_limit_s, mip_rel_gap=0.0))
        milp_w = decode(milp.x)[0] if milp.x is not None else float("nan")
        note = ""
        if milp.status != "optimal" or not abs(milp_w - exact) <= AGREE_RTOL * exact:
            note = (f"pool MILP at gap 0 ({milp.status}, {milp_w:.6f} W) disagrees with the exact optimum "
                    f"{exact:.6f} W")
        return {"reference_w": exact, "reference_kind": "exact optimum (tests/reference_solver.py)",
                "reference_status": "optimal", "reference_proven": True, "lower_bound_w": exact,
                "reference_milp_w": milp_w, "reference_milp_status": milp.status}, note

    return ParetoCase(f"pool {pool} servers={n}", case, decode, reference)


def network_case(kind: str, servers: int, ref_limit_s: float) -> ParetoCase:
    """The cluster or monolithic MILP at ``servers`` servers, with the monolithic reference."""
    st = inputs.setting(Point("servers", servers))
    pl = inputs.planner(st)
    demand = {c: v for c, v in st.forecast.items() if v > 0}

    def built(linking: bool):
        """The model as the planner builds it: CP-SAT's without the (linking) rows (registry._linking)."""
        if kind == "cluster":
            return cluster_f.build(pl.ops, pl.routes, demand, st.inventory, pl.hardware, pl.classes,
                                   routed_ops=pl.routed_ops, linking=linking)
        return mono_f.build(pl.ops, pl.segments, pl.routes, demand, st.inventory, pl.hardware, pl.classes,
                            routed_ops=pl.routed_ops, linking=linking)

    heuristics = None if kind == "cluster" else True
    model, net, blocks = built(True)
    na = nw.net_arrays(net, blocks, recipe=kind == "cluster")
    full, bare = milp_case(model, heuristics=heuristics), milp_case(built(False)[0], heuristics=heuristics)
    case = replace(full, run=lambda backend, opts: (bare if backend == "cpsat" else full).run(backend, opts))

    def decode(x):
        return _measure(pl, st, st.inventory, na, x, pl.classes, demand, "monolithic")

    def reference():
        ref = monolithic_reference(servers, ref_limit_s)
        return dict(ref), ""

    return ParetoCase(f"{kind} servers={servers}", case, decode, reference,
                      hierarchy_setting=st if kind == "monolithic" else None)


_MONO_REFS: dict = {}


def monolithic_reference(servers: int, ref_limit_s: float) -> dict:
    """The monolithic MILP at gap 0 (``ref_limit_s``), its plan's true power and the global bound
    (formulations/bound.md) at the ``servers`` point; solved once per (servers, limit)."""
    key = (servers, ref_limit_s)
    if key in _MONO_REFS:
        return _MONO_REFS[key]
    st = inputs.setting(Point("servers", servers))
    pl = inputs.planner(st)
    demand = {c: v for c, v in st.forecast.items() if v > 0}
    model, net, blocks = mono_f.build(pl.ops, pl.segments, pl.routes, demand, st.inventory, pl.hardware, pl.classes,
                                      routed_ops=pl.routed_ops)
    na, case = nw.net_arrays(net, blocks), milp_case(model, heuristics=True)
    t0 = time.perf_counter()
    res = case.run("highs", inputs.solve_options(ref_limit_s, mip_rel_gap=0.0))
    wall = time.perf_counter() - t0
    true_w = float("nan")
    if res.x is not None:
        true_w = _measure(pl, st, st.inventory, na, res.x, pl.classes, demand, "monolithic")[0]
    bound = pl.global_bound(demand)
    out = {"reference_w": true_w, "reference_kind": f"monolithic MILP, mip_rel_gap=0, {ref_limit_s:g} s limit "
                                                    "(the model's optimum; true power of its plan)",
           "reference_status": res.status, "reference_proven": False,
           "lower_bound_w": bound if bound is not None else float("nan"),
           "reference_milp_w": res.objective, "reference_milp_bound": res.bound, "reference_wall_s": wall}
    _MONO_REFS[key] = out
    return out


def _gap(value: float | None, ref: float | None, denom: float | None) -> float:
    if value is None or ref is None or denom is None or not all(map(math.isfinite, (value, ref, denom))):
        return float("nan")
    return (value - ref) / max(abs(denom), 1e-9)


def _solve_rows(pc: ParetoCase, backends, limits, task, failures) -> list[dict]:
    rows = []
    for b in backends:
        pc.case.run(b, inputs.solve_options(1.0))  # warm-up: imports and first-call costs are not the solver's
        for tl in limits:
            t0 = time.perf_counter()
            true_w, chk_ok, chk_msg = float("nan"), None, ""
            try:
                res = pc.case.run(b, inputs.solve_options(tl))
                wall = time.perf_counter() - t0
                out = pc.case.read(res)
                status, obj, bound, gap = out.status, out.objective, out.bound, out.gap
                if status in ("optimal", "feasible"):
                    ok, msg = pc.case.check(res)
                    if not ok:
                        failures.append(f"{pc.label} {b} limit {tl}: {msg}")
                    if res.x is not None:
                        true_w, chk_ok, chk_msg = pc.decode(res.x)
                        if not chk_ok:
                            failures.append(f"{pc.label} {b} limit {tl}: check_plan: {chk_msg}")
            except Exception as exc:  # noqa: BLE001
                wall = time.perf_counter() - t0
                status, obj, bound, gap = "error", None, None, None
                failures.append(f"{pc.label} {b} limit {tl}: {type(exc).__name__}: {exc}")
            rows.append({"scenario": pc.label, "backend": b, "time_limit_s": tl, "solve_s": wall, "status": status,
                         "objective": obj, "bound": bound, "gap": gap, "true_objective": true_w,
                         "check_ok": chk_ok, "check_msg": chk_msg})
            task.advance()
    return rows


def _hierarchy_rows(pc: ParetoCase, backends, limits, task, failures) -> list[dict]:
    st, rows = pc.hierarchy_setting, []
    for b in backends:
        for tl in limits:
            pl = inputs.planner(st, b, inputs.solve_options(tl))
            true_w, chk_ok, chk_msg, gap_err = float("nan"), None, "", float("nan")
            try:
                run_hierarchy(pl, st.forecast)  # warm the planner's model caches
                t0 = time.perf_counter()
                plan, _, _, _ = run_hierarchy(pl, st.forecast)
                wall = time.perf_counter() - t0
                r = plan.report
                status, obj, bound, gap = r.status.value, r.objective, r.bound, r.gap
                chk = check_plan(st.profile, st.inventory, st.slos, plan, forecast=st.forecast, options=pl.options)
                true_w, chk_ok, chk_msg = chk.power_w, chk.ok, "; ".join(chk.violations[:3])
                if not chk.ok:
                    failures.append(f"{pc.label} hierarchy {b} limit {tl}: check_plan: {chk_msg}")
                if bound is not None and gap is not None:
                    gap_err = gap - max(0.0, true_w - bound) / true_w
            except Exception as exc:  # noqa: BLE001  (e.g. no solution within a 1 ms limit)
                wall, status, obj, bound, gap = float("nan"), "no_solution", None, None, None
                msg = f"{type(exc).__name__}: {exc}"
                if "time limit" not in msg:
                    failures.append(f"{pc.label} hierarchy {b} limit {tl}: {msg[:200]}")
            rows.append({"scenario": pc.label, "backend": f"hierarchy-{b}", "time_limit_s": tl, "solve_s": wall,
                         "status": status, "objective": obj, "bound": bound, "gap": gap, "true_objective": true_w,
                         "check_ok": chk_ok, "check_msg": chk_msg, "gap_recomputed_error": gap_err})
            task.advance()
    return rows


@register_study("pareto")
def run(ctx) -> list[str]:
    """Time against optimality: true power's gap to the exact optimum (or a valid bound) vs solve time."""
    limits = QUICK_LIMITS if ctx.quick else LIMITS
    cases = QUICK_CASES if ctx.quick else CASES
    ref_limit = QUICK_REF_LIMIT_S if ctx.quick else REF_LIMIT_S
    milp_bs = [b for b in MILP_BACKENDS if ctx.backend_ok(b)]
    hier_bs = [b for b in HIER_BACKENDS if ctx.backend_ok(b)]
    n_mono = sum(1 for name, _ in cases if name == "monolithic")
    task = ctx.task("pareto", len(cases) * (len(milp_bs) * len(limits) + 1) + n_mono * len(hier_bs) * len(limits))
    rows, failures = [], []
    for name, servers in cases:
        pc = pool_case(servers, ref_limit) if name == "pool" else network_case(name, servers, ref_limit)
        ref, note = pc.reference()
        if note:
            failures.append(f"{pc.label}: {note}")
        task.advance()
        part = _solve_rows(pc, milp_bs, limits, task, failures)
        if pc.hierarchy_setting is not None:
            part += _hierarchy_rows(pc, hier_bs, limits, task, failures)
        found = [r["true_objective"] for r in part if math.isfinite(r["true_objective"])]
        if math.isfinite(ref["reference_w"]):
            found.append(ref["reference_w"])
        best = min(found, default=float("nan"))
        lb = ref["lower_bound_w"]
        if math.isfinite(lb) and best < lb * (1 - 1e-6):  # a plan below a valid bound: the plan or the bound is wrong
            failures.append(f"{pc.label}: a plan of {best:.6f} W is below the lower bound {lb:.6f} W")
        for r in part:
            r.update(ref)
            r["best_true_w"] = best
            t = r["true_objective"]
            r["gap_to_exact"] = _gap(t, ref["reference_w"], ref["reference_w"]) if ref["reference_proven"] else float("nan")
            r["gap_to_reference"] = _gap(t, ref["reference_w"], ref["reference_w"])
            r["gap_to_bound"] = _gap(t, lb, t)
        rows.extend(part)
    df = pd.DataFrame(rows)
    ctx.write_csv("pareto", df)
    if ctx.plots and len(df):
        from benchmarks import plots

        plots.plot_pareto(df, ctx.figure_path("pareto"))
    return failures
