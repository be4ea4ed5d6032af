"""What every reconfiguration action costs: duration, energy, GPUs made unavailable, capacity.

Defaults (``docs/reconfiguration.md`` gives the sources): a new instance of Llama2-70B takes
6-8 min (VM, weights, engine; DynamoLLM, arXiv 2408.00741) — 420 s here — while its GPUs draw idle
(or weights-loading) power; a naive re-shard (stop, reload) takes 1-2 min — 90 s; a re-shard by
weight transfer keeps weights in place where it can and moves the rest GPU-to-GPU over the
server's interconnect while the old instance keeps serving — its time is bytes over bandwidth,
about 50 ms for TP4 -> TP8 of a 138 GB model on a DGX H100; a clock change takes 50-80 ms —
65 ms. Moving an instance between pools of the same model needs no reload.

Everything is configurable per (model, hardware) with :class:`TransitionCosts`.

**Weight transfer.** With ``W`` weight bytes, an instance of TP ``a`` holds ``W/a`` on each GPU.
Re-sharding it to TP ``b`` on GPU set ``B`` (old set ``A``): a GPU of ``B`` that was in ``A``
keeps ``min(W/a, W/b)`` of what it needs (shards nest when blocks are aligned and ranks are
matched), the others keep nothing, so

    bytes moved = W - |A ∩ B| min(W/a, W/b)
    recv_g = W/b - [g in A] min(W/a, W/b)          (g in B)
    send_g = W/a - [g in B] min(W/a, W/b)          (g in A)
    time   = fixed + max_g(recv_g, send_g) / (eta * interconnect_gb_s * 1e9)

where ``eta`` is the usable share of the per-GPU interconnect bandwidth (0.5: NVIDIA's 900
GB/s NVLink figure counts both directions). TP4 -> TP8 of Llama2-70B: 17.25 GB per GPU,
38 ms + 12 ms fixed = 50 ms.

**Amortised costs** for the planner's MILP terms: :func:`amortised_cost` spreads one action's
energy over an epoch (W) and reports the capacity it withholds (req/s·s, and req/s averaged over
the epoch); :func:`amortised_cost_table` does it for every operating point.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from dynaplan.domain.hardware import HardwareType
from dynaplan.domain.model import DEFAULT_MODELS, ModelSpec
from dynaplan.errors import ValidationError
from dynaplan.validation import MAX_DURATION_S, MAX_GPU_POWER_W, InputModel

ReshardMode = Literal["transfer", "reload"]
Change = Literal["add", "remove", "reshard", "reclock"]


class TransitionParams(InputModel):
    """Transition times and powers of one (model, hardware)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start_s: float = Field(default=420.0, ge=0, le=MAX_DURATION_S,
                           description="Start a new instance: VM, weights, engine (s). DynamoLLM (arXiv 2408.00741): 6-8 min for Llama2-70B.")
    start_gpu_power_w: float | None = Field(
        default=None, ge=0, le=MAX_GPU_POWER_W, description="Power per GPU while an instance starts (W); None: the "
        "hardware's idle power (set it higher to model weights-loading power).")
    drain_s: float = Field(default=60.0, ge=0, le=MAX_DURATION_S,
                           description="Release: time for requests in flight to finish after the instance stops "
                           "taking new ones (s). Our assumption (not a published figure).")
    reshard_mode: ReshardMode = Field(default="transfer", description="What the engine supports: 'transfer' "
                                      "(weights moved GPU-to-GPU, old instance keeps serving) or 'reload'.")
    reshard_reload_s: float = Field(default=90.0, ge=0, le=MAX_DURATION_S,
                                    description="Naive re-shard: stop and reload (s). DynamoLLM: 1-2 min.")
    reshard_fixed_s: float = Field(default=0.012, ge=0, le=MAX_DURATION_S,
                                   description="Fixed part of a transfer re-shard: engine re-initialisation and "
                                   "synchronisation (s).")
    interconnect_efficiency: float = Field(default=0.5, gt=0, le=1, description="Usable share of the per-GPU "
                                           "interconnect bandwidth in one direction (fraction).")
    clock_change_s: float = Field(default=0.065, ge=0, le=MAX_DURATION_S,
                                  description="Change the SM clock (s). DynamoLLM: 50-80 ms.")
    pool_move_s: float = Field(default=0.0, ge=0, le=MAX_DURATION_S,
                               description="Move an instance to another pool of the same model: re-route only, no "
                               "reload (s).")
    transition_gpu_power_w: float | None = Field(
        default=None, ge=0, le=MAX_GPU_POWER_W, description="Power per GPU that is unavailable during a re-shard, "
        "clock change, move or drain (W); None: the hardware's idle power.")


