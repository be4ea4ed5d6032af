"""An independent plan checker.

:func:`check_plan` recomputes everything a plan claims from the raw profile table alone — with
its own loop over the table and ``numpy.interp``, not the :class:`Profile` query methods the
planner uses: per-class capacity at the SLO, SLO compliance, load served, GPU and server use
(packing instances into servers first-fit decreasing), power and energy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from dynaplan.domain.slo import SLOTable
from dynaplan.planning.plan import Plan
from dynaplan.profiles.profile import Profile


@dataclass(frozen=True)
class PlanCheck:
    ok: bool
    violations: tuple[str, ...]
    power_w: float = field(metadata={"unit": "W"})
    served_rps: dict = field(default_factory=dict)

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise AssertionError("plan check failed:\n  " + "\n  ".join(self.violations))


def _curves(profile: Profile, model: str, slos: SLOTable) -> dict:
    """(hardware, tp, freq, class) -> (loads, power, max load meeting the SLO) from the raw table."""
    tab = profile.table
    tab = tab[tab["model"] == model]
    out = {}
    for key, g in tab.groupby(["hardware", "tp", "freq_mhz", "request_class"], sort=False):
        g = g.sort_values("load_rps")
        slo = slos[key[3]]
        lmax = 0.0
        for load, ttft, tbt, thr in zip(g["load_rps"], g["ttft_p99_ms"], g["tbt_p99_ms"], g["throughput_rps"]):
            if ttft <= slo.ttft_ms and tbt <= slo.tbt_ms and thr >= load * (1 - 1e-6):
                lmax = float(load)
            else:
                break
        out[(key[0], int(key[1]), int(key[2]), key[3])] = (g["load_rps"].to_numpy(), g["power_w"].to_numpy(), lmax)
    return out


def _ffd_servers(tps: list[int], gpus_per_server: int) -> int:
    """Servers needed to pack instances of the given TP degrees, first-fit decreasing."""
    free: list[int] = []
    for t in sorted(tps, reverse=True):
        for i, f in enumerate(free):
            if f >= t:
                free[i] -= t
                break
        else:
            if t > gpus_per_server:
                return 10**9
            free.append(gpus_per_server - t)
    return len(free)


def check_plan(profile: Profile, slos: SLOTable, inventory: Mapping[str, int], plan: Plan,
               model: str | None = None, rtol: float = 1e-6) -> PlanCheck:
    """Check ``plan`` against the profile, SLOs and inventory; never trusts the plan's own numbers."""
    model = model or profile.models[0]
    curves = _curves(profile, model, slos)
    v: list[str] = []
    served: dict[str, float] = {}
    total_power = 0.0
    servers_total: dict[str, int] = {}
    for pp in plan.pools:
        pool_power = 0.0
        gpus: dict[str, int] = {}
        tps: dict[str, list[int]] = {}
        for g in pp.groups:
            util = 0.0
            shares: list[tuple[float, tuple]] = []  # (utilisation share, curve) per served class
            for c, load in g.load_rps_per_instance.items():
                cur = curves.get((g.hardware, g.tp, g.freq_mhz, c))
                if cur is None:
                    v.append(f"pool {pp.pool}: {g.hardware}/TP{g.tp}@{g.freq_mhz} has no profile for class {c}")
                    continue
                if cur[2] <= 0:
                    v.append(f"pool {pp.pool}: {g.hardware}/TP{g.tp}@{g.freq_mhz} cannot meet class {c}'s SLO")
                    continue
                util += load / cur[2]
                if load > 0:
                    shares.append((load / cur[2], cur))
                served[c] = served.get(c, 0.0) + load * g.count
            if util > 1 + 1e-6:
                v.append(f"pool {pp.pool}: {g.hardware}/TP{g.tp}@{g.freq_mhz} utilisation {util:.6f} > 1 (SLO broken)")
            own = curves.get((g.hardware, g.tp, g.freq_mhz, pp.pool))
            if own is None or own[2] <= 0:
                v.append(f"pool {pp.pool}: configuration {g.hardware}/TP{g.tp}@{g.freq_mhz} not usable for the pool class")
                continue
            # each class's curve at the instance's utilisation, weighted by the class's share of it
            if util > 0:
                p_inst = sum(u / util * float(np.interp(min(util, 1.0) * cur[2], cur[0], cur[1])) for u, cur in shares)
            else:
                p_inst = float(own[1][0])
            if abs(p_inst - g.power_w_per_instance) > rtol * max(1.0, p_inst) + 1e-6:
                v.append(f"pool {pp.pool}: {g.hardware}/TP{g.tp}@{g.freq_mhz} claims {g.power_w_per_instance:.6g} W "
                         f"per instance, profile gives {p_inst:.6g} W")
            pool_power += p_inst * g.count
            gpus[g.hardware] = gpus.get(g.hardware, 0) + g.tp * g.count
            tps.setdefault(g.hardware, []).extend([g.tp] * g.count)
        for h, lst in tps.items():
            hw = profile.hardware[h]
            need = _ffd_servers(lst, hw.gpus_per_server)
            if need > pp.servers.get(h, 0):
                v.append(f"pool {pp.pool}: instances need {need} {h} servers, plan gives {pp.servers.get(h, 0)}")
        for h, n in pp.servers.items():
            servers_total[h] = servers_total.get(h, 0) + n
            idle = n * profile.hardware[h].gpus_per_server - gpus.get(h, 0)
            pool_power += idle * profile.hardware[h].idle_power_w
        if abs(pool_power - pp.power_w) > rtol * max(1.0, pool_power) + 1e-6:
            v.append(f"pool {pp.pool}: claims {pp.power_w:.6g} W, recomputed {pool_power:.6g} W")
        total_power += pool_power
    for h, n in servers_total.items():
        if n > inventory.get(h, 0):
            v.append(f"{h}: plan uses {n} servers, inventory has {inventory.get(h, 0)}")
    for c, want in plan.forecast_rps.items():
        got = served.get(c, 0.0) + plan.unserved_rps.get(c, 0.0)
        if got < want * (1 - 1e-6) - 1e-6:
            v.append(f"class {c}: forecast {want:.6g} req/s, plan serves {served.get(c, 0.0):.6g} "
                     f"and reports {plan.unserved_rps.get(c, 0.0):.6g} unserved")
    if abs(total_power - plan.power_w) > rtol * max(1.0, total_power) + 1e-6:
        v.append(f"plan claims {plan.power_w:.6g} W, recomputed {total_power:.6g} W")
    if abs(plan.energy_j - total_power * plan.epoch_s) > rtol * max(1.0, plan.energy_j) + 1e-3:
        v.append(f"plan claims {plan.energy_j:.6g} J over {plan.epoch_s} s, recomputed {total_power * plan.epoch_s:.6g} J")
    return PlanCheck(ok=not v, violations=tuple(v), power_w=total_power, served_rps=served)
