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

The model is a :class:`~dynaplan.solvers.LinearModel` with one constraint block per label of
``placement.md``, solved by
the CP-SAT backend of :mod:`dynaplan.solvers` like any other model (its integer rows are exact,
so the discretisation is the model).
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dynaplan.errors import InfeasibleError, ValidationError
from dynaplan.limits import MAX_PLACEMENT_SOLVER_BLOCKS
from dynaplan.planning.plan import Plan
from dynaplan.reconfig.apply import settle
from dynaplan.reconfig.state import ClusterState, Instance
from dynaplan.domain.transitions import TransitionCosts, transfer_bytes
from dynaplan.validation import InputModel
from dynaplan.solvers import Backend, LinearModel, SolveOptions, SolveReport, Status, solve
from dynaplan.solvers.model import INF


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


PlacementMethod = Literal["cpsat-optimal", "cpsat-feasible", "greedy", "fresh"]


class Placement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    placed: tuple[PlacedInstance, ...]
    released: tuple[str, ...] = Field(description="Current instances not reused.")
    method: PlacementMethod = Field(description="How the placement was found: the CP-SAT model solved to "
                                    "optimality or not, the greedy placement, or every instance afresh.")
    objective: float | None = Field(default=None, description="placement.obj of the placement (objective units).")
    bound: float | None = Field(default=None, description="Proven lower bound on placement.obj (objective units).")
    wall_time_s: float = Field(default=0.0, description="Wall time of the placement (s).")
    message: str = ""
    report: SolveReport | None = Field(default=None, description="The CP-SAT solve's report (None: not solved).")


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


def _groups(plan: Plan) -> list[_Group]:
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
        self.ihw = [self.servers[self.sidx[i.server]].hardware for i in self.insts]
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
        if left[gi] == 0:
            continue
        g = pb.groups[gi]
        # every new instance takes the free block of least key (busy now, server inactive, server,
        # block): a heap of the keys, popped lazily — a block taken since it was pushed is skipped,
        # and a server that becomes active pushes its blocks again with the smaller key (the stale
        # entries then only ever pop for blocks already taken). Same choices as a scan of every
        # block per instance, in O((blocks + instances) log blocks).
        busy = {}
        heap = []
        for s, srv in enumerate(pb.servers):
            if srv.hardware != g.hardware:
                continue
            for b in pb.blocks[(gi, s)]:
                busy[(s, b)] = pb.busy(s, b)
                heap.append((busy[(s, b)], s not in active, s, b))
        heapq.heapify(heap)
        for _ in range(left[gi]):
            while heap and not all(free[heap[0][2]][q] for q in heap[0][3]):
                heapq.heappop(heap)
            if not heap:
                return None
            _, _, s, j = heapq.heappop(heap)
            for q in j:
                free[s][q] = False
            if s not in active:
                active.add(s)
                for b in pb.blocks[(gi, s)]:
                    if all(free[s][q] for q in b):
                        heapq.heappush(heap, (busy[(s, b)], False, s, b))
            out[(gi, s, j)] = None
    return out


# ---------------------------------------------------------------------------- CP-SAT
class _Rows:
    """Rows of one constraint block, collected as (columns, coefficients) and added at once."""

    def __init__(self) -> None:
        self.labels: list = []
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []

    def add(self, label, cols, vals) -> None:
        i = len(self.labels)
        self.labels.append(label)
        self.rows += [i] * len(cols)
        self.cols += list(cols)
        self.vals += list(vals)

    def into(self, m: LinearModel, name: str, *, lo=-INF, hi=INF) -> None:
        if self.labels:
            m.add_constraints(name, self.labels, self.rows, self.cols, self.vals, lo=lo, hi=hi)


