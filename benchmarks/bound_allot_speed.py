"""Benchmark: the global bound's and the cluster level's time per plan, new settings against the
old ones interleaved in one run (bound.md and cluster.md, "Cost").

For each server count, the 12 epoch forecasts (``inputs.epoch_forecasts``) are planned once by
the hierarchy (``run_hierarchy``), recording every global-bound call and every cluster-level call
(``Planner._allot``: the inventory ladder's rungs). Those calls are then replayed ``--repeats``
times on two fresh planners, alternating call by call:

* bound: warm re-solves (``HighsSession(warm_lp=True)``, the default) against the cold session
  (``clearSolver`` before every LP, the previous behaviour);
* cluster: the lean HiGHS root (``SolveOptions.highs_lean_root`` left to the planner) against
  HiGHS's default root (``highs_lean_root=False``).

It prints the median call, the time per plan (sum over calls / 12), the ratio, and checks the
answers: bounds equal to 1e-9 relative, allotments' objective equal within the cluster gap, and
the sum of the 12 hierarchical plans' power under each cluster setting.

Run: ``python benchmarks/bound_allot_speed.py [--servers 40 12500] [--repeats 3]``.
Not in the registry of ``python -m benchmarks`` (``benchmarks.registry.OUTSIDE``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dynaplan.planning.planner as planner_mod  # noqa: E402
from benchmarks import inputs  # noqa: E402
from benchmarks.registry import Point  # noqa: E402
from benchmarks.scenarios.hierarchy import run_hierarchy  # noqa: E402
from dynaplan.planning import Planner  # noqa: E402
from dynaplan.planning.bounds import GlobalBound  # noqa: E402
from dynaplan.solvers.highs import HighsSession  # noqa: E402


def _planner(st, lean: bool | None = None) -> Planner:
    so = inputs.solve_options(10.0)
    if lean is not None:
        so = so.model_copy(update={"highs_lean_root": lean})
    return Planner(st.profile, st.inventory, st.slos, options=st.options, solve_options=so)


def _record(pl: Planner, forecasts) -> tuple[list, list, list[float]]:
    bounds, allots, powers = [], [], []
    gb, al = planner_mod.Planner._global_bound, planner_mod.Planner._allot

    def gb_spy(self, demand, *a, **k):
        bounds.append(dict(demand))
        return gb(self, demand, *a, **k)

    def al_spy(self, cf, state, *a, **k):
        allots.append((cf, a, k))
        return al(self, cf, state, *a, **k)

    planner_mod.Planner._global_bound, planner_mod.Planner._allot = gb_spy, al_spy
    try:
        for f in forecasts:
            plan, *_ = run_hierarchy(pl, f)
            powers.append(plan.power_w)
    finally:
        planner_mod.Planner._global_bound, planner_mod.Planner._allot = gb, al
    return bounds, allots, powers


def _cold_bound(pl: Planner) -> None:
    """Give ``pl`` the bound with the cold session (clearSolver before every LP)."""
    pl._bound = GlobalBound(pl.profile, pl.max_load, pl.hardware, dict(pl.inventory.servers), pl.classes,
                            pl.routes, pl._penalty)
    opts = pl.solve_options.model_copy(update={"mip_rel_gap": 0.0, "highs_heuristics": False})
    pl._bound._session = HighsSession(pl._bound.arrays, opts, warm_lp=False)


def run(servers: int, repeats: int) -> None:
    st = inputs.setting(Point("servers", servers))
    fc = inputs.epoch_forecasts(servers)
    n_plans = len(fc)
    new, old = _planner(st), _planner(st, lean=False)
    b_calls, a_calls, p_new = _record(new, fc)
    _, _, p_old = _record(old, fc)
    new, old = _planner(st), _planner(st, lean=False)
    _cold_bound(old)
    t = {"bound new": [], "bound old": [], "allot new": [], "allot old": []}
    b_dev, a_dev = 0.0, 0.0
    gap = new.options.cluster_mip_rel_gap
    for _ in range(repeats):
        for d in b_calls:
            for key, pl in (("bound new", new), ("bound old", old)):
                t0 = time.perf_counter()
                v = pl._global_bound(d)
                t[key].append(time.perf_counter() - t0)
                if key == "bound new":
                    vn = v
            if v is not None and vn is not None:
                b_dev = max(b_dev, abs(vn - v) / max(abs(v), 1.0))
        for cf, a, k in a_calls:
            objs = []
            for key, pl in (("allot new", new), ("allot old", old)):
                t0 = time.perf_counter()
                r = pl._allot(cf, None, *a, **k)
                t[key].append(time.perf_counter() - t0)
                objs.append(None if r is None else r.report.objective)
            if None not in objs:
                a_dev = max(a_dev, abs(objs[0] - objs[1]) / abs(objs[1]))
    print(f"servers {servers}: {n_plans} plans, {len(b_calls)} bound calls, {len(a_calls)} cluster calls, "
          f"{repeats} repeats")
    for what in ("bound", "allot"):
        tn, to = np.array(t[f"{what} new"]), np.array(t[f"{what} old"])
        print(f"  {what:5s} median call ms  new {1e3 * np.median(tn):7.2f}  old {1e3 * np.median(to):7.2f}   "
              f"ms/plan new {1e3 * tn.sum() / repeats / n_plans:7.2f}  old {1e3 * to.sum() / repeats / n_plans:7.2f}"
              f"   ratio {tn.sum() / to.sum():.2f}")
    print(f"  bound max rel difference new vs old {b_dev:.1e}; cluster objective max rel difference {a_dev:.1e} "
          f"(cluster gap {gap:g})")
    print(f"  sum of plan power over the forecasts, W: lean root {sum(p_new):.6f}  default root {sum(p_old):.6f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, nargs="+", default=[40, 12500])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    for n in args.servers:
        run(n, args.repeats)


if __name__ == "__main__":
    main()
