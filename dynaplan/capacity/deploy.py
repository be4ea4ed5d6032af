"""Per-period deployments as :class:`dynaplan.planning.Plan` objects (``docs/capacity.md``,
``formulations/capacity.md`` "Per-period deployments and `Plan`").

The capacity model packs instances of several classes onto shared servers (it counts GPUs per
type); a ``Plan`` keeps whole servers per pool. So each period's load is planned again on the
chosen fleet with the hierarchical :class:`~dynaplan.planning.Planner`, and the Plan's power and
energy are reported next to the capacity model's, with the difference. A period the Planner
cannot serve on the fleet is flagged (``served=False`` with the reason), never hidden.
Identical period loads are planned once (memoised on the load, rounded to 1e-9 req/s).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dynaplan.capacity.problem import CapacityProblem
from dynaplan.errors import DynaplanError


class PeriodPlan(BaseModel):
    """One period's load planned on the fleet by the Planner, next to the capacity model's figures."""

    model_config = ConfigDict(frozen=True)

    period: int
    served: bool = Field(description="False: the Planner found no plan serving this period on the fleet.")
    message: str = Field(default="", description="Why the period is not served (empty when it is).")
    plan: dict | None = Field(default=None, description="The Plan (its JSON form; Plan.model_validate reads it).")
    plan_it_power_w: float | None = Field(default=None, description="The Plan's cluster power (W, IT).")
    model_it_power_w: float = Field(description="The capacity model's IT power of the period (W).")
    difference_w: float | None = Field(default=None, description="plan_it_power_w - model_it_power_w (W): the "
                                       "Plan keeps whole servers per pool, the model shares servers between classes.")
    plan_energy_kwh: float | None = Field(default=None, description="The Plan's power over the period, PUE applied (kWh).")
    model_energy_kwh: float = Field(description="The capacity model's facility energy of the period (kWh).")


def _profile(problem: CapacityProblem, profile):
    from dynaplan.profiles import Profile

    if profile is None:
        src = problem.profile_source
        return Profile.default() if not src or src.startswith("bundled:") else Profile.read(src)
    return profile if isinstance(profile, Profile) else Profile.read(profile)


def period_plans(plan, problem: CapacityProblem, *, profile=None, solve_options=None) -> tuple[PeriodPlan, ...]:
    """Every period of ``plan`` planned on its fleet with the Planner (see the module docstring)."""
    from dynaplan.domain.slo import SLO, SLOTable
    from dynaplan.planning import Planner

    prof = _profile(problem, profile)
    slos = SLOTable(per_class={c: SLO(ttft_ms=a, tbt_ms=b) for c, a, b in problem.slo_ms})
    fleet = {h: int(n) for h, n in plan.fleet.items() if n > 0}
    planner = Planner(prof, fleet, slos, **({"solve_options": solve_options} if solve_options else {}))
    memo: dict[tuple, tuple] = {}
    out = []
    for per in plan.periods:
        load = {c: float(v) for c, v in per.demand_rps.items() if v > 0}
        key = tuple(sorted((c, round(v, 9)) for c, v in load.items()))
        if key not in memo:
            try:
                memo[key] = (planner.plan(load), "")
            except DynaplanError as exc:
                memo[key] = (None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        p, msg = memo[key]
        if p is None or p.unserved_rps and any(v > 1e-9 for v in p.unserved_rps.values()):
            out.append(PeriodPlan(period=per.period, served=False, message=msg or "the Plan leaves load unserved",
                                  plan=None if p is None else p.model_dump(mode="json"),
                                  model_it_power_w=per.it_power_w, model_energy_kwh=per.energy_kwh))
            continue
        kwh = p.power_w * problem.pue * problem.period_s / 3.6e6
        out.append(PeriodPlan(period=per.period, served=True, plan=p.model_dump(mode="json"),
                              plan_it_power_w=float(p.power_w), model_it_power_w=per.it_power_w,
                              difference_w=float(p.power_w - per.it_power_w), plan_energy_kwh=float(kwh),
                              model_energy_kwh=per.energy_kwh))
    return tuple(out)


def with_period_plans(plan, problem: CapacityProblem, *, profile=None, solve_options=None):
    """``plan`` with ``period_plans`` set by :func:`period_plans` (as JSON-ready dicts)."""
    pps = period_plans(plan, problem, profile=profile, solve_options=solve_options)
    return plan.model_copy(update={"period_plans": tuple(pp.model_dump(mode="json") for pp in pps)})
