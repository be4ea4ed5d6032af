"""Placement: the target plan's instances on concrete servers and GPU blocks (``formulations/placement.md``).

Every planned instance gets an aligned block of ``tp`` GPUs inside one server of its hardware
type, and — where possible — a current instance it is made from: kept as it is, re-clocked,
moved between pools (same model: no reload) or re-sharded in place over the server's
interconnect. Instances not reused are released. The CP-SAT model (placement.count .. placement.symmetry)
minimises,
in priority order: new instances, naive-reload re-shards, new instances or re-shards onto GPUs
another instance holds now (break-before-make), servers active at the end, servers touched,
weight bytes moved, pool moves and clock changes.

A greedy placement (keep what matches, then first-fit decreasing) is the solver's hint and the
fallback when CP-SAT finds nothing within its time limit; if even that cannot pack, every
instance is placed afresh.

This module and ``dynaplan.solvers`` are the only ones importing OR-Tools.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from dynaplan.errors import InfeasibleError, ValidationError
from dynaplan.reconfig.apply import settle
from dynaplan.reconfig.state import ClusterState, Instance
from dynaplan.domain.transitions import TransitionCosts, transfer_bytes
from dynaplan.validation import InputModel


class PlacementOptions(InputModel):
    """Solver limits and the objective's weights (integers, in objective units)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    use_solver: bool = Field(default=True, description="Solve the CP-SAT model; False: greedy only.")
    time_limit_s: float = Field(default=5.0, gt=0, description="CP-SAT wall-clock limit (s).")
    workers: int = Field(default=1, ge=1, description="CP-SAT search workers (1 is deterministic).")
    seed: int = Field(default=0, ge=0)
    w_start: int = Field(default=1_000_000, ge=0, description="Per new instance.")
    w_reload: int = Field(default=100_000, ge=0, description="Per re-shard by naive reload.")
    w_busy: int = Field(default=50_000, ge=0, description="Per start or re-shard onto GPUs held now by another "
                        "instance (it must wait for that one to go).")
    w_active: int = Field(default=10_000, ge=0, description="Per server hosting an instance at the end.")
    w_touch: int = Field(default=1_000, ge=0, description="Per server on which an instance starts, is released "
                         "or re-shards.")
    w_gb: int = Field(default=1, ge=0, description="Per GB of weights moved by transfer re-shards.")
    w_move: int = Field(default=2, ge=0, description="Per pool move.")
    w_clock: int = Field(default=1, ge=0, description="Per clock change.")


