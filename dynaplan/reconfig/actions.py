"""The reconfiguration plan's data: actions, capacity dips and the summary (frozen, JSON)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from dynaplan.domain.transitions import ActionCost
from dynaplan.validation import input_error

ActionKind = Literal["start", "release", "reshard", "move_pool", "set_clock", "assign_load"]


class Action(BaseModel):
    """One timed step of a reconfiguration.

    ``*_from`` fields describe the instance before the action, ``*_to`` after it:

    * ``start``: a new instance ``instance`` on ``gpus_to`` of ``server`` (pool_to, tp_to, freq_to_mhz);
    * ``release``: the instance stops taking requests, drains, and frees ``gpus_from``;
    * ``reshard``: TP ``tp_from`` on ``gpus_from`` becomes ``tp_to`` on ``gpus_to`` (same server),
      with ``freq_to_mhz`` and ``pool_to`` taking effect in the same swap; ``serves_during``
      says whether the old instance keeps serving (weight transfer) or not (reload);
    * ``move_pool``: the instance joins ``pool_to`` (same model: no reload), at ``freq_to_mhz``;
    * ``set_clock``: the clock becomes ``freq_to_mhz``;
    * ``assign_load``: the router gives the instance ``load_rps``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(ge=0, description="Position in the schedule.")
    kind: ActionKind
    instance: str = Field(description="Instance id (new for 'start').")
    server: str = Field(description="Server the instance sits on.")
    hardware: str = Field(description="Hardware type of that server.")
    start_s: float = Field(description="When the action begins (s, on the state's clock).")
    end_s: float = Field(description="When it completes (s).")
    pool_from: str | None = None
    pool_to: str | None = None
    tp_from: int | None = None
    tp_to: int | None = None
    gpus_from: tuple[int, ...] = ()
    gpus_to: tuple[int, ...] = ()
    freq_from_mhz: int | None = None
    freq_to_mhz: int | None = None
    serves_during: bool = Field(default=False, description="The instance serves while the action runs.")
    load_rps: dict[str, float] = Field(default_factory=dict, description="assign_load: the new load (req/s).")
    cost: ActionCost
    reason: str = Field(default="", description="Why the action is there and why then.")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class Dip(BaseModel):
    """An interval in which a pool's capacity under SLO is below its forecast load."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pool: str
    start_s: float = Field(description="Start of the dip (s).")
    end_s: float | None = Field(description="End of the dip (s); None if it never ends.")
    demand_rps: float = Field(description="The pool's forecast load (req/s).")
    capacity_rps: float = Field(description="Its capacity under SLO during the dip (req/s).")
    shortfall_rps: float = Field(description="demand - capacity (req/s).")
    cause: str = Field(default="", description="Why the dip could not be avoided.")


class ReconfigSummary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    n_actions: dict[str, int] = Field(description="Actions by kind (count).")
    transition_energy_j: float = Field(description="Sum of the actions' energy (J).")
    gpu_s_unavailable: float = Field(description="Sum of the actions' GPU-seconds unavailable (GPU·s).")
    lost_capacity_rps_s: float = Field(description="Sum of capacity withheld by the actions (req/s·s).")
    weight_bytes_moved: float = Field(description="Weight bytes put onto GPUs (bytes).")
    servers_touched: int = Field(description="Servers on which any action runs (count).")
    target_reached_s: float = Field(description="When the last action completes (s).")
    shortfall_rps_s: float = Field(description="Integral of the dips' shortfall over time (req/s·s); "
                                   "finite dips only.")


class ReconfigPlan(BaseModel):
    """The ordered, timed actions taking a cluster state to a plan, their costs and any dips."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    now_s: float = Field(description="Time the schedule starts from (s).")
    actions: tuple[Action, ...]
    dips: tuple[Dip, ...] = ()
    demand_rps: dict[str, dict[str, float]] = Field(
        description="Forecast load routed to each pool, by class (req/s): what capacity is checked against.")
    summary: ReconfigSummary
    placement_status: str = Field(default="", description="How the placement was found.")
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.actions

    def to_json(self, **kw) -> str:
        return self.model_dump_json(**kw)

    @classmethod
    def from_json(cls, text: str) -> "ReconfigPlan":
        """A schedule written by :meth:`to_json`; a malformed one raises a one-line InputError."""
        try:
            return cls.model_validate_json(text)
        except PydanticValidationError as exc:
            raise input_error(exc, cls) from None


__all__ = ["Action", "ActionKind", "Dip", "ReconfigPlan", "ReconfigSummary"]
