"""Pool level against the exact optimum: the registry form of ``benchmarks/pool_exactness.py``.

Random single-class pools on the default profile (:func:`benchmarks.pool_exactness.draw_pools`),
each solved by ``Planner.plan_pool`` with the exact pieces (the default) and, in the same run,
with 3 chords (``load_segments=3``, the baseline), and compared with the independent exact
solver of ``tests/reference_solver.py``. 1,000 pools (12 with ``--quick``), seed 0. Writes
``pool_exactness.csv``: one row per representation with the counts above / below the optimum
by more than 1e-6 relative, the worst excess, the pools labelled optimal, and median / p95
solve times (with the exact-over-chords ratio, measured in the same run).

Checks (never a timing): the exact pieces are never above the optimum by more than 1e-6 and
no representation is ever below it (a plan below the exact optimum would be infeasible, or the
reference wrong). The standalone script stays for ``--pools`` / ``--seed`` runs.
"""

from __future__ import annotations

import pandas as pd

from benchmarks import pool_exactness
from benchmarks.registry import register_study

SEED = 0


@register_study("pool_exactness")
def run(ctx) -> list[str]:
    """Pool level vs the exact optimum (tests/reference_solver.py): exact pieces and 3 chords."""
    n = 12 if ctx.quick else 1000
    task = ctx.task("pool_exactness", 1)
    res = pool_exactness.run(n, SEED)
    task.advance()
    rows = [{"representation": name, "pools": n, "seed": SEED, **res[name],
             "p50_ratio_exact_vs_chords3": res["p50_ratio_exact_vs_chords3"],
             "p95_ratio_exact_vs_chords3": res["p95_ratio_exact_vs_chords3"]} for name in ("exact", "chords3")]
    ctx.write_csv("pool_exactness", pd.DataFrame(rows))
    failures = []
    exact = res["exact"]
    if exact["above_1e-6"] or exact["optimal_but_above"]:
        failures.append(f"pool_exactness: exact pieces above the optimum in {exact['above_1e-6']} of {n} pools "
                        f"(worst {exact['worst_rel']:.2e} relative)")
    for name in ("exact", "chords3"):
        if res[name]["below_-1e-6"]:
            failures.append(f"pool_exactness: {name} below the exact optimum in {res[name]['below_-1e-6']} of {n} pools")
    return failures