class PlacedInstance(BaseModel):
    """One planned instance on concrete GPUs, and the current instance it is made from (if any)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pool: str
    hardware: str
    tp: int
    freq_mhz: int
    server: str
    gpus: tuple[int, ...]
    source: str | None = Field(default=None, description="Id of the current instance reused; None: a new one.")
    load_rps: dict[str, float] = Field(default_factory=dict, description="The plan's load per instance (req/s).")


class Placement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    placed: tuple[PlacedInstance, ...]
    released: tuple[str, ...] = Field(description="Current instances not reused.")
    method: str = Field(description="'cpsat-optimal', 'cpsat-feasible', 'greedy' or 'fresh'.")
    objective: float | None = None
    bound: float | None = None
    wall_time_s: float = 0.0
    message: str = ""


@dataclass(frozen=True)
class _Group:
    pool: str
    hardware: str
    tp: int
    freq_mhz: int
    count: int
    load: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class _Cand:
    """Current instance i made into an instance of group g on block j of its server."""

    i: int
    g: int
    j: tuple[int, ...]
    cost: int
    moves_gpus: bool


def _groups(plan) -> list[_Group]:
    out: dict[tuple, int] = {}
    for pp in plan.pools:
        for g in pp.groups:
            key = (pp.pool, g.hardware, g.tp, g.freq_mhz, tuple(sorted(g.load_rps_per_instance.items())))
            out[key] = out.get(key, 0) + g.count
    return [_Group(p, h, t, f, n, load) for (p, h, t, f, load), n in out.items() if n > 0]


def _block(j: int, tp: int) -> tuple[int, ...]:
    return tuple(range(j * tp, (j + 1) * tp))


class _Problem:
    """Data of one placement: groups, servers, reusable instances, candidate reuses."""

    def __init__(self, state: ClusterState, plan, costs: TransitionCosts, opt: PlacementOptions) -> None:
        self.opt = opt
        self.groups = _groups(plan)
        self.servers = list(state.servers)
        self.sidx = {s.id: k for k, s in enumerate(self.servers)}
        self.gps = [state.hardware[s.hardware].gpus_per_server for s in self.servers]
        for g in self.groups:
            hw = state.hardware.get(g.hardware)
            if hw is None:
                raise ValidationError(f"plan pool {g.pool}: hardware {g.hardware!r} is not in the state "
                                      f"(known: {sorted(state.hardware)})")
            if g.tp > hw.gpus_per_server or hw.gpus_per_server % g.tp:
                raise ValidationError(f"plan pool {g.pool}: TP{g.tp} does not divide the {hw.gpus_per_server} "
                                      f"GPUs of {g.hardware}")
            if g.freq_mhz not in hw.clock_levels_mhz:
                raise ValidationError(f"plan pool {g.pool}: clock {g.freq_mhz} MHz is not a level of {g.hardware}")
        need: dict[str, int] = {}
        for g in self.groups:
            need[g.hardware] = need.get(g.hardware, 0) + g.tp * g.count
        for h, n in need.items():
            have = sum(self.gps[k] for k, s in enumerate(self.servers) if s.hardware == h)
            if n > have:
                raise InfeasibleError(f"{h}: the plan needs {n} GPUs, the state has {have} "
                                      f"on {sum(1 for s in self.servers if s.hardware == h)} server(s)")
        settled = settle(state)
        self.insts: list[Instance] = list(settled.instances)
        # candidate blocks of every (group, server): aligned blocks, plus the GPUs of a current
        # instance of the same TP that sits on an unaligned set (it may stay where it is)
        self.blocks: dict[tuple[int, int], list[tuple[int, ...]]] = {}
        for gi, g in enumerate(self.groups):
            for s, srv in enumerate(self.servers):
                if srv.hardware == g.hardware:
                    self.blocks[(gi, s)] = [_block(j, g.tp) for j in range(self.gps[s] // g.tp)]
        for inst in self.insts:
            s = self.sidx[inst.server]
            own = tuple(sorted(inst.gpu_indices))
            for gi, g in enumerate(self.groups):
                lst = self.blocks.get((gi, s))
                if lst is not None and g.tp == len(own) and own not in lst:
                    lst.append(own)
        self.ihw = [state.server(i.server).hardware for i in self.insts]
        now = state.held()
        # GPUs held now (server index, gpu) -> holder id; in-flight unions and draining ones count
        self.now = {(self.sidx[s], g): iid for (s, g), iid in now.items()}
        p_of = {h: costs.params(state.model, h) for h in {s.hardware for s in self.servers}}
        spec = costs.model_spec(state.model)
        self.cands: list[_Cand] = []
        for i, inst in enumerate(self.insts):
            s = self.sidx[inst.server]
            a = set(inst.gpu_indices)
            for gi, g in enumerate(self.groups):
                if g.hardware != self.ihw[i]:
                    continue
                for b in self.blocks[(gi, s)]:
                    moves = set(b) != a
                    cost = 0
                    if moves:
                        if p_of[g.hardware].reshard_mode == "reload":
                            cost += opt.w_reload
                        else:
                            moved, _ = transfer_bytes(spec.weight_bytes, a, b)
                            cost += opt.w_gb * int(round(moved / 1e9))
                        if any(self.now.get((s, q), inst.id) != inst.id for q in b if q not in a):
                            cost += opt.w_busy
                    if g.pool != inst.pool:
                        cost += opt.w_move
                    if g.freq_mhz != inst.freq_mhz:
                        cost += opt.w_clock
                    self.cands.append(_Cand(i, gi, b, cost, moves))

    def busy(self, s: int, b: tuple[int, ...]) -> bool:
        return any((s, q) in self.now for q in b)


# ---------------------------------------------------------------------------- greedy
def _greedy(pb: _Problem, reuse: bool = True) -> dict[tuple[int, int, int], int | None] | None:
    """(group, server, block) -> reused instance index or None; None if it cannot pack."""
    free = [[True] * n for n in pb.gps]
    left = [g.count for g in pb.groups]
    out: dict[tuple[int, int, int], int | None] = {}
    used: set[int] = set()
    if reuse:
        # keep current instances whose block is aligned and whose configuration is planned, best first
        for c in sorted(pb.cands, key=lambda c: c.cost):
            if c.moves_gpus or c.i in used or left[c.g] == 0:
                continue
            s = pb.sidx[pb.insts[c.i].server]
            b = c.j
            if not all(free[s][q] for q in b):
                continue
            for q in b:
                free[s][q] = False
            used.add(c.i)
            left[c.g] -= 1
            out[(c.g, s, c.j)] = c.i
    active = {s for (_, s, _) in out}
    order = sorted(range(len(pb.groups)), key=lambda g: -pb.groups[g].tp)
    for gi in order:
        g = pb.groups[gi]
        for _ in range(left[gi]):
            best = None
            for s, srv in enumerate(pb.servers):
                if srv.hardware != g.hardware:
                    continue
                for b in pb.blocks[(gi, s)]:
                    if all(free[s][q] for q in b):
                        key = (pb.busy(s, b), s not in active, s, b)
                        if best is None or key < best[0]:
                            best = (key, s, b)
            if best is None:
                return None
            _, s, j = best
            for q in j:
                free[s][q] = False
            active.add(s)
            out[(gi, s, j)] = None
    return out


# ---------------------------------------------------------------------------- CP-SAT
def _cpsat(pb: _Problem, hint: dict | None):
    from ortools.sat.python import cp_model  # only here (and in dynaplan.solvers)

    opt = pb.opt
    m = cp_model.CpModel()
    y: dict[tuple[int, int, int], object] = {}
    for (gi, s), blocks in pb.blocks.items():
        for j in blocks:
            y[(gi, s, j)] = m.NewBoolVar(f"y[{gi},{s},{j}]")
    x = {c: m.NewBoolVar(f"x[{c.i},{c.g},{c.j}]") for c in pb.cands}
    touch = [m.NewBoolVar(f"touch[{s}]") for s in range(len(pb.servers))]
    act = [m.NewBoolVar(f"active[{s}]") for s in range(len(pb.servers))]
    # (placement.count) every planned instance is placed
    for gi, g in enumerate(pb.groups):
        m.Add(sum(v for (g2, _, _), v in y.items() if g2 == gi) == g.count)
    # (placement.gpu) no GPU holds two planned instances
    cover: dict[tuple[int, int], list] = {}
    for (gi, s, j), v in y.items():
        for q in j:
            cover.setdefault((s, q), []).append(v)
    for vs in cover.values():
        if len(vs) > 1:
            m.Add(sum(vs) <= 1)
    # (placement.reuse_once) a current instance is reused at most once; (placement.reuse_slot) only
    # where a planned instance is placed
    by_i: dict[int, list] = {}
    by_slot: dict[tuple[int, int, int], list] = {}
    for c, v in x.items():
        s = pb.sidx[pb.insts[c.i].server]
        by_i.setdefault(c.i, []).append(v)
        by_slot.setdefault((c.g, s, c.j), []).append(v)
    for vs in by_i.values():
        m.Add(sum(vs) <= 1)
    new_start = {}
    for key, v in y.items():
        reused = by_slot.get(key, [])
        if reused:
            m.Add(sum(reused) <= v)
        new_start[key] = v - sum(reused) if reused else v
    # (placement.touch) a start, a release or a re-shard on the server
    for key, expr in new_start.items():
        m.Add(touch[key[1]] >= expr)
    for i, inst in enumerate(pb.insts):
        s = pb.sidx[inst.server]
        m.Add(touch[s] >= 1 - sum(by_i.get(i, [])))
    for c, v in x.items():
        if c.moves_gpus:
            m.Add(touch[pb.sidx[pb.insts[c.i].server]] >= v)
    # (placement.active)
    for (gi, s, j), v in y.items():
        m.AddImplication(v, act[s])
    # (placement.symmetry) identical servers empty now are used in order
    empty_by_hw: dict[str, list[int]] = {}
    occupied = {s for (s, _) in pb.now} | {pb.sidx[i.server] for i in pb.insts}
    for s, srv in enumerate(pb.servers):
        if s not in occupied:
            empty_by_hw.setdefault(srv.hardware, []).append(s)
    for lst in empty_by_hw.values():
        for a, b in zip(lst, lst[1:]):
            m.Add(act[b] <= act[a])
            m.Add(touch[b] <= touch[a])
    # objective (placement.obj)
    terms = []
    for key, expr in new_start.items():
        gi, s, j = key
        w = opt.w_start + (opt.w_busy if pb.busy(s, j) else 0)
        terms.append(w * expr)
    terms += [c.cost * v for c, v in x.items() if c.cost]
    terms += [opt.w_touch * t for t in touch] + [opt.w_active * a for a in act]
    m.Minimize(sum(terms))
    if hint is not None:
        for key, v in y.items():
            m.AddHint(v, key in hint)
        chosen = {(src, key[0], key[2]) for key, src in hint.items() if src is not None}
        for c, v in x.items():
            m.AddHint(v, (c.i, c.g, c.j) in chosen)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(opt.time_limit_s)
    solver.parameters.num_workers = int(opt.workers)
    solver.parameters.random_seed = int(opt.seed)
    # the LP relaxation of the reuse/count rows is tight: with full linearization one worker
    # proves optimality on 40-server clusters in a fraction of a second (without it, not in 5 s)
    solver.parameters.linearization_level = 2
    status = solver.Solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None, solver.StatusName(status), None, None
    out: dict[tuple[int, int, int], int | None] = {}
    for key, v in y.items():
        if solver.Value(v):
            out[key] = None
    for c, v in x.items():
        if solver.Value(v):
            out[(c.g, pb.sidx[pb.insts[c.i].server], c.j)] = c.i
    name = "cpsat-optimal" if status == cp_model.OPTIMAL else "cpsat-feasible"
    return out, name, float(solver.ObjectiveValue()), float(solver.BestObjectiveBound())


def place(state: ClusterState, plan, costs: TransitionCosts | None = None,
          options: PlacementOptions | None = None) -> Placement:
    """Place ``plan``'s instances on ``state``'s servers (see the module docstring).

    Instances in flight count as what they become; draining ones are not reused. Raises
    :class:`InfeasibleError` when the plan needs more GPUs of a type than the state has, and
    :class:`ValidationError` when the plan names hardware, TP degrees or clocks the state's
    hardware does not have.
    """
    t0 = time.perf_counter()
    costs = costs or TransitionCosts()
    opt = options or PlacementOptions()
    pb = _Problem(state, plan, costs, opt)
    hint = _greedy(pb)
    sol, method, obj, bound, msg = None, "", None, None, ""
    if opt.use_solver and pb.groups:
        sol, method, obj, bound = _cpsat(pb, hint)
        if sol is None:
            msg = f"CP-SAT found no placement ({method}) within {opt.time_limit_s:g} s; greedy used"
    if sol is None:
        sol, method = hint, "greedy"
        if sol is None:
            sol, method = _greedy(pb, reuse=False), "fresh"
            msg = (msg + "; " if msg else "") + "greedy could not keep instances in place; all placed afresh"
            if sol is None:  # pragma: no cover - aligned power-of-two blocks always pack
                raise InfeasibleError("placement: the plan's instances do not pack into the servers")
    placed = []
    reused = set()
    for (gi, s, j), src in sorted(sol.items()):
        g = pb.groups[gi]
        if src is not None:
            reused.add(src)
        placed.append(PlacedInstance(pool=g.pool, hardware=g.hardware, tp=g.tp, freq_mhz=g.freq_mhz,
                                     server=pb.servers[s].id, gpus=tuple(j),
                                     source=None if src is None else pb.insts[src].id, load_rps=dict(g.load)))
    released = tuple(inst.id for i, inst in enumerate(pb.insts) if i not in reused)
    if obj is not None and not math.isfinite(obj):
        obj = None
    return Placement(placed=tuple(placed), released=released, method=method, objective=obj, bound=bound,
                     wall_time_s=time.perf_counter() - t0, message=msg)


__all__ = ["PlacedInstance", "Placement", "PlacementOptions", "place"]
