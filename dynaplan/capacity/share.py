"""Exact search for Mélange-shaped problems on the cost lattice, before (or instead of) a MILP
(``formulations/capacity.md``, "Mélange configs", (M3)-(M6)).

The problem is the load-free model of :func:`dynaplan.formulations.capacity.build_share_model`:
``min Σ_h u_h y_h`` over whole fleets ``lo <= y <= ub`` such that the pairs ``k = (c, h)`` carry
every loaded class, ``Σ_{k in c} m_k = S`` and ``Σ_{k: h(k)=h} (w_k / S) m_k <= y_h``, with ``w_k``
the servers of type ``h`` that class ``c``'s whole load needs and ``m_k`` whole (sliced) or
fractional (divisible). Prices ``u_h`` are whole lattice units (capacity.md, (M1)).

Nothing here solves a MILP; the exact LP check of a fleet goes through the HiGHS backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynaplan.capacity.problem import CapacityProblem
from dynaplan.formulations.capacity import CapacityIndex, _arrays, fleet_upper_bounds, recipe_groups
from dynaplan.solvers.model import ModelArrays
from dynaplan.solvers.highs import solve_arrays
from dynaplan.solvers.result import SolveOptions, Status

_FIT_TOL = 1e-9  # relative slack a fleet's capacity row may be used up to (HiGHS's feasibility tolerance)
_MAX_GRID = 20_000  # fleets the search enumerates at most
_MAX_LP_CHECKS = 8  # exact LP feasibility checks of fleets at most


@dataclass(frozen=True)
class ShareData:
    """The share model as arrays: pairs ``k`` (class, type) of the loaded classes, in the order of
    ``build_share_model``'s slice columns, and their load in servers."""

    cls: np.ndarray     # (K,) class index of pair k
    hw: np.ndarray      # (K,) type index of pair k
    cap: np.ndarray     # (K,) req/s one instance carries, u_hi * max_load_rps
    w: np.ndarray       # (K,) servers of type hw[k] class cls[k]'s whole load needs (count, fractional)
    units: np.ndarray   # (H,) price of one server in lattice units (integers)
    lo: np.ndarray      # (H,) fewest servers
    ub: np.ndarray      # (H,) most servers any optimal fleet holds
    S: int              # slices per class (1: divisible)
    sliced: bool


def share_data(p: CapacityProblem, scale: float) -> ShareData:
    """The data of ``build_share_model(p)`` with prices in units of 1/scale USD, built without the model."""
    d = p.demand()[0]
    hw_of, class_of, tp, cap, *_ = _arrays(p)
    keep = d[class_of] > 0
    gpus = np.array([o.gpus_per_server for o in p.offers], dtype=float)
    price = np.array([o.price_usd_per_server_h for o in p.offers], dtype=float) * p.fleet_h
    cls, hw = class_of[keep], hw_of[keep]
    return ShareData(cls=cls, hw=hw, cap=cap[keep], w=d[cls] * tp[keep] / cap[keep] / gpus[hw],
                     units=np.rint(price * scale).astype(np.int64),
                     lo=np.array([o.min_servers for o in p.offers], dtype=np.int64),
                     ub=np.rint(fleet_upper_bounds(p, hw_of, class_of, tp, cap)).astype(np.int64),
                     S=p.slice_factor if p.assignment == "sliced" else 1, sliced=p.assignment == "sliced")


def cost_lower_bound(sd: ShareData) -> float:
    """(M3) A lower bound on any feasible fleet's cost (lattice units): every class at the least
    cost per load of any type, ``Σ_c min_{k in c} u_{h(k)} w_k``, or the cost of the fewest servers."""
    per = sd.units[sd.hw] * sd.w
    best = np.full(int(sd.cls.max(initial=-1)) + 1, np.inf)
    np.minimum.at(best, sd.cls, per)
    lp = float(best[np.isfinite(best)].sum())
    return max(lp, float(sd.units @ sd.lo))


