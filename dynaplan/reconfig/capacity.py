"""Capacity under SLO of a pool's instances, and what each instance contributes at any moment.

A pool's capacity is the largest total load, *at the pool's forecast class mix*, its instances
carry with every instance within its SLO capacity (``docs/reconfiguration.md``, "Capacity"):

    cap_p = lambda* sum_c L_c,   lambda* = max { lambda : exists z >= 0,
              sum_k z_{k,c} = lambda L_c  (every class c routed to p),
              sum_c z_{k,c} / lmax_{k,c} <= n_k  (every configuration k) }

where ``n_k`` instances of configuration ``k`` are serving, ``lmax_{k,c}`` is the max load under
class ``c``'s SLO (``Profile.max_load_under_slo``) and ``L_c`` is the load routed to the pool
(``PoolPlan.served_rps``). When the pool serves only one class this is
``sum_k n_k lmax_{k,c}``, the sum over instances of their max load under SLO; with spilled
classes it is a small LP (solved by the HiGHS backend, cached by instance mix). A pool with no
load reports ``sum_k n_k lmax_{k,p}``.

What an instance contributes (:func:`contribution`): its configuration when serving; nothing
while booting, draining, moving or re-sharding by reload; its old configuration while
re-sharding by transfer (the old instance keeps serving); the configuration of lower capacity
while its clock changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np

from dynaplan.domain.slo import SLOTable
from dynaplan.errors import ValidationError
from dynaplan.profiles.profile import Profile
from dynaplan.reconfig.state import ClusterState, Instance
from dynaplan.solvers import LinearModel, SolveOptions, solve

Cfg = tuple[str, int, int]
"""(hardware, tp, freq_mhz)."""

RTOL = 1e-6  # relative tolerance of capacity comparisons


class CapacityModel:
    """Max loads under SLO of one model, and pool capacities from instance mixes."""

    def __init__(self, profile: Profile, slos: SLOTable, model: str) -> None:
        ml = profile.max_load_under_slo(slos)
        ml = ml[ml["model"] == model]
        self.model = model
        self._lmax: dict[tuple[str, int, int, str], float] = {
            (h, int(t), int(f), c): float(v)
            for h, t, f, c, v in zip(ml["hardware"], ml["tp"], ml["freq_mhz"], ml["request_class"],
                                     ml["max_load_rps"])
        }
        self._cache: dict[tuple, float] = {}
        groups = profile.groups
        starts, ends = profile.group_bounds
        table = profile.table
        load, power = table["load_rps"].to_numpy(), table["power_w"].to_numpy()
        self._power: dict[tuple[str, int, int, str], tuple[np.ndarray, np.ndarray]] = {
            (h, int(t), int(f), c): (load[starts[g]:ends[g]], power[starts[g]:ends[g]])
            for g, (m, h, t, f, c) in enumerate(zip(groups["model"], groups["hardware"], groups["tp"],
                                                     groups["freq_mhz"], groups["request_class"]))
            if m == model
        }

    def lmax(self, cfg: Cfg, request_class: str) -> float:
        """Max load under ``request_class``'s SLO of one instance of ``cfg`` (0 if unprofiled)."""
        return self._lmax.get((cfg[0], cfg[1], cfg[2], request_class), 0.0)

    def power_w(self, cfg: Cfg, request_class: str, load_rps: float) -> float:
        """Profile power of one instance of ``cfg`` at ``load_rps`` of ``request_class``, the load
        clipped to the profiled range (W). A configuration the profile lacks (a state whose hardware
        redefines the clock levels, say) raises: its power is unknown, not zero."""
        curve = self._power.get((cfg[0], cfg[1], cfg[2], request_class))
        if curve is None:
            raise ValidationError(f"{cfg[0]} TP{cfg[1]} at {cfg[2]} MHz, class {request_class}: no profile rows for "
                                  f"model {self.model}; its power is unknown")
        x, y = curve
        return float(np.interp(min(max(load_rps, 0.0), float(x[-1])), x, y))

    def pool_capacity(self, pool: str, counts: Mapping[Cfg, int], demand: Mapping[str, float]) -> float:
        """Capacity of the pool's serving instances ``counts`` at the class mix of ``demand`` (req/s)."""
        mix = tuple(sorted((c, float(v)) for c, v in demand.items() if v > 0))
        counts = tuple(sorted((k, int(n)) for k, n in counts.items() if n > 0))
        if not mix:
            return float(sum(n * self.lmax(k, pool) for k, n in counts))
        if len(mix) == 1:
            c = mix[0][0]
            return float(sum(n * self.lmax(k, c) for k, n in counts))
        key = (mix, counts)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._lp_capacity(mix, counts)
            self._cache[key] = hit
        return hit

    def _lp_capacity(self, mix, counts) -> float:
        total = sum(v for _, v in mix)
        arcs = [(i, j, self.lmax(k, c)) for i, (k, _) in enumerate(counts) for j, (c, _) in enumerate(mix)
                if self.lmax(k, c) > 0]
        if not arcs:
            return 0.0
        m = LinearModel("pool_capacity")
        lam = m.add_vars("lambda", ["lambda"], cost=-1.0)
        z = m.add_vars("z", [(i, j) for i, j, _ in arcs])
        n_arcs = len(arcs)
        # demand: sum_k z_{k,c} - lambda L_c = 0
        rows = [j for _, j, _ in arcs] + list(range(len(mix)))
        cols = [z.start + a for a in range(n_arcs)] + [lam.start] * len(mix)
        vals = [1.0] * n_arcs + [-v for _, v in mix]
        m.add_constraints("demand", [c for c, _ in mix], rows, cols, vals, lo=0.0, hi=0.0)
        # capacity: sum_c z_{k,c} / lmax_{k,c} <= n_k
        m.add_constraints("capacity", [k for k, _ in counts], [i for i, _, _ in arcs],
                          [z.start + a for a in range(n_arcs)], [1.0 / lm for _, _, lm in arcs],
                          hi=np.array([float(n) for _, n in counts]))
        sol = solve(m, opts=SolveOptions(time_limit_s=5.0))
        if sol.x is None:
            return 0.0
        return max(0.0, float(sol.x[lam.start])) * total


