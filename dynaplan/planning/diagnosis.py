"""Why a forecast cannot be planned: the reasons, and the errors that carry them.

The planner asks these checks after a solve fails or proves infeasibility, and
:meth:`dynaplan.planning.Planner.diagnose` asks them directly. Each reason is a proof from the
profile and the inventory alone (no configuration meets a class's SLO; a class needs more GPUs
than the inventory has; the classes need more pools than there are servers), so a solver that
fails on such a model is reported as :class:`~dynaplan.errors.InfeasibleError` with the reason.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import pandas as pd

from dynaplan.domain.hardware import HardwareType
from dynaplan.domain.slo import SLOTable
from dynaplan.errors import InfeasibleError, NoSolutionError, SolverError
from dynaplan.planning.demand import LOAD_EPS_RPS, LOAD_FLOOR_RPS
from dynaplan.solvers import SolveReport, Status


def gpus_text(gpus: Mapping[str, int], servers: Mapping[str, int]) -> str:
    """``"32 GPUs (4 h100-80gb servers)"``: GPUs in all, and the servers by hardware that hold them."""
    held = ", ".join(f"{servers[h]} {h} servers" for h in gpus if h in servers)
    return f"{sum(gpus.values())} GPUs ({held})"


def count_text(x: float) -> str:
    """An instance or GPU count for a message: exact up to 1e12, then 3 significant digits."""
    return f"{int(x)}" if x < 1e12 else f"{x:.3g}"


def fewest_pools(classes: list[str], routes: Mapping[str, list[str]], limit: int) -> int | None:
    """Fewest pools that give every class in ``classes`` a route, when that is more than
    ``limit``; ``None`` when ``limit`` pools suffice or the search would be too large."""
    if len(classes) <= limit:
        return None
    pools = sorted({p for c in classes for p in routes[c]})
    covers = {p: {c for c in classes if p in routes[c]} for p in pools}
    need = set(classes)
    for k in range(1, len(pools) + 1):
        if math.comb(len(pools), k) > 200_000:
            return None
        if any(set().union(*(covers[p] for p in combo)) >= need for combo in itertools.combinations(pools, k)):
            return None if k <= limit else k
    return None


def check_solution(x, report: SolveReport, what: str) -> None:
    """Raise :class:`NoSolutionError` (time limit, no solution) or :class:`SolverError` unless the
    solve returned a solution."""
    if report.has_solution and x is not None:
        return
    if report.status is Status.NO_SOLUTION:
        raise NoSolutionError(f"{what}: no plan found within the time limit ({report.solve_time_s:.3f} s, "
                              f"{report.backend.value}: {report.message})", report)
    raise SolverError(f"{what}: solver failed ({report.backend.value}: {report.status.value}, {report.message})")


@dataclass(frozen=True)
class Diagnosis:
    """The facts the reasons are drawn from: the SLO capacities of the planner's model
    (``max_load``: rows of :meth:`Profile.max_load_under_slo`), its hardware, the inventory's
    servers, the SLOs, each class's routes and the spill rule they come from."""

    max_load: pd.DataFrame
    hardware: Mapping[str, HardwareType]
    servers: Mapping[str, int]
    slos: SLOTable
    routes: Mapping[str, list[str]]
    spill: str

    def _total_gpus(self) -> dict[str, int]:
        return {h: n * self.hardware[h].gpus_per_server for h, n in self.servers.items()}

    def reasons(self, f: Mapping[str, float]) -> list[str]:
        """Reasons why the checked forecast ``f`` cannot be met (empty if none is found).

        Per class: no configuration meets its SLO; or the fewest GPUs able to carry its load alone
        at its SLO exceed the inventory's GPUs. For the cluster: every pool takes whole servers, so
        the classes with load need at least as many servers as the fewest pools their routes
        (``PlannerOptions.spill``) can share.
        """
        out = []
        total_gpus = self._total_gpus()
        loaded = [c for c, load in f.items() if load > LOAD_EPS_RPS]
        servers = sum(self.servers.values())
        if loaded and servers == 0:
            return [f"the inventory has no servers ({dict(self.servers)}) for {sum(f.values()):g} req/s"]
        no_config: dict[str, list[str]] = {}  # why no configuration meets the SLO -> classes
        for c in loaded:
            load = max(f[c], LOAD_FLOOR_RPS)
            meets = self.max_load[(self.max_load["request_class"] == c) & (self.max_load["max_load_rps"] > 0)]
            own = meets[meets["hardware"].isin(list(self.hardware))]
            if own.empty:
                where = (f"on the inventory's hardware {sorted(self.hardware)}; the profile has such configurations "
                         f"only on {sorted(set(meets['hardware']))}" if not meets.empty else "at any profiled load")
                no_config.setdefault(where, []).append(c)
                continue
            inst = np.ceil(load / own["max_load_rps"].to_numpy() - 1e-9)
            gpus = inst * own["tp"].to_numpy()
            best = int(np.argmin(gpus))
            row = own.iloc[best]
            if gpus[best] > sum(total_gpus.values()):
                out.append(f"class {c}: {load:g} req/s needs at least {count_text(inst[best])} TP{row['tp']} instances "
                           f"({count_text(gpus[best])} GPUs, {row['hardware']} at {row['freq_mhz']} MHz) at its SLO; "
                           f"the inventory has {gpus_text(total_gpus, self.servers)}")
        for where, cs in no_config.items():  # one clause per reason, however many classes share it
            if len(cs) == 1:
                slo = self.slos[cs[0]]
                out.insert(0, f"class {cs[0]}: no configuration meets its SLO (P99 TTFT {slo.ttft_ms:g} ms, "
                              f"TBT {slo.tbt_ms:g} ms) {where}")
            else:
                out.insert(0, f"classes {', '.join(cs)}: no configuration meets their SLOs {where}")
        pools = fewest_pools(loaded, self.routes, limit=servers)
        if pools is not None and pools > servers:
            out.append(f"classes {loaded} need at least {pools} pools of one whole server each "
                       f"(spill={self.spill!r}); the inventory has {servers} servers")
        return out

    def raise_infeasible(self, demand: Mapping[str, float], report: SolveReport) -> NoReturn:
        """:class:`InfeasibleError` for a model proven infeasible, with :meth:`reasons` or, when
        each class fits alone, the statement that all together do not."""
        reasons = self.reasons(demand)
        if not reasons:
            need = sum(demand.values())
            reasons = [f"all classes together ({need:g} req/s) do not fit in the inventory's "
                       f"{gpus_text(self._total_gpus(), self.servers)} "
                       f"at their SLOs (each class fits alone)"]
        raise InfeasibleError("; ".join(reasons) + f" [{report.backend.value}: {report.message}]")

    def explain_failure(self, demand: Mapping[str, float], report: SolveReport) -> None:
        """A solver that fails (status error) or stops at its time limit without a solution on a
        model that cannot be met anyway — no servers, loads far beyond the inventory, too few
        servers for the pools the routes need (:meth:`reasons` are proofs) — is reported as
        :class:`InfeasibleError` with the reason, not as a solver failure."""
        if report.status not in (Status.ERROR, Status.NO_SOLUTION):
            return
        reasons = self.reasons(demand)
        if reasons:
            raise InfeasibleError("; ".join(reasons) + f" [{report.backend.value}: {report.message}]")

    def raise_infeasible_pool(self, pool: str, loads: Mapping[str, float], srv: Mapping[str, int],
                              report: SolveReport) -> NoReturn:
        gpus = {h: n * self.hardware[h].gpus_per_server for h, n in srv.items()}
        raise InfeasibleError(f"pool {pool}: loads {loads} req/s do not fit on its servers {srv} ({gpus} GPUs) "
                              f"at the SLO [{report.backend.value}: {report.message}]")
