"""The cluster as it is: servers, instances on concrete GPUs, and what is in flight.

A :class:`ClusterState` is frozen, JSON round-trips (:meth:`ClusterState.to_json`,
:meth:`ClusterState.from_json`, :meth:`ClusterState.read`) and is validated as a whole when it is
built: a GPU held by two instances, a TP degree that does not match the GPUs held, an instance
spanning servers, an unknown hardware type, a GPU index out of range, an unknown clock level or a
finish time in the past raise :class:`dynaplan.errors.ValidationError` with a one-line message
naming the instance or server.

Time is the state's own clock ``time_s`` (s); every in-flight operation carries its finish time
on that clock. ``dynaplan.reconfig.apply`` moves a state forward.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from dynaplan.domain.hardware import DEFAULT_HARDWARE, HardwareType
from dynaplan.errors import ValidationError, read_text_file
from dynaplan.limits import STATE_INSTANCES, STATE_SERVERS, check_json_depth
from dynaplan.validation import MAX_TIME_S, InputModel, excerpt, loads_json
from dynaplan.planning.plan import Plan

ConfigKey = tuple[str, str, int, int]
"""(pool, hardware, tp, freq_mhz): what the planner counts."""

Phase = Literal["booting", "draining", "resharding", "reclocking", "moving"]


def pydantic_message(exc: PydanticValidationError, source: str = "", data=None) -> str:
    """One line from a pydantic error: the first problem, with its location (and, given the raw
    ``data``, the id of the server or instance it is in)."""
    err = exc.errors()[0]
    parts = tuple(err.get("loc", ()))
    loc = ".".join(str(p) for p in parts)
    if isinstance(data, dict) and len(parts) >= 2 and parts[0] in ("instances", "servers") \
            and isinstance(parts[1], int):
        try:
            item = list(data[parts[0]])[parts[1]]
            ident = item.get("id") if isinstance(item, dict) else getattr(item, "id", None)
        except (IndexError, KeyError, TypeError):
            ident = None
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if ident is not None:
            named = f"{parts[0][:-1]} {ident}"
            loc = "" if msg.startswith(named + ":") else f"{named} ({loc})"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    where = ": ".join(p for p in (source, loc) if p)
    text = f"{where}: {msg}" if where else msg
    extra = len(exc.errors()) - 1
    if extra:
        text += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    return " ".join(text.split())


class _Frozen(InputModel):
    """Frozen, strict-field base (no booleans in numbers, :class:`dynaplan.validation.InputModel`);
    construction errors become :class:`dynaplan.errors.ValidationError` naming the server or instance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data) -> None:
        try:
            BaseModel.__init__(self, **data)  # InputModel's checks, this module's message
        except PydanticValidationError as exc:
            raise ValidationError(pydantic_message(exc, data=data)) from None


class Server(_Frozen):
    """One GPU server of the inventory."""

    id: str = Field(min_length=1, description="Server identifier, unique in the state.")
    hardware: str = Field(description="Hardware type name, a key of ClusterState.hardware.")