def contribution(inst: Instance, hardware: str, cap: CapacityModel) -> tuple[str, Cfg] | None:
    """(pool, configuration) the instance counts as now, or None if it serves nothing."""
    cfg = (hardware, inst.tp, inst.freq_mhz)
    fl = inst.in_flight
    if fl is None:
        return inst.pool, cfg
    if fl.kind == "resharding":
        return (inst.pool, cfg) if fl.serves_during else None
    if fl.kind == "reclocking":
        new = (hardware, inst.tp, int(fl.target_freq_mhz))
        return inst.pool, (new if cap.lmax(new, inst.pool) < cap.lmax(cfg, inst.pool) else cfg)
    return None  # booting, draining, moving


def pool_counts(state: ClusterState, cap: CapacityModel) -> dict[str, Counter]:
    """Serving configurations by pool, as :func:`contribution` counts them."""
    hw_of = {s.id: s.hardware for s in state.servers}
    out: dict[str, Counter] = {}
    for inst in state.instances:
        c = contribution(inst, hw_of[inst.server], cap)
        if c is not None:
            out.setdefault(c[0], Counter())[c[1]] += 1
    return out


def short_of(capacity_rps: float, demand_rps: float) -> float:
    """How far capacity falls below demand (req/s), 0 within the relative tolerance."""
    gap = demand_rps - capacity_rps
    return gap if gap > RTOL * max(1.0, demand_rps) else 0.0


__all__ = ["CapacityModel", "Cfg", "RTOL", "contribution", "pool_counts", "short_of"]
