"""One-class toy hardware and SLOs shared by the hand-solvable planner tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dynaplan.domain import ClassScheme, HardwareType, SLOTable, TokenBins
from dynaplan.domain.slo import SLO
from dynaplan.profiles import Profile

TOY = HardwareType(name="toy", gpus_per_server=8, clock_levels_mhz=(1000, 2000), gpu_memory_gb=80,
                   idle_power_w=50, max_power_w=700, price_usd_per_server_h=10, interconnect_gb_s=900,
                   peak_tflops_bf16=989, hbm_bandwidth_tb_s=3.35)
ONE = ClassScheme(input_bins=TokenBins(names=("A",), edges_tokens=()),
                  output_bins=TokenBins(names=("A",), edges_tokens=()))
SLOS = SLOTable(per_class={"AA": SLO(ttft_ms=100, tbt_ms=50)})


def linear_profile(curves: dict, loads, model: str = "m") -> Profile:
    """A one-class profile on TOY: ``curves[(tp, clock)] = (static W, W per req/s, max load under SLO)``.

    Power is linear in load; TTFT is 60 ms up to the max load under SLO and breaks the 100-ms SLO
    beyond it (a max load of 0 breaks it everywhere).
    """
    rows = []
    for (tp, f), (a, b, lmax) in curves.items():
        for load in loads:
            ttft = (60.0 if load <= lmax else 60.0 + 100.0 * (load - lmax)) if lmax else 150.0 + load
            rows.append(dict(model=model, hardware="toy", tp=tp, freq_mhz=f, request_class="AA",
                             load_rps=float(load), power_w=a + b * load, ttft_p99_ms=ttft, tbt_p99_ms=20.0,
                             throughput_rps=float(load)))
    return Profile(pd.DataFrame(rows), hardware={"toy": TOY}, classes=ONE)


def random_curves(seed: int) -> dict:
    """Random linear power curves ``{(tp, freq_mhz): (static W, W per req/s, max load under SLO)}`` for
    :func:`linear_profile` (TP 2/4/8 at two clocks; a max load of 0: the SLO is never met)."""
    rng = np.random.default_rng(seed)
    curves = {}
    for tp in (2, 4, 8):
        for f in (1000, 2000):
            a = float(rng.uniform(100, 200) * tp)
            b = float(rng.uniform(20, 80))
            lmax = int(rng.choice([0, 2, 4, 6, 8, 10, 12])) if tp < 8 else int(rng.choice([8, 10, 14]))
            curves[(tp, f)] = (a, b, lmax)
    return curves