class TransitionCosts(InputModel):
    """Transition parameters per (model, hardware), with a default.

    ``overrides`` keys are ``"model/hardware"``, ``"model"`` or ``"hardware"``, looked up in
    that order. ``models`` gives the weight bytes used for transfer re-shards.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: TransitionParams = Field(default_factory=TransitionParams)
    overrides: dict[str, TransitionParams] = Field(default_factory=dict)
    models: dict[str, ModelSpec] = Field(default_factory=lambda: dict(DEFAULT_MODELS))

    def params(self, model: str, hardware: str) -> TransitionParams:
        for key in (f"{model}/{hardware}", model, hardware):
            if key in self.overrides:
                return self.overrides[key]
        return self.default

    def model_spec(self, model: str) -> ModelSpec:
        try:
            return self.models[model]
        except KeyError:
            raise ValidationError(f"transition costs: unknown model {model!r}; known: {sorted(self.models)}") from None

    def with_reshard_mode(self, mode: ReshardMode) -> "TransitionCosts":
        """The same costs with every (model, hardware) re-sharding by ``mode``."""
        upd = {"reshard_mode": mode}
        return TransitionCosts(default=self.default.model_copy(update=upd),
                               overrides={k: v.model_copy(update=upd) for k, v in self.overrides.items()},
                               models=self.models)


class ActionCost(BaseModel):
    """What one action costs. Capacities are the instance's max load under its pool's SLO (req/s)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    duration_s: float = Field(ge=0, description="Time the action takes (s).")
    energy_j: float = Field(ge=0, description="Energy of the GPUs made unavailable, over the action (J).")
    gpus_unavailable: tuple[int, ...] = Field(default=(), description="GPU indices (on the action's server) that "
                                              "serve nothing while the action runs.")
    gpu_s_unavailable: float = Field(ge=0, description="len(gpus_unavailable) x duration (GPU·s).")
    capacity_before_rps: float = Field(ge=0, description="The instance's capacity before the action (req/s).")
    capacity_during_rps: float = Field(ge=0, description="Its capacity while the action runs (req/s).")
    capacity_after_rps: float = Field(ge=0, description="Its capacity after the action (req/s).")
    lost_capacity_rps_s: float = Field(ge=0, description="Capacity withheld while the action runs, including "
                                       "stalls: integral of before - serving capacity (req/s·s).")
    bytes_moved: float = Field(default=0.0, ge=0, description="Weight bytes put onto GPUs, from storage or other "
                               "GPUs (bytes).")

    @property
    def capacity_removed_rps(self) -> float:
        return max(0.0, self.capacity_before_rps - self.capacity_after_rps)

    @property
    def capacity_added_rps(self) -> float:
        return max(0.0, self.capacity_after_rps - self.capacity_before_rps)


def _gpu_power(p_override: float | None, hw: HardwareType) -> float:
    return hw.idle_power_w if p_override is None else p_override


def start_power_w(p: TransitionParams, hw: HardwareType) -> float:
    """Power per GPU while an instance (or a whole server) starts (W)."""
    return _gpu_power(p.start_gpu_power_w, hw)


def transition_power_w(p: TransitionParams, hw: HardwareType) -> float:
    """Power per GPU made unavailable by a re-shard, clock change, move or drain (W)."""
    return _gpu_power(p.transition_gpu_power_w, hw)


