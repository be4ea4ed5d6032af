"""The cluster during a replay: servers per pool, boots and drains in flight, transition events.

Moving from one :class:`Deployment` to the next at time ``t`` (:meth:`ReplayState.apply`), per
hardware type, with the parameters of :class:`dynaplan.reconfig.TransitionParams`:

1. **Servers.** Pools that shrink give up servers — booting ones first (their boot is abandoned
   or handed over), then running ones. Pools that grow take, in pool order, freed running servers
   (a move between pools of the same model: a re-route, no reload; ``pool_move_s`` is taken as 0,
   its default), then freed booting servers (they keep their ready time), then **new servers
   that boot for** ``start_s`` (VM, weights, engine: 420 s by default), their GPUs drawing
   ``start_gpu_power_w`` meanwhile and serving nothing. Freed running servers left over drain for ``drain_s`` at
   ``transition_gpu_power_w`` and are then returned (no energy, no cost).
2. **Instances.** Inside a pool, instances of an unchanged (hardware, TP, clock) stay. Of the rest,
   pairs of the same TP re-clock (:func:`clock_cost`: the instance stalls ``clock_change_s``); the
   remaining new instances are placed on booting GPUs first (largest TP first; they serve when the
   boot ends) and otherwise re-shard onto GPUs already up (:func:`reshard_cost` from the largest
   freed TP of the pool, by weight transfer: the old instance serves until the swap; by reload:
   the new instance stalls ``reshard_reload_s``), or, when nothing was freed in the pool, copy the
   weights onto free GPUs of a running server (:func:`reshard_cost` onto a disjoint GPU set).
   Boots and drains are the actions of :mod:`dynaplan.domain.transitions` (``start_cost``,
   ``release_cost``) on every GPU of the servers, as re-clocks and re-shards are (``clock_cost``,
   ``reshard_cost``): the replay and ``reconfig.diff`` share one model of what a transition does.
3. **Serving.** A pool's instances are up in proportion to its GPUs on running servers: with
   ``ready`` of its servers up and instances needing ``G`` GPUs, a fraction
   ``min(1, gpus_per_server x ready / G)`` of every group serves (time-averaged within a window
   when a boot ends inside it). Stalls (clock changes, reload re-shards) take instance-seconds off
   the group that changed.

With ``free=True`` (the Oracle) every transition is instantaneous and costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from dynaplan.domain.hardware import HardwareType
from dynaplan.domain.model import ModelSpec
from dynaplan.domain.transitions import TransitionCosts, clock_cost, release_cost, reshard_cost, start_cost
from dynaplan.replay.deployment import Deployment


@dataclass
class _Boot:
    pool: str
    hardware: str
    n: int
    start_s: float
    ready_s: float


@dataclass
class _Drain:
    hardware: str
    n: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Stall:
    """``n`` instances of (pool, hardware, tp) serve nothing in ``[start_s, end_s)``."""

    pool: str
    hardware: str
    tp: int
    n: float
    start_s: float
    end_s: float


@dataclass
class TransitionCounts:
    """Transitions so far (counts of servers or instances)."""

    servers_started: int = 0
    servers_released: int = 0
    servers_moved: int = 0
    boots_abandoned: int = 0
    reshards: int = 0
    reclocks_pool_level: int = 0
    reclocks_instance_level: float = 0.0
    energy_j: float = 0.0  # re-shard and pool-level re-clock energy (boots and drains are in the GPU states)

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass
class ReplayState:
    """Servers, boots, drains and events of one replay (see the module docstring)."""

    hardware: Mapping[str, HardwareType]
    costs: TransitionCosts
    model: str
    free: bool = False
    deployment: Deployment | None = None
    servers: dict = field(default_factory=dict)          # (pool, hw) -> servers (incl. booting)
    booting: list = field(default_factory=list)          # _Boot
    draining: list = field(default_factory=list)         # _Drain
    stalls: list = field(default_factory=list)           # Stall
    events: list = field(default_factory=list)           # (time_s, energy_j)
    counts: TransitionCounts = field(default_factory=TransitionCounts)

    @property
    def model_spec(self) -> ModelSpec:
        return self.costs.model_spec(self.model)

    # ------------------------------------------------------------------ moving to a deployment
    def apply(self, dep: Deployment, t: float) -> None:
        """Move to ``dep`` at time ``t`` (servers first, then instances).

        The first deployment is in place at ``t`` at no cost: the cluster was running before the
        replay starts.
        """
        gps = {h: hw.gpus_per_server for h, hw in self.hardware.items()}
        target = dep.server_counts(gps)
        if self.deployment is None:
            self.servers = dict(target)
            self.deployment = dep
            return
        new_boot_gpus: dict[tuple[str, str], int] = {}
        for h in {k[1] for k in (*target, *self.servers)}:
            new_boot_gpus.update(self._move_servers(h, target, t))
        self._change_instances(self.deployment, dep, new_boot_gpus, t)
        self.servers = dict(target)
        self.deployment = dep

    def _move_servers(self, h: str, target: Mapping, t: float) -> dict[tuple[str, str], int]:
        p = self.costs.params(self.model, h)
        g_per = self.hardware[h].gpus_per_server
        pools = list(dict.fromkeys([k[0] for k in target if k[1] == h] + [k[0] for k in self.servers if k[1] == h]))
        old = {q: self.servers.get((q, h), 0) for q in pools}
        new = {q: target.get((q, h), 0) for q in pools}
        freed_ready = 0
        freed_boot: list[_Boot] = []
        for q in pools:
            give = old[q] - new[q]
            if give <= 0:
                continue
            mine = sorted((b for b in self.booting if b.pool == q and b.hardware == h), key=lambda b: -b.ready_s)
            for b in mine:
                if give == 0:
                    break
                k = min(b.n, give)
                b.n -= k
                give -= k
                freed_boot.append(_Boot(q, h, k, b.start_s, b.ready_s))
            freed_ready += give
        self.booting = [b for b in self.booting if b.n > 0]
        freed_boot.sort(key=lambda b: b.ready_s)
        boot_gpus: dict[tuple[str, str], int] = {}
        for q in pools:
            need = new[q] - old[q]
            if need <= 0:
                continue
            k = min(freed_ready, need)
            freed_ready -= k
            need -= k
            self.counts.servers_moved += k
            while need > 0 and freed_boot:
                b = freed_boot[0]
                k = min(b.n, need)
                self.booting.append(_Boot(q, h, k, b.start_s, b.ready_s))
                b.n -= k
                need -= k
                boot_gpus[(q, h)] = boot_gpus.get((q, h), 0) + k * g_per
                if b.n == 0:
                    freed_boot.pop(0)
            if need > 0:
                self.counts.servers_started += need
                boot = start_cost(p, self.hardware[h], self.model_spec, range(need * g_per), 0.0)
                if not self.free and boot.duration_s > 0:
                    self.booting.append(_Boot(q, h, need, t, t + boot.duration_s))
                    boot_gpus[(q, h)] = boot_gpus.get((q, h), 0) + need * g_per
        self.counts.boots_abandoned += sum(b.n for b in freed_boot)
        if freed_ready > 0:
            self.counts.servers_released += freed_ready
            drain = release_cost(p, self.hardware[h], range(freed_ready * g_per), 0.0)
            if not self.free and drain.duration_s > 0:
                self.draining.append(_Drain(h, freed_ready, t, t + drain.duration_s))
        return boot_gpus

    def _change_instances(self, old: Deployment | None, new: Deployment, boot_gpus: Mapping, t: float) -> None:
        def by_pool(dep):
            out: dict[tuple[str, str], dict[tuple[int, int | None], int]] = {}
            for g in (dep.groups if dep else ()):
                d = out.setdefault((g.pool, g.hardware), {})
                d[(g.tp, g.freq_mhz)] = d.get((g.tp, g.freq_mhz), 0) + g.count
            return out

        o, n = by_pool(old), by_pool(new)
        for key in n:
            pool, h = key
            hw, p = self.hardware[h], self.costs.params(self.model, h)
            have, want = dict(o.get(key, {})), dict(n[key])
            for cfg in list(want):  # unchanged instances stay
                k = min(have.get(cfg, 0), want[cfg])
                have[cfg] = have.get(cfg, 0) - k
                want[cfg] -= k
            # same TP, other clock: re-clock
            for (tp, f), cnt in sorted(want.items()):
                for (tp2, f2), cnt2 in sorted(have.items()):
                    if cnt == 0:
                        break
                    if tp2 != tp or cnt2 == 0:
                        continue
                    k = min(cnt, cnt2)
                    cnt -= k
                    have[(tp2, f2)] -= k
                    want[(tp, f)] -= k
                    self.counts.reclocks_pool_level += k
                    if not self.free:
                        c = clock_cost(p, hw, range(tp), 1.0, 1.0)
                        self.counts.energy_j += k * c.energy_j
                        self.events.append((t, k * c.energy_j))
                        self.stalls.append(Stall(pool, h, tp, k, t, t + c.duration_s))
            freed = sorted((tp for (tp, _), c in have.items() for _ in range(max(0, c))), reverse=True)
            boot_left = boot_gpus.get(key, 0)
            for (tp, _f), cnt in sorted(want.items(), key=lambda kv: -kv[0][0]):
                for _ in range(max(0, cnt)):
                    if boot_left >= tp:  # formed on a booting server: serves when the boot ends
                        boot_left -= tp
                        continue
                    self.counts.reshards += 1
                    if self.free:
                        continue
                    if freed:  # in place, from a freed instance of the pool
                        c = reshard_cost(p, hw, self.model_spec, range(freed.pop(0)), range(tp), 1.0, 1.0)
                    else:      # weights copied onto GPUs of a running server that hold none of them
                        c = reshard_cost(p, hw, self.model_spec, range(tp), range(tp, 2 * tp), 1.0, 1.0)
                    self.counts.energy_j += c.energy_j
                    self.events.append((t, c.energy_j))
                    if c.capacity_during_rps < c.capacity_before_rps:
                        self.stalls.append(Stall(pool, h, tp, 1, t, t + c.duration_s))

    # ------------------------------------------------------------------ what is up in windows
    def window_arrays(self, w0: int, w1: int, window_s: float, group_keys: list[tuple[str, str, int]],
                      group_counts: np.ndarray) -> dict[str, np.ndarray]:
        """Availability and GPU states in windows ``w0 .. w1-1`` for the current deployment.

        Returns ``n_avail`` (windows x groups, instances up, time-averaged), ``stall`` (same shape,
        instance-windows stalled), and per hardware (dict keyed by name) ``ready_gpus``,
        ``boot_gpus``, ``drain_gpus``, ``servers`` (active: up, booting or draining), plus
        ``event_energy_j`` per window and ``pool_servers`` {pool: servers per window}.
        """
        nw = w1 - w0
        t = (w0 + np.arange(nw)) * window_s
        gps = {h: hw.gpus_per_server for h, hw in self.hardware.items()}

        def down_frac(start, end):  # share of each window in [start, end)
            lo = np.clip((start - t) / window_s, 0.0, 1.0)
            hi = np.clip((end - t) / window_s, 0.0, 1.0)
            return hi - lo

        unready: dict[tuple[str, str], np.ndarray] = {}
        boot_gpus = {h: np.zeros(nw) for h in self.hardware}
        for b in self.booting:
            f = b.n * down_frac(b.start_s, b.ready_s)
            unready[(b.pool, b.hardware)] = unready.get((b.pool, b.hardware), 0.0) + f
            boot_gpus[b.hardware] += f * gps[b.hardware]
        drain_gpus = {h: np.zeros(nw) for h in self.hardware}
        drain_srv = {h: np.zeros(nw) for h in self.hardware}
        for d in self.draining:
            f = d.n * down_frac(d.start_s, d.end_s)
            drain_gpus[d.hardware] += f * gps[d.hardware]
            drain_srv[d.hardware] += f
        need = self.deployment.gpus_by_pool() if self.deployment else {}
        avail = {}
        ready_gpus = {h: np.zeros(nw) for h in self.hardware}
        servers = {h: drain_srv[h].copy() for h in self.hardware}
        pool_servers: dict[str, np.ndarray] = {}
        for (pool, h), s in self.servers.items():
            up = s - unready.get((pool, h), 0.0)
            ready_gpus[h] += up * gps[h]
            servers[h] += s
            pool_servers[pool] = pool_servers.get(pool, 0.0) + np.full(nw, float(s))
            g = need.get((pool, h), 0)
            avail[(pool, h)] = np.minimum(1.0, up * gps[h] / g) if g > 0 else np.ones(nw)
        n_avail = np.zeros((nw, len(group_keys)))
        stall = np.zeros((nw, len(group_keys)))
        for j, (pool, h, tp) in enumerate(group_keys):
            n_avail[:, j] = group_counts[j] * avail.get((pool, h), np.ones(nw))
        for s in self.stalls:
            f = s.n * down_frac(s.start_s, s.end_s)
            for j, key in enumerate(group_keys):
                if key == (s.pool, s.hardware, s.tp):
                    stall[:, j] += f
                    break
        stall = np.minimum(stall, n_avail)
        energy = np.zeros(nw)
        for (te, e) in self.events:
            w = int(te // window_s) - w0
            if 0 <= w < nw:
                energy[w] += e
        return {"n_avail": n_avail, "stall": stall, "ready_gpus": ready_gpus, "boot_gpus": boot_gpus,
                "drain_gpus": drain_gpus, "servers": servers, "event_energy_j": energy, "pool_servers": pool_servers}

    def forget_before(self, t: float) -> None:
        """Drop boots, drains, stalls and events that ended before ``t``."""
        self.booting = [b for b in self.booting if b.ready_s > t]
        self.draining = [d for d in self.draining if d.end_s > t]
        self.stalls = [s for s in self.stalls if s.end_s > t]
        self.events = [e for e in self.events if e[0] >= t]
