"""Run a reconfiguration on a :class:`ClusterState`, one action or all of them.

* :func:`begin` starts one action at its ``start_s``: the instance enters the in-flight phase the
  action implies (``booting``, ``draining``, ``resharding``, ``reclocking``, ``moving``) until
  ``end_s``; an action of zero duration completes at once.
* :func:`advance` moves the state's clock forward, completing every operation finished by then.
* :func:`apply` begins every action in order and advances to the end: the state the plan aims at.
* :func:`steps` yields the state after each action begins; :func:`state_at` gives the state at any
  time. A scheduler can apply a prefix of the actions and call ``diff`` again from there.

Inputs are never mutated; every step returns a new, validated state. An action that does not fit
the state (unknown instance, GPUs taken, times going backwards) raises
:class:`dynaplan.errors.ValidationError` naming the action.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from dynaplan.errors import ValidationError
from dynaplan.reconfig.actions import Action
from dynaplan.reconfig.state import ClusterState, InFlight, Instance

_EPS = 1e-12


def _complete(inst: Instance) -> Instance | None:
    """The instance once its in-flight operation is over (None if it drained away)."""
    fl = inst.in_flight
    if fl is None:
        return inst
    if fl.kind == "draining":
        return None
    upd: dict = {"in_flight": None}
    if fl.kind == "resharding":
        upd.update(tp=fl.target_tp, gpus={inst.server: tuple(fl.target_gpus)})
    if fl.target_freq_mhz is not None:
        upd["freq_mhz"] = fl.target_freq_mhz
    if fl.target_pool is not None and fl.target_pool != inst.pool:
        upd.update(pool=fl.target_pool, load_rps={})
    data = inst.model_dump()
    data.update(upd)
    return Instance(**data)


def _rebuild(state: ClusterState, instances, time_s: float) -> ClusterState:
    return ClusterState(model=state.model, time_s=time_s, servers=state.servers, instances=tuple(instances),
                        hardware=state.hardware)


def advance(state: ClusterState, t: float) -> ClusterState:
    """The state at time ``t >= state.time_s``: operations finishing by ``t`` are complete."""
    if t < state.time_s - _EPS:
        raise ValidationError(f"advance: time {t:g} s is before the state's time {state.time_s:g} s")
    t = max(t, state.time_s)
    out = []
    for inst in state.instances:
        if inst.in_flight is not None and inst.in_flight.until_s <= t + _EPS:
            inst = _complete(inst)
        if inst is not None:
            out.append(inst)
    return _rebuild(state, out, t)


def settle(state: ClusterState) -> ClusterState:
    """The state once everything in flight has finished."""
    return advance(state, state.settle_time_s)


def _fail(a: Action, msg: str) -> ValidationError:
    return ValidationError(f"action {a.seq} ({a.kind} {a.instance}): {msg}")


def begin(state: ClusterState, a: Action) -> ClusterState:
    """Start action ``a`` (advancing the state to ``a.start_s`` first)."""
    if a.start_s < state.time_s - 1e-9:
        raise _fail(a, f"starts at {a.start_s:g} s, before the state's time {state.time_s:g} s")
    if a.end_s < a.start_s:
        raise _fail(a, f"ends at {a.end_s:g} s before it starts at {a.start_s:g} s")
    state = advance(state, max(a.start_s, state.time_s))
    by_id = {i.id: i for i in state.instances}
    if a.kind == "start":
        if a.instance in by_id:
            raise _fail(a, "an instance with this id exists already")
        try:
            state.server(a.server)
        except KeyError:
            raise _fail(a, f"unknown server {a.server!r}") from None
        fl = InFlight(kind="booting", until_s=a.end_s) if a.end_s > a.start_s else None
        new = Instance(id=a.instance, pool=a.pool_to, tp=a.tp_to, gpus={a.server: tuple(a.gpus_to)},
                       freq_mhz=a.freq_to_mhz, load_rps={}, in_flight=fl)
        return _checked(a, state, list(state.instances) + [new])
    inst = by_id.get(a.instance)
    if inst is None:
        raise _fail(a, "no such instance in the state")
    if a.kind == "assign_load":
        data = inst.model_dump()
        data["load_rps"] = dict(a.load_rps)
        return _replace(a, state, inst, Instance(**data))
    if inst.in_flight is not None:
        raise _fail(a, f"the instance is still {inst.in_flight.kind} until {inst.in_flight.until_s:g} s")
    if inst.server != a.server:
        raise _fail(a, f"the instance is on server {inst.server}, not {a.server}")
    if a.kind == "release":
        fl = InFlight(kind="draining", until_s=a.end_s)
    elif a.kind == "reshard":
        if set(inst.gpu_indices) != set(a.gpus_from) or inst.tp != a.tp_from:
            raise _fail(a, f"the instance is TP{inst.tp} on GPUs {list(inst.gpu_indices)}, not TP{a.tp_from} on "
                        f"{list(a.gpus_from)}")
        fl = InFlight(kind="resharding", until_s=a.end_s, target_tp=a.tp_to, target_gpus=tuple(a.gpus_to),
                      target_freq_mhz=a.freq_to_mhz, target_pool=a.pool_to, serves_during=a.serves_during)
    elif a.kind == "move_pool":
        fl = InFlight(kind="moving", until_s=a.end_s, target_pool=a.pool_to, target_freq_mhz=a.freq_to_mhz)
    elif a.kind == "set_clock":
        fl = InFlight(kind="reclocking", until_s=a.end_s, target_freq_mhz=a.freq_to_mhz)
    else:  # pragma: no cover - the Literal type rules it out
        raise _fail(a, "unknown action kind")
    data = inst.model_dump()
    data["in_flight"] = fl.model_dump()
    new = Instance(**data)
    if a.end_s <= a.start_s:
        new = _complete(new)
    return _replace(a, state, inst, new)


def _replace(a: Action, state: ClusterState, old: Instance, new: Instance | None) -> ClusterState:
    out = [new if i.id == old.id else i for i in state.instances]
    return _checked(a, state, [i for i in out if i is not None])


def _checked(a: Action, state: ClusterState, instances: list) -> ClusterState:
    try:
        return _rebuild(state, instances, state.time_s)
    except ValidationError as exc:
        raise _fail(a, str(exc)) from None


def steps(state: ClusterState, actions: Iterable[Action]) -> Iterator[tuple[Action, ClusterState]]:
    """Yield (action, state just after it began), in order."""
    for a in actions:
        state = begin(state, a)
        yield a, state


def apply(state: ClusterState, actions: Iterable[Action], until_s: float | None = None) -> ClusterState:
    """Begin every action in order, then advance to ``until_s`` (default: until nothing is in flight)."""
    for _, state in steps(state, actions):
        pass
    return advance(state, state.settle_time_s if until_s is None else until_s)


def state_at(state: ClusterState, actions: Iterable[Action], t: float) -> ClusterState:
    """The state at time ``t``: actions starting by ``t`` begun, operations finished by ``t`` done."""
    for a in actions:
        if a.start_s > t:
            break
        state = begin(state, a)
    return advance(state, t)


__all__ = ["advance", "apply", "begin", "settle", "state_at", "steps"]
