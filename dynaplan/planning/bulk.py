"""Large pools by bulk + residual (formulations/pool.md, "Large pools (bulk + residual)", BR1-BR4).

A pool beyond the exact DP's sizes (pool.md DP5) on one hardware type, with no current state and
no best effort, is solved as: the pool MILP's LP relaxation (BR2: its instances, rounded down to
whole servers per piece, are the *bulk*, with the LP's per-instance loads); the *residual* — the
load the bulk leaves on ``RESIDUAL_SERVERS`` servers — solved exactly, by the DP (single class)
or the pool MILP (mixed); several bulks are tried (BR2), the plan is the best bulk plus its residual, read back like a MILP solution
(:func:`dynaplan.planning.decode.pool_plans`: the profile's power at each instance's load). The
report (BR4) states the plan's true power; a single-class pool's bound is BR1
(:class:`dynaplan.formulations.pool_bulk.PoolLPBound`), a mixed pool's none (as the MILP's).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from dynaplan.formulations import pool_dp
from dynaplan.formulations import pool_bulk
from dynaplan.formulations.pool_bulk import PoolLPBound, bulk_instances
from dynaplan.planning.plan import PoolPlan
from dynaplan.solvers import Backend, SolveReport, Status, StopReason, relative_gap

# a residual load at most this fraction of the class's pool load (or below 1e-9 req/s) is none:
# the LP's rounding
RESIDUAL_RTOL = 1e-9
# mixed pools of fewer servers also try the bulk in the LP's class proportions with the mixed
# residual solved by the pool MILP (10-230 ms on 8 servers; at 64 the 12,500-server hierarchy's
# p95 is 162 ms instead of 93 for the same plans; measured in pool.md, "Large pools")
MIXED_MILP_SERVERS = 24


def applies(planner, loads: Mapping[str, float], srv: Mapping[str, int]) -> str | None:
    """The hardware type of a pool bulk + residual may solve (pool.md BR0), else None."""
    o = planner.options
    if (o.large_pool == "exact" or planner.backend is not Backend.HIGHS or planner._penalty is not None
            or o.load_segments is not None or not any(v > 0 for v in loads.values())):
        return None
    used = [h for h, n in srv.items() if n > 0]
    if len(used) != 1:
        return None
    h = used[0]
    n_srv = int(srv[h])
    if planner.hardware[h].gpus_per_server * n_srv <= pool_dp.MAX_GPUS or n_srv <= pool_bulk.RESIDUAL_SERVERS:
        return None
    return h


def plan_pool_bulk(planner, cm, pool: str, loads: Mapping[str, float], srv: Mapping[str, int],
                   epoch_s: float) -> PoolPlan | None:
    """The pool's plan by bulk + residual (pool.md BR0-BR4), or None where it does not apply or
    finds no plan (the caller then solves the pool MILP, which says why)."""
    h = applies(planner, loads, srv)
    if h is None:
        return None
    t0 = time.perf_counter()
    o = planner.options
    hw = planner.hardware[h]
    gps, n_srv = hw.gpus_per_server, int(srv[h])
    na = cm.na
    # BR2: the LP relaxation of the pool model on the pool's servers
    x_lp, lp = planner._solve_cached(cm, loads, srv, relaxed=True)
    if x_lp is None or lp.status is not Status.OPTIMAL:
        return None
    n_lp = np.maximum(x_lp[na.n_cols], 0.0)
    n_lp[na.pc_hw != h] = 0.0
    sel = np.flatnonzero(n_lp > 0)
    single = all(v <= 0 or c == pool for c, v in loads.items())
    r_max = pool_bulk.RESIDUAL_SERVERS
    lp_srv = float((n_lp * na.pc_tp).sum()) / gps  # servers the LP's instances fill
    # BR2's bulks, the least-power plan kept: (LP instances used, spilled classes shifted into the
    # bulk, least LP servers of a bulk piece, servers given back one per piece, residual servers)
    candidates = [(n_lp, True, 0.0, spread, r_max) for spread in (False, True)]
    candidates += [(n_lp, True, float(r_max), spread, r_max) for spread in (False, True)]
    candidates += [(np.where(np.arange(len(n_lp)) == i, n_lp, 0.0), True, 0.0, False, r_max)
                   for i in sel if len(sel) > 1]
    if not single and n_srv < MIXED_MILP_SERVERS:
        candidates.append((n_lp, False, 0.0, True, r_max))
    best = None
    seen = set()
    for n_use, shift, min_srv, spread, r_srv in candidates:
        n_bulk = np.zeros(len(n_lp), dtype=np.int64)
        n_bulk[sel] = bulk_instances(n_use[sel], na.pc_tp[sel], gps, n_srv, r_srv, min_srv, lp_srv, spread)
        if (n_bulk.tobytes(), shift) in seen:
            continue
        seen.add((n_bulk.tobytes(), shift))
        got = _bulk_plus_residual(planner, cm, pool, h, n_srv, loads, x_lp, n_lp, n_bulk, epoch_s, r_srv,
                                  widen=n_use is n_lp and not min_srv and shift, shift=shift,
                                  milp=not shift or (n_use is n_lp and not min_srv))
        if got is not None and (best is None or got[0].power_w < best[0].power_w):
            best = got
    if best is None:
        return None
    pp, bulk_srv, how = best
    power = pp.power_w
    msg = (f"bulk + residual (formulations/pool.md, BR1-BR4): {bulk_srv} bulk servers from the LP "
           f"relaxation, residual {how}")
    if single:
        bound = min(_lp_bound(planner, cm, pool, h).bound(loads[pool], gps * n_srv), power)  # BR1
        gap = relative_gap(power, bound)
        tol = max(o.pool_mip_rel_gap if o.pool_mip_rel_gap is not None else planner.solve_options.mip_rel_gap, 1e-9)
        status = Status.OPTIMAL if gap <= tol else Status.FEASIBLE
        msg += "; bound: the LP relaxation (BR1)"
    else:
        bound, gap, status = None, None, Status.FEASIBLE
        msg += "; mixed pool: objective is the plan's power; no proven bound on the profile's problem"
    report = SolveReport(status=status, backend=Backend.HIGHS, objective=power, bound=bound, gap=gap,
                         solve_time_s=time.perf_counter() - t0, build_time_s=lp.build_time_s,
                         n_vars=lp.n_vars, n_cons=lp.n_cons, message=msg,
                         stop_reason=StopReason.CONVERGED if status is Status.OPTIMAL else StopReason.OTHER_LIMIT)
    return pp.model_copy(update={"report": report})


def _bulk_plus_residual(planner, cm, pool: str, h: str, n_srv: int, loads: Mapping[str, float], x_lp: np.ndarray,
                        n_lp: np.ndarray, n_bulk: np.ndarray, epoch_s: float, r_max: int, widen: bool = True,
                        shift: bool = True, milp: bool = True) -> tuple[PoolPlan, int, str] | None:
    """The plan of bulk ``n_bulk`` (instances per piece, at the LP's per-instance loads) plus the
    exact residual (BR3), with the bulk's servers and how the residual was solved; None when the
    residual finds no plan (on ``RESIDUAL_SERVERS`` servers, then, with ``widen``, on all the
    bulk leaves)."""
    na = cm.na
    gps = planner.hardware[h].gpus_per_server
    frac = np.divide(n_bulk, n_lp, out=np.zeros(len(n_lp)), where=n_lp > 0)
    w_lp = np.maximum(x_lp[na.w_cols], 0.0)
    w_bulk = w_lp * frac  # each bulk instance keeps the LP's per-instance utilisation
    n_cfg = int(na.pc_k.max()) + 1
    util_bulk = np.bincount(na.pc_k, weights=w_bulk, minlength=n_cfg)
    z_lp = np.maximum(x_lp[na.z_cols], 0.0)
    if shift:
        z_bulk = _bulk_loads(cm, pool, loads, util_bulk, z_lp)
    else:  # every class in the LP's proportions on each configuration
        w_cfg = np.bincount(na.pc_k, weights=w_lp, minlength=n_cfg)
        z_bulk = z_lp * np.divide(util_bulk, w_cfg, out=np.zeros(n_cfg), where=w_cfg > 0)[na.arc_k]
    bulk_srv = int((n_bulk * na.pc_tp).sum()) // gps
    residual = {}
    for c, v in loads.items():
        r = float(v) - float(z_bulk[na.arc_class == c].sum())
        residual[c] = r if r > max(RESIDUAL_RTOL * float(v), 1e-9) else 0.0
    # BR3: the residual, exactly, on RESIDUAL_SERVERS servers (all those the bulk leaves when
    # that fails; idle servers otherwise stay idle)
    left = n_srv - bulk_srv
    x_res, how = None, ""
    for r_srv in dict.fromkeys((min(r_max, left),) + ((left,) if widen else ())):
        x_res, how = _residual(planner, cm, pool, h, residual, r_srv, milp)
        if x_res is not None:
            break
    if x_res is None:
        return None
    x = x_res
    x[na.n_cols] += n_bulk
    x[na.w_cols] += w_bulk
    x[na.z_cols] += z_bulk
    x[na.y_cols] = 0.0
    x[na.y_cols[(na.hp_pool == pool) & (na.hp_hw == h)]] = float(n_srv)
    plans = cm.read(planner, x, epoch_s, {})
    return (plans[0], bulk_srv, how) if plans else None


def _bulk_loads(cm, pool: str, loads: Mapping[str, float], util_cfg: np.ndarray, z_lp: np.ndarray) -> np.ndarray:
    """BR2's loads of the bulk (per arc, req/s): the bulk instances of each configuration carry
    the utilisation ``util_cfg`` (the LP's per instance, summed); each spilled class takes first
    its LP load on the configuration, then (what the rounding left over) the bulk's room on the
    configurations serving it, least surcharge first; the pool's own class the rest. So a
    spilled class stays in the bulk where it can, and the residual is often single-class."""
    na = cm.na
    lm = na.arc_lmax
    room = np.maximum(util_cfg, 0.0).copy()
    z = np.zeros(len(z_lp))
    surcharge = None
    for c, v in loads.items():
        if c == pool or v <= 0:
            continue
        arcs = np.flatnonzero(na.arc_class == c)
        k = na.arc_k[arcs]
        take = np.minimum(z_lp[arcs], room[k] * lm[arcs])
        rest = float(v) - float(take.sum())
        if rest > 0:
            if surcharge is None:
                surcharge = cm.net.arcs["extra_w_per_util"].to_numpy(dtype=float) / lm
            for i in np.argsort(surcharge[arcs], kind="stable"):
                more = min(rest, max(room[k[i]] * lm[arcs[i]] - take[i], 0.0))
                take[i] += more
                rest -= more
                if rest <= 0:
                    break
        z[arcs] = take
        np.subtract.at(room, k, take / lm[arcs])
    own = np.flatnonzero(na.arc_class == pool)
    z[own] = np.maximum(room[na.arc_k[own]], 0.0) * lm[own]
    return z


def _fits_dp(dp: pool_dp.PoolDP, servers: int) -> bool:
    """Whether ``dp`` answers pools of ``servers`` servers (DP5: within its GPU count and its
    fronts built that far): its None is then "nothing carries the load", not "too large"."""
    return dp.gpus_per_server * int(servers) <= pool_dp.MAX_GPUS and dp.extend(dp.units_of(servers))


def _residual(planner, cm, pool: str, h: str, residual: Mapping[str, float], r_srv: int, milp: bool = True
              ) -> tuple[np.ndarray | None, str]:
    """BR3: a solution vector of ``cm`` serving ``residual`` on ``r_srv`` servers of ``h`` (its
    server columns are the caller's), and how it was found; None when none is found. The pool's
    class alone: the DP; else (with ``milp``) the pool MILP."""
    na = cm.na
    x = np.zeros(cm.arrays.n_cols)
    if not any(v > 0 for v in residual.values()):
        return x, "empty"
    others = [c for c, v in residual.items() if c != pool and v > 0]
    if not others:
        dp, piece_k, cfg, rows = planner._pool_dp(cm, pool, h)
        sol = dp.solve(residual[pool], r_srv)  # None beyond DP5's sizes or when nothing fits
        if sol is None and _fits_dp(dp, r_srv):
            return None, ""  # the DP's answer: nothing carries it (the MILP would only say so)
        if sol is not None:
            piece_rows = rows[sol.pieces]
            k = na.pc_k[piece_rows]
            own_arc = np.full(int(na.pc_k.max()) + 1, -1, dtype=np.int64)
            mine = np.flatnonzero(na.arc_class == pool)
            own_arc[na.arc_k[mine]] = mine
            x_n, x_w, x_z = np.zeros(len(na.n_cols)), np.zeros(len(na.w_cols)), np.zeros(len(na.z_cols))
            np.add.at(x_n, piece_rows, 1.0)
            np.add.at(x_w, piece_rows, sol.loads_rps / cfg["lmax"][k])
            np.add.at(x_z, own_arc[k], sol.loads_rps)
            x[na.n_cols], x[na.w_cols], x[na.z_cols] = x_n, x_w, x_z
            return x, f"by the pool DP on {r_srv} servers"
    if len(others) == 1 and residual.get(pool, 0.0) <= 0:
        # one spilled class alone: the pool DP over that class's arcs, priced as the model
        # prices them (pool.md, "Large pools", BR3)
        c = others[0]
        dp, piece_rows, arc_of = planner._spill_dp(cm, pool, c, h)
        sol = dp.solve(residual[c], r_srv) if dp is not None else None
        if sol is None and dp is not None and _fits_dp(dp, r_srv):
            return None, ""
        if sol is not None:
            rows, arcs = piece_rows[sol.pieces], arc_of[sol.pieces]
            x_n, x_w, x_z = np.zeros(len(na.n_cols)), np.zeros(len(na.w_cols)), np.zeros(len(na.z_cols))
            np.add.at(x_n, rows, 1.0)
            floor = (cm.net.pieces["u_lo"].to_numpy(dtype=float) if "u_lo" in cm.net.pieces
                     else np.zeros(len(na.pc_k)))[rows]
            np.add.at(x_w, rows, np.maximum(sol.loads_rps / na.arc_lmax[arcs], floor))
            np.add.at(x_z, arcs, sol.loads_rps)
            x[na.n_cols], x[na.w_cols], x[na.z_cols] = x_n, x_w, x_z
            return x, f"by the pool DP of spilled class {c} on {r_srv} servers"
    if not milp:
        return None, ""
    # the same residual recurs within one planning call (pool requests whose bulks differ by
    # whole servers leave the same remainder): solved once per call (Planner.residual_memo)
    key = (pool, h, r_srv, tuple(sorted((c, float(v)) for c, v in residual.items() if v > 0)))
    memo = planner.residual_memo
    if key in memo:
        x_m, how = memo[key]
        return (None if x_m is None else x_m.copy()), how
    o = planner.options
    # a mixed residual on the lean root starts from the best uniform plan (pool.md, "Starting solution")
    lean = planner._lean_root({h: r_srv})
    x_r, rep = planner._solve_cached(cm, residual, {h: r_srv}, gap=o.pool_mip_rel_gap, lean_root=lean,
                                     start=lean and planner.solve_options.highs_lean_root is not False)
    if x_r is None or not rep.has_solution:
        memo[key] = (None, "")
        return None, ""
    x = np.array(x_r, dtype=float)
    memo[key] = (x.copy(), f"by the pool MILP on {r_srv} servers ({rep.status.value})")
    return x, memo[key][1]


def _lp_bound(planner, cm, pool: str, h: str) -> PoolLPBound:
    """BR1 of (``pool``, ``h``) from the same pieces as the DP (built once per planner)."""
    got = planner._lp_bounds.get((pool, h))
    if got is None:
        dp = planner._pool_dp(cm, pool, h)[0]
        got = planner._lp_bounds[(pool, h)] = PoolLPBound(dp.tp, dp.lo, dp.hi, dp.a, dp.b, dp.idle_w)
    return got
