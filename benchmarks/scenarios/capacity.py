"""Capacity planning (formulations/capacity.md): solve time and gap vs horizon, hardware types and
classes on the default profile, and Mélange-format instances against Mélange's own model on
PuLP + CBC in the same process.

Rows of ``capacity.csv``: ``part`` (horizon | hardware | classes | melange), the size,
``solve_s`` (median wall of ``plan_capacity`` over the repeats, build included), ``status,
objective, bound, gap``. ``classes`` keeps the load of the first k classes of the 24-period,
3-type problem. Mélange rows add ``cbc_s`` (wall of building and solving Mélange's
binary-assignment model with PuLP's CBC once, time-limited: 60 s, 10 s quick), ``cbc_status``,
``cbc_objective``, ``cbc_time_limited``, ``cbc_above_optimum`` (CBC's answer costs more than our
proven optimum) and ``speedup`` = cbc_s / solve_s. The instances are synthetic at paper scale: 4
GPU types with costs of the Mélange paper's GPUs (L4, A10G, A100, H100 per hour), per-bucket
throughputs decreasing with the bucket's input and output sizes, random per-GPU factors (seeded),
6x6 and 10x10 buckets, 1..1000 req/s, slice factors 1..16. Without ``pulp`` installed the Mélange
comparison is skipped (our solve still runs).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd

from benchmarks.registry import register_study
from dynaplan.errors import NoSolutionError

MELANGE_COSTS = {"L4": 0.7, "A10G": 1.01, "A100-80GB": 3.67, "H100": 7.5}
SPEED = {"L4": 1.0, "A10G": 1.3, "A100-80GB": 5.0, "H100": 9.0}


def melange_instance(buckets: int, rate: float, slices: int, seed: int) -> dict:
    """A Mélange config of ``buckets`` x ``buckets`` buckets (throughput in req/s per GPU)."""
    rng = np.random.default_rng(seed)
    size = np.arange(1, buckets + 1, dtype=float)
    base = 40.0 / (size[:, None] * 0.6 + size[None, :])  # shorter requests: more req/s
    info = {}
    for g, cost in MELANGE_COSTS.items():
        tp = base * SPEED[g] * rng.uniform(0.7, 1.3, base.shape)
        info[g] = {"cost": cost, "tputs": np.round(tp, 3).tolist()}
    dist = rng.dirichlet(np.ones(buckets * buckets)).reshape(buckets, buckets)
    return {"gpu_info": info, "workload_distribution": np.round(dist, 6).tolist(), "total_request_rate": rate,
            "slice_factor": slices}


def melange_pulp(cfg: dict, time_limit_s: float | None = None) -> tuple[str, float | None]:
    """Mélange's own model (binary slice-to-GPU assignment, integer GPU counts) on PuLP + CBC,
    built and solved as Mélange does (PuLP's default CBC, its default gap), optionally time-limited."""
    import pulp

    dist = np.asarray(cfg["workload_distribution"], float).ravel()
    rates = dist / dist.sum() * cfg["total_request_rate"]
    s = cfg["slice_factor"]
    gpus = list(cfg["gpu_info"])
    slices = [(b, rates[b] / s) for b in range(rates.size) for _ in range(s)]
    prob = pulp.LpProblem("GpuAllocation", pulp.LpMinimize)
    x = [[pulp.LpVariable(f"x_{i}_{j}", cat=pulp.LpBinary) for j in range(len(gpus))] for i in range(len(slices))]
    y = [pulp.LpVariable(f"y_{j}", lowBound=0, cat=pulp.LpInteger) for j in range(len(gpus))]
    prob += pulp.lpSum(cfg["gpu_info"][g]["cost"] * y[j] for j, g in enumerate(gpus))
    for i in range(len(slices)):
        prob += pulp.lpSum(x[i]) == 1
    for j, g in enumerate(gpus):
        tput = np.asarray(cfg["gpu_info"][g]["tputs"], float).ravel()
        prob += pulp.lpSum(x[i][j] * (load / tput[b]) for i, (b, load) in enumerate(slices)) <= y[j]
    prob.solve(pulp.PULP_CBC_CMD(msg=0, timeLimit=time_limit_s))
    return pulp.LpStatus[prob.status].lower(), pulp.value(prob.objective)


def _median_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        try:
            out = fn()
        except NoSolutionError as exc:  # a time-limited solve that found nothing: a valid outcome
            out = exc
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _row(part, size, plan, wall, **kw) -> dict:
    if isinstance(plan, NoSolutionError):
        return {"part": part, "size": size, "solve_s": wall, "status": "no_solution", "objective": None,
                "bound": None, "gap": None, "fleet": "", **kw}
    r = plan.report
    return {"part": part, "size": size, "solve_s": wall, "status": r.status.value, "objective": r.objective,
            "bound": r.bound, "gap": r.gap, "fleet": str(plan.fleet), **kw}


@register_study("capacity")
def run(ctx) -> list[str]:
    """Capacity planning: horizon, hardware types and Mélange instances vs Mélange's model on PuLP + CBC."""
    from dynaplan.capacity import capacity_problem, plan_capacity, read_melange
    from dynaplan.profiles import Profile

    quick = ctx.quick
    repeats = ctx.repeats or (1 if quick else 3)
    tl = ctx.time_limit_s or (10.0 if quick else 60.0)
    rows, failures = [], []
    prof = Profile.default()
    horizons = (2,) if quick else (1, 6, 24, 72, 168)
    types = () if quick else (1, 2, 3, 4)
    all_hw = ["h100-80gb", "a100-80gb", "h200-141gb", "b200-180gb"]
    mel = ([(6, 10.0, 1, 0), (6, 100.0, 4, 1)] if quick else
           [(b, r, s, seed) for b in (6, 10) for r in (1.0, 10.0, 100.0, 1000.0) for s in (1, 4, 16)
            for seed in (0,)])
    classes = () if quick else (1, 3, 6, 9)
    cbc_limit = 10.0 if quick else 60.0
    task = ctx.task("capacity", len(horizons) + len(types) + len(classes) + len(mel))
    for n in horizons:  # 9 classes, 3 types, the default profile (quick: 2 types, 40 req/s at peak)
        p = capacity_problem(profile=prof, peak_rps=40.0 if quick else 200.0, periods=n,
                             hardware=all_hw[:2 if quick else 3])
        wall, plan = _median_time(lambda: plan_capacity(p, time_limit_s=tl), repeats)
        rows.append(_row("horizon", n, plan, wall, classes=len(p.classes), types=3))
        task.advance()
    for k in types:  # 24 periods
        p = capacity_problem(profile=prof, peak_rps=200.0, periods=24, hardware=all_hw[:k])
        wall, plan = _median_time(lambda: plan_capacity(p, time_limit_s=tl), repeats)
        rows.append(_row("hardware", k, plan, wall, classes=len(p.classes), types=k))
        task.advance()
    for k in classes:  # 24 periods, 3 types, the load of the first k classes only
        p = capacity_problem(profile=prof, peak_rps=200.0, periods=24, hardware=all_hw[:3])
        d = p.demand()
        d[:, k:] = 0.0
        p = p.model_copy(update={"demand_rps": tuple(map(tuple, d.tolist()))})
        wall, plan = _median_time(lambda: plan_capacity(p, time_limit_s=tl), repeats)
        rows.append(_row("classes", k, plan, wall, classes=k, types=3))
        task.advance()
    try:
        import pulp  # noqa: F401
        have_pulp = True
    except ImportError:
        have_pulp = False
        ctx.log("capacity: pulp not installed; the Mélange comparison with PuLP + CBC is skipped")
    for b, rate, s, seed in mel:
        cfg = melange_instance(b, rate, s, seed)
        wall, plan = _median_time(lambda: plan_capacity(read_melange(cfg, assignment="sliced"), time_limit_s=tl),
                                  repeats)
        extra = {"buckets": f"{b}x{b}", "rate_rps": rate, "slice_factor": s}
        status = plan.report.status.value if not isinstance(plan, NoSolutionError) else "no_solution"
        if have_pulp:
            # CBC once (its runs take up to the limit); ours is the median of the repeats
            cbc_s, (st, obj) = _median_time(lambda: melange_pulp(cfg, cbc_limit), 1)
            ours = None if isinstance(plan, NoSolutionError) else plan.report.objective
            extra |= {"cbc_s": cbc_s, "cbc_status": st, "cbc_objective": obj, "speedup": cbc_s / wall,
                      "cbc_time_limited": cbc_s >= cbc_limit * 0.98,
                      "cbc_above_optimum": bool(status == "optimal" and obj is not None and obj > ours + 1e-6)}
            if status == "optimal" and obj is not None and obj < ours - 1e-6:
                failures.append(f"melange {b}x{b} {rate} req/s S={s}: CBC found {obj} below our 'optimal' {ours}")
        if status not in ("optimal", "no_solution"):
            failures.append(f"melange {b}x{b} {rate} req/s S={s}: not proven optimal ({status})")
        rows.append(_row("melange", f"{b}x{b}/{rate:g}/{s}", plan, wall, **extra))
        task.advance()
    df = pd.DataFrame(rows)
    ctx.write_csv("capacity", df)
    m = df[df["part"] == "melange"]
    if "speedup" in m and len(m):
        ctx.log(f"capacity: Mélange instances proven optimal {int((m['status'] == 'optimal').sum())}/{len(m)}, "
                f"median speed-up vs PuLP + CBC {m['speedup'].median():.1f}x (min {m['speedup'].min():.1f}x, "
                f"max {m['speedup'].max():.1f}x); CBC time-limited {int(m['cbc_time_limited'].sum())}, "
                f"CBC 'optimal' above the optimum {int(((m['cbc_status'] == 'optimal') & m['cbc_above_optimum']).sum())}")
    for _, r in df[df["part"] != "melange"].iterrows():
        gap = "-" if r["gap"] is None or r["gap"] != r["gap"] else f"{r['gap']:.3%}"
        ctx.log(f"capacity: {r['part']}={r['size']}: {r['solve_s']:.2f} s, {r['status']}, gap {gap}")
    return failures
