"""What a policy asks for: instance groups per pool, routing of predicted classes, servers per pool.

A :class:`Deployment` is the replay's unit of decision. The engine moves the cluster from the
current deployment to the new one with real delays (``dynaplan.replay.state``) and serves every
5-s window with what is actually up.

* **Groups** (:class:`GroupSpec`): ``count`` instances of (hardware, TP) in a pool, either at a
  fixed clock or with ``freq_mhz=None``: the *instance level* then picks each window's clock
  (least power whose utilisation at the load observed in the previous window stays within the SLO;
  ``formulations/instance.md``).
* **Routing**: for each predicted class, the fraction of its requests each pool takes (pools
  without any instance are skipped). A class with no route goes to its own pool if it has
  instances, else to the next larger class's pool that has, else to the first pool that has.
* **Spread inside a pool**: class ``c``'s share of the pool goes to group ``g`` in proportion to
  ``count_g x weight_g[c]``: the plan's load per instance (:meth:`Deployment.from_pool_plans`) or,
  when the group gives no weight for ``c``, the instance's capacity for ``c`` (balanced
  utilisation).
* **Servers** per pool and hardware; by default just enough for the pool's GPUs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dynaplan.errors import ValidationError


@dataclass(frozen=True)
class GroupSpec:
    """``count`` instances of one (hardware, TP) in ``pool``; ``freq_mhz=None`` = instance-level clocks."""

    pool: str
    hardware: str
    tp: int
    count: int
    freq_mhz: int | None = None
    weight: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.count < 0 or self.tp <= 0:
            raise ValidationError(f"group {self.pool}/{self.hardware}/TP{self.tp}: count {self.count} and tp "
                                  f"{self.tp}; expected count >= 0, tp >= 1")
        if any((not math.isfinite(v)) or v < 0 for v in self.weight.values()):
            raise ValidationError(f"group {self.pool}/{self.hardware}/TP{self.tp}: weights must be finite and >= 0")

    @property
    def gpus(self) -> int:
        return self.tp * self.count


@dataclass(frozen=True)
class Deployment:
    """Groups, routing (predicted class -> pool -> fraction) and servers (pool -> hardware -> count)."""

    groups: tuple[GroupSpec, ...]
    routing: Mapping[str, Mapping[str, float]]
    servers: Mapping[str, Mapping[str, int]] | None = None
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(g for g in self.groups if g.count > 0))
        for c, shares in self.routing.items():
            if any((not math.isfinite(v)) or v < 0 for v in shares.values()):
                raise ValidationError(f"routing of class {c}: fractions must be finite and >= 0, got {dict(shares)}")

    @property
    def pools(self) -> tuple[str, ...]:
        """Pools with instances or servers, in first-seen order."""
        seen = dict.fromkeys(g.pool for g in self.groups)
        for p in (self.servers or {}):
            seen.setdefault(p, None)
        return tuple(seen)

    def gpus_by_pool(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for g in self.groups:
            out[(g.pool, g.hardware)] = out.get((g.pool, g.hardware), 0) + g.gpus
        return out

    def server_counts(self, gpus_per_server: Mapping[str, int]) -> dict[tuple[str, str], int]:
        """Servers by (pool, hardware): as given, at least enough for the pool's GPUs."""
        out: dict[tuple[str, str], int] = {}
        for (p, h), n in self.gpus_by_pool().items():
            out[(p, h)] = math.ceil(n / gpus_per_server[h])
        for p, by_hw in (self.servers or {}).items():
            for h, n in by_hw.items():
                if n < 0:
                    raise ValidationError(f"servers of pool {p} on {h}: {n}; expected >= 0")
                need = out.get((p, h), 0)
                if n < need:
                    raise ValidationError(f"pool {p} on {h}: {n} server(s) cannot hold its instances "
                                          f"({need} needed)")
                if n > 0:
                    out[(p, h)] = n
        return out

    @classmethod
    def from_pool_plans(cls, pool_plans: Iterable, routing: Mapping[str, Mapping[str, float]], *,
                        instance_level: bool = True, servers: Mapping[str, Mapping[str, int]] | None = None,
                        note: str = "") -> "Deployment":
        """A deployment from :class:`dynaplan.planning.PoolPlan` s (or a Plan's ``pools``).

        With ``instance_level`` the plan's clocks are left to the instance level: groups of one
        (pool, hardware, TP) merge, with the count-weighted mean planned load per instance as weight.
        """
        merged: dict[tuple, list] = {}
        srv: dict[str, dict[str, int]] = {p: dict(v) for p, v in (servers or {}).items()}
        for pp in pool_plans:
            if servers is None and pp.servers:
                srv[pp.pool] = dict(pp.servers)
            for g in pp.groups:
                key = (pp.pool, g.hardware, g.tp, None if instance_level else g.freq_mhz)
                acc = merged.setdefault(key, [0, {}])
                acc[0] += g.count
                for c, v in g.load_rps_per_instance.items():
                    acc[1][c] = acc[1].get(c, 0.0) + v * g.count
        groups = tuple(GroupSpec(pool=p, hardware=h, tp=tp, count=n, freq_mhz=f,
                                 weight={c: v / n for c, v in w.items()})
                       for (p, h, tp, f), (n, w) in merged.items())
        return cls(groups=groups, routing={c: dict(v) for c, v in routing.items()}, servers=srv or None, note=note)


__all__ = ["Deployment", "GroupSpec"]