def _model(pb: _Problem) -> tuple[LinearModel, dict, dict]:
    """The placement MILP (placement.count .. placement.obj): binaries ``y`` per (group, server,
    block), ``x`` per candidate reuse, ``touch`` and ``active`` per server. Returns the model and
    the columns of ``y`` and ``x``."""
    opt = pb.opt
    m = LinearModel("placement")
    y_keys = [(gi, s, j) for (gi, s), blocks in pb.blocks.items() for j in blocks]
    n_srv = len(pb.servers)
    yb = m.add_vars("y", y_keys, lb=0, ub=1, integer=True)
    xb = m.add_vars("x", [(c.i, c.g, c.j) for c in pb.cands], lb=0, ub=1, integer=True)
    tb = m.add_vars("touch", range(n_srv), lb=0, ub=1, cost=opt.w_touch, integer=True)
    ab = m.add_vars("active", range(n_srv), lb=0, ub=1, cost=opt.w_active, integer=True)
    ycol = {key: yb.start + k for k, key in enumerate(y_keys)}
    xcol = {c: xb.start + k for k, c in enumerate(pb.cands)}
    # (placement.count) every planned instance is placed
    count = _Rows()
    by_group: dict[int, list[int]] = {}
    for key, j in ycol.items():
        by_group.setdefault(key[0], []).append(j)
    for gi in range(len(pb.groups)):
        count.add(gi, by_group.get(gi, []), [1.0] * len(by_group.get(gi, [])))
    count.into(m, "placement.count", lo=[g.count for g in pb.groups], hi=[g.count for g in pb.groups])
    # (placement.gpu) no GPU holds two planned instances
    cover: dict[tuple[int, int], list[int]] = {}
    for (gi, s, blk), j in ycol.items():
        for q in blk:
            cover.setdefault((s, q), []).append(j)
    gpu = _Rows()
    for sq, js in cover.items():
        if len(js) > 1:
            gpu.add(sq, js, [1.0] * len(js))
    gpu.into(m, "placement.gpu", hi=1.0)
    # (placement.reuse_once) a current instance is reused at most once; (placement.reuse_slot) only
    # where a planned instance is placed
    by_i: dict[int, list[int]] = {}
    by_slot: dict[tuple[int, int, tuple], list[int]] = {}
    for c, j in xcol.items():
        by_i.setdefault(c.i, []).append(j)
        by_slot.setdefault((c.g, pb.sidx[pb.insts[c.i].server], c.j), []).append(j)
    once, slot = _Rows(), _Rows()
    for i, js in by_i.items():
        once.add(i, js, [1.0] * len(js))
    for key, js in by_slot.items():
        slot.add(key, js + [ycol[key]], [1.0] * len(js) + [-1.0])
    once.into(m, "placement.reuse_once", hi=1.0)
    slot.into(m, "placement.reuse_slot", hi=0.0)
    # (placement.touch) a start, a release or a re-shard on the server:
    # touch_s - y + sum reused >= 0;  touch_s + sum_x(i) >= 1;  touch_s - x >= 0 (x moves GPUs)
    touch, touch_lo = _Rows(), []
    for key, j in ycol.items():
        reused = by_slot.get(key, [])
        touch.add(("start",) + key, [tb.start + key[1], j] + reused, [1.0, -1.0] + [1.0] * len(reused))
        touch_lo.append(0.0)
    for i, inst in enumerate(pb.insts):
        js = by_i.get(i, [])
        touch.add(("release", inst.id), [tb.start + pb.sidx[inst.server]] + js, [1.0] * (1 + len(js)))
        touch_lo.append(1.0)
    for c, j in xcol.items():
        if c.moves_gpus:
            touch.add(("reshard", c.i, c.g, c.j), [tb.start + pb.sidx[pb.insts[c.i].server], j], [1.0, -1.0])
            touch_lo.append(0.0)
    touch.into(m, "placement.touch", lo=touch_lo)
    # (placement.active)
    active = _Rows()
    for key, j in ycol.items():
        active.add(key, [ab.start + key[1], j], [1.0, -1.0])
    active.into(m, "placement.active", lo=0.0)
    # (placement.symmetry) identical servers empty now are used in order
    empty_by_hw: dict[str, list[int]] = {}
    occupied = {s for (s, _) in pb.now} | {pb.sidx[i.server] for i in pb.insts}
    for s, srv in enumerate(pb.servers):
        if s not in occupied:
            empty_by_hw.setdefault(srv.hardware, []).append(s)
    sym = _Rows()
    for lst in empty_by_hw.values():
        for a, b in zip(lst, lst[1:]):
            sym.add(("active", a, b), [ab.start + b, ab.start + a], [1.0, -1.0])
            sym.add(("touch", a, b), [tb.start + b, tb.start + a], [1.0, -1.0])
    sym.into(m, "placement.symmetry", hi=0.0)
    # objective (placement.obj): a new start on y costs w_start (+ w_busy onto held GPUs), which a
    # reuse of the slot takes back; a reuse pays its own cost
    cost = np.zeros(m.n_cols)
    for (gi, s, blk), j in ycol.items():
        w = opt.w_start + (opt.w_busy if pb.busy(s, blk) else 0)
        cost[j] += w
        for jx in by_slot.get((gi, s, blk), []):
            cost[jx] -= w
    for c, j in xcol.items():
        cost[j] += c.cost
    m.set_cost("y", cost[yb.start:yb.stop])
    m.set_cost("x", cost[xb.start:xb.stop])
    return m, ycol, xcol