def single_type_fleets(sd: ShareData) -> list[np.ndarray]:
    """Fleets that carry every class on one type (always feasible, sliced or not)."""
    H = sd.units.size
    n_cls = np.unique(sd.cls).size
    out = []
    for h in range(H):
        on = sd.hw == h
        if np.unique(sd.cls[on]).size < n_cls:
            continue
        y = sd.lo.copy()
        y[h] = max(y[h], int(np.ceil(sd.w[on].sum() * (1 - _FIT_TOL) - 1e-12)))
        if y[h] <= sd.ub[h]:
            out.append(y)
    return out


def _pairs_by_class(sd: ShareData, y: np.ndarray) -> dict[int, list[int]]:
    """Per loaded class, its pairs on types the fleet ``y`` holds, in increasing cost per load."""
    per = sd.units[sd.hw] * sd.w
    out: dict[int, list[int]] = {int(c): [] for c in np.unique(sd.cls)}
    for k in np.lexsort((per, sd.cls)).tolist():
        if y[sd.hw[k]] > 0:
            out[int(sd.cls[k])].append(k)
    return out


def greedy_assignment(sd: ShareData, y: np.ndarray, order: str = "regret") -> np.ndarray | None:
    """(M5) Slices (or fractions, divisible) of every class on the fleet ``y``: classes by
    decreasing regret (``order='regret'``: the cost of their second-best type above their best)
    or by decreasing least size (``'size'``), each on its types in increasing cost per load while
    room is left. Returns ``m`` (K,) in 0..S, or None when some class does not fit. A heuristic:
    None proves nothing."""
    room = (y.astype(float) * (1 + _FIT_TOL) + 1e-12).tolist()
    per = (sd.units[sd.hw] * sd.w).tolist()
    size = (sd.w / sd.S).tolist()  # servers of one slice
    hw = sd.hw.tolist()
    ks_of = _pairs_by_class(sd, y)
    if any(not ks for ks in ks_of.values()):
        return None
    if order == "regret":
        key = {c: (per[ks[1]] - per[ks[0]] if len(ks) > 1 else np.inf) for c, ks in ks_of.items()}
    else:
        key = {c: min(size[k] / y[hw[k]] for k in ks) for c, ks in ks_of.items()}
    m = [0.0] * len(size)
    for c in sorted(ks_of, key=lambda c: -key[c]):
        left = float(sd.S)
        for k in ks_of[c]:
            r = room[hw[k]]
            if size[k] <= 0:
                n = left
            elif sd.sliced:
                n = min(left, float(np.floor(r / size[k] + 1e-12)))
            else:
                n = min(left, r / size[k])
            if n <= 0:
                continue
            m[k] += n
            room[hw[k]] -= n * size[k]
            left -= n
            if left <= 1e-12:
                break
        if left > 1e-12:
            return None
    return np.array(m)


def round_slices(sd: ShareData, y: np.ndarray, frac: np.ndarray) -> np.ndarray | None:
    """(M7) Whole slices on the fleet ``y`` from a divisible assignment ``frac`` (K,) (each class's
    fractions sum to 1): ``floor(S frac)`` slices per pair, then each class's leftover slices on
    its types by decreasing remainder, then increasing cost per load, while room is left. Returns
    ``m`` (K,), or None when a leftover slice does not fit (a heuristic: None proves nothing)."""
    exact = np.floor(sd.S * np.clip(frac, 0.0, 1.0) + 1e-9)
    rem = sd.S * frac - exact
    m = exact.copy()
    n_c = int(sd.cls.max(initial=-1)) + 1
    left = np.full(n_c, float(sd.S))
    np.subtract.at(left, sd.cls, exact)
    split = np.flatnonzero(left > 0.5)
    used = np.zeros(sd.units.size)
    np.add.at(used, sd.hw, sd.w * m / sd.S)
    room = y.astype(float) * (1 + _FIT_TOL) + 1e-12 - used
    per = sd.units[sd.hw] * sd.w
    for c in split[np.argsort(-left[split], kind="stable")]:
        ks = np.flatnonzero((sd.cls == c) & (y[sd.hw] > 0))
        ks = ks[np.lexsort((per[ks], -rem[ks]))]
        n_left = int(round(left[c]))
        for k in ks:
            size = sd.w[k] / sd.S
            n = n_left if size <= 0 else min(n_left, int(np.floor(room[sd.hw[k]] / size + 1e-12)))
            if n <= 0:
                continue
            m[k] += n
            room[sd.hw[k]] -= n * size
            n_left -= n
            if n_left == 0:
                break
        if n_left:
            return None
    return m


