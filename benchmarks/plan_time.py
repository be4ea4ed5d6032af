"""Where a hierarchical plan's time goes, and what the fast options cost in plan quality.

    python -m benchmarks.plan_time parts 40                 # per call: mixed-pool / single-pool / cluster solves
    python -m benchmarks.plan_time parts 40 time_budget_s=0 # the same with PlannerOptions fields set
    python -m benchmarks.plan_time quality time_budget_s=0  # the hier_vs_mono corpus with those options
    python -m benchmarks.plan_time mixed 40                 # two-class search against the pool MILP

``parts``: the targets study's 12 epoch forecasts at N servers, a warm-up round, then 3 rounds;
per ``plan()`` call the time in ``Planner._plan_pool`` for pools serving a spilled class
("mixed") and for the others, and in ``Planner._allot`` (the cluster level); medians and means.
Then the mixed-pool solves of one round: how many, their median time, the share inside
``Planner._solve`` (the solver call), and their sizes (servers, loaded classes).

``quality``: every forecast of ``benchmarks.scenarios.hier_vs_mono.corpus`` planned with the
given options against the cached monolithic optima (``results/mono_optima.csv``, solved where
missing): the counts of the hierarchy-quality targets (RESULTS.md, "Hierarchy timing").

``mixed``: the requests of pools serving a spilled class that one pass of ``plan()`` over the 12
epoch forecasts at N servers makes (fresh planner), each answered by the two-class search
(formulations/pool.md, "Two-class pools") and by the pool MILP (HiGHS, gap 1e-9, lean root, no
start): how often the search's model price equals the MILP's optimum (1e-7 relative), the worst
excess, the families that won, the requests refused as beyond capacity (and whether the MILP
agrees), and the median times of both, interleaved, 5 rounds (ratio in the same run).
"""

from __future__ import annotations

import collections
import functools
import sys
import time

import numpy as np


def _options(args: list[str]) -> dict:
    """``field=value`` arguments as a dict of strings (PlannerOptions validates and converts them)."""
    return dict(a.partition("=")[::2] for a in args)


