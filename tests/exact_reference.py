"""An independent exact optimum for tiny one-class plans, built from ``Profile.table`` alone.

No dynaplan planning or formulation code is used: the SLO capacity of every configuration is read
off the table's rows (the highest load whose P99 TTFT and TBT meet the SLO), power is the table's
own line, held at its lightest point below it as the profile holds it (the reference accepts only
profiles whose power is linear in load over their points, so an instance's power is convex in
its load: flat up to the lightest point, then the line; splitting a load over given instances is
then a greedy fill, the flat parts first and then cheapest W per req/s first), and every
instance mix that fits the inventory's GPUs is enumerated. Idle GPUs of every switched-on server
draw the hardware's idle power; a pool switches on the fewest servers that hold its instances.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def configurations(profile, request_class: str, ttft_ms: float, tbt_ms: float) -> list[dict]:
    """Per (tp, freq_mhz): its line ``a + b load`` from the lightest load ``l0`` and its max load
    under the SLO (configurations that meet it nowhere are dropped)."""
    t = profile.table
    t = t[t["request_class"] == request_class]
    out = []
    for (tp, f), d in t.groupby(["tp", "freq_mhz"]):
        d = d.sort_values("load_rps")
        load, pw = d["load_rps"].to_numpy(float), d["power_w"].to_numpy(float)
        b = (pw[-1] - pw[0]) / (load[-1] - load[0])
        if not np.allclose(pw, pw[0] + b * (load - load[0]), rtol=1e-12, atol=1e-9):
            raise ValueError("the reference needs power linear in load")
        ok = (d["ttft_p99_ms"].to_numpy() <= ttft_ms) & (d["tbt_p99_ms"].to_numpy() <= tbt_ms)
        # the highest load point up to which every point meets the SLO
        first_bad = np.flatnonzero(~ok)
        lmax = load[first_bad[0] - 1] if first_bad.size and first_bad[0] > 0 else (0.0 if first_bad.size else load[-1])
        if lmax > 0:
            out.append(dict(tp=int(tp), freq_mhz=int(f), a=float(pw[0] - b * load[0]), b=float(b),
                            l0=float(load[0]), lmax=float(lmax)))
    return out


def exact_power_w(configs: list[dict], load_rps: float, servers: int, gpus_per_server: int,
                  idle_w_per_gpu: float) -> float:
    """Least power (W) serving ``load_rps`` with at most ``servers`` servers; ``inf`` if none."""
    best = math.inf
    gmax = servers * gpus_per_server
    ranges = [range(gmax // c["tp"] + 1) for c in configs]
    for counts in itertools.product(*ranges):
        gpus = sum(n * c["tp"] for n, c in zip(counts, configs))
        if gpus > gmax or sum(counts) == 0:
            continue
        if sum(n * c["lmax"] for n, c in zip(counts, configs)) < load_rps * (1 - 1e-12):
            continue
        # every instance draws its power at l0 whatever its load up to l0
        power = sum(n * (c["a"] + c["b"] * c["l0"]) for n, c in zip(counts, configs))
        left = max(0.0, load_rps - sum(n * c["l0"] for n, c in zip(counts, configs)))
        for n, c in sorted(zip(counts, configs), key=lambda nc: nc[1]["b"]):
            take = min(left, n * (c["lmax"] - c["l0"]))
            power += c["b"] * take
            left -= take
        on = max(1, math.ceil(gpus / gpus_per_server))
        power += idle_w_per_gpu * (on * gpus_per_server - gpus)
        best = min(best, power)
    return best
