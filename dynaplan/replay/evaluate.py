"""Serve a run of 5-s windows with a fixed deployment: routing, clocks, power, SLO, latency (vectorised).

For windows ``w``, groups ``g`` (each: a pool, a (hardware, TP) key, a fixed clock or the instance
level, ``n_eff[w, g]`` instances serving), predicted classes ``c``, true classes ``t``:

1. **Route.** ``A[w,g,c] = R[c, pool(g)] * n_eff[w,g] wt[g,c] / sum_{g' in pool(g)} n_eff[w,g'] wt[g',c]``
   is the share of predicted class ``c`` that group ``g`` takes (0 when the pool has nothing up:
   those requests are unserved). Per-instance load by true class:
   ``l[w,g,t] = sum_c A[w,g,c] rate[w,c,t] / n_eff[w,g]``.
2. **Clock** (instance level, groups without a fixed clock): with the load observed in the
   previous window ``l'`` (the current one for a clairvoyant policy), utilisation at clock ``f``
   ``U'(f) = sum_t l'_t / ref_{f,t}``; clock ``f`` is eligible when ``U'(f) (1 + headroom) <= 1``
   and every class present can meet its SLO at ``f``; take the least power, ties to the higher
   clock; none eligible: the highest clock. (``formulations/instance.md``; the replay adds the
   headroom and causality.)
3. **Serve** at the chosen clock: ``U = sum_t l_t / ref_t``, inflated by ``1/(1 - stall)`` in a
   window where the instance changes clock (it stalls ``clock_change_s``). Requests of class ``t``
   meet their SLO in proportion ``min(1, 1/U)`` — the instance carries its max load under the SLO
   and the excess misses — and never when ``t`` cannot meet its SLO on that configuration.
   Latency of class ``t`` is the profile's at the equivalent own-class load ``U ref_t``.
4. **Power** of an instance: ``sum_t (u_t / U) P_t(U ref_t)`` with ``u_t = l_t / ref_t`` (the
   profile's power for a single-class instance; a utilisation-weighted mix otherwise); an idle
   instance draws the power of zero load (see :mod:`dynaplan.replay.tables`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynaplan.replay.latency import LatencyHistogram
from dynaplan.replay.tables import ProfileTables


@dataclass(frozen=True, eq=False)
class Groups:
    """Arrays of the groups of one deployment (G groups, P pools, C classes)."""

    key: np.ndarray          # (G,) index into ProfileTables.keys
    tp: np.ndarray           # (G,)
    hw: np.ndarray           # (G,) index into the hardware list
    fixed_col: np.ndarray    # (G,) clock column, -1 = instance level
    pool: np.ndarray         # (G,) pool index
    count: np.ndarray        # (G,) instances
    weight: np.ndarray       # (G, C) spread weight per instance by predicted class
    idle_weight: np.ndarray  # (G, C) class weights of an idle instance's power (sum 1)
    routing: np.ndarray      # (C, P) fraction of predicted class c sent to pool p


@dataclass
class SegmentOut:
    serving_power_w: np.ndarray      # (nw,) power of serving instances (W)
    clock_energy_j: np.ndarray       # (nw,) energy of instance-level clock changes (J)
    clock_changes: np.ndarray        # (nw,) instances changing clock
    held_gpus: np.ndarray            # (nw, H) GPUs held by instances that are up
    requests: np.ndarray             # (nw, C) requests by true class
    met: np.ndarray                  # (nw, C) requests within SLO by true class
    unserved: np.ndarray             # (nw, C) requests with no instance up, by true class
    max_util: np.ndarray             # (nw,) highest instance utilisation
    cols: np.ndarray                 # (nw, G) clock column of every group


def route(grp: Groups, n_eff: np.ndarray) -> np.ndarray:
    """``A[w,g,c]``: the share of predicted class ``c`` that group ``g`` takes (step 1)."""
    g_n, p_n = grp.pool.size, grp.routing.shape[1]
    onehot = np.zeros((g_n, p_n))
    onehot[np.arange(g_n), grp.pool] = 1.0
    x = n_eff[:, :, None] * grp.weight[None, :, :]                       # (nw,G,C)
    den = np.einsum("wgc,gp->wpc", x, onehot)[:, grp.pool, :]
    share = np.divide(x, den, out=np.zeros_like(x), where=den > 0)
    return share * grp.routing.T[grp.pool][None, :, :]


def mixed_power(tab: ProfileTables, cells: np.ndarray, u_t: np.ndarray, idle_weight: np.ndarray) -> np.ndarray:
    """Instance power ``sum_t (u_t / U) P_t(U ref_t)`` (step 4); ``cells`` and ``u_t`` end in the class
    axis; an idle instance (U = 0) weights its classes by ``idle_weight``.

    The mixed-instance rule of :meth:`Profile.mixed_power_w` in the replay's dense layout
    (windows x groups x classes) on its resampled curves, which differ from the profile's only
    below the lightest profiled load (``ProfileTables`` ``idle_power``) and for classes that
    cannot meet their SLO (``ref`` = saturation throughput); tests/test_contracts.py checks the
    two agree elsewhere."""
    big_u = u_t.sum(axis=-1)
    ref = tab.ref.reshape(-1)[cells]
    pc = tab.lookup("power_w", cells, big_u[..., None] * ref)
    wts = np.where(big_u[..., None] > 0, u_t / np.where(big_u > 0, big_u, 1.0)[..., None], idle_weight)
    return (wts * pc).sum(axis=-1)


def choose_clocks(tab: ProfileTables, grp: Groups, auto: np.ndarray, load_obs: np.ndarray,
                  headroom: float) -> np.ndarray:
    """Clock column of the instance-level groups ``auto`` in every window (step 2).

    ``load_obs`` (windows x len(auto) x classes) is the per-instance load observed (req/s)."""
    f_n, c_n = tab.width, len(tab.class_names)
    key = grp.key[auto]
    inv_ref = 1.0 / tab.ref[key]                                        # (Ga,F,C)
    u_obs = load_obs[:, :, None, :] * inv_ref[None]                     # (nw,Ga,F,C)
    big_u = u_obs.sum(axis=-1)
    infeasible_present = np.einsum("wgt,gft->wgf", (load_obs > 0).astype(float),
                                   (~tab.feasible[key]).astype(float)) > 0
    n_cl = tab.n_clocks[key]
    valid = np.arange(f_n)[None, :] < n_cl[:, None]
    elig = valid[None] & ~infeasible_present & (big_u * (1.0 + headroom) <= 1.0 + 1e-9)
    cells = tab.cell(key[:, None, None], np.arange(f_n)[None, :, None], np.arange(c_n)[None, None, :])
    power = mixed_power(tab, np.broadcast_to(cells[None], u_obs.shape), u_obs, grp.idle_weight[auto][None, :, None, :])
    power = np.where(elig, power, np.inf)
    best = f_n - 1 - np.argmin(power[:, :, ::-1], axis=2)               # least power, ties to the higher clock
    ok = np.take_along_axis(elig, best[..., None], axis=2)[..., 0]
    return np.where(ok, best, n_cl[None, :] - 1)


def evaluate(tab: ProfileTables, grp: Groups, n_eff: np.ndarray, n_avail: np.ndarray, counts: np.ndarray,
             rates: np.ndarray, rates_obs: np.ndarray, *, n_hw: int, headroom: float, stall_frac: np.ndarray,
             clock_energy_j: np.ndarray, prev_col: np.ndarray, window_s: float, hist: LatencyHistogram,
             instance_s: np.ndarray) -> SegmentOut:
    """Serve windows with fixed groups (see the module docstring).

    ``stall_frac`` and ``clock_energy_j`` are per key: the share of a window an instance stalls
    when its clock changes, and the energy of one change (0 for free transitions). ``prev_col``
    is each group's clock before the first window (-1: none). ``instance_s`` (keys x clock
    columns) accumulates instance-seconds by configuration.
    """
    nw, g_n = n_eff.shape
    c_n = counts.shape[1]
    requests = counts.sum(axis=1, dtype=np.float64)
    zeros_w = np.zeros(nw)
    if g_n == 0:
        hist.add_unserved(requests.sum(axis=0))
        return SegmentOut(zeros_w, zeros_w.copy(), zeros_w.copy(), np.zeros((nw, n_hw)), requests,
                          np.zeros_like(requests), requests.copy(), zeros_w.copy(), np.zeros((nw, 0), np.int64))
    a = route(grp, n_eff)
    unserved = np.einsum("wc,wct->wt", np.clip(1.0 - a.sum(axis=1), 0.0, 1.0), counts)
    inv_n = np.divide(1.0, n_eff, out=np.zeros_like(n_eff), where=n_eff > 1e-12)
    load = np.einsum("wgc,wct->wgt", a, rates) * inv_n[:, :, None]      # per instance, by true class
    n_req = np.einsum("wgc,wct->wgt", a, counts)

    cols = np.broadcast_to(grp.fixed_col, (nw, g_n)).copy()
    auto = np.flatnonzero(grp.fixed_col < 0)
    if auto.size:
        obs = load[:, auto] if rates_obs is rates else (
            np.einsum("wgc,wct->wgt", a[:, auto], rates_obs) * inv_n[:, auto, None])
        cols[:, auto] = choose_clocks(tab, grp, auto, obs, headroom)

    gi = np.broadcast_to(np.arange(g_n), (nw, g_n))
    ref_c = tab.ref[grp.key][gi, cols]                                  # (nw,G,C)
    feas_c = tab.feasible[grp.key][gi, cols]
    prev = np.vstack([prev_col[None, :], cols[:-1]])
    changed = (cols != prev) & (prev >= 0) & (grp.fixed_col < 0)[None, :]
    stall = changed * stall_frac[grp.key][None, :]
    u_t = load / ref_c / (1.0 - stall)[..., None]                        # a stalled instance serves in less time
    u_eff = u_t.sum(axis=-1)
    cells = tab.cell(grp.key[None, :, None], cols[:, :, None], np.arange(c_n)[None, None, :])
    p_inst = mixed_power(tab, cells, u_t, grp.idle_weight[None])
    serving_power = (n_eff * p_inst * (1.0 - stall)).sum(axis=1)
    n_changes = (changed * n_eff).sum(axis=1)
    clock_energy = (changed * n_eff * clock_energy_j[grp.key][None, :]).sum(axis=1)

    within = np.minimum(1.0, np.divide(1.0, u_eff, out=np.ones_like(u_eff), where=u_eff > 1.0))
    met = (n_req * feas_c * within[..., None]).sum(axis=1)

    nz = n_req > 0
    if nz.any():
        cell_nz, x_nz, n_nz = cells[nz], (u_eff[..., None] * ref_c)[nz], n_req[nz]
        cls_nz = np.broadcast_to(np.arange(c_n), n_req.shape)[nz]
        for m in ("ttft", "tbt"):
            p50 = tab.lookup(f"{m}_p50_ms", cell_nz, x_nz)
            hist.add(m, cls_nz, p50, tab.lookup(f"{m}_p99_ms", cell_nz, x_nz), n_nz)
    hist.add_unserved(unserved.sum(axis=0))

    held = np.zeros((nw, n_hw))
    for h in range(n_hw):
        m = grp.hw == h
        if m.any():
            held[:, h] = (n_avail[:, m] * grp.tp[m][None, :]).sum(axis=1)
    np.add.at(instance_s, (np.broadcast_to(grp.key, (nw, g_n)), cols), n_eff * window_s)
    return SegmentOut(serving_power, clock_energy, n_changes, held, requests, met, unserved,
                      np.where(n_eff > 1e-12, u_eff, 0.0).max(axis=1), cols)
