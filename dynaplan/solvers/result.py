"""Solver options and the report every solve carries."""

from __future__ import annotations

import math
from enum import Enum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dynaplan.validation import InputModel


class Status(str, Enum):
    """What a solve (or a planning call) established, best first (:data:`STATUS_RANK`)."""

    OPTIMAL = "optimal"            # proven optimal within the requested gap
    FEASIBLE = "feasible"          # a solution, not proven optimal (e.g. time limit)
    NOT_SOLVED = "not_solved"      # no optimisation ran: e.g. a plan read off an observed state
    NO_SOLUTION = "no_solution"    # stopped (time limit, error) before finding any solution
    INFEASIBLE = "infeasible"      # proven: no solution exists (or, see StopReason, no bounded one)
    ERROR = "error"                # the backend failed

    @property
    def has_solution(self) -> bool:
        """A solution came with it (optimal or feasible)."""
        return self in (Status.OPTIMAL, Status.FEASIBLE)


# Worst-of ranking used to combine the reports of several solves into one (0 is best).
STATUS_RANK: dict[Status, int] = {s: i for i, s in enumerate(Status)}


def worst_status(statuses) -> Status:
    """The worst of ``statuses`` by :data:`STATUS_RANK` (``OPTIMAL`` for none)."""
    return max(statuses, key=STATUS_RANK.__getitem__, default=Status.OPTIMAL)


class StopReason(str, Enum):
    """Why a solver stopped, as data (the report's ``message`` keeps the solver's own words)."""

    CONVERGED = "converged"                  # optimal within the requested gap
    TIME_LIMIT = "time_limit"
    OTHER_LIMIT = "other_limit"              # iteration, node or solution limit; interrupted
    INFEASIBLE = "infeasible"                # proven infeasible
    UNBOUNDED = "unbounded"
    UNBOUNDED_OR_INFEASIBLE = "unbounded_or_infeasible"  # one of the two, not told which
    VERIFICATION_FAILED = "verification_failed"          # the solution failed the post-solve check
    BACKEND_ERROR = "backend_error"          # the solver or its interface failed
    NOT_SOLVED = "not_solved"                # no solver ran
    UNKNOWN = "unknown"


class Backend(str, Enum):
    """The solver backends; each has one entry in :mod:`dynaplan.solvers.registry`."""

    HIGHS = "highs"
    PYOMO = "pyomo"
    CPSAT = "cpsat"


class SolveOptions(InputModel):
    """Options every backend honours."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    time_limit_s: float = Field(default=10.0, gt=0, allow_inf_nan=False, description="Wall-clock limit of one solve (s).")
    mip_rel_gap: float = Field(default=1e-4, ge=0, description="Relative MIP gap to stop at (fraction).")
    threads: int = Field(default=1, ge=1, description="Solver threads (count).")
    seed: int = Field(default=0, ge=0, description="Random seed of the solver.")
    mip_max_nodes: int | None = Field(
        default=None, ge=1,
        description="HiGHS: branch-and-bound nodes to stop at (count; None: no node limit). A node "
        "limit stops a MIP solve at the same point on any machine, where a time limit does not; "
        "the other backends ignore it.",
    )
    highs_heuristics: bool | None = Field(
        default=None,
        description="Run HiGHS's primal heuristics (feasibility jump, RINS, RENS, ...). None (default) "
        "lets the caller decide per model: the planner runs them on the monolithic MILP (where they "
        "find incumbents branch-and-bound alone does not) and not on the small pool and cluster "
        "models (their LP relaxations are tight, and the heuristics cost more time than they "
        "save); a bare solve runs without them. True/False forces them.",
    )  # measured in benchmarks/RESULTS.md (monolithic scenario)
    highs_lean_root: bool | None = Field(
        default=None,
        description="HiGHS: no restart after root presolve fixes columns (mip_allow_restart) and no "
        "cut separation below the root (mip_allow_cut_separation_at_nodes). Either way a solve stops "
        "within mip_rel_gap of a proven bound. None (default) lets the caller decide per model: the "
        "planner sets it on the cluster models (formulations/cluster.md, \"Cost\": HiGHS spends "
        "most of their solve on the root's restarts and cut rounds) and on pool models of at most "
        "64 GPUs (formulations/pool.md, \"Solver settings\"; on pools of hundreds of servers "
        "restarts pay); a bare solve runs without it. True/False forces it; the other backends ignore it.",
    )
    pyomo_solver: str = Field(default="appsi_highs", description="Pyomo solver name for the Pyomo backend.")
    cpsat_load_unit_rps: float = Field(
        default=1e-3, gt=0, description="CP-SAT: integer unit of continuous load variables (req/s)."
    )
    cpsat_objective_unit: float = Field(
        default=1e-3, gt=0, description="CP-SAT: integer unit of objective coefficients (objective units)."
    )
    cpsat_linearization_level: int | None = Field(
        default=None, ge=0, le=2,
        description="CP-SAT's linearization_level (None: CP-SAT's default). 2 adds the LP relaxation "
        "of every linear row, which proves tight assignment models (placement) optimal quickly.",
    )


class SolveReport(BaseModel):
    """What a solve did: every optimisation result carries one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Status
    backend: Backend | None = Field(description="The backend that solved (None: no solver ran).")
    objective: float | None = Field(description="Objective of the returned solution (None if none).")
    bound: float | None = Field(description="Best proven lower bound on the objective (None if unknown).")
    gap: float | None = Field(description="Relative gap (objective - bound) / |objective| (fraction).")
    solve_time_s: float = Field(description="Wall time inside the solver (s).")
    build_time_s: float = Field(default=0.0, description="Wall time to build the model (s).")
    n_vars: int = 0
    n_cons: int = 0
    message: str = ""
    stop_reason: StopReason = Field(default=StopReason.UNKNOWN, description="Why the solver stopped.")

    @property
    def has_solution(self) -> bool:
        return self.status.has_solution

    def with_build_time(self, build_time_s: float) -> "SolveReport":
        return self.model_copy(update={"build_time_s": build_time_s})

    @staticmethod
    def not_solved(message: str, objective: float | None = None) -> "SolveReport":
        """The report of a result no solver produced (e.g. a plan read off an observed state)."""
        return SolveReport(status=Status.NOT_SOLVED, backend=None, objective=objective, bound=None, gap=None,
                           solve_time_s=0.0, message=message, stop_reason=StopReason.NOT_SOLVED)


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """``max(0, objective - bound) / max(|objective|, 1e-9)``; None when either is unknown or infinite."""
    if objective is None or bound is None or not (math.isfinite(objective) and math.isfinite(bound)):
        return None
    return max(0.0, (objective - bound)) / max(abs(objective), 1e-9)


class Solution(BaseModel):
    """Column values (in model order) plus the report."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    x: np.ndarray | None
    report: SolveReport
