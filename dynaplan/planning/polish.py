"""Polishing a hierarchical plan (``formulations/cluster.md``, "Polishing").

The cluster level plans whole-server recipes, so on small clusters it may open a server more
than the pools need, or give a class with little load a pool of its own. From the pools the
pool level planned, a local search tries, with the pool model itself as the judge:

* **release**: a pool with idle GPUs on a hardware type gives up one server of it;
* **grow** (with ``caps``: an inventory ladder rung's cap, or the inventory): a pool takes one
  more server of a hardware type it holds while the plan stays within the cap;
* **dissolve**: a pool of at most ``MAX_MERGE_SERVERS`` servers hands each of its classes to
  another planned pool that class may spill into (``PlannerOptions.spill``); the target taking
  the most load takes the first pool's servers but one (a *merge* when every class goes to the
  same pool).

Every move re-plans the pools it touches and is kept only when the plan's objective (true power
plus any unserved penalty) falls; the search stops when no move improves or after
``MAX_ROUNDS`` rounds. Pools of more than ``MAX_POLISH_SERVERS`` servers take part in no move
(large clusters are the cluster level's strength; the moves are for small ones). A move never
breaks the cap (releases and dissolutions only free servers; a growth takes a spare one), so the
polished plan is feasible whenever the first one is, and never worse than it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

from dynaplan.errors import DynaplanError
from dynaplan.planning.plan import PoolPlan

MAX_ROUNDS = 8
# pools with more servers than this take part in no move: the saving (about one server's idle
# GPUs) is a vanishing share of a large pool and each try costs a solve of that pool
MAX_POLISH_SERVERS = 64
# only pools of at most this many servers are offered a merge into another ("tiny" pools)
MAX_MERGE_SERVERS = 2
# at most this many ways to hand a tiny pool's classes to other pools are tried per round
MAX_DISSOLUTIONS = 16

PlanPool = Callable[[str, dict[str, float], dict[str, int]], PoolPlan]
# a lower bound (W) on every plan of a pool for loads on exactly those servers; -inf: unknown
LowerBound = Callable[[str, dict[str, float], dict[str, int]], float]
# solves pool requests ahead (their plans, or errors, are then remembered by the PlanPool);
# True when it did (False: it left them to be solved one by one)
Prefetch = Callable[[list[tuple[str, dict[str, float], dict[str, int]]]], bool]


def _value(pp: PoolPlan, loads: Mapping[str, float], penalty: float | None) -> float:
    unserved = sum(max(0.0, v - pp.served_rps.get(c, 0.0)) for c, v in loads.items())
    if unserved > 1e-6 and penalty is None:
        return float("inf")
    return pp.power_w + (penalty or 0.0) * unserved


def _dissolutions(p: str, loads: Mapping[str, float], pools: Mapping[str, PoolPlan],
                  routes: Mapping[str, tuple[str, ...]], small: Callable[[str], bool]) -> list[dict[str, str]]:
    """Every way to hand each class of pool ``p`` to another planned pool its route allows (at
    most ``MAX_DISSOLUTIONS``, in the routes' order): ``{class: target pool}``."""
    options = []
    for c in sorted(loads):
        qs = [q for q in routes[c] if q != p and q in pools and small(q)]
        if not qs:
            return []
        options.append([(c, q) for q in qs])
    return [dict(combo) for combo in itertools.islice(itertools.product(*options), MAX_DISSOLUTIONS)]


def _dissolve(p, targets, pools, routed, servers, attempt, penalty, here, release: bool,
              bound: Callable[[str, dict, dict], float] | None = None, beat: float = -float("inf"),
              eager: bool = False):
    """Pool ``p``'s classes moved to ``targets``; its servers (but one with ``release``) go to the
    target taking the most load. Returns ``(change, saving, note)``; ``change`` is None when a target cannot
    take its new load, or when ``bound`` (a lower bound on a pool's value) shows the saving cannot
    exceed ``beat`` (cluster.md, polish.bound): then no pool is solved. ``eager``: every target is
    asked for even after one could not take its load (polishing's first pass, which only collects
    requests)."""
    gain: dict[str, dict[str, float]] = {}
    for c, q in targets.items():
        gain.setdefault(q, {})[c] = routed[p][c]
    heir = max(sorted(gain), key=lambda q: sum(gain[q].values()))
    moved = dict(servers.get(p, {}))
    h0 = max(sorted(moved), key=moved.get)
    if release:
        moved[h0] -= 1
    change, before, after = {p: (None, {}, {})}, here, 0.0
    moves = []
    for q, extra in gain.items():
        loads = dict(routed[q])
        for c, v in extra.items():
            loads[c] = loads.get(c, 0.0) + v
        srv = dict(servers.get(q, {}))
        if q == heir:
            for h, k in moved.items():
                srv[h] = srv.get(h, 0) + k
        moves.append((q, loads, srv))
    if bound is not None:
        # (polish.bound) the saving is at most here + sum_q (value_q - LB_q(new loads, servers))
        most = here + sum(_value(pools[q], routed[q], penalty) - bound(q, loads, srv) for q, loads, srv in moves)
        if most <= beat:
            return None, 0.0, ""
    news = []
    for q, loads, srv in moves:
        news.append(attempt(q, loads, srv))
        if news[-1] is None and not eager:
            return None, 0.0, ""
    if any(new is None for new in news):
        return None, 0.0, ""
    for (q, loads, srv), new in zip(moves, news):
        change[q] = (new, loads, srv)
        before += _value(pools[q], routed[q], penalty)
        after += _value(new, loads, penalty)
    into = ", ".join(f"{c} to {q}" for c, q in sorted(targets.items()))
    what = f"one {h0} server released" if release else f"its servers to pool {heir}"
    return change, before - after, f"pool {p} dissolved ({into}), {what}"


def request_key(p: str, loads: Mapping[str, float], srv: Mapping[str, int]) -> tuple:
    """A pool request's identity (pool, loads, servers; hardware types with no server left out),
    for polishing's memory and the planner's (``planner._PoolRequests``)."""
    return p, tuple(sorted(loads.items())), tuple(sorted((h, int(n)) for h, n in srv.items() if n))


def polish(pools: dict[str, PoolPlan], routed: dict[str, dict[str, float]], servers: dict[str, dict[str, int]],
           routes: Mapping[str, tuple[str, ...]], plan_pool: PlanPool, penalty: float | None,
           caps: Mapping[str, int] | None = None, lower_bound: LowerBound | None = None,
           prefetch: Prefetch | None = None, out_of_time: Callable[[], bool] | None = None
           ) -> tuple[dict[str, PoolPlan], dict[str, dict[str, float]], dict[str, dict[str, int]], list[str]]:
    """Improve ``pools`` (planned for ``routed`` loads on ``servers``) by releases, dissolutions
    and, with ``caps`` (servers per hardware type the plan may hold), growths; returns the new
    pools, routed loads, servers and a note per move taken.

    ``lower_bound(pool, loads, servers)``: a lower bound on every plan of that pool (W, -inf when
    unknown); a move whose saving it shows cannot beat the best move found so far (or the
    improvement threshold) is not solved (cluster.md, polish.bound). The moves taken are the
    same with or without it.

    ``prefetch(requests)``: solves pool requests ahead, e.g. side by side on worker threads, so
    that ``plan_pool`` then answers them from memory (cluster.md, "Threads"). With it each round
    is run twice: first only collecting the requests it may make (every move the bound does not
    rule out before any move is found), which are prefetched, then for real. The moves taken are
    the same with or without it.

    ``out_of_time()``: True once the caller's time budget is spent (cluster.md, "Time budget"); then
    no round starts and no pool request not already answered (remembered, or solved by the
    round's prefetch) is solved (a move needing one is not taken), so polishing stops with the
    moves taken so far and, in the round it is in, the best move among those whose pools were
    solved."""
    late = out_of_time or (lambda: False)
    cut = False  # the time budget left a round unstarted or a request unsolved
    pools, routed, servers = dict(pools), {p: dict(v) for p, v in routed.items()}, \
        {p: dict(v) for p, v in servers.items()}
    notes: list[str] = []

    tried: dict[tuple, PoolPlan | None] = {}  # a move not taken is not solved again next round
    wanted: list[tuple[str, dict[str, float], dict[str, int]]] | None = None  # collecting (prefetch)
    fetched: set[tuple] = set()  # requests the prefetch answered (in plan_pool's memory: no solve)

    def attempt(p: str, loads: dict[str, float], srv: dict[str, int]) -> PoolPlan | None:
        nonlocal cut
        key = request_key(p, loads, srv)
        if wanted is not None:  # the collecting pass: note the request, solve nothing
            if key not in tried:
                wanted.append((p, dict(loads), dict(srv)))
            return None
        if key not in tried:
            if key not in fetched and late():  # out of time: not solved, so not a move (nor remembered)
                cut = True
                return None
            try:
                tried[key] = plan_pool(p, loads, srv)
            except DynaplanError:  # infeasible on fewer servers: not a move
                tried[key] = None
        return tried[key]

    bounds: dict[tuple, float] = {}

    def bound(p: str, loads: dict[str, float], srv: dict[str, int]) -> float:
        key = request_key(p, loads, srv)
        if key not in bounds:
            bounds[key] = lower_bound(p, loads, srv) if lower_bound is not None else -float("inf")
        return bounds[key]

    def beat(here: float, best) -> float:
        """The saving a move must exceed to be taken."""
        return max(1e-6 * max(1.0, here), best[0] if best is not None else -float("inf"))

    def hopeless(p: str, here: float, srv: dict[str, int], best) -> bool:
        """(polish.bound) pool ``p`` re-planned on ``srv`` cannot save more than ``beat``."""
        return lower_bound is not None and here - bound(p, routed[p], srv) <= beat(here, best)

    def small(p: str) -> bool:
        return sum(servers.get(p, {}).values()) <= MAX_POLISH_SERVERS

    def spare(h: str) -> int:
        return (caps or {}).get(h, 0) - sum(srv.get(h, 0) for srv in servers.values())

    def one_round():
        """One round's best move (saving, description, {pool: (plan or None, loads, servers)}), or None."""
        best = None  # (saving, description, {pool: (plan or None, loads, servers)})
        for p, pp in pools.items():
            if not small(p):
                continue
            here = _value(pp, routed[p], penalty)
            for h in sorted(caps or {}):
                if spare(h) <= 0 or h not in servers.get(p, {}):
                    continue
                srv = {**servers[p], h: servers[p][h] + 1}
                if hopeless(p, here, srv, best):
                    continue
                new = attempt(p, routed[p], srv)
                if new is not None:
                    saving = here - _value(new, routed[p], penalty)
                    if saving > 1e-6 * max(1.0, here) and (best is None or saving > best[0]):
                        best = (saving, f"pool {p} grows by one {h} server", {p: (new, routed[p], srv)})
            for h, k in servers.get(p, {}).items():
                if k < 1 or pp.idle_gpus.get(h, 0) <= 0:  # a release only pays when GPUs sit idle
                    continue
                srv = {**servers[p], h: k - 1}
                if sum(srv.values()) == 0 or hopeless(p, here, srv, best):
                    continue
                new = attempt(p, routed[p], srv)
                if new is not None:
                    saving = here - _value(new, routed[p], penalty)
                    if saving > 1e-6 * max(1.0, here) and (best is None or saving > best[0]):
                        best = (saving, f"pool {p} releases one {h} server", {p: (new, routed[p], srv)})
            if sum(servers.get(p, {}).values()) > MAX_MERGE_SERVERS:
                continue
            for targets, release in itertools.product(_dissolutions(p, routed[p], pools, routes, small), (True, False)):
                change, saving, text = _dissolve(p, targets, pools, routed, servers, attempt, penalty, here, release,
                                                 bound if lower_bound is not None else None, beat(here, best),
                                                 eager=wanted is not None)
                if change is not None and saving > 1e-6 * max(1.0, here) and (best is None or saving > best[0]):
                    best = (saving, text, change)
        return best

    for _ in range(MAX_ROUNDS):
        if late():
            cut = True
            break
        if prefetch is not None:
            wanted = []
            one_round()
            found, wanted = wanted, None
            if found and prefetch(found):
                fetched.update(request_key(*r) for r in found)
        best = one_round()
        if best is None:
            break
        saving, text, change = best
        for p, (pp, loads, srv) in change.items():
            if pp is None:
                pools.pop(p)
                routed.pop(p, None)
                servers.pop(p, None)
            else:
                pools[p], routed[p], servers[p] = pp, loads, srv
        notes.append(f"polish: {text} ({saving:.1f} W less)")
    if cut:
        notes.append("polish: stopped by the time budget")
    return pools, routed, servers, notes
