"""From the cluster as it is to a plan: an ordered, timed, make-before-break list of actions.

:func:`diff` places the plan on the state's servers (:mod:`dynaplan.reconfig.placement`), turns
the placement into tasks — start the new instances, re-shard / move / re-clock the reused ones,
release the rest — and schedules them by simulating the cluster forward
(``docs/reconfiguration.md``, "Make-before-break"):

1. at every decision time, launch every task whose GPUs are free and that neither creates nor
   deepens a capacity shortfall of any pool at any later moment: starts first (make), then
   re-shards — one per pool at a time, largest power saving first, as published —, moves and
   clock changes, then releases (break);
2. when nothing can be launched, advance to the next moment something finishes;
3. when nothing is in flight either, the inventory is too small to make before breaking: the
   task that frees GPUs a blocked start needs, at the least shortfall, is forced, and the dip
   it opens is reported.

A pool's capacity is :class:`~dynaplan.reconfig.capacity.CapacityModel`'s (max load under SLO
of its serving instances at the pool's forecast class mix); its demand is the plan's
``PoolPlan.served_rps``. Every interval in which capacity is below demand — forced, or because
the current instances cannot carry the forecast until new ones are up — is listed in ``dips``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dynaplan.domain.slo import DEFAULT_SLOS, SLOTable
from dynaplan.errors import ValidationError
from dynaplan.planning.plan import InstanceGroup, Plan, PoolPlan, plan_totals, pool_totals
from dynaplan.profiles.profile import Profile
from dynaplan.reconfig.actions import Action, Dip, ReconfigPlan, ReconfigSummary
from dynaplan.reconfig.apply import advance
from dynaplan.reconfig.capacity import RTOL, CapacityModel, Cfg, contribution, short_of
from dynaplan.reconfig.placement import PlacedInstance, PlacementOptions, place
from dynaplan.reconfig.state import ClusterState, Instance
from dynaplan.solvers import SolveReport
from dynaplan.domain.transitions import (TransitionCosts, assign_cost, clock_cost, move_cost, release_cost,
                                           reshard_cost, start_cost)
from dynaplan.validation import check_time_s, checked

_INF = float("inf")


@dataclass(eq=False)
class _Task:
    kind: str  # start | release | reconf
    pool_from: str | None
    pool_to: str | None
    server: str
    hardware: str
    instance: str
    tp_from: int | None = None
    tp_to: int | None = None
    gpus_from: tuple[int, ...] = ()
    gpus_to: tuple[int, ...] = ()
    freq_from: int | None = None
    freq_to: int | None = None
    saving_w: float = 0.0
    placed: PlacedInstance | None = None  # the target of a start or re-configuration
    after: "_Task | None" = None  # a task of the same instance that must be launched first
    note: str = ""

    @property
    def cfg_from(self) -> Cfg | None:
        return None if self.tp_from is None else (self.hardware, self.tp_from, self.freq_from)

    @property
    def cfg_to(self) -> Cfg | None:
        return None if self.tp_to is None else (self.hardware, self.tp_to, self.freq_to)

    @property
    def action_kind(self) -> str:
        if self.kind != "reconf":
            return self.kind
        if set(self.gpus_from) != set(self.gpus_to) or self.tp_from != self.tp_to:
            return "reshard"
        if self.pool_from != self.pool_to:
            return "move_pool"
        return "set_clock"


class _Scheduler:
    """The forward simulation that orders and times the tasks."""

    def __init__(self, state: ClusterState, cap: CapacityModel, costs: TransitionCosts, demand: dict,
                 t0: float, final: dict[str, PlacedInstance], used_ids: set[str]) -> None:
        self.state = state
        self.final = final  # instance id at the end -> its placement
        self.used_ids = used_ids
        self.cap = cap
        self.costs = costs
        self.spec = costs.model_spec(state.model)
        self.demand = demand
        self.dtot = {p: float(sum(d.values())) for p, d in demand.items()}
        self.t0 = t0
        self.t = t0
        self.hw_of = {s.id: s.hardware for s in state.servers}
        self.events: dict[str, list[tuple[float, Cfg, int]]] = {}
        self.owner: dict[tuple[str, int], str] = dict(state.held())
        self.frees: list[tuple[float, str, int, str]] = []
        self.busy_until: dict[str, float] = {}
        self.reshard_end: dict[str, float] = {}
        self.actions: list[Action] = []
        self.forced: list[tuple[str, float, float, str]] = []
        for inst in state.instances:
            self._seed(inst)

    # ---------------------------------------------------------------- timeline
    def _add(self, pool: str, t: float, cfg: Cfg, delta: int) -> None:
        self.events.setdefault(pool, []).append((t, cfg, delta))

    def _seed(self, inst: Instance) -> None:
        hw = self.hw_of[inst.server]
        now = contribution(inst, hw, self.cap)
        if now is not None:
            self._add(now[0], self.t0, now[1], +1)
        fl = inst.in_flight
        if fl is None:
            return
        self.busy_until[inst.id] = fl.until_s
        if now is not None:
            self._add(now[0], fl.until_s, now[1], -1)
        if fl.kind != "draining":
            pool = fl.target_pool or inst.pool
            self._add(pool, fl.until_s, (hw, fl.target_tp or inst.tp, fl.target_freq_mhz or inst.freq_mhz), +1)
        keep = set(fl.target_gpus) if fl.kind == "resharding" else set() if fl.kind == "draining" else set(
            inst.gpu_indices)
        for g in inst.held_gpus - keep:
            self.frees.append((fl.until_s, inst.server, g, inst.id))

    def _segments(self, pool: str, extra: list, t: float) -> list[tuple[float, float]]:
        """(segment start, capacity) from ``t`` on, with ``extra`` events added."""
        evs = self.events.get(pool, []) + extra
        times = sorted({t} | {e[0] for e in evs if e[0] > t})
        evs = sorted(evs, key=lambda e: e[0])
        counts: Counter = Counter()
        k = 0
        out = []
        for tau in times:
            while k < len(evs) and evs[k][0] <= tau:
                counts[evs[k][1]] += evs[k][2]
                k += 1
            out.append((tau, self.cap.pool_capacity(pool, counts, self.demand.get(pool, {}))))
        return out

    def _harm(self, extra_by_pool: dict[str, list]) -> float:
        """Shortfall (req/s·s, plus a per-segment penalty) the extra events add over the future; 0 if none."""
        harm = 0.0
        for pool, extra in extra_by_pool.items():
            d = self.dtot.get(pool, 0.0)
            if d <= 0:
                continue
            base = dict(self._segments(pool, [], self.t))
            with_ = self._segments(pool, extra, self.t)
            for n, (tau, c) in enumerate(with_):
                b = base.get(tau)
                if b is None:  # a time only the extra events have: capacity without them holds from before
                    b = self._cap_at(pool, tau)
                if c < min(d, b) - RTOL * max(1.0, d):
                    nxt = with_[n + 1][0] if n + 1 < len(with_) else tau + 3600.0
                    harm += (min(d, b) - c) * max(nxt - tau, 1e-3) + 1e-6
        return harm

    def _cap_at(self, pool: str, tau: float) -> float:
        counts: Counter = Counter()
        for t, cfg, dl in self.events.get(pool, []):
            if t <= tau:
                counts[cfg] += dl
        return self.cap.pool_capacity(pool, counts, self.demand.get(pool, {}))

    # ---------------------------------------------------------------- tasks
    def _cost(self, task: _Task):
        hw = self.state.hardware[task.hardware]
        p = self.costs.params(self.state.model, task.hardware)
        c_from = self.cap.lmax(task.cfg_from, task.pool_from) if task.cfg_from else 0.0
        c_to = self.cap.lmax(task.cfg_to, task.pool_to) if task.cfg_to else 0.0
        k = task.action_kind
        if k == "start":
            return start_cost(p, hw, self.spec, task.gpus_to, c_to)
        if k == "release":
            return release_cost(p, hw, task.gpus_from, c_from)
        if k == "reshard":
            return reshard_cost(p, hw, self.spec, task.gpus_from, task.gpus_to, c_from, c_to,
                                clock_changes=task.freq_from != task.freq_to,
                                pool_changes=task.pool_from != task.pool_to)
        if k == "move_pool":
            return move_cost(p, hw, task.gpus_from, c_from, c_to, clock_changes=task.freq_from != task.freq_to)
        return clock_cost(p, hw, task.gpus_from, c_from, c_to)

    def _serves_during(self, task: _Task) -> bool:
        return task.action_kind == "reshard" and \
            self.costs.params(self.state.model, task.hardware).reshard_mode == "transfer"

    def _events_of(self, task: _Task, t: float, end: float) -> dict[str, list]:
        out: dict[str, list] = {}
        k = task.action_kind
        add = lambda pool, tt, cfg, d: out.setdefault(pool, []).append((tt, cfg, d))  # noqa: E731
        if k == "start":
            add(task.pool_to, end, task.cfg_to, +1)
        elif k == "release":
            add(task.pool_from, t, task.cfg_from, -1)
        elif k == "set_clock":
            lo = task.cfg_to if self.cap.lmax(task.cfg_to, task.pool_from) < self.cap.lmax(
                task.cfg_from, task.pool_from) else task.cfg_from
            add(task.pool_from, t, task.cfg_from, -1)
            add(task.pool_from, t, lo, +1)
            add(task.pool_from, end, lo, -1)
            add(task.pool_to, end, task.cfg_to, +1)
        else:  # reshard or move_pool
            add(task.pool_from, end if self._serves_during(task) else t, task.cfg_from, -1)
            add(task.pool_to, end, task.cfg_to, +1)
        return out

    def _needs_gpus(self, task: _Task) -> set[int]:
        return set(task.gpus_to) - set(task.gpus_from)

    def _ready(self, task: _Task, pending: list[_Task]) -> bool:
        if task.after is not None and any(k is task.after for k in pending):
            return False
        if task.kind != "start" and self.busy_until.get(task.instance, -_INF) > self.t:
            return False
        if any(self.owner.get((task.server, g), task.instance) != task.instance for g in self._needs_gpus(task)):
            return False
        if task.action_kind == "reshard":
            for pool in {task.pool_from, task.pool_to}:
                if self.reshard_end.get(pool, -_INF) > self.t:
                    return False
        return True

    def _launch(self, task: _Task, reason: str, at: float | None = None) -> None:
        c = self._cost(task)
        t = self.t if at is None else at
        end = t + c.duration_s
        for pool, evs in self._events_of(task, t, end).items():
            self.events.setdefault(pool, []).extend(evs)
        for g in self._needs_gpus(task):
            self.owner[(task.server, g)] = task.instance
        for g in set(task.gpus_from) - set(task.gpus_to):
            self.frees.append((end, task.server, g, task.instance))
        self.busy_until[task.instance] = end
        k = task.action_kind
        if k == "reshard":
            for pool in {task.pool_from, task.pool_to}:
                self.reshard_end[pool] = end
        self.actions.append(Action(
            seq=len(self.actions), kind=k, instance=task.instance, server=task.server, hardware=task.hardware,
            start_s=t, end_s=end, pool_from=task.pool_from, pool_to=task.pool_to, tp_from=task.tp_from,
            tp_to=task.tp_to, gpus_from=tuple(task.gpus_from), gpus_to=tuple(task.gpus_to),
            freq_from_mhz=task.freq_from, freq_to_mhz=task.freq_to, serves_during=self._serves_during(task),
            cost=c, reason=reason))
        if end <= self.t:
            self._settle()

    def _settle(self) -> None:
        keep = []
        for f in self.frees:
            if f[0] <= self.t:
                if self.owner.get((f[1], f[2])) == f[3]:
                    del self.owner[(f[1], f[2])]
            else:
                keep.append(f)
        self.frees = keep

    def _next_time(self) -> float | None:
        cands = [f[0] for f in self.frees] + list(self.busy_until.values()) + list(self.reshard_end.values())
        cands += [e[0] for evs in self.events.values() for e in evs]
        later = [x for x in cands if x > self.t]
        return min(later) if later else None

    def _reason(self, task: _Task) -> str:
        text = self._describe(task)
        return f"{text}; {task.note}" if task.note else text

    def _describe(self, task: _Task) -> str:
        k = task.action_kind
        if k == "start":
            return f"new {task.hardware}/TP{task.tp_to}@{task.freq_to} instance for pool {task.pool_to}"
        if k == "release":
            return f"not in the target plan (pool {task.pool_from} {task.hardware}/TP{task.tp_from}@{task.freq_from})"
        if k == "reshard":
            mode = self.costs.params(self.state.model, task.hardware).reshard_mode
            power = (f"saves {task.saving_w:.0f} W" if task.saving_w >= 0 else
                     f"draws {-task.saving_w:.0f} W more")
            return (f"TP{task.tp_from}->TP{task.tp_to} in place by {mode}, {power}"
                    + (f", pool {task.pool_from}->{task.pool_to}" if task.pool_from != task.pool_to else "")
                    + (f", {task.freq_from}->{task.freq_to} MHz" if task.freq_from != task.freq_to else ""))
        if k == "move_pool":
            return f"pool {task.pool_from}->{task.pool_to} (same model: no reload)"
        return f"clock {task.freq_from}->{task.freq_to} MHz"

    # ---------------------------------------------------------------- the loop
    def run(self, tasks: list[_Task]) -> None:
        order = {"start": 0, "reconf": 1, "release": 2}
        pending = sorted(tasks, key=lambda k: (order[k.kind], -k.saving_w, k.pool_to or k.pool_from or "",
                                               k.server, k.gpus_to or k.gpus_from, k.instance))
        self._settle()
        guard = 0
        while pending:
            guard += 1
            if guard > 100_000:  # pragma: no cover - every round launches, advances or forces
                raise RuntimeError("reconfiguration scheduler made no progress")
            launched = True
            while launched and pending:
                launched = False
                for task in list(pending):
                    if not self._ready(task, pending):
                        continue
                    if self._harm(self._task_events(task)) > 0:
                        continue
                    self._launch(task, self._reason(task))
                    pending.remove(task)
                    launched = True
                    if task.action_kind == "reshard":
                        break  # re-evaluate in priority order: one re-shard per pool at a time
                if not launched and pending:
                    launched = self._try_pairs(pending)
            if not pending:
                break
            nxt = self._next_time()
            if nxt is not None:
                self.t = nxt
                self._settle()
                continue
            self._force(pending)

    def _task_events(self, task: _Task) -> dict[str, list]:
        return self._events_of(task, self.t, self.t + self._cost(task).duration_s)

    def _try_pairs(self, pending: list[_Task]) -> bool:
        """Launch two ready tasks that are harmless together though not alone: instances swapping
        pools, one arriving where the other leaves. Both start now, or the shorter one (if it
        needs no new GPUs) starts later so that both complete at the same instant. Only pairs
        whose pools meet are tried."""
        ready = [k for k in pending if self._ready(k, pending)]
        dur = {id(k): self._cost(k).duration_s for k in ready}
        pools = {id(k): set(self._task_events(k)) for k in ready}
        for n, k1 in enumerate(ready):
            for k2 in ready[n + 1:]:
                if not pools[id(k1)] & pools[id(k2)]:
                    continue
                if k1.action_kind == k2.action_kind == "reshard" and \
                        {k1.pool_from, k1.pool_to} & {k2.pool_from, k2.pool_to}:
                    continue  # re-shards of one pool stay staggered
                d1, d2 = dur[id(k1)], dur[id(k2)]
                offsets = [(0.0, 0.0)]
                if d1 > d2 and not self._needs_gpus(k2):
                    offsets.append((0.0, d1 - d2))
                if d2 > d1 and not self._needs_gpus(k1):
                    offsets.append((d2 - d1, 0.0))
                for o1, o2 in offsets:
                    joint: dict[str, list] = {}
                    for k, o, d in ((k1, o1, d1), (k2, o2, d2)):
                        for pool, lst in self._events_of(k, self.t + o, self.t + o + d).items():
                            joint.setdefault(pool, []).extend(lst)
                    if self._harm(joint) <= 0:
                        for k, o in ((k1, o1), (k2, o2)):
                            other = k2 if k is k1 else k1
                            self._launch(k, f"with {other.instance}, completing together: {self._reason(k)}",
                                         at=self.t + o)
                            pending.remove(k)
                        return True
        return False

    def _force(self, pending: list[_Task]) -> None:
        """Nothing is in flight and every task left would open a dip or waits for GPUs.

        First, make before break on spare GPUs: a harmful ready re-configuration becomes a new
        instance on a free block (reserved by no task) plus the release of the old one. Failing
        that, break before make: force the task that frees GPUs a blocked task needs, at the least
        shortfall (the dip is reported). Failing that (re-shards waiting for each other's GPUs),
        turn one re-shard into release + start on its target block.
        """
        ready = [k for k in pending if self._ready(k, pending)]
        # re-configurations waiting for GPUs, then those that would open a dip, deepest first
        convertible = [k for k in pending if k.kind == "reconf" and k.after is None
                       and not any(j.after is k for j in pending)
                       and self.busy_until.get(k.instance, -_INF) <= self.t]
        for task in sorted(convertible, key=lambda k: (k in ready, -self._harm(self._task_events(k))
                                                       if k in ready else 0.0, k.instance)):
            block = self._spare_block(task, pending)
            if block is not None:
                self._replace(task, pending, block[0], block[1], "make before break on spare GPUs")
                return
        wanted = {(k.server, g) for k in pending if k.kind != "release" for g in self._needs_gpus(k)
                  if self.owner.get((k.server, g), k.instance) != k.instance}
        best = None
        for task in ready:
            if task.kind == "start":
                continue
            frees = {(task.server, g) for g in set(task.gpus_from) - set(task.gpus_to)}
            harm = self._harm(self._task_events(task))
            key = (0 if frees & wanted else 1, harm, task.instance)
            if best is None or key < best[0]:
                best = (key, task)
        if best is not None:
            task = best[1]
            pools = sorted({p for p in (task.pool_from, task.pool_to) if p})
            end = self.t + self._cost(task).duration_s
            self.forced.extend((p, self.t, end, f"{task.action_kind} {task.instance}") for p in pools)
            self._launch(task, f"FORCED (no spare GPUs to make before break): {self._reason(task)}")
            pending.remove(task)
            return
        recon = [k for k in pending if k.kind == "reconf" and self._needs_gpus(k)
                 and not any(j.after is k for j in pending)]
        if not recon:  # pragma: no cover - starts wait only for GPUs that releases or re-shards free
            raise RuntimeError("reconfiguration scheduler: blocked tasks with nothing to free their GPUs")
        task = min(recon, key=lambda k: (self.cap.lmax(k.cfg_from, k.pool_from), k.instance))
        self._replace(task, pending, task.server, task.gpus_to, "re-shards waiting for each other's GPUs")

    def _spare_block(self, task: _Task, pending: list[_Task]) -> tuple[str, tuple[int, ...]] | None:
        """A free aligned block for the task's target, on a server of its hardware, that no pending
        task will use; servers in use first."""
        reserved = {(k.server, g) for k in pending for g in k.gpus_to}
        gps = self.state.hardware[task.hardware].gpus_per_server
        in_use = {srv for srv, _ in self.owner}
        best = None
        for srv in self.state.servers:
            if srv.hardware != task.hardware:
                continue
            for b in range(0, gps, task.tp_to):
                blk = tuple(range(b, b + task.tp_to))
                if any((srv.id, g) in self.owner or (srv.id, g) in reserved for g in blk):
                    continue
                key = (srv.id not in in_use, srv.id, b)
                if best is None or key < best[0]:
                    best = (key, srv.id, blk)
        return None if best is None else (best[1], best[2])

    def _replace(self, task: _Task, pending: list[_Task], server: str, gpus: tuple[int, ...], why: str) -> None:
        """Turn a re-configuration into a new instance on ``gpus`` of ``server`` and a release."""
        pending.remove(task)
        rel = _Task("release", task.pool_from, None, task.server, task.hardware, task.instance,
                    tp_from=task.tp_from, gpus_from=task.gpus_from, freq_from=task.freq_from)
        nid = _new_id(task.pool_to, self.used_ids)
        placed = task.placed.model_copy(update={"server": server, "gpus": tuple(gpus), "source": None})
        st = _Task("start", None, task.pool_to, server, task.hardware, nid, tp_to=task.tp_to, gpus_to=tuple(gpus),
                   freq_to=task.freq_to, placed=placed, note=f"replaces {task.instance} ({why})")
        rel.note = f"replaced by {nid} ({why})"
        self.final.pop(task.instance, None)
        self.final[nid] = placed
        pending.insert(0, st)
        pending.append(rel)

    # ---------------------------------------------------------------- dips
    def dips(self) -> list[Dip]:
        out = []
        for pool in sorted(set(self.events) | set(self.demand)):
            d = self.dtot.get(pool, 0.0)
            if d <= 0:
                continue
            segs = self._segments(pool, [], self.t0)
            cur = None
            for n, (tau, c) in enumerate(segs):
                end = segs[n + 1][0] if n + 1 < len(segs) else None
                s = short_of(c, d)
                if s > 0 and cur is not None and abs(cur["capacity_rps"] - c) <= RTOL * max(1.0, d):
                    cur["end_s"] = end
                    continue
                if cur is not None:
                    out.append(cur)
                    cur = None
                if s > 0:
                    prev = out[-1] if out and out[-1]["pool"] == pool and out[-1]["end_s"] == tau else None
                    cur = dict(pool=pool, start_s=tau, end_s=end, demand_rps=d, capacity_rps=c,
                               shortfall_rps=d - c, cause=self._cause(pool, tau, prev))
            if cur is not None:
                out.append(cur)
        return [Dip(**x) for x in out if x["end_s"] is None or x["end_s"] > x["start_s"]]

    def _cause(self, pool: str, tau: float, prev: dict | None) -> str:
        for p, t, end, what in self.forced:
            if p == pool and t - 1e-9 <= tau <= end + 1e-9:
                return f"inventory too small to make before break: {what} forced"
        if prev is not None:  # the dip goes on at another depth
            return prev["cause"]
        if tau <= self.t0:
            return "the current instances cannot carry the forecast until new capacity is up"
        return "capacity withheld by a transition while the pool has no spare"


def _new_id(pool: str, used: set[str]) -> str:
    k = 0
    while f"{pool}-{k}" in used:
        k += 1
    nid = f"{pool}-{k}"
    used.add(nid)
    return nid


def _power_w(profile: Profile, cap: CapacityModel, cfg: Cfg, pool: str, loads: Mapping[str, float]) -> float:
    """Profile power of one instance of ``cfg`` serving ``loads`` (req/s by class): the
    mixed-instance rule of :meth:`Profile.mixed_power_w`. A class the configuration cannot serve
    at its SLO counts at the pool class's curve, at the summed load clipped to the profiled range."""
    parts = [(c, float(v)) for c, v in loads.items() if v > 0]
    if any(cap.lmax(cfg, c) <= 0 for c, _ in parts):
        lm = cap.lmax(cfg, pool)
        total = sum(loads.values())
        return cap.power_w(cfg, pool, min(total, lm) if lm > 0 else total)
    h, tp, f = cfg
    own = profile.group_ids(h, tp, f, pool, cap.model)
    if not parts:
        return float(profile.mixed_power_w([], [], [], [], own)[0])
    classes = [c for c, _ in parts]
    gid = profile.group_ids([h] * len(parts), [tp] * len(parts), [f] * len(parts), classes, cap.model)
    return float(profile.mixed_power_w(np.zeros(len(parts), dtype=np.int64), gid,
                                       [cap.lmax(cfg, c) for c in classes], [v for _, v in parts], own)[0])


def _tasks(state: ClusterState, placed: tuple[PlacedInstance, ...], released: tuple[str, ...], profile: Profile,
           cap: CapacityModel) -> tuple[list[_Task], set[str], dict[str, PlacedInstance]]:
    hw_of = {s.id: s.hardware for s in state.servers}
    settled = {i.id: i for i in advance(state, state.settle_time_s).instances}
    used = {i.id for i in state.instances}
    tasks: list[_Task] = []
    final: dict[str, PlacedInstance] = {}  # final instance id -> its placement
    for pi in placed:
        if pi.source is None:
            nid = _new_id(pi.pool, used)
            tasks.append(_Task("start", None, pi.pool, pi.server, pi.hardware, nid, tp_to=pi.tp,
                               gpus_to=pi.gpus, freq_to=pi.freq_mhz, placed=pi))
            final[nid] = pi
            continue
        inst = settled[pi.source]
        final[inst.id] = pi
        same = (inst.pool == pi.pool and inst.tp == pi.tp and set(inst.gpu_indices) == set(pi.gpus)
                and inst.freq_mhz == pi.freq_mhz)
        if same:
            continue
        cfg_from = (hw_of[inst.server], inst.tp, inst.freq_mhz)
        cfg_to = (pi.hardware, pi.tp, pi.freq_mhz)
        saving = (_power_w(profile, cap, cfg_from, inst.pool, inst.load_rps)
                  - _power_w(profile, cap, cfg_to, pi.pool, pi.load_rps))
        task = _Task("reconf", inst.pool, pi.pool, inst.server, pi.hardware, inst.id, tp_from=inst.tp,
                     tp_to=pi.tp, gpus_from=tuple(sorted(inst.gpu_indices)), gpus_to=tuple(pi.gpus),
                     freq_from=inst.freq_mhz, freq_to=pi.freq_mhz, saving_w=saving, placed=pi)
        if task.action_kind == "move_pool" and task.freq_from != task.freq_to:
            # a move that also changes the clock: two steps. Re-clock first when that does not lower
            # the capacity in the old pool (or the old clock cannot serve the new pool's class),
            # else re-route first and lower the clock in the new pool.
            mid_cfg = (pi.hardware, inst.tp, pi.freq_mhz)
            move_first = (cap.lmax(cfg_from, pi.pool) > 0
                          and cap.lmax(mid_cfg, inst.pool) < cap.lmax(cfg_from, inst.pool))
            mid_pool, mid_freq = (pi.pool, inst.freq_mhz) if move_first else (inst.pool, pi.freq_mhz)
            first = _Task("reconf", inst.pool, mid_pool, inst.server, pi.hardware, inst.id, tp_from=inst.tp,
                          tp_to=inst.tp, gpus_from=task.gpus_from, gpus_to=task.gpus_from, freq_from=inst.freq_mhz,
                          freq_to=mid_freq, saving_w=saving, placed=pi)
            second = _Task("reconf", mid_pool, pi.pool, inst.server, pi.hardware, inst.id, tp_from=inst.tp,
                           tp_to=inst.tp, gpus_from=task.gpus_from, gpus_to=task.gpus_from, freq_from=mid_freq,
                           freq_to=pi.freq_mhz, saving_w=saving, placed=pi, after=first)
            tasks.extend((first, second))
            continue
        tasks.append(task)
    for iid in released:
        inst = settled[iid]
        tasks.append(_Task("release", inst.pool, None, inst.server, hw_of[inst.server], iid, tp_from=inst.tp,
                           gpus_from=tuple(sorted(inst.gpu_indices)), freq_from=inst.freq_mhz))
    return tasks, used, final


def _check_args(profile, state, slos, plan=None) -> None:
    """The arguments' types, so a call in the old order ``(state, plan, costs, profile)`` fails
    with a clear message rather than deep inside."""
    want = {"profile": (profile, Profile), "state": (state, ClusterState), "slos": (slos, SLOTable)}
    if plan is not None:
        want["plan"] = (plan, Plan)
    for name, (v, t) in want.items():
        if not isinstance(v, t):
            raise ValidationError(f"reconfig: {name} must be a {t.__name__}, got {type(v).__name__} (the order is "
                                  "diff(profile, state, slos, plan, costs) / plan_of(profile, state, slos), as "
                                  "Planner(profile, inventory, slos) and check_plan(profile, inventory, slos, plan))")


def diff(profile: Profile, state: ClusterState, slos: SLOTable, plan: Plan, costs: TransitionCosts | None = None,
         *, now_s: float = 0.0, placement_options: PlacementOptions | None = None) -> ReconfigPlan:
    """The actions that take ``state`` to ``plan``, scheduled make-before-break from
    ``max(now_s, state.time_s)``; see the module docstring. Arguments in the order of
    ``Planner(profile, inventory, slos)`` and ``check_plan(profile, inventory, slos, plan)``."""
    _check_args(profile, state, slos, plan)
    costs = costs or TransitionCosts()
    t0 = max(check_time_s(now_s, "now_s"), state.time_s)  # bounded: a 420 s start must not round away
    state = advance(state, t0)
    cap = CapacityModel(profile, slos, state.model)
    demand = {pp.pool: {c: float(v) for c, v in pp.served_rps.items() if v > 0} for pp in plan.pools}
    placement = place(state, plan, costs, placement_options)
    tasks, used, final = _tasks(state, placement.placed, placement.released, profile, cap)
    sched = _Scheduler(state, cap, costs, demand, t0, final, used)
    sched.run(tasks)
    _assign_loads(sched, state, sched.final)
    ordered = sorted(sched.actions, key=lambda a: (a.start_s, a.seq))
    actions = tuple(a.model_copy(update={"seq": n}) for n, a in enumerate(ordered))
    dips = tuple(sched.dips())
    finite = [d for d in dips if d.end_s is not None]
    summary = ReconfigSummary(
        n_actions=dict(Counter(a.kind for a in actions)),
        transition_energy_j=float(sum(a.cost.energy_j for a in actions)),
        gpu_s_unavailable=float(sum(a.cost.gpu_s_unavailable for a in actions)),
        lost_capacity_rps_s=float(sum(a.cost.lost_capacity_rps_s for a in actions)),
        weight_bytes_moved=float(sum(a.cost.bytes_moved for a in actions)),
        servers_touched=len({a.server for a in actions if a.kind != "assign_load"}),
        target_reached_s=max([t0] + [a.end_s for a in actions]),
        shortfall_rps_s=float(sum(d.shortfall_rps * (d.end_s - d.start_s) for d in finite)))
    notes = [placement.message] if placement.message else []
    if any(d.end_s is None for d in dips):
        notes.append("a pool stays below its forecast load after the schedule: the plan's capacity is short")
    return ReconfigPlan(now_s=t0, actions=actions, dips=dips, demand_rps=demand, summary=summary,
                        placement_status=placement.method, notes=tuple(notes))


def _assign_loads(sched: _Scheduler, state: ClusterState, final: dict[str, PlacedInstance]) -> None:
    """Give every target instance the plan's load once its pool has reached the target."""
    settled = {i.id: i for i in advance(state, state.settle_time_s).instances}
    done_at: dict[str, float] = {}
    for inst in state.instances:  # operations in flight in the state touch their pools too
        if inst.in_flight is not None:
            for p in (inst.pool, inst.in_flight.target_pool):
                if p:
                    done_at[p] = max(done_at.get(p, sched.t0), inst.in_flight.until_s)
    for a in sched.actions:
        for p in (a.pool_from, a.pool_to):
            if p:
                done_at[p] = max(done_at.get(p, sched.t0), a.end_s)
    moved = {a.instance for a in sched.actions if a.pool_from != a.pool_to and a.kind != "start"}
    current = {iid: ({} if settled.get(iid) is None or iid in moved else settled[iid].load_rps) for iid in final}
    final = _keep_current_loads(final, current)
    todo = []
    for iid, pi in final.items():
        if _same_load(current[iid], pi.load_rps):
            continue
        todo.append((done_at.get(pi.pool, sched.t0), pi.pool, iid, pi))
    for t, pool, iid, pi in sorted(todo, key=lambda x: (x[0], x[1], x[2])):
        c = sched.cap.lmax((pi.hardware, pi.tp, pi.freq_mhz), pool)
        sched.actions.append(Action(
            seq=len(sched.actions), kind="assign_load", instance=iid, server=pi.server, hardware=pi.hardware,
            start_s=t, end_s=t, pool_from=pool, pool_to=pool, tp_from=pi.tp, tp_to=pi.tp, gpus_from=pi.gpus,
            gpus_to=pi.gpus, freq_from_mhz=pi.freq_mhz, freq_to_mhz=pi.freq_mhz, load_rps=dict(pi.load_rps),
            cost=assign_cost(c), reason=f"pool {pool} at its target: the plan's load split"))


def _keep_current_loads(final: dict[str, PlacedInstance], current: dict[str, dict]) -> dict[str, PlacedInstance]:
    """The plan's loads re-dealt among interchangeable target instances (same pool, hardware, TP and
    clock), so that an instance already carrying one of its group's target loads keeps it: which
    of two identical instances takes which share of the pool's load is the plan's arbitrary
    choice, and reassigning it is not a change to make."""
    groups: dict[tuple, list[str]] = {}
    for iid, pi in final.items():
        groups.setdefault((pi.pool, pi.hardware, pi.tp, pi.freq_mhz), []).append(iid)
    out = dict(final)
    for ids in groups.values():
        if len(ids) < 2:
            continue
        loads = [final[i].load_rps for i in ids]
        dealt: dict[str, dict] = {}
        for iid in ids:  # first, every instance whose current load is one of the targets keeps it
            k = next((n for n, ld in enumerate(loads) if _same_load(current[iid], ld)), None)
            if k is not None:
                dealt[iid] = loads.pop(k)
        for iid in ids:  # the rest take the remaining targets in order
            if iid not in dealt:
                dealt[iid] = loads.pop(0)
        out.update({iid: final[iid].model_copy(update={"load_rps": dict(dealt[iid])}) for iid in ids})
    return out


def _same_load(a: dict, b: dict) -> bool:
    keys = {k for k, v in a.items() if v > 0} | {k for k, v in b.items() if v > 0}
    return all(abs(a.get(k, 0.0) - b.get(k, 0.0)) <= 1e-9 * max(1.0, abs(b.get(k, 0.0))) for k in keys)


def plan_of(profile: Profile, state: ClusterState, slos: SLOTable = DEFAULT_SLOS, epoch_s: float = 300.0) -> Plan:
    """The state as a :class:`dynaplan.planning.Plan` (``mode='observed'``): its instances grouped by
    pool, configuration and load, in-flight ones as what they become (drained ones not at all).

    ``diff(profile, state, slos, plan_of(profile, state, slos))`` is empty. Power is the
    profile's at each instance's load; servers per pool are those hosting the pool's instances.
    No solver ran: the report says so (``Status.NOT_SOLVED``, no backend).
    """
    _check_args(profile, state, slos)
    cap = CapacityModel(profile, slos, state.model)
    settled = advance(state, state.settle_time_s)
    hw_of = {s.id: s.hardware for s in settled.servers}
    groups: dict[str, dict[tuple, int]] = {}
    servers: dict[str, dict[str, set]] = {}
    for i in settled.instances:
        key = (hw_of[i.server], i.tp, i.freq_mhz, tuple(sorted((c, v) for c, v in i.load_rps.items() if v > 0)))
        groups.setdefault(i.pool, {})
        groups[i.pool][key] = groups[i.pool].get(key, 0) + 1
        servers.setdefault(i.pool, {}).setdefault(hw_of[i.server], set()).add(i.server)
    pools = []
    forecast: dict[str, float] = {}
    gps = {h: hw.gpus_per_server for h, hw in settled.hardware.items()}
    idle_w = {h: hw.idle_power_w for h, hw in settled.hardware.items()}
    for pool in sorted(groups):
        gl, served = [], {}
        pool_load = sum(n * sum(v for _, v in key[3]) for key, n in groups[pool].items())
        for (h, tp, f, load), n in sorted(groups[pool].items()):
            cfg = (h, tp, f)
            util = sum(v / cap.lmax(cfg, c) if cap.lmax(cfg, c) > 0 else _INF for c, v in load)
            pw = _power_w(profile, cap, cfg, pool, dict(load))
            for c, v in load:
                served[c] = served.get(c, 0.0) + n * v
            gl.append(InstanceGroup(hardware=h, tp=tp, freq_mhz=f, count=n, load_rps_per_instance=dict(load),
                                    load_share=(n * sum(v for _, v in load) / pool_load) if pool_load > 0 else 0.0,
                                    utilisation=float(util) if np.isfinite(util) else 1e9,
                                    power_w_per_instance=pw, power_w=pw * n, energy_j=pw * n * epoch_s,
                                    slo_margin=1.0 - float(util) if np.isfinite(util) else -1e9))
        srv = {h: len(ids) for h, ids in servers[pool].items()}
        idle, idle_pw, power = pool_totals(gl, srv, gps, idle_w)
        for c, v in served.items():
            forecast[c] = forecast.get(c, 0.0) + v
        pools.append(PoolPlan(pool=pool, servers=srv, groups=tuple(gl), served_rps=served, idle_gpus=idle,
                              idle_power_w=idle_pw, power_w=power, energy_j=power * epoch_s))
    srv_all, gpus, total = plan_totals(pools)
    report = SolveReport.not_solved("observed from a cluster state", objective=total)
    return Plan(mode="observed", epoch_s=epoch_s, forecast_rps=forecast, pools=tuple(pools), power_w=total,
                energy_j=total * epoch_s, servers=srv_all, gpus=gpus, approx_error_bound_w=0.0, report=report,
                wall_time_s=0.0, notes=("observed from a cluster state",))


__all__ = ["diff", "plan_of"]
