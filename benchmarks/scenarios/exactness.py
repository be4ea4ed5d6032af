"""Pool level against the exact optimum: the registry form of ``benchmarks/pool_exactness.py``.

Random single-class pools on the default profile (:func:`benchmarks.pool_exactness.draw_pools`),
each solved by ``Planner.plan_pool`` three ways in the same run: ``dp`` (the default, the exact
dynamic programme of formulations/pool.md DP1-DP5), ``highs`` (the exact pool MILP,
``pool_dp=False``) and ``chords3`` (3 chords, ``load_segments=3``, the old figure), and compared
with the independent exact solver of ``tests/reference_solver.py``. 1,000 pools (12 with
``--quick``), seed 0. Writes ``pool_exactness.csv``: one row per path (column ``representation``) with the counts above /
below the optimum by more than 1e-6 relative, the worst excess, the pools labelled optimal, and
median / p95 wall and CPU times per call (with the ratios between paths, measured in the same run).

Checks (never a timing): the two exact paths are never above the optimum by more than 1e-6 and
no path is ever below it (a plan below the exact optimum would be infeasible, or the reference
wrong). The standalone script stays for ``--pools`` / ``--seed`` runs.
"""

from __future__ import annotations

import pandas as pd

from benchmarks import pool_exactness
from benchmarks.registry import register_study

SEED = 0


@register_study("pool_exactness")
def run(ctx) -> list[str]:
    """Pool level vs the exact optimum (tests/reference_solver.py): the DP, the exact MILP and 3 chords."""
    n = 12 if ctx.quick else 1000
    task = ctx.task("pool_exactness", 1)
    res = pool_exactness.run(n, SEED)
    task.advance()
    names = ("dp", "highs", "chords3")
    ratios = {k: v for k, v in res.items() if "_ratio_" in k}
    rows = [{"representation": name, "pools": n, "seed": SEED, **res[name], **ratios} for name in names]
    ctx.write_csv("pool_exactness", pd.DataFrame(rows))
    failures = []
    for name in ("dp", "highs"):
        exact = res[name]
        if exact["above_1e-6"] or exact["optimal_but_above"]:
            failures.append(f"pool_exactness: {name} above the optimum in {exact['above_1e-6']} of {n} pools "
                            f"(worst {exact['worst_rel']:.2e} relative)")
    for name in names:
        if res[name]["below_-1e-6"]:
            failures.append(f"pool_exactness: {name} below the exact optimum in {res[name]['below_-1e-6']} of {n} pools")
    return failures