class InFlight(_Frozen):
    """An operation an instance is undergoing, and what the instance becomes when it finishes.

    * ``booting``: the instance starts (VM, weights, engine); serves nothing until ``until_s``.
    * ``draining``: the instance takes no new requests and disappears at ``until_s``.
    * ``resharding``: the instance becomes ``target_tp`` on ``target_gpus`` (same server) at
      ``until_s``, with ``target_freq_mhz`` and ``target_pool`` if given; it holds the union of
      its old and new GPUs meanwhile and keeps serving when ``serves_during`` (weight transfer)
      or serves nothing (naive reload).
    * ``reclocking``: the clock becomes ``target_freq_mhz`` at ``until_s``; meanwhile the
      instance counts at the lower of its old and new capacity.
    * ``moving``: the instance joins ``target_pool`` (and ``target_freq_mhz``) at ``until_s``;
      it serves neither pool meanwhile.
    """

    kind: Phase
    until_s: float = Field(description="Finish time on the state's clock (s).")
    target_tp: int | None = Field(default=None, ge=1, description="TP degree after a re-shard (GPUs).")
    target_gpus: tuple[int, ...] | None = Field(
        default=None, description="GPU indices held after a re-shard, on the instance's server.")
    target_freq_mhz: int | None = Field(default=None, gt=0, description="Clock after the operation (MHz).")
    target_pool: str | None = Field(default=None, description="Pool after the operation.")
    serves_during: bool = Field(default=False, description="Whether the instance serves while in flight.")

    @model_validator(mode="after")
    def _check(self) -> "InFlight":
        if not (math.isfinite(self.until_s) and abs(self.until_s) <= MAX_TIME_S):
            raise ValueError(f"{self.kind}: until_s {self.until_s:g} s; expected a finite time within "
                             f"+-{MAX_TIME_S:g} s")
        if self.kind == "resharding":
            if self.target_tp is None or self.target_gpus is None:
                raise ValueError("resharding needs target_tp and target_gpus")
            if len(self.target_gpus) != self.target_tp:
                raise ValueError(f"resharding to TP{self.target_tp} holds {len(self.target_gpus)} target GPUs "
                                 f"{excerpt(list(self.target_gpus))}")
        elif self.target_tp is not None or self.target_gpus is not None:
            raise ValueError(f"{self.kind}: target_tp/target_gpus only apply to resharding")
        if self.kind == "reclocking" and self.target_freq_mhz is None:
            raise ValueError("reclocking needs target_freq_mhz")
        if self.kind == "moving" and self.target_pool is None:
            raise ValueError("moving needs target_pool")
        if self.serves_during and self.kind not in ("resharding", "reclocking"):
            raise ValueError(f"{self.kind}: an instance cannot serve while {self.kind}")
        return self


class Instance(_Frozen):
    """One model instance on concrete GPUs of one server."""

    id: str = Field(min_length=1, description="Instance identifier, unique in the state.")
    pool: str = Field(description="The pool (request class) the instance belongs to.")
    tp: int = Field(ge=1, description="Tensor-parallel degree (GPUs).")
    gpus: dict[str, tuple[int, ...]] = Field(
        description="GPU indices held, by server id (exactly one server).")
    freq_mhz: int = Field(gt=0, description="SM clock (MHz).")
    load_rps: dict[str, float] = Field(default_factory=dict, description="Load carried, by class (req/s).")
    in_flight: InFlight | None = Field(default=None, description="Operation under way, if any.")

    @model_validator(mode="after")
    def _check(self) -> "Instance":
        for c, v in self.load_rps.items():
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"instance {self.id}: load of class {c} is {v!r} req/s; expected a finite value >= 0")
        return self

    @property
    def server(self) -> str:
        """The one server the instance sits on (validated by :class:`ClusterState`)."""
        return next(iter(self.gpus))

    @property
    def gpu_indices(self) -> tuple[int, ...]:
        return tuple(self.gpus[self.server])

    @property
    def held_gpus(self) -> frozenset[int]:
        """GPU indices held now: the current ones plus a re-shard's target ones."""
        held = set(self.gpu_indices)
        if self.in_flight is not None and self.in_flight.target_gpus is not None:
            held |= set(self.in_flight.target_gpus)
        return frozenset(held)

    @property
    def serving(self) -> bool:
        """True when the instance is up and no operation is under way."""
        return self.in_flight is None


def _default_hardware() -> dict[str, HardwareType]:
    return dict(DEFAULT_HARDWARE)


