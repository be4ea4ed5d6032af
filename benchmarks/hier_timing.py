"""p95 of Planner.plan at 40 and 12,500 servers (conversation peak), with the global bound's share.

Run: ``python -m benchmarks.hier_timing`` (15 timed calls after one warm-up per size).
"""
import time, os, numpy as np
from benchmarks import inputs
from benchmarks.machine import calibrate
from dynaplan.planning import Planner
from dynaplan.domain.slo import DEFAULT_SLOS
print("load", os.getloadavg(), "calibration", calibrate(5))
for n in (40, 12500):
    f = inputs.forecast(n)
    pl = Planner(inputs.default_profile(), {"h100-80gb": n}, DEFAULT_SLOS, solve_options=inputs.solve_options(10.0))
    pl.plan(f)
    ts, bs = [], []
    for _ in range(15):
        t = time.perf_counter(); h = pl.plan(f); ts.append(time.perf_counter() - t); bs.append(pl.bound_time_s)
    ts, bs = np.array(ts), np.array(bs)
    print(f"{n} servers: plan median {np.median(ts)*1e3:.1f} ms p95 {np.quantile(ts,.95)*1e3:.1f} ms; bound median {np.median(bs)*1e3:.1f} ms "
          f"= {np.median(bs/ts):.1%} of the plan; status {h.report.status.value} gap {h.report.gap:.2e} power {h.power_w:.1f}")