def _cost(duration: float, gpus: Iterable[int], power_w: float, before: float, during: float, after: float,
          lost: float, bytes_moved: float = 0.0) -> ActionCost:
    gpus = tuple(sorted(set(gpus))) if duration > 0 else ()
    return ActionCost(duration_s=duration, energy_j=duration * len(gpus) * power_w, gpus_unavailable=gpus,
                      gpu_s_unavailable=duration * len(gpus), capacity_before_rps=before,
                      capacity_during_rps=during, capacity_after_rps=after, lost_capacity_rps_s=max(0.0, lost),
                      bytes_moved=bytes_moved)


# ---------------------------------------------------------------------------- the actions
def start_cost(p: TransitionParams, hw: HardwareType, model: ModelSpec, gpus: Iterable[int],
               capacity_rps: float) -> ActionCost:
    """Start an instance on ``gpus``: nothing served for ``start_s``, then ``capacity_rps``.
    The replay boots whole servers by the same rule (:mod:`dynaplan.replay.state`)."""
    return _cost(p.start_s, gpus, _gpu_power(p.start_gpu_power_w, hw), 0.0, 0.0, capacity_rps, 0.0,
                 model.weight_bytes)


def release_cost(p: TransitionParams, hw: HardwareType, gpus: Iterable[int], capacity_rps: float) -> ActionCost:
    """Release an instance: it takes no new requests at once, its GPUs are free after ``drain_s``.
    The replay drains whole servers by the same rule (:mod:`dynaplan.replay.state`)."""
    return _cost(p.drain_s, gpus, _gpu_power(p.transition_gpu_power_w, hw), capacity_rps, 0.0, 0.0,
                 capacity_rps * p.drain_s)


def transfer_bytes(weight_bytes: float, gpus_from: Iterable[int], gpus_to: Iterable[int]) -> tuple[float, float]:
    """(bytes moved, largest bytes one GPU sends or receives) of re-sharding by weight transfer."""
    a, b = set(gpus_from), set(gpus_to)
    if not a or not b:
        raise ValueError("re-shard: both GPU sets must be non-empty")
    sa, sb = weight_bytes / len(a), weight_bytes / len(b)
    keep = min(sa, sb)
    recv = [sb - (keep if g in a else 0.0) for g in b]
    send = [sa - (keep if g in b else 0.0) for g in a]
    moved = weight_bytes - len(a & b) * keep
    return max(0.0, moved), max(0.0, max(recv), max(send))


def reshard_cost(p: TransitionParams, hw: HardwareType, model: ModelSpec, gpus_from: Iterable[int],
                 gpus_to: Iterable[int], capacity_before_rps: float, capacity_after_rps: float,
                 clock_changes: bool = False, pool_changes: bool = False) -> ActionCost:
    """Re-shard in place (same server) from ``gpus_from`` to ``gpus_to``, by ``p.reshard_mode``.

    Transfer: the old instance serves (in its old pool) until the swap; the GPUs joining it are
    unavailable while weights arrive. Reload: the instance stops, every GPU it holds is unavailable for
    ``reshard_reload_s``. A clock change or a pool move done with the swap adds its time.
    """
    a, b = tuple(gpus_from), tuple(gpus_to)
    power = _gpu_power(p.transition_gpu_power_w, hw)
    extra = (p.clock_change_s if clock_changes else 0.0) + (p.pool_move_s if pool_changes else 0.0)
    if p.reshard_mode == "transfer":
        moved, peak = transfer_bytes(model.weight_bytes, a, b)
        bw = p.interconnect_efficiency * hw.interconnect_gb_s * 1e9
        d = p.reshard_fixed_s + peak / bw + extra
        return _cost(d, set(b) - set(a), power, capacity_before_rps, capacity_before_rps, capacity_after_rps,
                     0.0, moved)
    d = p.reshard_reload_s + extra
    return _cost(d, set(a) | set(b), power, capacity_before_rps, 0.0, capacity_after_rps,
                 capacity_before_rps * d, model.weight_bytes)