class ClusterState(_Frozen):
    """Servers, the instances on them and the operations in flight, at time ``time_s``."""

    model: str = Field(default="llama2-70b", description="The model every instance serves.")
    time_s: float = Field(default=0.0, description="The state's clock (s).")
    servers: tuple[Server, ...] = Field(default=(), description="Servers of the inventory.")
    instances: tuple[Instance, ...] = Field(default=(), description="Instances, on those servers.")
    hardware: dict[str, HardwareType] = Field(
        default_factory=_default_hardware, description="Hardware types the servers may be, by name.")

    @model_validator(mode="before")
    @classmethod
    def _sizes(cls, data):
        """Servers and instances within their stated limits, checked before any is built."""
        if isinstance(data, dict):
            for key, limit in (("servers", STATE_SERVERS), ("instances", STATE_INSTANCES)):
                items = data.get(key)
                if isinstance(items, (list, tuple)):
                    limit.check(len(items), key)
        return data

    @model_validator(mode="after")
    def _check(self) -> "ClusterState":
        if not (math.isfinite(self.time_s) and abs(self.time_s) <= MAX_TIME_S):
            raise ValueError(f"time_s {self.time_s:g} s; expected a finite time within +-{MAX_TIME_S:g} s "
                             "(beyond it the seconds of a transition vanish in rounding)")
        servers: dict[str, HardwareType] = {}
        for s in self.servers:
            if s.id in servers:
                raise ValueError(f"server {s.id} appears twice")
            hw = self.hardware.get(s.hardware)
            if hw is None:
                raise ValueError(f"server {s.id}: unknown hardware {s.hardware!r}; known: {excerpt(sorted(self.hardware))}")
            servers[s.id] = hw
        seen_ids: set[str] = set()
        owner: dict[tuple[str, int], str] = {}
        for inst in self.instances:
            name = f"instance {inst.id}"
            if inst.id in seen_ids:
                raise ValueError(f"{name} appears twice")
            seen_ids.add(inst.id)
            if len(inst.gpus) != 1:
                raise ValueError(f"{name} spans servers {excerpt(sorted(inst.gpus))}; an instance must sit on one server"
                                 if inst.gpus else f"{name} holds no GPUs")
            sid = inst.server
            hw = servers.get(sid)
            if hw is None:
                raise ValueError(f"{name}: unknown server {sid!r}")
            idx = inst.gpu_indices
            if len(set(idx)) != len(idx):
                raise ValueError(f"{name}: GPU indices {excerpt(list(idx))} on server {sid} repeat")
            if len(idx) != inst.tp:
                raise ValueError(f"{name}: TP{inst.tp} but holds {len(idx)} GPU(s) {excerpt(list(idx))} on server {sid}")
            if inst.tp > hw.gpus_per_server:
                raise ValueError(f"{name}: TP{inst.tp} exceeds the {hw.gpus_per_server} GPUs of server {sid}")
            if inst.tp not in hw.tp_degrees():
                raise ValueError(f"{name}: TP{inst.tp} is not a TP degree of {hw.name} {excerpt(list(hw.tp_degrees()))}")
            if inst.freq_mhz not in hw.clock_levels_mhz:
                raise ValueError(f"{name}: clock {inst.freq_mhz} MHz is not a level of {hw.name} "
                                 f"{excerpt(list(hw.clock_levels_mhz))}")
            fl = inst.in_flight
            if fl is not None:
                if fl.until_s < self.time_s:
                    raise ValueError(f"{name}: {fl.kind} finishes at {fl.until_s:g} s, before the state's "
                                     f"time {self.time_s:g} s")
                if fl.target_freq_mhz is not None and fl.target_freq_mhz not in hw.clock_levels_mhz:
                    raise ValueError(f"{name}: target clock {fl.target_freq_mhz} MHz is not a level of {hw.name}")
                if fl.target_tp is not None and fl.target_tp not in hw.tp_degrees():
                    raise ValueError(f"{name}: target TP{fl.target_tp} is not a TP degree of {hw.name} "
                                     f"{excerpt(list(hw.tp_degrees()))}")
                if fl.target_gpus is not None and len(set(fl.target_gpus)) != len(fl.target_gpus):
                    raise ValueError(f"{name}: target GPU indices {excerpt(list(fl.target_gpus))} repeat")
            for g in sorted(inst.held_gpus):
                if not 0 <= g < hw.gpus_per_server:
                    raise ValueError(f"{name}: GPU index {g} out of range on server {sid} "
                                     f"({hw.gpus_per_server} GPUs: 0..{hw.gpus_per_server - 1})")
                other = owner.get((sid, g))
                if other is not None:
                    raise ValueError(f"GPU {g} of server {sid} is held by both instance {other} and {name}")
                owner[(sid, g)] = inst.id
        return self

    # ------------------------------------------------------------------ look-ups
    def server(self, sid: str) -> Server:
        for s in self.servers:
            if s.id == sid:
                return s
        raise KeyError(f"state has no server {sid!r}")

    def instance(self, iid: str) -> Instance:
        for i in self.instances:
            if i.id == iid:
                return i
        raise KeyError(f"state has no instance {iid!r}")

    def servers_by_hardware(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.servers:
            out[s.hardware] = out.get(s.hardware, 0) + 1
        return out

    def held(self) -> dict[tuple[str, int], str]:
        """(server id, GPU index) -> id of the instance holding it."""
        return {(i.server, g): i.id for i in self.instances for g in i.held_gpus}

    def config_counts(self, serving_only: bool = False) -> dict[ConfigKey, int]:
        """Instances by (pool, hardware, tp, freq_mhz). In-flight instances count as what they
        will be when their operation finishes (drained ones not at all) unless ``serving_only``."""
        hw_of = {s.id: s.hardware for s in self.servers}
        out: dict[ConfigKey, int] = {}
        for i in self.instances:
            fl = i.in_flight
            if fl is not None and (serving_only or fl.kind == "draining"):
                continue
            pool, tp, f = i.pool, i.tp, i.freq_mhz
            if fl is not None:
                pool = fl.target_pool or pool
                tp = fl.target_tp or tp
                f = fl.target_freq_mhz or f
            key = (pool, hw_of[i.server], tp, f)
            out[key] = out.get(key, 0) + 1
        return out

    @property
    def settle_time_s(self) -> float:
        """When the last in-flight operation finishes (``time_s`` if none is in flight)."""
        return max([self.time_s] + [i.in_flight.until_s for i in self.instances if i.in_flight is not None])

    # ------------------------------------------------------------------ I/O
    def to_json(self, **kw) -> str:
        return self.model_dump_json(**kw)

    @classmethod
    def from_json(cls, text: str, source: str = "state") -> "ClusterState":
        """Parse and validate a JSON state; any problem raises a one-line ValidationError naming it.

        Nesting deeper than :data:`dynaplan.limits.MAX_JSON_DEPTH` is refused before parsing; a key
        repeated in one object is refused."""
        check_json_depth(text, source)
        try:
            data = loads_json(text, source)
        except RecursionError:  # pragma: no cover - the depth check comes first
            raise ValidationError(f"{source}: JSON nested too deeply to parse") from None
        if not isinstance(data, dict):
            raise ValidationError(f"{source}: expected a JSON object with 'servers' and 'instances'")
        try:
            return cls(**data)
        except ValidationError as exc:
            raise ValidationError(f"{source}: {exc}") from None

    @classmethod
    def read(cls, path: str | Path) -> "ClusterState":
        path = Path(path)
        text = read_text_file(path, "a cluster state JSON file", "state")
        return cls.from_json(text, source=str(path))

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json(indent=2))
        return path

    # ------------------------------------------------------------------ from a plan
    @classmethod
    def from_plan(cls, plan, hardware, servers: Mapping[str, int] | None = None,
                  model: str | None = None, time_s: float = 0.0) -> "ClusterState":
        """The cluster running ``plan`` (a :class:`dynaplan.planning.Plan`) on its whole inventory.

        ``ClusterState.from_plan(plan, planner)`` takes the hardware, the inventory and the model
        from the :class:`~dynaplan.planning.Planner` that made the plan;
        ``ClusterState.from_plan(plan, profile.hardware, servers={"h100-80gb": 40})`` names them.
        ``servers`` (by hardware type; a planner's ``Inventory`` works too) is the inventory the
        plan was made for: a plan records only the servers it uses, so every other server is added
        empty, and the next :func:`~dynaplan.reconfig.diff` can grow onto it. Each pool's
        instances are packed first-fit decreasing into aligned GPU blocks of servers of their own
        (as the plan counts servers per pool); instances carry their group's clock and
        per-instance load, and nothing is in flight.
        """
        if hasattr(hardware, "inventory") and hasattr(hardware, "profile"):  # a Planner
            planner = hardware
            hardware = planner.profile.hardware
            servers = planner.inventory.servers if servers is None else servers
            model = planner.model if model is None else model
        if servers is None:
            raise ValidationError("from_plan: pass servers=, the inventory the plan was made for (e.g. "
                                  "{'h100-80gb': 40}), or the planner: from_plan(plan, planner); a plan records "
                                  "only the servers it uses")
        servers = dict(getattr(servers, "servers", servers))
        model = "llama2-70b" if model is None else model
        hw_all = dict(hardware)
        n_servers = sum(max(int(n), int((servers or {}).get(h, 0))) for h, n in plan.servers.items())
        n_servers += sum(int(n) for h, n in (servers or {}).items() if h not in plan.servers)
        STATE_SERVERS.check(n_servers, "ClusterState.from_plan", "the plan and servers= ask for")
        srv: list[Server] = []
        insts: list[Instance] = []
        used: dict[str, int] = {}

        def new_server(h: str) -> int:
            k = used.get(h, 0)
            used[h] = k + 1
            srv.append(Server(id=f"{h}-{k}", hardware=h))
            return len(srv) - 1

        for pp in plan.pools:
            items = [(g.tp, g.hardware, g.freq_mhz, dict(g.load_rps_per_instance))
                     for g in pp.groups for _ in range(g.count)]
            items.sort(key=lambda it: (-it[0], it[1], it[2]))
            free: dict[int, list[bool]] = {}  # server position -> free flags
            for n, (tp, h, f, load) in enumerate(items):
                if h not in hw_all:
                    raise ValidationError(f"plan pool {pp.pool}: unknown hardware {h!r}")
                gps = hw_all[h].gpus_per_server
                if tp > gps or gps % tp:
                    raise ValidationError(f"plan pool {pp.pool}: TP{tp} does not divide the {gps} GPUs of {h}")
                placed = None
                for pos, flags in free.items():
                    if srv[pos].hardware != h:
                        continue
                    for b in range(0, gps, tp):
                        if all(flags[b:b + tp]):
                            placed = (pos, b)
                            break
                    if placed:
                        break
                if placed is None:
                    pos = new_server(h)
                    free[pos] = [True] * gps
                    placed = (pos, 0)
                pos, b = placed
                free[pos][b:b + tp] = [False] * tp
                insts.append(Instance(id=f"{pp.pool}-{n}", pool=pp.pool, tp=tp,
                                      gpus={srv[pos].id: tuple(range(b, b + tp))}, freq_mhz=f, load_rps=load))
        for h, k in used.items():
            if k > servers.get(h, 0):
                raise ValidationError(f"servers: the plan uses {k} {h} servers, more than the "
                                      f"{servers.get(h, 0)} of the inventory given")
        for h, n in servers.items():
            if h not in hw_all:
                raise ValidationError(f"servers: unknown hardware {h!r}")
            while used.get(h, 0) < n:
                new_server(h)
        return cls(model=model, time_s=time_s, servers=tuple(srv), instances=tuple(insts), hardware=hw_all)


__all__ = ["ClusterState", "ConfigKey", "InFlight", "Instance", "Phase", "Server", "pydantic_message"]