def _cpsat(pb: _Problem, hint: dict | None):
    """Solve the placement MILP with CP-SAT through :mod:`dynaplan.solvers` (hinted by the greedy
    placement); returns (placement or None, method, objective, bound, report)."""
    opt = pb.opt
    m, ycol, xcol = _model(pb)
    x0 = None
    if hint is not None:
        x0 = np.full(m.n_cols, np.nan)  # the greedy's y and x; touch and active left to CP-SAT
        x0[m.var_blocks["y"].cols] = 0.0
        x0[m.var_blocks["x"].cols] = 0.0
        for key in hint:
            x0[ycol[key]] = 1.0
        chosen = {(src, key[0], key[2]) for key, src in hint.items() if src is not None}
        for c, j in xcol.items():
            x0[j] = float((c.i, c.g, c.j) in chosen)
    # the LP relaxation of the reuse/count rows is tight: with full linearization one worker
    # proves optimality on 40-server clusters in a fraction of a second (without it, not in 5 s)
    so = SolveOptions(time_limit_s=float(opt.time_limit_s), threads=int(opt.workers), seed=int(opt.seed),
                      mip_rel_gap=0.0, cpsat_objective_unit=1.0, cpsat_linearization_level=2)
    sol = solve(m, Backend.CPSAT, so, hint=x0)
    r = sol.report
    if sol.x is None:
        return None, r.message.removeprefix("cpsat: "), None, None, r
    v = np.rint(sol.x)
    out: dict[tuple[int, int, tuple], int | None] = {}
    for key, j in ycol.items():
        if v[j]:
            out[key] = None
    for c, j in xcol.items():
        if v[j]:
            out[(c.g, pb.sidx[pb.insts[c.i].server], c.j)] = c.i
    name = "cpsat-optimal" if r.status is Status.OPTIMAL else "cpsat-feasible"
    return out, name, r.objective, r.bound, r


def place(state: ClusterState, plan: Plan, costs: TransitionCosts | None = None,
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
    sol, method, obj, bound, msg, report = None, "", None, None, "", None
    blocks = sum(len(b) for b in pb.blocks.values())
    if opt.use_solver and pb.groups and blocks > MAX_PLACEMENT_SOLVER_BLOCKS:
        msg = (f"{blocks:,} candidate blocks (more than {MAX_PLACEMENT_SOLVER_BLOCKS:,}, "
               "dynaplan.limits.MAX_PLACEMENT_SOLVER_BLOCKS): greedy placement, CP-SAT not tried")
    elif opt.use_solver and pb.groups:
        sol, method, obj, bound, report = _cpsat(pb, hint)
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
                     wall_time_s=time.perf_counter() - t0, message=msg, report=report)


__all__ = ["PlacedInstance", "Placement", "PlacementOptions", "place"]
