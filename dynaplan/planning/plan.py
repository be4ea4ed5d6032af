"""Plans: frozen, JSON-serialisable results of the planner.

Frozen all the way down: the mappings inside a plan are :class:`FrozenDict` (a ``dict`` that
refuses changes), so ``plan.pools[0].served_rps["SS"] = 1`` raises ``TypeError``; JSON and
pickle round-trips give equal plans. The totals a plan reports are summed by one pair of
helpers, :func:`pool_totals` and :func:`plan_totals`, used by the planner and by
``reconfig.plan_of`` alike.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
import copy
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal, Protocol, runtime_checkable

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from dynaplan.errors import ValidationError
from dynaplan.solvers.result import SolveReport
from dynaplan.validation import input_error


class FrozenDict(dict):
    """A ``dict`` that refuses every change after construction (JSON-, copy- and pickle-safe)."""

    __slots__ = ()

    def _read_only(self, *args, **kwargs):
        raise TypeError("plans are read-only: build a new one (model_copy(update=...)) instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _read_only

    def __reduce__(self):
        return (FrozenDict, (dict(self),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return FrozenDict(copy.deepcopy(dict(self), memo))


def _frozen(d: dict) -> FrozenDict:
    return FrozenDict(d)


FloatMap = Annotated[dict[str, float], AfterValidator(_frozen)]
IntMap = Annotated[dict[str, int], AfterValidator(_frozen)]
NestedIntMap = Annotated[dict[str, IntMap], AfterValidator(_frozen)]
NestedFloatMap = Annotated[dict[str, FloatMap], AfterValidator(_frozen)]

PlanMode = Literal["hierarchical", "monolithic", "pool", "observed"]
"""How a plan was made: the hierarchy (cluster then pool level), the monolithic MILP, one pool's
plan on its own (``plan_pool`` wrapped as a plan), or read off an observed cluster state."""


class InstanceGroup(BaseModel):
    """``count`` identical instances of one configuration in a pool, with the load each carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hardware: str
    tp: int = Field(description="Tensor-parallel degree (GPUs per instance).")
    freq_mhz: int = Field(description="SM clock (MHz).")
    count: int = Field(ge=1, description="Instances (count).")
    load_rps_per_instance: FloatMap = Field(description="Load per instance by class (req/s).")
    load_share: float = Field(description="Fraction of the pool's served load carried by the group.")
    utilisation: float = Field(description="sum_c load_c / max load under SLO_c, per instance (fraction).")
    power_w_per_instance: float = Field(description="Profile power of one instance at its load (W).")
    power_w: float = Field(description="Power of the whole group (W).")
    energy_j: float = Field(description="Energy of the group over the epoch (J).")
    slo_margin: float = Field(description="1 - utilisation: load headroom before the SLO breaks (fraction).")

    @property
    def gpus(self) -> int:
        return self.tp * self.count


class PoolPlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pool: str = Field(description="The pool, named by its request class.")
    servers: IntMap = Field(description="Active servers by hardware type (count).")
    groups: tuple[InstanceGroup, ...]
    served_rps: FloatMap = Field(description="Load served by the pool, by class (req/s).")
    idle_gpus: IntMap = Field(description="Unallocated GPUs on active servers (count).")
    idle_power_w: float = Field(description="Power of those idle GPUs (W).")
    power_w: float = Field(description="Pool power: instances plus idle GPUs (W).")
    energy_j: float = Field(description="Pool energy over the epoch (J).")
    report: SolveReport | None = Field(default=None, description="The pool-level solve, if any.")

    @property
    def gpus(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for g in self.groups:
            out[g.hardware] = out.get(g.hardware, 0) + g.gpus
        return out


class Allotment(BaseModel):
    """The cluster level's decision: servers per pool and how each class's load is split over pools."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    servers: NestedIntMap = Field(description="Servers by pool, then hardware type (count).")
    routing: NestedFloatMap = Field(
        description="By class, the fraction of its load each pool serves (fractions summing to 1)."
    )
    forecast_rps: FloatMap = Field(description="Load the allotment was made for, by class (req/s).")
    report: SolveReport
    notes: tuple[str, ...] = ()


class Plan(BaseModel):
    """A cluster plan: per pool the instances by configuration, with power, energy and reports."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: PlanMode = Field(description="How the plan was made (see PlanMode).")
    epoch_s: float = Field(description="Epoch the energy figures cover (s).")
    forecast_rps: FloatMap = Field(description="Load planned for, by class (req/s).")
    pools: tuple[PoolPlan, ...]
    unserved_rps: FloatMap = Field(default_factory=dict, description="Load left unserved (best effort).")
    power_w: float = Field(description="Cluster power (W).")
    energy_j: float = Field(description="Cluster energy over the epoch (J).")
    servers: IntMap = Field(description="Active servers by hardware type (count).")
    gpus: IntMap = Field(description="GPUs held by instances, by hardware type (count).")
    approx_error_bound_w: float = Field(
        description="Bound on the linear power model's error summed over the plan's instances (W)."
    )
    cluster_report: SolveReport | None = None
    report: SolveReport = Field(description="The whole planning call: worst status, summed times.")
    wall_time_s: float = Field(description="Wall time of the planning call (s).")
    notes: tuple[str, ...] = ()

    def pool(self, name: str) -> PoolPlan:
        for p in self.pools:
            if p.pool == name:
                return p
        raise KeyError(f"plan has no pool {name!r}")

    def to_json(self, **kw) -> str:
        return self.model_dump_json(**kw)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        """A plan written by :meth:`to_json`; a malformed one raises a one-line InputError."""
        try:
            return cls.model_validate_json(text)
        except PydanticValidationError as exc:
            raise input_error(exc, cls) from None


# ------------------------------------------------------------------------------------ totals
def pool_totals(groups: Iterable[InstanceGroup], servers: Mapping[str, int], gpus_per_server: Mapping[str, int],
                idle_power_w: Mapping[str, float]) -> tuple[dict[str, int], float, float]:
    """A pool's idle GPUs by hardware, their power and the pool's power (W): every GPU of the
    pool's servers not held by an instance draws its hardware's idle power (pool.md, objective)."""
    groups = tuple(groups)
    held: dict[str, int] = {}
    for g in groups:
        held[g.hardware] = held.get(g.hardware, 0) + g.gpus
    idle = {h: max(0, int(n) * int(gpus_per_server[h]) - held.get(h, 0)) for h, n in servers.items()}
    idle_w = float(sum(n * float(idle_power_w[h]) for h, n in idle.items()))
    return idle, idle_w, float(sum(g.power_w for g in groups)) + idle_w


def plan_totals(pools: Iterable[PoolPlan]) -> tuple[dict[str, int], dict[str, int], float]:
    """Servers and GPUs held by hardware type, and power (W), summed over ``pools``."""
    servers: dict[str, int] = {}
    gpus: dict[str, int] = {}
    power = 0.0
    for pp in pools:
        for h, n in pp.servers.items():
            servers[h] = servers.get(h, 0) + n
        for h, n in pp.gpus.items():
            gpus[h] = gpus.get(h, 0) + n
        power += pp.power_w
    return servers, gpus, float(power)


# ------------------------------------------------------------------------------------ states
@runtime_checkable
class PlanningState(Protocol):
    """What the planner reads from a cluster state (:class:`dynaplan.reconfig.ClusterState`
    meets it): its servers, its instances and their counts by (pool, hardware, tp, freq_mhz)."""

    servers: tuple
    instances: tuple

    def config_counts(self) -> Mapping[tuple[str, str, int, int], int]: ...


def check_state(state: object) -> PlanningState:
    """``state`` if it is a cluster state, else a one-line :class:`ValidationError`."""
    if not isinstance(state, PlanningState):
        raise ValidationError(f"state: expected a dynaplan.reconfig.ClusterState (servers, instances, "
                              f"config_counts()), got {type(state).__name__}")
    return state