def parts(n_servers: int, fields: dict) -> None:
    from benchmarks import inputs
    from benchmarks.registry import Point
    from dynaplan.planning import PlannerOptions
    from dynaplan.planning import planner as P

    st = inputs.setting(Point("servers", n_servers))
    forecasts = inputs.epoch_forecasts(n_servers)
    options = PlannerOptions.model_validate({**st.options.model_dump(), **fields})
    pl = P.Planner(st.profile, st.inventory, st.slos, options=options, solve_options=inputs.solve_options())
    for f in forecasts:
        pl.plan(f)
    cur: dict = collections.defaultdict(float)
    mixed: list[tuple] = []
    plan_pool, allot, solve = P.Planner._plan_pool, P.Planner._allot, P.Planner._solve

    def timed_pool(self, pool, loads, servers, *a, **k):
        inner = cur["_solve"]
        t = time.perf_counter()
        got = plan_pool(self, pool, loads, servers, *a, **k)
        dt = time.perf_counter() - t
        kind = "mixed" if any(c != pool and v > 0 for c, v in loads.items()) else "single"
        cur[kind] += dt
        cur[f"n_{kind}"] += 1
        if kind == "mixed":
            mixed.append((dt, cur["_solve"] - inner, sum(servers.values()), sum(v > 0 for v in loads.values())))
        return got

    def timed_allot(self, *a, **k):
        t = time.perf_counter()
        got = allot(self, *a, **k)
        cur["cluster"] += time.perf_counter() - t
        cur["n_cluster"] += 1
        return got

    def timed_solve(self, *a, **k):
        t = time.perf_counter()
        got = solve(self, *a, **k)
        cur["_solve"] += time.perf_counter() - t
        return got

    P.Planner._plan_pool, P.Planner._allot, P.Planner._solve = timed_pool, timed_allot, timed_solve
    rows = []
    try:
        for _ in range(3):
            for f in forecasts:
                cur.clear()
                t = time.perf_counter()
                pl.plan(f)
                cur["total"] = time.perf_counter() - t
                rows.append(dict(cur))
    finally:
        P.Planner._plan_pool, P.Planner._allot, P.Planner._solve = plan_pool, allot, solve
    print(f"{n_servers} servers, options {fields or 'default'}: {len(rows)} calls")
    for key in ("total", "cluster", "n_cluster", "mixed", "n_mixed", "single", "n_single"):
        v = np.array([r.get(key, 0.0) for r in rows])
        scale, unit = (1, "") if key.startswith("n_") else (1e3, " ms")
        print(f"  {key:10s} median {np.median(v) * scale:8.2f}{unit}   mean {v.mean() * scale:8.2f}{unit}")
    one = mixed[: len(mixed) // 3]
    if one:
        dt, inner, srv, ncls = (np.array(c) for c in zip(*one))
        print(f"  mixed-pool solves of one round: {len(one)}; median {np.median(dt) * 1e3:.2f} ms, "
              f"{np.median(inner) * 1e3:.2f} ms of it in Planner._solve; servers {sorted(collections.Counter(srv.tolist()).items())}, "
              f"loaded classes {sorted(collections.Counter(ncls.tolist()).items())}")


def quality(fields: dict) -> None:
    import pandas as pd

    from benchmarks.scenarios import hier_vs_mono as H
    from dynaplan.planning import PlannerOptions

    cache = H.load_mono_cache()
    rows = []
    base = H.Planner
    H.Planner = functools.partial(base, options=PlannerOptions.model_validate(fields))
    try:
        for name, servers, f in H.corpus(False):
            mono = H.cached_mono(cache, name, f, H.MONO_LIMIT_S)
            rows.append(H.compare(name, servers, f, H.MONO_LIMIT_S, mono))
    finally:
        H.Planner = base
    d = pd.DataFrame(rows)
    print(f"options {fields or 'default'}")
    for label, x in (("random", d[d.case.str.startswith("rand")]), ("trace", d[~d.case.str.startswith("rand")])):
        worst = x.loc[x.energy_ratio.idxmax()]
        print(f"  {label}: {len(x)} forecasts, within 1% {int((x.energy_ratio <= 1.01).sum())}, "
              f"above 3% {int((x.energy_ratio > 1.03).sum())}, worst {worst.energy_ratio:.4f} ({worst.case}), "
              f"checks {'pass' if x.check_ok.all() else 'FAIL'}")


def mixed(n_servers: int) -> None:
    from benchmarks import inputs
    from benchmarks.registry import Point
    from dynaplan.errors import InfeasibleError
    from dynaplan.planning import planner as P
    from dynaplan.planning.registry import ModelKind

    st = inputs.setting(Point("servers", n_servers))
    pl = P.Planner(st.profile, st.inventory, st.slos, options=st.options, solve_options=inputs.solve_options())
    reqs = []
    orig = P.Planner._plan_pool

    def record(self, pool, loads, servers, *a, **k):
        if any(c != pool and v > 0 for c, v in loads.items()):
            reqs.append((pool, dict(loads), {h: int(v) for h, v in servers.items()}))
        return orig(self, pool, loads, servers, *a, **k)

    P.Planner._plan_pool = record
    try:
        for f in inputs.epoch_forecasts(n_servers):
            pl.plan(f)
    finally:
        P.Planner._plan_pool = orig
    excess, families, refused, agree, t_search, t_milp, none = [], collections.Counter(), 0, 0, [], [], 0
    for rnd in range(5):
        for pool, loads, srv in reqs:
            cm = pl._model(ModelKind.POOL, pool)
            t = time.perf_counter()
            try:
                got = pl._search_solution(cm, pool, loads, srv)
                out = "found" if got is not None else "none"
            except InfeasibleError:
                got, out = None, "refused"
            t_search.append(time.perf_counter() - t)
            t = time.perf_counter()
            x, rep = pl._solve_cached(cm, loads, srv, gap=1e-9, lean_root=True)
            t_milp.append(time.perf_counter() - t)
            if rnd:
                continue
            if out == "refused":
                refused += 1
                agree += rep.objective is None
            elif out == "none":
                none += 1
            else:
                families[got[1].family] += 1
                excess.append(got[1].value_w / rep.objective - 1)
    ex = np.array(excess)
    ts, tm = np.median(t_search) * 1e3, np.median(t_milp) * 1e3
    print(f"{n_servers} servers: {len(reqs)} mixed-pool requests; search found {len(ex)}, at the MILP's optimum "
          f"(1e-7) {int((ex <= 1e-7).sum())}, below it {int((ex < -1e-7).sum())}, worst {ex.max():+.2e}; "
          f"families {dict(families)}; refused as beyond capacity {refused} (MILP infeasible too: {agree}); "
          f"no answer {none}")
    print(f"  median per request: search {ts:.2f} ms, MILP {tm:.2f} ms, ratio {ts / tm:.3f}")


if __name__ == "__main__":
    what, rest = sys.argv[1], sys.argv[2:]
    if what == "parts":
        parts(int(rest[0]), _options(rest[1:]))
    elif what == "quality":
        quality(_options(rest))
    elif what == "mixed":
        mixed(int(rest[0]))
    else:
        raise SystemExit(__doc__)