def clock_cost(p: TransitionParams, hw: HardwareType, gpus: Iterable[int], capacity_before_rps: float,
               capacity_after_rps: float) -> ActionCost:
    """Change the clock: the instance stalls for ``clock_change_s`` (absorbed by its queue: 50-80 ms
    against a 100 ms TBT SLO) and counts at the lower of its two capacities meanwhile."""
    d = p.clock_change_s
    return _cost(d, gpus, _gpu_power(p.transition_gpu_power_w, hw), capacity_before_rps,
                 min(capacity_before_rps, capacity_after_rps), capacity_after_rps, capacity_before_rps * d)


def move_cost(p: TransitionParams, hw: HardwareType, gpus: Iterable[int], capacity_before_rps: float,
              capacity_after_rps: float, clock_changes: bool = False) -> ActionCost:
    """Move an instance to another pool (same model: no reload); serves neither pool meanwhile."""
    d = p.pool_move_s + (p.clock_change_s if clock_changes else 0.0)
    return _cost(d, gpus, _gpu_power(p.transition_gpu_power_w, hw), capacity_before_rps, 0.0,
                 capacity_after_rps, capacity_before_rps * d)


def assign_cost(capacity_rps: float) -> ActionCost:
    """Reassign load between instances: a router update, free and instantaneous."""
    return _cost(0.0, (), 0.0, capacity_rps, capacity_rps, capacity_rps, 0.0)


