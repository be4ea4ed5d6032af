"""Reading a pool-network solution back into typed results (:class:`PoolPlan`, :class:`InstanceGroup`).

The pool, pool+transitions and monolithic formulations (``formulations/pool.md``,
``formulations/monolithic.md``) share the variables of :mod:`dynaplan.formulations.network`;
:func:`pool_plans` reads a solution ``x`` of any of them through its
:class:`~dynaplan.formulations.network.NetArrays` index, :func:`unserved_rps` its best-effort
slack. It lives in the planning layer because
the types it builds do; the registry (:mod:`dynaplan.planning.registry`) pairs it with the
formulations' ``build``. :func:`dp_pool_plan` reads the exact pool DP's answer
(``formulations/pool.md``, DP1-DP5; :mod:`dynaplan.formulations.pool_dp`) the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from dynaplan.domain.hardware import HardwareType
from dynaplan.formulations.network import NetArrays
from dynaplan.formulations.pool_dp import DPSolution
from dynaplan.planning.plan import InstanceGroup, PoolPlan, pool_totals
from dynaplan.profiles.profile import Profile
from dynaplan.solvers.result import SolveReport


def pool_plans(na: NetArrays, x: np.ndarray, profile: Profile, hardware: Mapping[str, HardwareType],
               pools: Iterable[str], epoch_s: float, reports: Mapping[str, SolveReport | None]) -> list[PoolPlan]:
    """One :class:`PoolPlan` per pool of ``pools`` (in that order) that has instances in ``x``.

    Instances of a configuration share its load equally; an instance's power is the profile's
    (:meth:`Profile.mixed_power_w`: each served class's curve at the instance's utilisation,
    weighted by the class's share of it), not the piecewise-linear model of the MILP. Idle GPUs
    and the pool's power are :func:`~dynaplan.planning.plan.pool_totals`'. ``reports``: the
    solve report of each pool, if any; ``epoch_s``: the epoch the energy figures cover (s).
    """
    count = np.rint(x[na.n_cols]).astype(np.int64) * na.pc_mult  # instances per (config, piece)
    w = np.maximum(x[na.w_cols], 0.0)
    n_cfg = int(na.pc_k.max()) + 1 if na.pc_k.size else 0
    w_cfg = np.bincount(na.pc_k, weights=w, minlength=n_cfg)
    share = np.where(w_cfg[na.pc_k] > 1e-12, w / np.where(w_cfg[na.pc_k] > 1e-12, w_cfg[na.pc_k], 1.0), 0.0)
    z = np.maximum(x[na.z_cols], 0.0)
    z[z < 1e-9] = 0.0
    # the utilisation the load really needs (w may carry slack on CP-SAT's grid), split by w
    u_cfg = np.bincount(na.arc_k, weights=z / na.arc_lmax, minlength=n_cfg)
    util = np.where(count > 0, share * u_cfg[na.pc_k] / np.maximum(count, 1), 0.0)
    used = np.flatnonzero(count > 0)
    p_inst = np.zeros(len(count))
    if used.size:  # every (used piece, class routed to its configuration) pair; arcs are sorted by k
        lo = np.searchsorted(na.arc_k, na.pc_k[used], side="left")
        lens = np.searchsorted(na.arc_k, na.pc_k[used], side="right") - lo
        pair_inst = np.repeat(np.arange(used.size), lens)
        pair_arc = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(lo, lens)
        pair_load = z[pair_arc] * (share[used] / count[used])[pair_inst]
        p_inst[used] = profile.mixed_power_w(pair_inst, na.arc_gid[pair_arc], na.arc_lmax[pair_arc],
                                             pair_load, na.pc_gid[used])
    servers_by: dict[str, dict[str, int]] = {}
    if na.y_cols is not None:
        for p, h, v in zip(na.hp_pool, na.hp_hw, np.rint(x[na.y_cols]).astype(np.int64)):
            if v > 0:
                servers_by.setdefault(p, {})[h] = servers_by.get(p, {}).get(h, 0) + int(v)
    else:  # recipes: servers are the recipe counts
        for p, h, v in zip(na.pc_pool, na.pc_hw, np.rint(x[na.n_cols]).astype(np.int64)):
            if v > 0:
                servers_by.setdefault(p, {})[h] = servers_by.get(p, {}).get(h, 0) + int(v)
    loads_of_cfg: dict[int, list[tuple[str, float]]] = {}
    served_by: dict[str, dict[str, float]] = {}
    for k, c, zz in zip(na.arc_k, na.arc_class, z):
        if zz > 0:
            loads_of_cfg.setdefault(int(k), []).append((c, float(zz)))
    pool_of_cfg = {int(k): p for k, p in zip(na.pc_k, na.pc_pool)}
    for k, lst in loads_of_cfg.items():
        for c, zz in lst:
            p = pool_of_cfg[k]
            served_by.setdefault(p, {})[c] = served_by.get(p, {}).get(c, 0.0) + zz
    gpus_per_server = {h: hw.gpus_per_server for h, hw in hardware.items()}
    idle_power_w = {h: hw.idle_power_w for h, hw in hardware.items()}
    out = []
    for p in pools:
        ks = used[na.pc_pool[used] == p]
        if ks.size == 0:
            continue
        total = sum(served_by.get(p, {}).values())
        groups = []
        for i in ks:
            cnt = int(count[i])
            per = {c: zz * share[i] / cnt for c, zz in loads_of_cfg.get(int(na.pc_k[i]), []) if zz * share[i] > 0}
            groups.append(InstanceGroup(
                hardware=na.pc_hw[i], tp=int(na.pc_tp[i]), freq_mhz=int(na.pc_freq[i]), count=cnt,
                load_rps_per_instance=per, load_share=sum(per.values()) * cnt / total if total > 0 else 0.0,
                utilisation=float(util[i]), power_w_per_instance=float(p_inst[i]),
                power_w=float(p_inst[i]) * cnt, energy_j=float(p_inst[i]) * cnt * epoch_s,
                slo_margin=1.0 - float(util[i])))
        groups = tuple(groups)
        servers = servers_by.get(p, {})
        idle, idle_w, power = pool_totals(groups, servers, gpus_per_server, idle_power_w)
        out.append(PoolPlan(pool=p, servers=servers, groups=groups,
                            served_rps={c: v for c, v in served_by.get(p, {}).items() if v > 1e-12},
                            idle_gpus=idle, idle_power_w=idle_w, power_w=power, energy_j=power * epoch_s,
                            report=reports.get(p)))
    return out


def unserved_rps(na: NetArrays, x: np.ndarray) -> dict[str, float]:
    """Load left unserved by solution ``x``, by class (req/s; empty for a model without ``u``)."""
    if na.u_cols is None:
        return {}
    return {c: float(v) for c, v in zip(na.demand_classes, np.maximum(x[na.u_cols], 0.0))}


def dp_configs(configs) -> dict[str, np.ndarray]:
    """The columns of the pool network's ``configs`` :func:`dp_pool_plan` reads, as arrays (built
    once per cached DP)."""
    return {"lmax": configs["own_max_load_rps"].to_numpy(dtype=float),
            "gid": configs["group_id"].to_numpy(dtype=np.int64),
            "tp": configs["tp"].to_numpy(dtype=np.int64), "freq": configs["freq_mhz"].to_numpy(dtype=np.int64)}


def dp_pool_plan(sol: DPSolution, piece_k: np.ndarray, cfg: Mapping[str, np.ndarray], profile: Profile, pool: str,
                 hardware: str, hw: HardwareType, servers: int, demand_rps: float, epoch_s: float) -> PoolPlan:
    """The :class:`PoolPlan` of the pool DP's instances (``sol``: piece and load per instance;
    ``piece_k``: each DP piece's configuration, a row of the pool network's configurations,
    whose columns :func:`dp_configs` gives) on ``servers`` servers of ``hardware``; its report
    is the caller's to set.

    Instances on one piece share its load equally: the piece's line is the profile's power on its
    range, so the pool's power is unchanged and a piece's instances make one group. Load beyond
    the demand is taken off (:func:`_trim_loads`). Power is the profile's at each instance's load;
    idle GPUs and the pool's power are :func:`~dynaplan.planning.plan.pool_totals`'.
    """
    k = piece_k[sol.pieces]
    lmax_all, gid_all, tp_all, f_all = cfg["lmax"], cfg["gid"], cfg["tp"], cfg["freq"]
    _, piece_of, per_piece = np.unique(sol.pieces, return_inverse=True, return_counts=True)
    load = np.bincount(piece_of, weights=sol.loads_rps)[piece_of] / per_piece[piece_of]
    load = _trim_loads(profile, gid_all[k], np.minimum(load, lmax_all[k]), demand_rps)
    by_key: dict[tuple[int, float], int] = {}  # (configuration, load) -> instances (a few dozen at most)
    for kk, ll in zip(k.tolist(), load.tolist()):
        by_key[(kk, ll)] = by_key.get((kk, ll), 0) + 1
    gk = np.array([kk for kk, _ in by_key], dtype=np.int64)
    gload = np.array([ll for _, ll in by_key], dtype=float)
    counts = list(by_key.values())
    p_inst = profile.interpolate("power_w", gid_all[gk], gload)
    total = float(load.sum())
    groups = []
    for i in range(len(gk)):
        cnt, util = int(counts[i]), float(gload[i] / lmax_all[gk[i]])
        groups.append(InstanceGroup(
            hardware=hardware, tp=int(tp_all[gk[i]]), freq_mhz=int(f_all[gk[i]]), count=cnt,
            load_rps_per_instance={pool: float(gload[i])} if gload[i] > 0 else {},
            load_share=float(gload[i]) * cnt / total if total > 0 else 0.0, utilisation=util,
            power_w_per_instance=float(p_inst[i]), power_w=float(p_inst[i]) * cnt,
            energy_j=float(p_inst[i]) * cnt * epoch_s, slo_margin=1.0 - util))
    groups = tuple(groups)
    srv = {hardware: int(servers)}
    idle, idle_w, power = pool_totals(groups, srv, {hardware: hw.gpus_per_server}, {hardware: hw.idle_power_w})
    return PoolPlan(pool=pool, servers=srv, groups=groups, served_rps={pool: total} if total > 1e-12 else {},
                    idle_gpus=idle, idle_power_w=idle_w, power_w=power, energy_j=power * epoch_s, report=None)


def _trim_loads(profile: Profile, gid: np.ndarray, load: np.ndarray, demand: float) -> np.ndarray:
    """Instance loads with any load beyond ``demand`` taken off (instances in order) when that
    leaves the profile's power as it is or lower (at an optimum it never falls; it stays where
    the curve is flat, e.g. below its lightest load point); else as given."""
    excess = float(load.sum()) - demand
    if excess <= 1e-12 * max(demand, 1.0):
        return load
    cut = np.minimum(load, np.maximum(excess - (np.cumsum(load) - load), 0.0))
    trimmed = load - cut
    before = float(profile.interpolate("power_w", gid, load).sum())
    after = float(profile.interpolate("power_w", gid, trimmed).sum())
    return trimmed if after <= before * (1 + 1e-12) else load
