"""The public planning API: build a :class:`Planner` once, call :meth:`Planner.plan` often.

Hierarchy (``formulations/*.md``): the cluster level chooses servers per pool and hardware and
where each class's load goes (whole-server recipes); the pool level re-optimises each pool's
instance mix inside its servers; the instance level picks clocks from observed load. The
monolithic reference solves all pools in one MILP.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import pandas as pd

from dynaplan.domain.slo import DEFAULT_SLOS, SLOTable
from dynaplan.errors import DynaplanError, InfeasibleError, NoSolutionError, ValidationError
from dynaplan.formulations import cluster as cluster_f
from dynaplan.formulations import instance as instance_f
from dynaplan.formulations import network as nw
from dynaplan.formulations import pool_dp, pool_mix
from dynaplan.formulations.pool_dp import PoolDP
from dynaplan.limits import FRAME_ROWS
from dynaplan.planning import decode
from dynaplan.planning.bounds import GlobalBound
from dynaplan.planning.demand import LOAD_EPS_RPS, LOAD_FLOOR_RPS, CheckedForecast, check_demand
from dynaplan.planning.demand import plannable as _plannable
from dynaplan.planning.decode import unserved_rps
from dynaplan.planning.diagnosis import Diagnosis, check_solution
from dynaplan.planning.bulk import plan_pool_bulk
from dynaplan.planning.polish import polish, request_key
from dynaplan.planning.registry import FORMULATIONS, Formulation, ModelKind
from dynaplan.planning.validate import check_inputs
from dynaplan.planning.plan import Allotment, Plan, PlanningState, PoolPlan, check_state, plan_totals
from dynaplan.planning.problem import (Inventory, PlannerOptions, check_forecast, envelope_pieces,
                                       non_dominated, operating_points, power_segments, spill_targets)
from dynaplan.profiles.profile import Profile
from dynaplan.domain.transitions import TransitionCosts
from dynaplan.solvers import (Backend, SolveOptions, SolveReport, Status, open_session, relative_gap, solve,
                              StopReason, worst_status)
from dynaplan.solvers.model import ModelArrays
from dynaplan.solvers.verify import solution_problem
from dynaplan.validation import checked, excerpt

# When the cluster level's recipes are infeasible the allotment comes from the monolithic MILP,
# solved only this far: it is re-planned by the pool level and polished, and the plan's own gap
# is stated against the global bound (formulations/cluster.md, "Hand-off to the pool level").
FALLBACK_GAP = 1e-2
FALLBACK_NODES = 500
_UNSET = object()  # Planner._assemble: the global bound is still to be computed
# pool MILPs on at most this many GPUs run with HiGHS's lean root (SolveOptions.highs_lean_root):
# on the 40-server pools (1-5 servers) 1.5-5x faster, same plans; on 12,500-server pools restarts pay
LEAN_ROOT_MAX_GPUS = 64
# the inventory ladder (formulations/cluster.md): at most this many rungs, each one server fewer
# than the plan above it, stopping at the first that is worse by more than LADDER_TOL (relative)
LADDER_RUNGS = 3
# rungs below the top only when the top rung's plan holds at most this many servers
LADDER_MAX_SERVERS = 64
LADDER_TOL = 1e-9
# ``late()``: True once a Planner.plan call's time budget is spent (PlannerOptions.time_budget_s)
_Late = Callable[[], bool] | None


class Planner:
    """Plans a cluster for per-class load forecasts.

    Built once from a profile, an inventory and SLOs; the SLO-feasible, non-dominated operating
    points and each pool model's matrix are computed once and reused by every call.
    """

    @checked
    def __init__(self, profile: Profile, inventory: Inventory | Mapping[str, int], slos: SLOTable = DEFAULT_SLOS,
                 options: PlannerOptions | None = None, solve_options: SolveOptions | None = None,
                 backend: Backend | str = Backend.HIGHS, model: str | None = None,
                 transition_costs: TransitionCosts | None = None) -> None:
        self.profile = profile
        inventory, model = check_inputs(profile, inventory, slos, model)
        self.inventory = inventory
        self.slos = slos
        self.options = options or PlannerOptions()
        self.solve_options = solve_options or SolveOptions()
        try:
            self.backend = Backend(backend)
        except ValueError:
            raise ValidationError(f"backend {excerpt(backend)}: unknown solver backend; expected one of "
                                  f"{[b.value for b in Backend]}") from None
        self.classes = profile.classes.names
        self.hardware = {h: profile.hardware[h] for h in self.inventory.servers}
        for h in self.hardware.values():
            bad = [t for t in h.tp_degrees() if h.gpus_per_server % t]
            if bad:
                raise ValidationError(f"hardware {h.name}: TP degrees {bad} do not divide {h.gpus_per_server} GPUs")
        self.model = model
        ml = profile.max_load_under_slo(slos)
        ml = ml.reset_index()  # keeps the profile's group_id as a column
        self.max_load = ml[ml["model"] == model].reset_index(drop=True)
        # only the inventory's hardware and the planned model: the dominance pruning is the build's
        # costliest step and compares points of one hardware type and model only
        points = operating_points(profile, slos, False, hardware=list(self.hardware), model=model)
        # pools' configurations: the non-dominated points of their own class (the pruning is exact
        # there, pool.md "Pre-filtering"); a routed class may use every point of its own that a
        # pool configuration offers (pool.md, "Spilled classes")
        self.routed_ops = points
        self.ops = non_dominated(points) if self.options.prune_dominated else points
        self.segments = power_segments(profile, self.ops, self.options.load_segments)
        if self.options.prune_dominated:
            self.segments = envelope_pieces(self.ops, self.segments)
        self.routes = spill_targets(self.classes, len(profile.classes.output_bins.names), self.options.spill)
        self._diagnosis = Diagnosis(self.max_load, self.hardware, self.inventory.servers, slos, self.routes,
                                    self.options.spill)
        self.transition_costs = transition_costs or TransitionCosts()
        self._prices: nw.TransitionPrices | None = None
        self._models: dict = {}
        # (pool, hardware): the exact pool DP (pool.md DP3), each of its pieces' configuration and
        # model row (Planner._pool_dp)
        # and ("spill", pool, class, hardware): a spilled class alone (Planner._spill_dp)
        self._pool_dps: dict[tuple, tuple] = {}
        self._lp_bounds: dict[tuple[str, str], object] = {}  # (pool, hardware): pool.md BR1 (planning/bulk.py)
        self._mix_dps: dict[tuple, tuple] = {}  # (pool, hardware, loaded classes): mixed pools' bound DP, pool.md DP6
        self._bound: GlobalBound | None = None  # planning/bounds.py, built on the first plan
        self.bound_time_s = 0.0  # seconds the last global bound took
        self._clock_chooser: instance_f.ClockChooser | None = None  # built once per (kind, pool); later calls only move bounds
        self._cfg_err: dict[tuple, float] | None = None  # segment_error_w by (hw, tp, freq, class), for _assemble
        self._per_server: dict[str, float] | None = None  # q_c of the ladder's top rung, for _top_caps
        self._executor: ThreadPoolExecutor | None = None  # PlannerOptions.workers > 1: started on first use
        # large pools' residual MILPs of the current planning call (planning/bulk.py) and the
        # two-class search's DP values (pool_mix.search), emptied at the start of every plan() and
        # plan_pool() call: an answer is never carried to another call
        self.residual_memo: dict[tuple, tuple] = {}

    # ------------------------------------------------------------------ helpers
    def _pool_of_threads(self) -> ThreadPoolExecutor | None:
        """The planner's worker threads (``PlannerOptions.workers`` > 1), started on first use."""
        if self.options.workers <= 1:
            return None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.options.workers, thread_name_prefix="dynaplan")
        return self._executor

    @property
    def _penalty(self) -> float | None:
        return self.options.unserved_penalty_w_per_rps if self.options.best_effort else None

    def _solve(self, model_or_arrays, build_time_s: float, heuristics: bool = False, gap: float | None = None,
               session=None, lean_root: bool = False, hint: np.ndarray | None = None):
        """Solve with the planner's options; ``heuristics`` is HiGHS's primal heuristics for this
        model unless ``SolveOptions.highs_heuristics`` forces them; ``gap`` replaces the relative
        MIP gap when given; ``session`` (:func:`dynaplan.solvers.open_session`) re-solves a
        cached model in place where the backend can; ``lean_root``: HiGHS's lean root
        (``SolveOptions.highs_lean_root``) unless the options force it either way; ``hint``: a
        starting solution for backends that take one (ignored by the others)."""
        arrays = model_or_arrays if isinstance(model_or_arrays, ModelArrays) else model_or_arrays.arrays()
        opts = self.solve_options
        update = {}
        if opts.highs_heuristics is None:
            update["highs_heuristics"] = heuristics
        if opts.highs_lean_root is None and lean_root:
            update["highs_lean_root"] = True
        if gap is not None:
            update["mip_rel_gap"] = gap
        if update:
            opts = opts.model_copy(update=update)
        sol = (session.update_bounds_and_resolve(arrays, opts, hint) if session
               else solve(arrays, self.backend, opts, hint))
        return sol.x, sol.report.with_build_time(build_time_s + sol.report.build_time_s)

    @checked
    def diagnose(self, forecast: Mapping[str, float]) -> list[str]:
        """Reasons why a forecast cannot be met (empty if none is found by these checks;
        :meth:`dynaplan.planning.diagnosis.Diagnosis.reasons`)."""
        return self._diagnosis.reasons(check_forecast(forecast, self.classes))

    # ------------------------------------------------------------------ pool level
    def _model(self, kind: ModelKind | str, pool: str | None = None) -> "_CachedModel":
        """The model of ``kind`` (:class:`~dynaplan.planning.registry.ModelKind`), built on first
        use with every class the model may ever serve and every hardware type; calls then only set
        the demand right-hand sides and the server bounds."""
        kind = ModelKind(kind)
        key = (kind, pool)
        cached = self._models.get(key)
        if cached is not None:
            return cached
        t0 = time.perf_counter()
        form = FORMULATIONS[kind]
        prices = self.transition_prices if form.transitions else None
        m, net, blocks = form.build(self, pool, prices)
        cached = _CachedModel(m, m.arrays(), nw.net_arrays(net, blocks, recipe=form.recipe),
                              time.perf_counter() - t0, form)
        cached.net = net
        cached.transitions = blocks.get("transitions")
        # objective offset per unit of demand (objective.define_objective), aligned with the demand rows,
        # and the demand the model was built with (its offset holds the shift for that demand)
        dblock = m.con_blocks["demand"]
        cached.load_shift = blocks["load_shift"].reindex(list(dblock.labels), fill_value=0.0).to_numpy()
        cached.load_shift_built = float(cached.load_shift @ cached.arrays.row_lo[dblock.start:dblock.stop])
        link = blocks.get("linking")
        if link is not None:  # (linking) entries moved with the demand (cluster.md, "Linking rows")
            pos = {c: i for i, c in enumerate(dblock.labels)}
            cached.linking = (cached.arrays.positions(link.row, link.col),
                              np.array([pos[c] for c in link.request_class], dtype=np.int64), link.cap)
        self._models[key] = cached
        return cached

    def _problem(self, cm: "_CachedModel", demand: Mapping[str, float], servers: Mapping[str, int] | None = None,
                 rows: Mapping[str, tuple] | None = None, cols: Mapping[str, tuple] | None = None,
                 relaxed: bool = False):
        """The cached model ``cm`` as it is solved for ``demand`` (and, for pool models, fixed
        ``servers``; ``rows``/``cols`` as in :meth:`_solve_cached`): its arrays with the demand,
        the bounds, the load-cost shift's offset and the linking coefficients set."""
        dblock = cm.model.con_blocks["demand"]
        rhs = np.array([demand.get(c, 0.0) for c in dblock.labels])
        ybounds = None
        if servers is not None:
            yb = cm.model.var_blocks["y"]
            ybounds = np.array([float(servers.get(h, 0)) for _, h in yb.labels])
        offset = cm.arrays.offset + float(cm.load_shift @ rhs) - cm.load_shift_built
        col_bounds = dict(cols or {})
        if ybounds is not None:
            col_bounds["y"] = (ybounds, ybounds)
        if relaxed and cm.lp_arrays is None:
            cm.lp_arrays = cm.arrays.relaxed()
        base = cm.lp_arrays if relaxed else cm.arrays
        problem = base.with_block_bounds(rows={"demand": (rhs, None), **(rows or {})},
                                         cols=col_bounds or None, offset=offset)
        if cm.linking is not None:  # (CP-SAT models have none: registry._linking)
            pos, cls, cap = cm.linking
            problem = problem.with_coefficients(pos, -nw.linking_coefficients(cap, rhs[cls]))
        return problem

    def _solve_cached(self, cm: "_CachedModel", demand: Mapping[str, float],
                      servers: Mapping[str, int] | None = None, rows: Mapping[str, tuple] | None = None,
                      heuristics: bool = False, gap: float | None = None, cols: Mapping[str, tuple] | None = None,
                      lean_root: bool = False, relaxed: bool = False, start: bool = False):
        """Solve a cached model for ``demand`` (req/s by class), for pool models fixed
        ``servers``, and ``rows``: other constraint blocks' new ``(lo, hi)`` (None keeps a side);
        ``cols``: variable blocks' new ``(lb, ub)``; ``lean_root`` as in :meth:`_solve`;
        ``relaxed``: its LP relaxation (a session of its own); ``start``: offer the solver the
        best uniform plan as its first incumbent (pool models; :func:`network.uniform_start`)."""
        t0 = time.perf_counter()
        problem = self._problem(cm, demand, servers, rows, cols, relaxed)
        if relaxed:
            if cm.lp_session is None:
                cm.lp_session = open_session(cm.lp_arrays, self.backend, self.solve_options)
            session = cm.lp_session
        else:
            if cm.session is None:
                cm.session = open_session(cm.arrays, self.backend, self.solve_options)
            session = cm.session
        hint = None
        if start and not relaxed and servers is not None:
            gpus = {h: int(n) * self.hardware[h].gpus_per_server for h, n in servers.items()}
            hint = nw.uniform_start(cm.na, cm.piece_lo(), cm.piece_hi(), problem, demand, gpus)
        return self._solve(problem, time.perf_counter() - t0, heuristics, gap, session, lean_root and not relaxed,
                           hint)

    @property
    def transition_prices(self) -> nw.TransitionPrices:
        """Amortised prices of changes (W), from :attr:`transition_costs` over
        ``PlannerOptions.transition_amortisation_s`` (default: the pool epoch)."""
        if self._prices is None:
            o = self.options
            self._prices = nw.transition_prices(self.transition_costs, self.model, self.hardware,
                                                o.transition_amortisation_s or o.pool_epoch_s,
                                                o.transition_amortisation_s or o.cluster_epoch_s)
        return self._prices

    def plan_pool(self, pool: str, loads_rps: Mapping[str, float], servers: Mapping[str, int],
                  epoch_s: float | None = None, current: Mapping[tuple, int] | None = None) -> PoolPlan:
        """Pool level: the instance mix of ``pool`` serving ``loads_rps`` inside ``servers``.

        The pool runs on exactly the given servers (formulations/pool.md, allotment). With
        ``current`` — the pool's instances now, by (hardware, tp, freq_mhz) — the MILP also pays
        the amortised cost of every change (pool.md 6-10), so a saving smaller than the cost of
        making it leaves the pool as it is.
        """
        if pool not in self.classes:
            raise ValidationError(f"unknown pool {pool!r}; pools are named by class: {list(self.classes)}")
        loads = check_demand(loads_rps, self.classes).demand_rps
        self.residual_memo = {}
        pp = self._plan_pool(pool, loads, servers, epoch_s, current, bulk=self.options.large_pool == "bulk",
                             search=self.options.mixed_pool == "search")
        if current is None and pp.report is not None and pp.report.bound is None and pp.report.has_solution:
            pp = self._bound_mixed_pool(pool, loads, servers, pp)
        return pp

    def _plan_pool(self, pool: str, loads: Mapping[str, float], servers: Mapping[str, int],
                   epoch_s: float | None = None, current: Mapping[tuple, int] | None = None,
                   bulk: bool = False, search: bool = False) -> PoolPlan:
        """:meth:`plan_pool` for plannable ``loads`` (:func:`dynaplan.planning.demand.plannable`)
        of a forecast checked already; ``bulk``: a pool beyond the DP's sizes may be solved by
        bulk + residual (pool.md, "Large pools"; ``PlannerOptions.large_pool``); ``search``: a
        two-class pool may be solved by the two-class search (pool.md, "Two-class pools";
        ``PlannerOptions.mixed_pool``)."""
        not_routed = [c for c in loads if pool not in self.routes[c]]
        if not_routed:
            raise ValidationError(f"pool {pool}: classes {not_routed} may not be served by it (spill={self.options.spill!r})")
        unknown_hw = sorted(set(servers) - set(self.hardware))
        if unknown_hw:
            raise ValidationError(f"pool {pool}: unknown hardware {unknown_hw}; the inventory has {sorted(self.hardware)}")
        epoch_s = self.options.pool_epoch_s if epoch_s is None else epoch_s
        srv = {h: int(servers.get(h, 0)) for h in self.hardware}
        cm = self._model(ModelKind.POOL_TRANSITIONS if current is not None else ModelKind.POOL, pool)
        servable = {c for c, k in zip(cm.na.arc_class, cm.na.arc_k) if srv.get(cm.na.pc_hw[cm.first_piece[k]], 0) > 0}
        missing = [c for c in loads if c not in servable]
        if missing and self._penalty is None:
            raise InfeasibleError(f"pool {pool}: no configuration on its servers {srv} meets the SLO of "
                                  f"class(es) {missing}")
        if current is None:
            pp = self._plan_pool_dp(cm, pool, loads, srv, epoch_s)
            if pp is None and search:
                pp = self._plan_pool_search(cm, pool, loads, srv, epoch_s)
            if pp is None and bulk:
                pp = plan_pool_bulk(self, cm, pool, loads, srv, epoch_s)
            if pp is not None:
                return pp
        rows = nw.transition_rows(cm.net, cm.transitions, current) if current is not None else None
        # HiGHS's lean root on small pools (SolveOptions.highs_lean_root; pool.md, "Solver
        # settings"): same plans in less time; on large ones (hundreds of servers) restarts pay
        # a mixed pool's MILP on the lean root starts from the best uniform plan (pool.md,
        # "Starting solution"; with HiGHS's restarts a start is not safe)
        lean = self._lean_root(srv)
        start = lean and current is None and any(c != pool and v > 0 for c, v in loads.items()) \
            and self.solve_options.highs_lean_root is not False
        x, report = self._solve_cached(cm, loads, srv, rows, gap=self.options.pool_mip_rel_gap,
                                       lean_root=lean, start=start)
        if report.status is Status.INFEASIBLE:
            self._diagnosis.raise_infeasible_pool(pool, loads, srv, report)
        self._diagnosis.explain_failure(loads, report)
        check_solution(x, report, f"pool {pool}")
        plans = cm.read(self, x, epoch_s, {pool: report})
        if plans:
            if current is None:
                return self._mixed_pool_report(pool, loads, plans[0])
            return plans[0]
        return PoolPlan(pool=pool, servers={}, groups=(), served_rps={}, idle_gpus={}, idle_power_w=0.0,
                        power_w=0.0, energy_j=0.0, report=report)

    def _lean_root(self, servers: Mapping[str, int]) -> bool:
        """Whether a pool MILP on ``servers`` runs with HiGHS's lean root (pool.md, "Solver settings")."""
        return sum(int(n) * self.hardware[h].gpus_per_server for h, n in servers.items()) <= LEAN_ROOT_MAX_GPUS

    def _bound_mixed_pool(self, pool: str, loads: Mapping[str, float], servers: Mapping[str, int],
                          pp: PoolPlan) -> PoolPlan:
        """A mixed pool's report with the lower bound of pool.md DP6 (``plan_pool`` only: inside
        a hierarchical plan the plan's own bound is the global one): the pool DP over the lower
        envelope of the loaded classes' curves of every SLO-feasible configuration (unpruned),
        for the demand in pool-class equivalents. Left as it is where the DP does not apply
        (several hardware types, best effort, beyond DP5's sizes)."""
        t0 = time.perf_counter()
        value = self._dp6_value(pool, loads, servers)
        r = pp.report
        if value is None or value > r.objective * (1 + 1e-9):  # above a plan: not a bound, none claimed
            return pp
        bound = min(value * (1 - 1e-12), r.objective)
        gap = relative_gap(r.objective, bound)
        tol = self.options.pool_mip_rel_gap if self.options.pool_mip_rel_gap is not None else self.solve_options.mip_rel_gap
        report = r.model_copy(update={
            "bound": bound, "gap": gap, "status": Status.OPTIMAL if gap <= tol + 1e-12 else Status.FEASIBLE,
            "solve_time_s": r.solve_time_s + time.perf_counter() - t0,
            "message": r.message.replace("no proven bound on the profile's problem",
                                         "bound: the pool DP on the classes' lower envelope")})
        return pp.model_copy(update={"report": report})

    def _dp6_value(self, pool: str, loads: Mapping[str, float], servers: Mapping[str, int]) -> float | None:
        """The DP's optimum of pool.md DP6's single-class problem for ``pool`` serving ``loads`` on
        exactly ``servers`` (W, before any rounding allowance); None where DP6 does not apply
        (several hardware types, best effort, beyond DP5's sizes, a class no configuration serves)
        or finds no mix. The DPs are built once per (pool, hardware, loaded classes)."""
        used = [h for h, n in servers.items() if n > 0]
        if len(used) != 1 or self._penalty is not None:
            return None
        h, n_srv = used[0], int(servers[used[0]])
        hw = self.hardware[h]
        if hw.gpus_per_server * n_srv > pool_dp.MAX_GPUS:
            return None
        classes = tuple(sorted(c for c, v in loads.items() if v > 0))
        key = (pool, h, classes)
        cached = self._mix_dps.get(key)
        if cached is None:
            cached = self._mix_dps[key] = pool_dp.mix_bound_dp(self.profile, self.max_load, pool, classes, h, hw)
        dp, ratio = cached
        if dp is None:
            return None
        # the value only (DP4 as a batch query of one: no instances read back)
        value = dp.values(np.array([sum(ratio[c] * loads[c] for c in classes)]), np.array([dp.units_of(n_srv)]))[0]
        return float(value + hw.idle_power_w * hw.gpus_per_server * n_srv) if np.isfinite(value) else None

    def _pool_lower_bound(self, pool: str, loads: Mapping[str, float], servers: Mapping[str, int]) -> float:
        """A lower bound (W) on every plan of ``pool`` serving ``loads`` on exactly ``servers``:
        pool.md DP6 (valid for single-class and mixed pools alike; cluster.md, polish.bound);
        ``-inf`` where :meth:`_dp6_value` has none: then nothing is claimed."""
        value = self._dp6_value(pool, loads, servers)
        return -np.inf if value is None else value * (1 - 1e-9)  # less a relative 1e-9 for the DP's rounding

    def _plan_pool_dp(self, cm: "_CachedModel", pool: str, loads: Mapping[str, float], srv: Mapping[str, int],
                      epoch_s: float) -> PoolPlan | None:
        """The pool's exact optimum by the dynamic programme (formulations/pool.md, DP1-DP5) when it
        applies: ``PlannerOptions.pool_dp``, the HiGHS backend, exact pieces, no best effort, the
        pool's own class only, servers of one hardware type, sizes within DP5. None otherwise (and
        when no mix carries the load: the MILP then says why)."""
        o = self.options
        if (not o.pool_dp or self.backend is not Backend.HIGHS or self._penalty is not None
                or o.load_segments is not None or any(c != pool for c in loads)):
            return None
        used = [h for h, n in srv.items() if n > 0]
        if len(used) != 1:
            return None
        h = used[0]
        t0 = time.perf_counter()
        dp, piece_k, cfg, _ = self._pool_dp(cm, pool, h)
        sol = dp.solve(loads.get(pool, 0.0), srv[h])
        if sol is None:
            return None
        pp = decode.dp_pool_plan(sol, piece_k, cfg, self.profile, pool, h, self.hardware[h], srv[h],
                                 loads.get(pool, 0.0), epoch_s)
        power = pp.power_w
        # the DP's value is the optimum (pool.md DP4), computed in floating point; the plan's power
        # is the profile's at the instances' loads: the same number up to rounding
        bound = min(sol.value_w, power)
        gap = relative_gap(power, bound)
        tol = max(o.pool_mip_rel_gap if o.pool_mip_rel_gap is not None else self.solve_options.mip_rel_gap, 1e-9)
        report = SolveReport(status=Status.OPTIMAL if gap <= tol else Status.FEASIBLE, backend=None,
                             objective=power, bound=bound, gap=gap, solve_time_s=time.perf_counter() - t0,
                             stop_reason=StopReason.CONVERGED,
                             message="exact pool dynamic programme (formulations/pool.md, DP1-DP5)")
        return pp.model_copy(update={"report": report})

    def _pool_dp(self, cm: "_CachedModel", pool: str, h: str) -> tuple[PoolDP, np.ndarray, dict, np.ndarray]:
        """The exact pool DP of (``pool``, hardware ``h``) on the pool model ``cm``'s pieces
        (pool.md DP3; built once, its fronts extended as larger pools ask), each DP piece's
        configuration, the configurations' columns the plan is read with, and each DP piece's
        row in ``cm.net.pieces`` (its model columns)."""
        cached = self._pool_dps.get((pool, h))
        if cached is None:
            net = cm.net
            mask = ((net.pieces["pool"] == pool) & (net.pieces["hardware"] == h)).to_numpy()
            pc = net.pieces[mask]
            lmax = net.configs["own_max_load_rps"].to_numpy(dtype=float)[pc["k"].to_numpy()]
            dp = PoolDP(pc["tp"].to_numpy(), pc["u_lo"].to_numpy() * lmax, pc["u_hi"].to_numpy() * lmax,
                        pc["static_w"].to_numpy(), pc["w_per_util"].to_numpy() / lmax,
                        self.hardware[h].gpus_per_server, self.hardware[h].idle_power_w)
            cached = self._pool_dps[(pool, h)] = (dp, pc["k"].to_numpy(), decode.dp_configs(net.configs),
                                                  np.flatnonzero(mask))
        return cached

    def _spill_dp(self, cm: "_CachedModel", pool: str, c: str, h: str, shift: float = 0.0):
        """The pool DP of ``pool``'s configurations on hardware ``h`` serving class ``c`` alone,
        as the pool model prices a spilled class (pool.md, "Large pools", BR3): each piece of a
        configuration with an arc for ``c`` becomes a piece in ``c``'s load, ``[lo, hi] lmax_{k,c}``
        with the line ``A + (B + D_{k,c}) l / lmax_{k,c}``, and one starting above zero also
        the piece below its floor, ``[0, lo lmax_{k,c}]`` at ``A + B lo + D_{k,c} l / lmax_{k,c}``
        (the model charges the floor's utilisation there). ``shift``: a cost per req/s taken off
        every piece (the solved model's load-cost shift, ``network.load_cost_shift``; the
        two-class search prices as the solved model does). Returns (DP, each DP piece's model
        piece row, its arc); the DP is None when no configuration serves ``c``. Built once."""
        key = ("spill", pool, c, h, float(shift))
        got = self._pool_dps.get(key)
        if got is None:
            na, pc = cm.na, cm.net.pieces
            arc_at = np.full(int(na.pc_k.max()) + 1, -1, dtype=np.int64)
            mine = np.flatnonzero(na.arc_class == c)
            arc_at[na.arc_k[mine]] = mine
            rows = np.flatnonzero((na.pc_hw == h) & (arc_at[na.pc_k] >= 0))
            arcs = arc_at[na.pc_k[rows]]
            if rows.size == 0:
                got = (None, rows, arcs)
            else:
                lmax = na.arc_lmax[arcs]
                extra = cm.net.arcs["extra_w_per_util"].to_numpy(dtype=float)[arcs]
                lo = (pc["u_lo"].to_numpy(dtype=float) if "u_lo" in pc else np.zeros(len(pc)))[rows]
                hi = (pc["u_hi"].to_numpy(dtype=float) if "u_hi" in pc else np.ones(len(pc)))[rows]
                a = pc["static_w"].to_numpy(dtype=float)[rows]
                b = pc["w_per_util"].to_numpy(dtype=float)[rows]
                # a piece starting above zero also carries less than its floor, the model
                # charging the floor's utilisation (its utilisation row is an inequality):
                # A + B lo + D l / lmax on [0, lo lmax]
                fl = np.flatnonzero(lo > 0)
                dp = PoolDP(np.r_[na.pc_tp[rows], na.pc_tp[rows][fl]],
                            np.r_[lo * lmax, np.zeros(fl.size)], np.r_[hi * lmax, (lo * lmax)[fl]],
                            np.r_[a, (a + b * lo)[fl]], np.r_[(b + extra) / lmax - shift, (extra / lmax - shift)[fl]],
                            self.hardware[h].gpus_per_server, self.hardware[h].idle_power_w)
                got = (dp, np.r_[rows, rows[fl]], np.r_[arcs, arcs[fl]])
            self._pool_dps[key] = got
        return got

    def _plan_pool_search(self, cm: "_CachedModel", pool: str, loads: Mapping[str, float],
                          srv: Mapping[str, int], epoch_s: float) -> PoolPlan | None:
        """A pool serving its own class and one spilled class (or the spilled class alone) by the
        two-class search (formulations/pool.md, "Two-class pools"; :mod:`dynaplan.formulations.pool_mix`)
        where :meth:`_search_solution` applies; its report: status ``feasible``, no bound
        (:meth:`_mixed_pool_report`). None otherwise: the MILP then solves the pool (and says
        why when nothing can)."""
        t0 = time.perf_counter()
        got = self._search_solution(cm, pool, loads, srv)
        if got is None:
            return None
        x, found = got
        report = SolveReport(status=Status.FEASIBLE, backend=None, objective=found.value_w, bound=None, gap=None,
                             solve_time_s=time.perf_counter() - t0, stop_reason=StopReason.CONVERGED,
                             message=f"two-class pool search (formulations/pool.md, 'Two-class pools'; {found.family})")
        plans = cm.read(self, x, epoch_s, {pool: report})
        return self._mixed_pool_report(pool, loads, plans[0]) if plans else None

    def _search_solution(self, cm: "_CachedModel", pool: str, loads: Mapping[str, float],
                         srv: Mapping[str, int]) -> tuple[np.ndarray, "pool_mix.MixPlan"] | None:
        """The two-class search's plan as a solution ``x`` of the pool model ``cm`` for ``loads``
        on ``srv``, with the search's answer; None where it does not apply (not the HiGHS
        backend, ``PlannerOptions.pool_dp`` off, chords, best effort, not exactly one spilled
        class with load, several hardware types, beyond DP5's GPUs) or finds nothing. ``x`` is
        checked against the model's rows, bounds and integrality and its price against the
        search's (:func:`dynaplan.solvers.verify.solution_problem`); a mismatch (never seen)
        gives None too, so the MILP decides. Raises :class:`InfeasibleError` for loads beyond the
        pool's capacity even split fractionally: ``L_p / P + L_s / S`` GPUs, with ``P`` and ``S``
        the most req/s of each class one GPU of any configuration carries, more than the pool has
        (every plan needs at least that many; pool.md TC5)."""
        o = self.options
        if (self.backend is not Backend.HIGHS or not o.pool_dp or self._penalty is not None
                or o.load_segments is not None):
            return None
        spilled = [c for c, v in loads.items() if c != pool and v > 0]
        used = [h for h, n in srv.items() if n > 0]
        if len(spilled) != 1 or len(used) != 1:
            return None
        s, h = spilled[0], used[0]
        hw = self.hardware[h]
        gpus = hw.gpus_per_server * int(srv[h])
        if gpus > pool_dp.MAX_GPUS:
            return None
        # priced as the solved model is: load costs less each class's shift kappa, and kappa L back
        # (network.load_cost_shift), so that a plan carrying more than the demand is priced right
        kappa = dict(zip(cm.model.con_blocks["demand"].labels, cm.load_shift))
        if kappa.get(pool, 0.0) != 0.0:
            return None
        dpp, _, _, rows_p = self._pool_dp(cm, pool, h)
        dps, rows_s, arcs_s = self._spill_dp(cm, pool, s, h, shift=kappa[s])
        if dps is None:
            return None
        # a request beyond the pool's capacity even split fractionally (pool.md TC5) has no plan
        per_gpu_p, per_gpu_s = dpp.most_per_gpu, dps.most_per_gpu
        need = (loads.get(pool, 0.0) / per_gpu_p if per_gpu_p > 0 else (np.inf if loads.get(pool, 0.0) > 0 else 0.0)) \
            + loads[s] / per_gpu_s
        if need > gpus * (1 + 1e-9):
            raise InfeasibleError(f"pool {pool}: loads {dict(loads)} req/s do not fit on its servers {dict(srv)} "
                                  f"({gpus} GPUs) at the SLO [capacity: at most {per_gpu_p:.4g} req/s of {pool} "
                                  f"or {per_gpu_s:.4g} of {s} per GPU, so {need:.4g} GPUs are needed]")
        mc, arc_p_of_row, arc_s_of_row = self._mixed_configs(cm, pool, s, h, shift=kappa[s])
        found = pool_mix.search(dpp, dps, mc, loads.get(pool, 0.0), loads[s], gpus, hw.idle_power_w,
                                shift_s=kappa[s], memo=self.residual_memo)
        if found is None:
            return None
        na = cm.na
        problem = self._problem(cm, loads, srv)
        lo_u = cm.piece_lo()
        rows = [rows_p[found.p_pieces], rows_s[found.s_pieces]]
        arcs = [arc_p_of_row[rows_p[found.p_pieces]], arcs_s[found.s_pieces]]
        zl = [found.p_loads, found.s_loads]
        # a pure instance runs at its load's utilisation; one of s below its piece's floor at the floor
        util = [found.p_loads / na.arc_lmax[arcs[0]],
                np.maximum(found.s_loads / na.arc_lmax[arcs[1]], lo_u[rows[1]])]
        if found.mixed:
            m_rows = mc.piece_row[[m.piece for m in found.mixed]]
            rows.append(m_rows)
            util.append(np.array([m.util for m in found.mixed]))
            arcs += [arc_p_of_row[m_rows], arc_s_of_row[m_rows]]
            zl += [np.array([m.load_p for m in found.mixed]), np.array([m.load_s for m in found.mixed])]
        x = nw.instances_solution(na, problem, np.concatenate(rows), np.concatenate(util), np.concatenate(arcs),
                                  np.concatenate(zl))
        priced = SolveReport(status=Status.FEASIBLE, backend=None, objective=found.value_w, bound=None, gap=None,
                             solve_time_s=0.0)
        if cm.linking is None and cm.abs_a is None:  # the matrix is the built one: |A| kept
            cm.abs_a = abs(cm.arrays.A)
        if solution_problem(problem, x, priced, cm.abs_a if cm.linking is None else None) is not None:
            return None
        return x, found

    def _mixed_configs(self, cm: "_CachedModel", pool: str, s: str, h: str, shift: float = 0.0):
        """The configurations of ``pool`` on ``h`` that also serve class ``s``, as the two-class
        search takes them (:class:`~dynaplan.formulations.pool_mix.MixedConfigs`, the surcharges
        less ``shift``, as in :meth:`_spill_dp`; None when there are none), and per model piece
        row the arc of ``pool``'s class and of ``s`` on its configuration (-1 where it has none).
        Built once."""
        key = ("mix", pool, s, h, float(shift))
        got = self._pool_dps.get(key)
        if got is None:
            na, pc = cm.na, cm.net.pieces
            n_cfg = int(na.pc_k.max()) + 1
            arc_p, arc_s = np.full(n_cfg, -1, dtype=np.int64), np.full(n_cfg, -1, dtype=np.int64)
            for i, (k, c) in enumerate(zip(na.arc_k, na.arc_class)):
                if c == pool:
                    arc_p[k] = i
                elif c == s:
                    arc_s[k] = i
            _, _, _, rows_p = self._pool_dp(cm, pool, h)
            rows = rows_p[arc_s[na.pc_k[rows_p]] >= 0]
            mc = None
            if rows.size:
                k = na.pc_k[rows]
                tp = na.pc_tp[rows]
                a = pc["static_w"].to_numpy(dtype=float)[rows] - self.hardware[h].idle_power_w * tp
                extra = cm.net.arcs["extra_w_per_util"].to_numpy(dtype=float)
                ls = na.arc_lmax[arc_s[k]]
                mc = pool_mix.MixedConfigs.build(k, rows, tp, cm.piece_lo()[rows], cm.piece_hi()[rows], a,
                                                 pc["w_per_util"].to_numpy(dtype=float)[rows],
                                                 na.arc_lmax[arc_p[k]], ls, extra[arc_s[k]] / ls - shift)
            got = self._pool_dps[key] = (mc, arc_p[na.pc_k], arc_s[na.pc_k])
        return got

    def _mixed_pool_report(self, pool: str, loads: Mapping[str, float], pp: PoolPlan) -> PoolPlan:
        """A pool serving a spilled class: the MILP prices the spill surcharge at full utilisation
        and its pruning is proven for the pool's own class only (pool.md, "Spilled classes", "Mixed
        pools: what the report claims"), so neither its objective nor its bound is the profile's.
        The report then has ``objective`` = the plan's true power (plus the unserved penalty in
        best effort), no bound and no gap (unknown; :meth:`plan_pool` adds pool.md DP6's), and
        status ``feasible``. Single-class pools are returned as they are."""
        if not any(c != pool and v > 0 for c, v in loads.items()):
            return pp
        r = pp.report
        unserved = sum(max(0.0, v - pp.served_rps.get(c, 0.0)) for c, v in loads.items())
        objective = pp.power_w + (self._penalty or 0.0) * (unserved if unserved > 1e-6 else 0.0)
        update = {"objective": objective, "bound": None, "gap": None,
                  "message": (r.message + "; " if r.message else "") + "mixed pool: objective is the plan's "
                             "power; no proven bound on the profile's problem (formulations/pool.md)"}
        if r.status is Status.OPTIMAL:
            update["status"] = Status.FEASIBLE
        return pp.model_copy(update={"report": r.model_copy(update=update)})

    # ------------------------------------------------------------------ cluster / hierarchy
    @checked
    def allot(self, forecast: Mapping[str, float] | pd.Series, state: PlanningState | None = None) -> Allotment:
        """Cluster level: servers per pool and hardware, and where each class's load goes.

        Solved for the forecast peak of the cluster epoch; :meth:`plan` then re-plans the pools
        inside this allotment as often as the pool epoch asks. With ``state`` (a cluster state:
        servers and instances now) servers beyond those running now pay their start cost
        (cluster.md, new_servers).
        """
        if state is not None:
            check_state(state)
        return self._allot(check_demand(forecast, self.classes), state)

    def _allot(self, cf: CheckedForecast, state: PlanningState | None, caps: Mapping[str, int] | None = None,
               fallback: bool = True, dense: bool | None = None) -> Allotment | None:
        """:meth:`allot` for a checked forecast and state; ``caps``: servers per hardware type the
        cluster level may use (default: the inventory); without ``fallback`` an allotment the
        whole-server recipes cannot make is ``None`` instead of the monolithic fallback's.
        ``dense``: False uses the least-energy recipes only, True both recipes (cluster.recipe),
        None (default) the least-energy ones and both when those alone are infeasible."""
        f, demand, notes = dict(cf.forecast_rps), cf.demand_rps, list(cf.notes)
        if not demand:
            report = _combine([], self.backend)
            return Allotment(servers={}, routing={}, forecast_rps=f, report=report)
        gap = self.options.cluster_mip_rel_gap
        if state is None:
            cm = self._model(ModelKind.CLUSTER)
            rows = None
            if caps is not None:
                labels = cm.model.con_blocks["inventory"].labels
                rows = {"inventory": (None, np.array([float(caps.get(h, 0)) for h in labels]))}
        else:
            cm = self._model(ModelKind.CLUSTER_TRANSITIONS)
            running = _running_servers(state)
            now = np.array([float(running.get(h, 0)) for h in cm.model.con_blocks["new_servers"].labels])
            rows = {"new_servers": (None, now)}
        for both in ((False, True) if dense is None else (dense,)):
            cols = None if both else {"s": (None, self._energy_recipe_ub(cm))}
            # lean root: cluster.md, "Cost"
            x, report = self._solve_cached(cm, demand, rows=rows, gap=gap, cols=cols, lean_root=True)
            if report.status is not Status.INFEASIBLE:
                break
        if report.status is Status.INFEASIBLE:
            if not fallback:
                return None
            # whole-server recipes are coarser than the pools; fall back to the joint allotment,
            # solved to FALLBACK_GAP within FALLBACK_NODES branch-and-bound nodes (a limit that
            # stops at the same point on every machine; the pool level re-plans inside it and the
            # plan's gap is judged against the global bound anyway)
            mono = self._fallback_allotment(cf)
            notes.append("cluster level (whole-server recipes) infeasible; allotment taken from the monolithic MILP")
            servers = {p.pool: dict(p.servers) for p in mono.pools}
            routed = {p.pool: dict(p.served_rps) for p in mono.pools}
            report = mono.report
        else:
            self._diagnosis.explain_failure(demand, report)
            check_solution(x, report, "cluster level")
            servers, routed = cm.read(self, x, self.options.cluster_epoch_s, {})
        routing: dict[str, dict[str, float]] = {}
        for p, loads in routed.items():
            for c, v in loads.items():
                routing.setdefault(c, {})[p] = v / demand[c]
        for c, shares in routing.items():  # served shares; any unserved remainder stays unrouted
            total = sum(shares.values())
            if total > 1:
                routing[c] = {p: v / total for p, v in shares.items()}
        return Allotment(servers=servers, routing=routing, forecast_rps=f, report=report, notes=tuple(notes))

    def _fallback_allotment(self, cf: CheckedForecast) -> Plan:
        """The monolithic plan solved to ``FALLBACK_GAP`` within ``FALLBACK_NODES`` nodes (and the
        caller's own time limit); the full monolithic solve when that finds no plan. Deterministic:
        the plan returned depends on the machine's speed only when the caller's time limit stops a
        solve first."""
        saved = self.solve_options
        self.solve_options = saved.model_copy(update={"mip_rel_gap": max(saved.mip_rel_gap, FALLBACK_GAP),
                                                      "mip_max_nodes": FALLBACK_NODES})
        try:
            return self._plan_monolithic(cf, time.perf_counter())
        except NoSolutionError:
            pass
        finally:
            self.solve_options = saved
        return self._plan_monolithic(cf, time.perf_counter())

    def _energy_recipe_ub(self, cm: "_CachedModel") -> np.ndarray:
        """Upper bounds of the cluster model's recipe servers ``s`` that switch off every recipe but
        the least-energy one of each (pool, hardware) (cluster.recipe)."""
        if getattr(cm, "energy_ub", None) is None:
            keep = cluster_f.recipes(self.ops, self.classes)
            keys = set(keep[nw.CFG_COLS].itertuples(index=False, name=None))
            sb = cm.model.var_blocks["s"]
            cm.energy_ub = np.array([0.0 if (p, h, int(tp), int(f)) not in keys else np.inf
                                     for p, h, tp, f, _ in sb.labels])
        return cm.energy_ub

    def _top_caps(self, demand: Mapping[str, float]) -> dict[str, int]:
        """The first rung of the inventory ladder (cluster.md, "Inventory ladder"): per hardware
        type, servers enough to serve every class with its least capacity per server, from the
        forecast and the profile alone (never from the inventory)."""
        if self._per_server is None:  # q_c: from the profile alone, once per planner
            ml = self.max_load[self.max_load["max_load_rps"] > 0]
            gps = ml["hardware"].map({h: hw.gpus_per_server for h, hw in self.hardware.items()})
            per_server = (gps // ml["tp"] * ml["max_load_rps"]).dropna().groupby(ml["request_class"]).min()
            self._per_server = {c: float(q) for c, q in per_server.items() if q > 0}
        per_server = self._per_server
        need = sum(int(np.ceil(v / per_server[c])) + 1 for c, v in demand.items() if c in per_server)
        return {h: max(1, need) for h in self.hardware}

    def _hierarchy(self, cf: CheckedForecast, allotment: Allotment, current, plan_pool: "_PoolRequests",
                   polishing: bool, caps: Mapping[str, int] | None = None, late: _Late = None
                   ) -> tuple[list[PoolPlan], dict[str, float], list[str]]:
        """The pool level inside ``allotment`` (each class's load split in its proportions),
        then polishing when asked (pools may grow within ``caps``; ``late()``: the time budget is
        spent); returns the pools, the unserved load and the notes."""
        demand = cf.demand_rps
        routed: dict[str, dict[str, float]] = {}
        unrouted: dict[str, float] = {}
        for c, v in demand.items():
            shares = allotment.routing.get(c) or ({c: 1.0} if allotment.servers.get(c) else {})
            if not shares:
                unrouted[c] = v
            total = sum(shares.values())
            if self._penalty is not None and 0 < total < 1:
                # best effort: the cluster level's unserved remainder is offered to the pools too
                # (in its routing's proportions); a pool re-planned inside its servers may well
                # serve more than the recipes could
                shares = {p: share / total for p, share in shares.items()}
            for p, share in shares.items():
                routed.setdefault(p, {})[c] = v * share
        if unrouted and self._penalty is None:
            raise InfeasibleError(f"allotment has no pool for class(es) {sorted(unrouted)} "
                                  f"({unrouted} req/s); re-run the cluster level")
        here = [p for p in self.classes if p in routed]
        if current is None:
            pools = plan_pool.many([(p, routed[p], allotment.servers.get(p, {})) for p in here])
        else:
            pools = [self._plan_pool(p, _plannable(routed[p])[0], allotment.servers.get(p, {}), current=current.get(p, {}))
                     for p in here]
        notes = list(allotment.notes)
        if polishing:
            by_pool, _, _, moves = polish({pp.pool: pp for pp in pools}, routed, dict(allotment.servers),
                                          self.routes, plan_pool, self._penalty, caps,
                                          lower_bound=plan_pool.lower_bound,
                                          prefetch=plan_pool.prefetch if self._pool_of_threads() else None,
                                          out_of_time=late)
            pools = [by_pool[p] for p in self.classes if p in by_pool]
            notes += moves
        unserved = {c: max(0.0, v - sum(pp.served_rps.get(c, 0.0) for pp in pools)) for c, v in demand.items()}
        return pools, unserved, notes

    def _cached_pool_planner(self) -> "_PoolRequests":
        """``plan_pool(pool, loads, servers)`` remembering every pool solve of one planning call
        (:class:`_PoolRequests`; cluster.md, routed.reuse)."""
        return _PoolRequests(self)

    def _ladder(self, cf: CheckedForecast, late: _Late = None
                ) -> tuple[list[PoolPlan], dict[str, float], list[str], SolveReport]:
        """The inventory ladder (cluster.md): hierarchical plans at server caps that depend on the
        forecast alone, the best that fits the inventory; the capped hierarchy at the inventory
        itself (with the monolithic fallback) when none fits. ``late()``: the time budget is spent
        (cluster.md, "Time budget"): no further rung starts."""
        demand = cf.demand_rps
        plan_pool = self._cached_pool_planner()
        inv = dict(self.inventory.servers)
        rungs = []  # (value, servers used, pools, unserved, notes, cluster report, rung)
        caps = self._top_caps(demand)
        best = np.inf
        stopped: list[str] = []  # the time budget's note, if it ended the ladder
        for rung in range(LADDER_RUNGS):
            top = rung == 0
            if not top and late is not None and late():
                stopped = [f"time budget: the ladder stopped after {rung} rung(s)"]
                break
            try:
                # the top rung: least-energy recipes only (the dense one's chord prices it below the
                # profile at part load); below it both, since the cap is then a real one
                al = self._allot(cf, None, caps=caps, fallback=False, dense=not top)
                if al is None:
                    break
                # a pool may also grow within the rung's cap
                pools, unserved, notes = self._hierarchy(cf, al, None, plan_pool, True, caps, late)
            except DynaplanError:  # a rung the recipes or the pools cannot make ends the ladder
                break
            if self._penalty is None and any(v > 1e-6 for v in unserved.values()):
                break
            value = sum(pp.power_w for pp in pools) + (self._penalty or 0.0) * sum(unserved.values())
            used: dict[str, int] = {}
            for pp in pools:
                for h, n in pp.servers.items():
                    used[h] = used.get(h, 0) + n
            rungs.append((value, used, pools, unserved, notes, al.report, rung))
            if value > best * (1 + LADDER_TOL):  # one server fewer made it worse: stop
                break
            best = min(best, value)
            if not used or sum(used.values()) > LADDER_MAX_SERVERS:
                break  # a server fewer is a vanishing share of a large plan: one rung
            # next rung: one server fewer than this rung's plan holds, on its most used hardware type
            h = max(sorted(used), key=lambda k: used[k])
            caps = {k: used.get(k, 0) for k in self.hardware}
            caps[h] -= 1
            if sum(caps.values()) == 0:
                break
        fits = [r for r in rungs if all(n <= inv.get(h, 0) for h, n in r[1].items())]
        if fits:
            value, used, pools, unserved, notes, report, step = min(fits, key=lambda r: (r[0], r[6]))
            notes = notes + [f"inventory ladder: rung {step + 1} of {len(rungs)} "
                             f"({sum(used.values())} servers; plans at caps set by the forecast alone)"]
            return pools, unserved, notes + stopped, report
        pools, unserved, notes, report = self._single(cf, plan_pool, late)
        notes.append(f"inventory ladder: no rung of {len(rungs)} fits the inventory; capped at it")
        return pools, unserved, notes + stopped, report

    def _single(self, cf: CheckedForecast, plan_pool: "_PoolRequests | None" = None, late: _Late = None
                ) -> tuple[list[PoolPlan], dict[str, float], list[str], SolveReport]:
        """One allotment on the inventory (with the monolithic fallback), the pool level inside it,
        then polishing within the inventory (while ``late()`` is False)."""
        al = self._allot(cf, None)
        pools, unserved, notes = self._hierarchy(cf, al, None, plan_pool or self._cached_pool_planner(), True,
                                                 dict(self.inventory.servers), late)
        return pools, unserved, notes, al.report

    @checked
    def plan(self, forecast: Mapping[str, float] | pd.Series, state: PlanningState | None = None,
             allotment: Allotment | None = None) -> Plan:
        """Hierarchical plan: the cluster level (unless an ``allotment`` is given), then every
        pool's MILP inside its servers.

        With ``allotment`` (from :meth:`allot` at the start of the cluster epoch) only the pool
        level runs: each class's forecast is split over pools in the allotment's proportions.
        With ``state`` (a :class:`dynaplan.reconfig.ClusterState`, or anything with
        ``config_counts()`` and ``servers``/``instances``) every level pays the amortised cost of
        changing the cluster as it is: new servers at the cluster level; added, removed,
        re-sharded and re-clocked instances at the pool level (formulations/pool.md 6-10).
        Otherwise the cluster level runs as an inventory ladder and the pools are polished
        (formulations/cluster.md): a larger inventory never gives a worse plan while the
        inventory holds one of the ladder's plans.
        """
        t0 = time.perf_counter()
        if state is not None:
            check_state(state)
        self.residual_memo = {}
        cf = check_demand(forecast, self.classes)
        f, demand = dict(cf.forecast_rps), cf.demand_rps
        if not demand:
            return self._assemble("hierarchical", f, [], {}, None, [], t0)
        given = allotment is not None
        if not given and state is None:
            threads = self._pool_of_threads()
            # the global bound depends on the forecast alone: with worker threads it is solved
            # while the cluster and pool levels run (cluster.md, "Threads")
            bound = threads.submit(self._global_bound, _plannable(f)[0]) if threads is not None else None
            budget = self.options.time_budget_s
            late = None if budget is None else (lambda: time.perf_counter() - t0 >= budget)
            try:
                if self.options.cluster_search == "ladder":
                    pools, unserved, notes, creport = self._ladder(cf, late)
                else:
                    pools, unserved, notes, creport = self._single(cf, late=late)
            finally:
                if bound is not None:  # never left running: the next call's bound uses the same solver
                    wait([bound])
            return self._assemble("hierarchical", f, pools, unserved, creport, [pp.report for pp in pools],
                                  t0, notes, bound=bound.result() if bound is not None else _UNSET)
        if allotment is None:
            allotment = self._allot(cf, state)
        current = _current_by_pool(state) if state is not None else None
        pools, unserved, notes = self._hierarchy(cf, allotment, current, self._cached_pool_planner(), False)
        notes += ["pool level only: allotment given by the caller"] if given else []
        return self._assemble("hierarchical", f, pools, unserved, None if given else allotment.report,
                              [pp.report for pp in pools], t0, notes)

    @checked
    def plan_monolithic(self, forecast: Mapping[str, float] | pd.Series) -> Plan:
        """All pools, the inventory and spill in one MILP (the reference the hierarchy is measured against)."""
        return self._plan_monolithic(check_demand(forecast, self.classes), time.perf_counter())

    def _plan_monolithic(self, cf: CheckedForecast, t0: float) -> Plan:
        """:meth:`plan_monolithic` for a checked forecast; ``t0``: when the call started."""
        f, demand, floor_notes = dict(cf.forecast_rps), cf.demand_rps, list(cf.notes)
        if not demand:
            return self._assemble("monolithic", f, [], {}, None, [], t0)
        cm = self._model(ModelKind.MONOLITHIC)
        x, report = self._solve_cached(cm, demand, heuristics=True)
        if report.status is Status.INFEASIBLE:
            self._diagnosis.raise_infeasible(demand, report)
        self._diagnosis.explain_failure(demand, report)
        check_solution(x, report, "monolithic")
        pools = cm.read(self, x, self.options.pool_epoch_s, {})
        unserved = unserved_rps(cm.na, x)
        return self._assemble("monolithic", f, pools, unserved, None, [report], t0, floor_notes)

    def _assemble(self, mode, f, pools, unserved, creport, reports, t0, notes=(), bound=_UNSET) -> Plan:
        """The plan of ``pools``; ``bound``: the global bound when computed already (``_UNSET``: compute it here)."""
        servers, gpus, power = plan_totals(pools)
        err = 0.0
        if self._cfg_err is None:  # the pieces' worst error per configuration, once per planner
            by_cfg = self.segments.groupby(["hardware", "tp", "freq_mhz", "request_class"])["segment_error_w"].max()
            self._cfg_err = {(h, int(tp), int(f), c): float(e) for (h, tp, f, c), e in by_cfg.items()}
        for pp in pools:
            for g in pp.groups:
                err += g.count * self._cfg_err.get((g.hardware, int(g.tp), int(g.freq_mhz), pp.pool), 0.0)
        epoch = self.options.pool_epoch_s
        all_reports = [r for r in ([creport] if creport else []) + list(reports) if r is not None]
        unserved = {c: v for c, v in unserved.items() if v > 1e-6}
        # the objective is the plan's true power (the profile's, idle GPUs included, plus the
        # unserved penalty in best effort); the bound is the global one (planning/bounds.py)
        objective = power + (self._penalty or 0.0) * sum(unserved.values())
        if not pools:
            bound = None
        elif bound is _UNSET:
            bound = self._global_bound(_plannable(f)[0])  # f is checked already
        report = _combine(all_reports, self.backend, objective=objective, bound=bound,
                          tolerance=self.solve_options.mip_rel_gap)
        if unserved and self._penalty is None:
            raise InfeasibleError(f"plan leaves load unserved: {unserved}")
        return Plan(mode=mode, epoch_s=epoch, forecast_rps=f, pools=tuple(pools), unserved_rps=unserved,
                    power_w=power, energy_j=power * epoch, servers=servers, gpus=gpus,
                    approx_error_bound_w=err, cluster_report=creport, report=report,
                    wall_time_s=time.perf_counter() - t0, notes=tuple(notes))

    def global_bound(self, forecast: Mapping[str, float]) -> float | None:
        """A lower bound (W, plus the unserved penalty in best effort) on every plan of
        ``forecast`` on this inventory, from the profile alone (:mod:`dynaplan.planning.bounds`,
        formulations/bound.md); built once per planner, one small solve per call."""
        return self._global_bound(check_demand(forecast, self.classes).demand_rps)

    def _global_bound(self, demand: Mapping[str, float]) -> float | None:
        """:meth:`global_bound` of plannable loads (checked already)."""
        if self._bound is None:
            self._bound = GlobalBound(self.profile, self.max_load, self.hardware, dict(self.inventory.servers),
                                      self.classes, self.routes, self._penalty)
        b, seconds = self._bound.bound(demand, self.solve_options)
        self.bound_time_s = seconds
        return b

    # ------------------------------------------------------------------ instance level
    def clocks(self, loads: pd.DataFrame) -> pd.DataFrame:
        """Instance level: the clock of every instance from its observed per-class load (vectorised)."""
        if self._clock_chooser is None:
            self._clock_chooser = instance_f.ClockChooser(self.profile, self.max_load)
        try:
            return self._clock_chooser.choose(loads)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    @staticmethod
    def instances_of(plan: Plan) -> pd.DataFrame:
        """The plan's instances as the long frame :meth:`clocks` takes (one row per instance and class).

        Built per instance group (``numpy.repeat`` of each group's rows ``count`` times, no loop
        over instances); a frame beyond :data:`dynaplan.limits.MAX_FRAME_ROWS` is refused first.
        """
        groups = [(pp.pool, g, g.load_rps_per_instance or {pp.pool: 0.0}) for pp in plan.pools for g in pp.groups]
        FRAME_ROWS.check(sum(g.count * len(loads) for _, g, loads in groups), "Planner.instances_of",
                         "the plan's instances make")
        counts = np.array([g.count for _, g, _ in groups], dtype=np.int64)
        k = np.array([len(loads) for *_, loads in groups], dtype=np.int64)
        first = np.cumsum(counts) - counts  # first instance id of every group
        reps = counts * k  # rows of every group
        # row r of group j: instance first_j + (r // k_j), class r % k_j (instance-major, as the loads dict)
        within = np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
        inst = np.repeat(first, reps) + within // np.repeat(k, reps)
        cls = np.array([c for *_, loads in groups for c in loads], dtype=object)
        load = np.array([v for *_, loads in groups for v in loads.values()], dtype=float)
        pair = np.repeat(np.cumsum(k) - k, reps) + within % np.repeat(k, reps)  # index into cls/load
        return pd.DataFrame({
            "instance": inst,
            "pool": np.repeat(np.array([p for p, _, _ in groups], dtype=object), reps),
            "hardware": np.repeat(np.array([g.hardware for _, g, _ in groups], dtype=object), reps),
            "tp": np.repeat(np.array([g.tp for _, g, _ in groups], dtype=np.int64), reps),
            "request_class": cls[pair],
            "load_rps": load[pair],
        })


def _current_by_pool(state) -> dict[str, dict[tuple[str, int, int], int]]:
    """A state's instances by pool, then (hardware, tp, freq_mhz)."""
    if not hasattr(state, "config_counts"):
        raise ValidationError(f"state: expected a ClusterState, got {type(state).__name__}")
    out: dict[str, dict[tuple[str, int, int], int]] = {}
    for (pool, hw, tp, f), n in state.config_counts().items():
        out.setdefault(pool, {})[(hw, int(tp), int(f))] = out.get(pool, {}).get((hw, int(tp), int(f)), 0) + int(n)
    return out


def _running_servers(state) -> dict[str, int]:
    """Servers of a state that hold at least one instance, by hardware type."""
    hw_of = {sv.id: sv.hardware for sv in state.servers}
    busy = {i.server for i in state.instances}
    out: dict[str, int] = {}
    for sid in busy:
        out[hw_of[sid]] = out.get(hw_of[sid], 0) + 1
    return out


class _PoolRequests:
    """The pool level of one planning call: ``requests(pool, loads, servers)`` plans a pool,
    remembering every solve (the ladder's rungs and polishing re-plan the same pools often); an
    error is remembered and raised again. A request whose loads are each within
    ``LOAD_EPS_RPS`` (absolute) of a remembered one's, same pool, classes and servers, gets that
    plan (cluster.md, routed.reuse): the cluster MILP's routed loads carry the solver's rounding,
    which differs from rung to rung, and a difference below ``LOAD_EPS_RPS`` is one the solvers
    cannot see. :meth:`lower_bound` remembers polishing's pool bounds alike (exact keys)."""

    def __init__(self, planner: Planner) -> None:
        self._planner = planner
        self._memo: dict[tuple, PoolPlan | Exception] = {}
        self._near: dict[tuple, list[tuple[np.ndarray, PoolPlan | Exception]]] = {}
        self._bounds: dict[tuple, float] = {}

    _key = staticmethod(request_key)

    def __call__(self, p: str, loads: Mapping[str, float], srv: Mapping[str, int]) -> PoolPlan:
        key = self._key(p, loads, srv)
        if key not in self._memo:
            plannable = _plannable(loads)[0]
            classes = tuple(sorted(plannable))
            group = self._near.setdefault((p, classes, key[2]), [])
            want = np.array([plannable[c] for c in classes])
            got = next((pp for seen, pp in group if np.all(np.abs(seen - want) <= LOAD_EPS_RPS)), None)
            if got is None:
                try:
                    o = self._planner.options
                    got = self._planner._plan_pool(p, plannable, srv, bulk=o.large_pool != "exact",
                                                   search=o.mixed_pool != "exact")
                except DynaplanError as exc:
                    got = exc
                group.append((want, got))
            self._memo[key] = got
        got = self._memo[key]
        if isinstance(got, Exception):
            raise got
        return got

    def many(self, requests: list[tuple[str, Mapping[str, float], Mapping[str, int]]]) -> list[PoolPlan]:
        """Every request's plan, in order (the first error raised), side by side where
        :meth:`side_by_side` allows."""
        out = self._side_by_side(requests) if self.parallel(requests) else \
            [self._answer(p, loads, srv) for p, loads, srv in requests]
        for got in out:
            if isinstance(got, Exception):
                raise got
        return out  # type: ignore[return-value]

    def prefetch(self, requests: list[tuple[str, Mapping[str, float], Mapping[str, int]]]) -> bool:
        """Solve ``requests`` ahead (polishing's, :func:`~dynaplan.planning.polish.polish`) when
        they run side by side (:meth:`parallel`; True then); their plans and errors are
        remembered for the calls that follow."""
        if not self.parallel(requests):
            return False
        self._side_by_side(requests)
        return True

    def parallel(self, requests) -> bool:
        """Whether ``requests`` run side by side: worker threads (``PlannerOptions.workers`` > 1),
        the HiGHS backend, and requests of at least two pools (cluster.md, "Threads")."""
        return (self._planner._pool_of_threads() is not None and self._planner.backend is Backend.HIGHS
                and len({p for p, _, _ in requests}) >= 2)

    def _answer(self, p, loads, srv) -> PoolPlan | Exception:
        try:
            return self(p, loads, srv)
        except DynaplanError as exc:
            return exc

    def _side_by_side(self, requests) -> list[PoolPlan | Exception]:
        """Requests of different pools on the planner's worker threads: each pool has its own
        model and solver session, one pool's requests run in order on one thread, and every
        pool's model is built here, in the calling thread, before any solve."""
        threads = self._planner._pool_of_threads()
        by_pool: dict[str, list[int]] = {}
        for i, (p, _, _) in enumerate(requests):
            by_pool.setdefault(p, []).append(i)
        for p in sorted(by_pool):
            self._planner._model(ModelKind.POOL, p)
        out: list[PoolPlan | Exception | None] = [None] * len(requests)

        def run(idx: list[int]) -> None:
            for i in idx:
                out[i] = self._answer(*requests[i])

        for fut in [threads.submit(run, idx) for idx in by_pool.values()]:
            fut.result()
        return out  # type: ignore[return-value]

    def lower_bound(self, p: str, loads: Mapping[str, float], srv: Mapping[str, int]) -> float:
        """:meth:`Planner._pool_lower_bound`, once per request of the planning call."""
        key = self._key(p, loads, srv)
        if key not in self._bounds:
            self._bounds[key] = self._planner._pool_lower_bound(p, loads, srv)
        return self._bounds[key]


class _CachedModel:
    """A built model, its arrays and solution index, and what building it cost."""

    __slots__ = ("model", "arrays", "na", "build_time_s", "formulation", "first_piece", "net", "transitions",
                 "load_shift", "load_shift_built", "session", "energy_ub", "lp_arrays", "lp_session", "linking",
                 "piece_range", "abs_a")

    def __init__(self, model, arrays: ModelArrays, na: nw.NetArrays, build_time_s: float,
                 formulation: Formulation) -> None:
        self.model = model
        self.formulation = formulation
        self.arrays = arrays
        self.na = na
        self.build_time_s = build_time_s
        n_cfg = int(na.pc_k.max()) + 1 if na.pc_k.size else 0
        first = np.zeros(n_cfg, dtype=np.int64)
        first[na.pc_k[::-1]] = np.arange(len(na.pc_k))[::-1]
        self.first_piece = first
        self.net = None
        self.transitions = None
        self.load_shift = np.zeros(0)
        self.load_shift_built = 0.0
        self.session = None  # dynaplan.solvers.open_session, opened on the first solve
        self.energy_ub = None  # cluster models: the bounds that keep only least-energy recipes
        self.lp_arrays = None  # the LP relaxation (pool models: bulk + residual, pool.md "Large pools")
        self.lp_session = None
        self.linking = None  # (positions in A.data, demand row of each, cap): the (linking) entries
        self.piece_range = None  # pool models: each piece's (u_lo, u_hi), for uniform_start
        self.abs_a = None  # |A| of the built matrix, for the two-class search's check (Planner._search_solution)

    def piece_lo(self) -> np.ndarray:
        """Each piece's utilisation range start (pool models; 0 where the model has no ranges)."""
        return self._piece_range()[0]

    def piece_hi(self) -> np.ndarray:
        """Each piece's utilisation range end (pool models; 1 where the model has no ranges)."""
        return self._piece_range()[1]

    def _piece_range(self) -> tuple[np.ndarray, np.ndarray]:
        if self.piece_range is None:
            pc = self.net.pieces
            self.piece_range = (pc["u_lo"].to_numpy(dtype=float) if "u_lo" in pc else np.zeros(len(pc)),
                                pc["u_hi"].to_numpy(dtype=float) if "u_hi" in pc else np.ones(len(pc)))
        return self.piece_range

    def read(self, planner: "Planner", x: np.ndarray, epoch_s: float, reports: Mapping[str, SolveReport | None]):
        """The formulation's typed result of solution ``x`` (:class:`~dynaplan.planning.registry.Formulation`)."""
        return self.formulation.read(planner, self.na, x, epoch_s, reports)


def _combine(reports: list[SolveReport], backend: Backend, objective: float | None = None,
             bound: float | None = None, tolerance: float = 0.0) -> SolveReport:
    """One report for a planning call: summed times; ``objective`` is the plan's true power (plus
    any unserved penalty) and ``bound`` a global lower bound on the profile's problem
    (:mod:`dynaplan.planning.bounds`), so the gap says how far the plan is from the best
    possible one. ``optimal`` only when that gap is within ``tolerance`` and no stage did worse
    than a solution; the stages' own statuses never certify the whole plan."""
    if not reports:
        return SolveReport(status=Status.OPTIMAL, backend=backend, objective=0.0, bound=0.0, gap=0.0,
                           solve_time_s=0.0, message="nothing to plan")
    worst = worst_status(r.status for r in reports)
    obj = None if objective is None else float(objective)
    bnd = None if bound is None or obj is None else float(bound)
    gap = relative_gap(obj, bnd)
    if worst.has_solution:
        worst = Status.OPTIMAL if gap is not None and gap <= tolerance + 1e-12 else Status.FEASIBLE
    # the first backend that ran (a pool solved by the exact DP has none; pool.md DP1-DP5)
    ran = next((r.backend for r in reports if r.backend is not None), backend)
    return SolveReport(status=worst, backend=ran, objective=obj, bound=bnd, gap=gap,
                       solve_time_s=sum(r.solve_time_s for r in reports),
                       build_time_s=sum(r.build_time_s for r in reports),
                       n_vars=sum(r.n_vars for r in reports), n_cons=sum(r.n_cons for r in reports),
                       message=f"{len(reports)} solve(s)")
