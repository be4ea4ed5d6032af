"""Plans: frozen, JSON-serialisable results of the planner."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from dynaplan.solvers.result import SolveReport
from dynaplan.validation import input_error


class InstanceGroup(BaseModel):
    """``count`` identical instances of one configuration in a pool, with the load each carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hardware: str
    tp: int = Field(description="Tensor-parallel degree (GPUs per instance).")
    freq_mhz: int = Field(description="SM clock (MHz).")
    count: int = Field(ge=1, description="Instances (count).")
    load_rps_per_instance: dict[str, float] = Field(description="Load per instance by class (req/s).")
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
    servers: dict[str, int] = Field(description="Active servers by hardware type (count).")
    groups: tuple[InstanceGroup, ...]
    served_rps: dict[str, float] = Field(description="Load served by the pool, by class (req/s).")
    idle_gpus: dict[str, int] = Field(description="Unallocated GPUs on active servers (count).")
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

    servers: dict[str, dict[str, int]] = Field(description="Servers by pool, then hardware type (count).")
    routing: dict[str, dict[str, float]] = Field(
        description="By class, the fraction of its load each pool serves (fractions summing to 1)."
    )
    forecast_rps: dict[str, float] = Field(description="Load the allotment was made for, by class (req/s).")
    report: SolveReport
    notes: tuple[str, ...] = ()


class Plan(BaseModel):
    """A cluster plan: per pool the instances by configuration, with power, energy and reports."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: str = Field(description="'hierarchical', 'monolithic' or 'pool'.")
    epoch_s: float = Field(description="Epoch the energy figures cover (s).")
    forecast_rps: dict[str, float] = Field(description="Load planned for, by class (req/s).")
    pools: tuple[PoolPlan, ...]
    unserved_rps: dict[str, float] = Field(default_factory=dict, description="Load left unserved (best effort).")
    power_w: float = Field(description="Cluster power (W).")
    energy_j: float = Field(description="Cluster energy over the epoch (J).")
    servers: dict[str, int] = Field(description="Active servers by hardware type (count).")
    gpus: dict[str, int] = Field(description="GPUs held by instances, by hardware type (count).")
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