# ---------------------------------------------------------------------------- amortised, for the MILP
class AmortisedCost(BaseModel):
    """One transition spread over an epoch: the terms a planning MILP adds per change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    change: Change
    epoch_s: float = Field(gt=0, description="Epoch the cost is spread over (s).")
    duration_s: float = Field(ge=0, description="Time the transition takes (s).")
    energy_j: float = Field(ge=0, description="Transition energy (J).")
    lost_capacity_rps_s: float = Field(ge=0, description="Capacity withheld within the epoch (req/s·s).")

    @property
    def power_w(self) -> float:
        """Energy spread over the epoch (W): add it to a power objective."""
        return self.energy_j / self.epoch_s

    @property
    def lost_load_rps(self) -> float:
        """Withheld capacity averaged over the epoch (req/s)."""
        return self.lost_capacity_rps_s / self.epoch_s

    def objective_w(self, lost_load_penalty_w_per_rps: float = 0.0) -> float:
        """The MILP term: ``power_w + penalty x lost_load_rps`` (W)."""
        return self.power_w + lost_load_penalty_w_per_rps * self.lost_load_rps

    def pays_off(self, power_saving_w: float, lost_load_penalty_w_per_rps: float = 0.0) -> bool:
        """True when a change saving ``power_saving_w`` over the epoch is worth its cost (hysteresis)."""
        return power_saving_w > self.objective_w(lost_load_penalty_w_per_rps)


def amortised_cost(costs: TransitionCosts, change: Change, model: str, hardware: HardwareType, tp: int,
                   epoch_s: float, capacity_rps: float = 0.0, *, to_tp: int | None = None,
                   to_capacity_rps: float | None = None, clock_changes: bool = False) -> AmortisedCost:
    """Amortised cost of one change of an instance of TP ``tp`` on ``hardware``.

    * ``add``: start energy; capacity ``capacity_rps`` withheld for ``min(start_s, epoch_s)``.
    * ``remove``: drain energy; no capacity withheld (the planner removes it on purpose).
    * ``reshard`` to ``to_tp`` (in place, aligned blocks, capacity ``to_capacity_rps`` after);
      with ``clock_changes`` the clock changes in the same swap.
    * ``reclock``: the clock stall.
    """
    if epoch_s <= 0:
        raise ValidationError(f"amortised_cost: epoch_s={epoch_s!r}; expected > 0")
    p = costs.params(model, hardware.name)
    spec = costs.model_spec(model)
    gpus = range(tp)
    after = capacity_rps if to_capacity_rps is None else to_capacity_rps
    if change == "add":
        c = start_cost(p, hardware, spec, gpus, capacity_rps)
        lost = capacity_rps * min(p.start_s, epoch_s)
    elif change == "remove":
        c = release_cost(p, hardware, gpus, capacity_rps)
        lost = 0.0
    elif change == "reshard":
        if to_tp is None:
            raise ValidationError("amortised_cost(change='reshard') needs to_tp")
        c = reshard_cost(p, hardware, spec, gpus, range(to_tp), capacity_rps, after, clock_changes=clock_changes)
        lost = min(c.lost_capacity_rps_s, capacity_rps * epoch_s)
    elif change == "reclock":
        c = clock_cost(p, hardware, gpus, capacity_rps, after)
        lost = min(c.lost_capacity_rps_s, capacity_rps * epoch_s)
    else:
        raise ValidationError(f"amortised_cost: unknown change {change!r}")
    return AmortisedCost(change=change, epoch_s=epoch_s, duration_s=c.duration_s, energy_j=c.energy_j,
                         lost_capacity_rps_s=lost)


def amortised_cost_table(costs: TransitionCosts, max_load: pd.DataFrame, hardware: Mapping[str, HardwareType],
                         epoch_s: float) -> pd.DataFrame:
    """Amortised costs for every configuration of ``max_load`` (``Profile.max_load_under_slo`` rows,
    or operating points) and epoch ``epoch_s``.

    One row per (model, hardware, request_class, change, tp, freq_mhz, to_tp, to_freq_mhz):
    ``add`` and ``remove`` of every configuration (``to_*`` equal to the configuration), and
    ``reshard`` / ``reclock`` between every two configurations of the same model, hardware and
    class (a re-shard may change the clock in the same swap). Columns: ``duration_s``,
    ``energy_j``, ``lost_capacity_rps_s``, ``power_w`` and ``lost_load_rps`` (per epoch).
    """
    keys = ["model", "hardware", "request_class", "tp", "freq_mhz"]
    base = max_load[keys + ["max_load_rps"]].reset_index(drop=True)
    rows = []
    for (model, hw_name, cls), g in base.groupby(["model", "hardware", "request_class"], sort=True):
        hw = hardware[hw_name]
        recs = g[["tp", "freq_mhz", "max_load_rps"]].to_numpy()
        for tp, f, cap in recs:
            tp, f = int(tp), int(f)
            for change in ("add", "remove"):
                a = amortised_cost(costs, change, model, hw, tp, epoch_s, float(cap))
                rows.append((model, hw_name, cls, change, tp, f, tp, f, a.duration_s, a.energy_j,
                             a.lost_capacity_rps_s))
            for tp2, f2, cap2 in recs:
                tp2, f2 = int(tp2), int(f2)
                if (tp2, f2) == (tp, f):
                    continue
                if tp2 != tp:
                    a = amortised_cost(costs, "reshard", model, hw, tp, epoch_s, float(cap), to_tp=tp2,
                                       to_capacity_rps=float(cap2), clock_changes=f2 != f)
                else:
                    a = amortised_cost(costs, "reclock", model, hw, tp, epoch_s, float(cap),
                                       to_capacity_rps=float(cap2))
                rows.append((model, hw_name, cls, a.change, tp, f, tp2, f2, a.duration_s, a.energy_j,
                             a.lost_capacity_rps_s))
    out = pd.DataFrame(rows, columns=["model", "hardware", "request_class", "change", "tp", "freq_mhz", "to_tp",
                                      "to_freq_mhz", "duration_s", "energy_j", "lost_capacity_rps_s"])
    out["power_w"] = out["energy_j"].to_numpy() / epoch_s
    out["lost_load_rps"] = out["lost_capacity_rps_s"].to_numpy() / epoch_s
    return out


__all__ = ["ActionCost", "AmortisedCost", "Change", "ReshardMode", "TransitionCosts", "TransitionParams",
           "amortised_cost", "amortised_cost_table", "assign_cost", "clock_cost", "move_cost", "release_cost",
           "reshard_cost", "start_cost", "transfer_bytes"]