def fleet_lp(y: np.ndarray, arrays: ModelArrays, ix: dict, opts: SolveOptions):
    """(M6) The exact check of the divisible problem on the fleet ``y``: the share model's LP
    relaxation with the fleet fixed. Returns ``m`` (K,) when the fleet carries the load with
    fractional slices, False when it cannot (then no sliced assignment fits it either), None
    when the LP stops otherwise."""
    lb, ub = arrays.lb.copy(), arrays.ub.copy()
    lb[ix["fleet"]] = y
    ub[ix["fleet"]] = y
    sol = solve_arrays(arrays.relaxed().with_bounds(lb=lb, ub=ub), opts.model_copy(update={"mip_rel_gap": 0.0}))
    if sol.report.status == Status.INFEASIBLE:
        return False
    if sol.report.status != Status.OPTIMAL:
        return None
    return np.clip(sol.x[ix["slices"]], 0.0, None)


def fleet_grid(sd: ShareData, cap_units: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Every fleet ``lo <= y <= ub`` of cost at most ``cap_units``, sorted by cost: (fleets (n, H),
    costs (n,)); None when there are more than the search enumerates."""
    H = sd.units.size
    top = sd.ub.copy()
    rest = cap_units - int(sd.units @ sd.lo)
    if rest < 0:
        return np.zeros((0, H), dtype=np.int64), np.zeros(0, dtype=np.int64)
    for h in range(H):
        if sd.units[h] > 0:
            top[h] = min(top[h], sd.lo[h] + rest // sd.units[h])
    sizes = top - sd.lo + 1
    if (sizes <= 0).any() or float(np.prod(sizes.astype(float))) > _MAX_GRID:
        return None
    grids = np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(sd.lo, top)], indexing="ij")
    ys = np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)
    cost = ys @ sd.units
    keep = cost <= cap_units
    ys, cost = ys[keep], cost[keep]
    order = np.argsort(cost, kind="stable")
    return ys[order], cost[order]


@dataclass(frozen=True)
class Search:
    """What the lattice search established: a bound (lattice units) valid for every fleet, the
    best fleet and assignment found (or None) and whether they are proven optimal."""

    bound: float
    fleet: np.ndarray | None
    m: np.ndarray | None
    cost: int | None
    proven: bool
    lp_checks: int


def lattice_search(sd: ShareData, share_model, opts: SolveOptions) -> Search:
    """(M4) Fleets in increasing cost from the bound of (M3): a fleet is kept when the greedy
    assignment (M5) or, divisible, the exact LP check (M6) fills it; a fleet the LP check refuses
    is infeasible. While every fleet of a cost is refused, the bound rises past that cost; the
    first fleet filled at the bound is the proven optimum. Stops (unproven, with the bound it
    reached) when a fleet is neither filled nor refused, or after a few LP checks.
    ``share_model()`` returns ``build_share_model``'s (arrays, index), built on first use."""
    lb = cost_lower_bound(sd)
    best_y, best_m, best_c = None, None, None
    for y in single_type_fleets(sd):
        c = int(sd.units @ y)
        if best_c is None or c < best_c:
            m = greedy_assignment(sd, y)
            if m is not None:
                best_y, best_m, best_c = y, m, c
    bound = float(np.ceil(lb - 1e-9))
    if best_c is None:
        return Search(bound, None, None, None, False, 0)
    grid = fleet_grid(sd, best_c)
    if grid is None:
        return Search(min(bound, best_c), best_y, best_m, best_c, bound >= best_c, 0)
    ys, costs = grid
    sel = costs >= bound
    ys, costs = ys[sel], costs[sel]
    checks = 0
    i = 0
    while i < len(costs) and costs[i] < best_c:
        level = costs[i]
        j = i
        while j < len(costs) and costs[j] == level:
            j += 1
        bound = float(level)  # every cheaper fleet is infeasible (or below the bound of (M3))
        undecided = False
        for y in ys[i:j]:
            m = greedy_assignment(sd, y)
            if m is None:
                m = greedy_assignment(sd, y, order="size")
            if m is not None:
                return Search(bound, y, m, int(level), True, checks)
            if checks >= _MAX_LP_CHECKS:
                return Search(bound, best_y, best_m, best_c, False, checks)
            checks += 1
            lp = fleet_lp(y, *share_model(), opts)
            if lp is False:
                continue  # (M6) infeasible even with fractional slices
            if lp is not None and not sd.sliced:
                return Search(bound, y, lp, int(level), True, checks)
            undecided = True
        if undecided:
            return Search(bound, best_y, best_m, best_c, False, checks)
        i = j
    return Search(float(best_c), best_y, best_m, best_c, True, checks)


def share_index(p: CapacityProblem) -> CapacityIndex:
    """A one-period :class:`CapacityIndex` for reading a share-model solution with
    :func:`dynaplan.capacity.solve.extract_plan` (columns: fleet, groups, instances, load, energy)."""
    hw_of, class_of, tp, cap, a, b, err = _arrays(p)
    group_of, gkeys = recipe_groups(p)
    H, G, P = len(p.offers), len(gkeys), len(p.recipes)
    price = np.array([o.price_usd_per_server_h for o in p.offers], dtype=float) * p.fleet_h
    at = np.cumsum([0, H, G, P, P, 1])
    return CapacityIndex(fleet=slice(at[0], at[1]), groups=slice(at[1], at[2]), instances=slice(at[2], at[3]),
                         load=slice(at[3], at[4]), energy=slice(at[4], at[5]), n_periods=1, n_recipes=P, n_groups=G,
                         group_of=group_of, group_keys=tuple(gkeys), hw_of=hw_of, class_of=class_of, tp=tp,
                         cap_rps=cap, static_w=a, w_per_rps=b, error_w=err, kwh_per_w=p.pue * p.period_s / 3.6e6,
                         fleet_usd_per_server=price, ondemand=slice(at[5], at[5]),
                         rent_hw=np.zeros(0, dtype=np.int64), ondemand_usd_per_server=np.zeros(0))


def share_solution(p: CapacityProblem, sd: ShareData, y: np.ndarray, m: np.ndarray
                   ) -> tuple[CapacityIndex, np.ndarray]:
    """The share model's fleet ``y`` and slices ``m`` as a solution vector of :func:`share_index`:
    pair ``(c, h)`` carries ``d_c m / S`` on ``d_c m / (S κ)`` instances."""
    idx = share_index(p)
    x = np.zeros(idx.energy.stop)
    x[idx.fleet] = y
    d = p.demand()[0]
    rec = np.full((len(p.classes), len(p.offers)), -1, dtype=np.int64)
    rec[idx.class_of, idx.hw_of] = np.arange(idx.n_recipes)
    i = rec[sd.cls, sd.hw]
    load = d[sd.cls] * np.asarray(m, dtype=float) / sd.S
    x[idx.load.start + i] = load
    x[idx.instances.start + i] = load / sd.cap
    np.add.at(x, idx.groups.start + idx.group_of[i], load / sd.cap)
    return idx, x
