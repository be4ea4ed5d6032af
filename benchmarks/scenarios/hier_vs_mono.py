"""Hierarchical vs monolithic energy and time on a corpus of forecasts (target c).

Corpus: the Azure conversation and code traces' 1-minute peaks per class at 10, 40, 400, 4,000
and 12,500 servers (45 req/s mean per 40 servers), random class mixes (Dirichlet(1), the
conversation peak's total load) at 40 and 400 servers, and ``RANDOM_CASES`` random forecasts on
2-400 servers (:func:`random_forecasts`); default profile, H100 inventory. Every row also has
the hierarchical plan's status and gap against the global bound (formulations/bound.md) and the
bound's time as a share of the plan call's.

For each forecast: the hierarchical plan (HiGHS) and the monolithic plan (HiGHS, 10 s limit
unless ``--time-limit`` says otherwise, 5 s with ``--quick``; the cached optima of
``results/mono_optima.csv`` were solved with 10 s), both checked with ``check_plan``; energy ratio (plan power, i.e. the
profile's power at each instance's load), wall times, the monolithic plan's status, gap and
bound against the global bound, and the monolithic MILP's *own* status, objective and dual bound
(``mono_milp_*``: ``optimal`` there means the monolithic optimum is proven within 1e-4;
``energy_ratio_vs_milp_bound`` is the ratio against the MILP's dual bound, an upper bound on the
true loss when the monolithic solve stopped early), servers and idle-GPU power of both.

Mixed instances: the planner prices an instance serving a spilled class with the *host pool
class's* power curve (formulations/pool.md). ``energy_ratio_mix`` re-prices both plans class by
class (:func:`~benchmarks.scenarios.common.mix_aware_power_w`) and ``*_foreign_share`` is the
share of load each plan serves outside its own class's pool: where they differ a lot from the
planner's own figures, the monolithic optimum exploits that pricing (see RESULTS.md).

Where the loss comes from: ``pool_reopt_ratio`` re-plans every pool with the monolithic plan's
routed loads and servers through ``Planner.plan_pool`` (the hierarchy's pool level): a ratio of
1 means the pool level is exact given the allotment, so the whole loss is the cluster level's
allotment and routing (whole-server recipes, one configuration per pool and hardware, chord power).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dynaplan.domain.hardware import H100_80GB
from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import DynaplanError, NoSolutionError
from dynaplan.planning import Planner

from benchmarks import inputs
from benchmarks.registry import register_study
from benchmarks.scenarios.common import check_plans, mix_aware_power_w, record_milp_reports

SCALES = (10, 40, 400, 4000, 12500)
RANDOM_CASES = 60
MONO_LIMIT_S = 10.0  # the monolithic reference's time limit (s) unless --time-limit is given
MIXES = ((0, 40), (1, 40), (2, 40), (3, 40), (0, 400), (1, 400))


def random_forecasts(count: int, seed: int = 11) -> list[tuple[int, dict[str, float]]]:
    """(servers, forecast) pairs: servers log-uniform on 2-400, 1 to min(9, servers) classes
    with load (a random subset), a Dirichlet(1) split of the conversation peak's total load for
    that many servers."""
    rng = np.random.default_rng(seed)
    names = list(inputs.forecast(40))
    out = []
    for _ in range(count):
        n = int(round(np.exp(rng.uniform(np.log(2), np.log(400)))))
        k = int(rng.integers(1, min(len(names), n) + 1))
        classes = rng.choice(names, size=k, replace=False)
        total = sum(inputs.forecast(n).values())
        out.append((n, {str(c): float(total * w) for c, w in zip(classes, rng.dirichlet(np.ones(k)))}))
    return out


def corpus(quick: bool) -> list[tuple[str, int, dict]]:
    """(case name, servers, forecast) of every corpus entry."""
    if quick:
        return [("conv@12500", 12500, inputs.forecast(12500, inputs.CONV))]
    out = []
    for name, short in ((inputs.CONV, "conv"), (inputs.CODE, "code")):
        out += [(f"{short}@{n}", n, inputs.forecast(n, name)) for n in SCALES]
    out += [(f"mix{seed}@{n}", n, inputs.dirichlet_forecast(seed, n)) for seed, n in MIXES]
    out += [(f"rand{seed}@{n}", n, f) for seed, (n, f) in enumerate(random_forecasts(RANDOM_CASES))]
    return out


def _idle_w(plan) -> float:
    return float(sum(pp.idle_power_w for pp in plan.pools))


MONO_CACHE = Path(__file__).resolve().parents[1] / "results" / "mono_optima.csv"
# the monolithic model's version: a cached optimum of another version is solved again. 2: routed
# classes may use every SLO-feasible point of a pool's configuration (formulations/pool.md,
# "Pre-filtering"; version 1 offered only the points the dominance pruning kept)
MONO_MODEL = 2


def _forecast_key(forecast: dict) -> str:
    return json.dumps({k: round(float(v), 9) for k, v in sorted(forecast.items())}, sort_keys=True)


def mono_side(name: str, servers: int, forecast: dict, mono_limit_s: float) -> dict:
    """The monolithic optimum of one corpus entry: everything the comparison needs from it.

    It depends on the profile, the inventory and the forecast only, not on the hierarchy, so
    it is cached in ``results/mono_optima.csv`` (:func:`load_mono_cache`). ``mono_pools_json``
    holds each pool's routed loads and servers (for ``pool_reopt_ratio`` and ``allotment_diff``).
    """
    prof = inputs.default_profile()
    inv = {H100_80GB.name: servers}
    mpl = Planner(prof, inv, DEFAULT_SLOS, solve_options=inputs.solve_options(mono_limit_s))
    row: dict = {"case": name, "servers": servers, "forecast": _forecast_key(forecast),
                 "mono_model": MONO_MODEL, "mono_time_limit_s": mono_limit_s,
                 "mono_date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                 "mono_machine": f"{platform.machine()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}"}
    milp_reports = record_milp_reports(mpl)  # the monolithic MILP's own report
    t0 = time.perf_counter()
    try:
        mono = mpl.plan_monolithic(forecast)
    except NoSolutionError as exc:  # a time-limited reference without a solution: recorded, not a failure
        row.update({"mono_wall_s": time.perf_counter() - t0, "mono_status": "no_solution", "mono_msg": str(exc)[:300],
                    "mono_check_ok": True, "mono_check_msg": ""})
        return row
    row["mono_wall_s"] = time.perf_counter() - t0
    rep = milp_reports[-1]
    mmix, mforeign = mix_aware_power_w(prof, DEFAULT_SLOS, mono)
    ok_m, msg_m = check_plans(prof, DEFAULT_SLOS, inv, mono)
    row.update({"mono_milp_status": rep.status.value, "mono_milp_objective": rep.objective,
                "mono_milp_bound": rep.bound, "mono_milp_gap": rep.gap,
                "mono_power_w": mono.power_w, "mono_objective": mono.report.objective,
                "mono_bound": mono.report.bound, "mono_status": mono.report.status.value, "mono_gap": mono.report.gap,
                "mono_servers": sum(mono.servers.values()), "mono_idle_w": _idle_w(mono),
                "mono_pools": len(mono.pools), "mono_power_mix_w": mmix, "mono_foreign_share": mforeign,
                "mono_check_ok": ok_m, "mono_check_msg": msg_m,
                "mono_pools_json": json.dumps([[pp.pool, dict(pp.served_rps), dict(pp.servers)] for pp in mono.pools])})
    return row


def load_mono_cache(path: Path = MONO_CACHE) -> dict[str, dict]:
    """Cached monolithic optima by case (empty if there is no cache)."""
    if not path.exists():
        return {}
    df = pd.read_csv(path, keep_default_na=True)
    return {r["case"]: {k: v for k, v in r.items() if not (isinstance(v, float) and np.isnan(v))}
            for r in df.to_dict("records")}


def cached_mono(cache: dict, name: str, forecast: dict, mono_limit_s: float) -> dict | None:
    """The cached entry if it is for this forecast and at least as good as a solve with this limit
    would be (proven optimal, or solved with a limit >= ``mono_limit_s``)."""
    e = cache.get(name)
    if e is None or e.get("forecast") != _forecast_key(forecast) or int(e.get("mono_model", 1)) != MONO_MODEL:
        return None
    if e.get("mono_milp_status") == "optimal" or float(e.get("mono_time_limit_s", 0)) >= mono_limit_s:
        return e
    return None


def compare(name: str, servers: int, forecast: dict, mono_limit_s: float, mono: dict | None = None) -> dict:
    """One corpus entry: the hierarchical plan against the monolithic optimum (``mono``: a
    :func:`mono_side` row, cached or not; solved here if None)."""
    prof = inputs.default_profile()
    inv = {H100_80GB.name: servers}
    if mono is None:
        mono = mono_side(name, servers, forecast, mono_limit_s)
    row: dict = {"case": name, "servers": servers, "load_rps": sum(forecast.values())}
    hpl = Planner(prof, inv, DEFAULT_SLOS, solve_options=inputs.solve_options(10.0))
    hpl.plan(forecast)  # warm the hierarchy's model caches (the steady state the scheduler sees)
    t0 = time.perf_counter()
    hier = hpl.plan(forecast)
    row["hier_wall_s"] = time.perf_counter() - t0
    # the global bound (formulations/bound.md) runs inside every plan call: its share of the time
    row["bound_wall_s"] = hpl.bound_time_s
    row["bound_time_share"] = hpl.bound_time_s / row["hier_wall_s"]
    row["hier_status"] = hier.report.status.value
    row["hier_gap_vs_global_bound"] = hier.report.gap
    row["global_bound_w"] = hier.report.bound
    # the reported gap against the one recomputed from the plan's true power and its bound
    if hier.report.bound is not None:
        row["hier_gap_recomputed"] = (hier.power_w - hier.report.bound) / hier.power_w
        row["hier_gap_understated"] = (row["hier_gap_recomputed"] - (hier.report.gap or 0.0)) > 1e-6
    ok_h, msg_h = check_plans(prof, DEFAULT_SLOS, inv, hier)
    row.update({"hier_power_w": hier.power_w, "hier_objective": hier.report.objective,
                "hier_servers": sum(hier.servers.values()), "hier_idle_w": _idle_w(hier),
                "hier_pools": len(hier.pools), "hier_notes": " | ".join(hier.notes)})
    row.update({k: v for k, v in mono.items() if k not in ("case", "servers", "forecast", "mono_pools_json")})
    if mono.get("mono_status") == "no_solution" or "mono_power_w" not in mono:
        row.update({"check_ok": ok_h, "check_msg": msg_h and f"hier: {msg_h}"})
        return row
    mpw = float(mono["mono_power_w"])
    # against the truth: a proven MILP optimum is the exact reference; otherwise the best of the
    # two plans is only an upper bound on it, and the MILP's dual bound a lower one
    proven = mono.get("mono_milp_status") == "optimal"
    row.update({"mono_proven": proven, "energy_ratio": hier.power_w / mpw,
                "energy_ratio_vs_milp_bound": (hier.power_w / float(mono["mono_milp_bound"])
                                               if mono.get("mono_milp_bound") else float("nan")),
                "objective_ratio": hier.report.objective / float(mono["mono_objective"]),
                "energy_ratio_vs_bound": (hier.report.objective / float(mono["mono_bound"])
                                          if mono.get("mono_bound") else float("nan")),
                "time_ratio_mono_over_hier": float(mono["mono_wall_s"]) / row["hier_wall_s"]})
    hmix, hforeign = mix_aware_power_w(prof, DEFAULT_SLOS, hier)
    row.update({"hier_power_mix_w": hmix, "energy_ratio_mix": hmix / float(mono["mono_power_mix_w"]),
                "hier_foreign_share": hforeign})
    ok_m, msg_m = bool(mono.get("mono_check_ok", True)), str(mono.get("mono_check_msg", "") or "")
    row["check_ok"] = ok_h and ok_m
    row["check_msg"] = "; ".join(m for m in (msg_h and f"hier: {msg_h}", msg_m and f"mono: {msg_m}") if m)
    # the hierarchy's pool level on the monolithic allotment and routing
    mpools = json.loads(mono["mono_pools_json"])
    reopt = 0.0
    try:
        for pool, served, srv in mpools:
            reopt += hpl.plan_pool(pool, served, srv).power_w
        row["pool_reopt_power_w"] = reopt
        row["pool_reopt_ratio"] = reopt / mpw
    except DynaplanError as exc:
        row["pool_reopt_power_w"] = float("nan")
        row["pool_reopt_ratio"] = float("nan")
        row["check_msg"] += f" pool re-opt failed: {exc}"
    hsrv = {pp.pool: sum(pp.servers.values()) for pp in hier.pools}
    msrv = {pool: sum(srv.values()) for pool, _, srv in mpools}
    row["allotment_diff"] = "; ".join(f"{p}:{hsrv.get(p, 0)}/{msrv.get(p, 0)}" for p in hpl.classes
                                      if p in hsrv or p in msrv)
    return row


@register_study("hier_vs_mono")
def run(ctx) -> list[str]:
    """Hierarchical vs monolithic energy and time on a corpus of forecasts (target c).

    The monolithic optima come from ``results/mono_optima.csv`` when it holds the case (same
    forecast, proven optimal or solved with at least this time limit); missing ones are solved
    and added to it (not in ``--quick`` mode, which neither reads nor writes the cache).
    """
    entries = corpus(ctx.quick)
    limit = ctx.time_limit_s or (5.0 if ctx.quick else MONO_LIMIT_S)
    task = ctx.task("hier_vs_mono", len(entries))
    cache = {} if ctx.quick else load_mono_cache()
    rows, failures, fresh = [], [], 0
    for name, servers, f in entries:
        mono = cached_mono(cache, name, f, limit)
        try:
            if mono is None:
                mono = mono_side(name, servers, f, limit)
                if not ctx.quick:
                    cache[name] = mono
                    fresh += 1
                    _write_cache(cache)
            row = compare(name, servers, f, limit, mono)
        except DynaplanError as exc:
            row = {"case": name, "servers": servers, "load_rps": sum(f.values()), "check_ok": False,
                   "check_msg": f"{type(exc).__name__}: {exc}"[:300]}
        if not row["check_ok"]:
            failures.append(f"{name}: {row['check_msg']}")
        if row.get("hier_gap_understated"):
            failures.append(f"{name}: reported gap {row['hier_gap_vs_global_bound']:.3g} below the recomputed "
                            f"{row['hier_gap_recomputed']:.3g}")
        rows.append(row)
        task.advance()
    ctx.log(f"hier_vs_mono: {len(entries) - fresh} monolithic optima from {MONO_CACHE.name}, {fresh} solved")
    df = pd.DataFrame(rows)
    ctx.write_csv("hier_vs_mono", df)
    if ctx.plots and "energy_ratio" in df:
        from benchmarks import plots

        plots.plot_hier_vs_mono(df.dropna(subset=["energy_ratio"]), ctx.figure_path("hier_vs_mono"))
    return failures


def _write_cache(cache: dict) -> None:
    pd.DataFrame(list(cache.values())).to_csv(MONO_CACHE, index=False, float_format="%.10g")
