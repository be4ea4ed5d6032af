"""Where a hierarchical plan's time goes, and what the fast options cost in plan quality.

    python -m benchmarks.plan_time parts 40                 # per call: mixed-pool / single-pool / cluster solves
    python -m benchmarks.plan_time parts 40 time_budget_s=0 # the same with PlannerOptions fields set
    python -m benchmarks.plan_time quality time_budget_s=0  # the hier_vs_mono corpus with those options

``parts``: the targets study's 12 epoch forecasts at N servers, a warm-up round, then 3 rounds;
per ``plan()`` call the time in ``Planner._plan_pool`` for pools serving a spilled class
("mixed") and for the others, and in ``Planner._allot`` (the cluster level); medians and means.
Then the mixed-pool solves of one round: how many, their median time, the share inside
``Planner._solve`` (the solver call), and their sizes (servers, loaded classes).

``quality``: every forecast of ``benchmarks.scenarios.hier_vs_mono.corpus`` planned with the
given options against the cached monolithic optima (``results/mono_optima.csv``, solved where
missing): the counts of the hierarchy-quality targets (RESULTS.md, "Hierarchy timing").
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


if __name__ == "__main__":
    what, rest = sys.argv[1], sys.argv[2:]
    if what == "parts":
        parts(int(rest[0]), _options(rest[1:]))
    elif what == "quality":
        quality(_options(rest))
    else:
        raise SystemExit(__doc__)
