"""Replay of the source trace on a capacity plan's fleet with the DynamoLLM policy
(``docs/capacity.md``, "Replay"): does the fleet the model sized meet the SLOs request by request?

The capacity model sizes the fleet on per-period peak rates and the profile's P99 latencies; the
replay steps the trace, scaled to the plan's busiest period (:attr:`CapacityProblem.trace_scale`),
through :class:`dynaplan.replay.policies.DynamoLLM` on that fleet and counts the requests served
within their TTFT and TBT SLO per class. A class below ``target`` fails the replay, and the plan's
``verdict`` says so.
"""

from __future__ import annotations

from collections.abc import Callable

from dynaplan.capacity.problem import CapacityProblem
from dynaplan.domain.slo import SLO, SLOTable
from dynaplan.errors import ValidationError

DEFAULT_TARGET = 0.99  # the SLOs are P99 latencies: 99% of a class's requests within them


def replay_fleet(problem: CapacityProblem, fleet: dict[str, int], *, trace=None, profile=None,
                 target: float = DEFAULT_TARGET, progress: Callable[[int, int], None] | None = None) -> dict:
    """Replay ``problem``'s source trace (or ``trace``) scaled to its busiest period on ``fleet``;
    returns a JSON-ready dict with SLO attainment per class and ``meets_slos``."""
    from dynaplan.profiles import Profile
    from dynaplan.replay import prepare, replay, scale_trace
    from dynaplan.replay.policies import DynamoLLM
    from dynaplan.workload import load_trace

    if not 0 < target <= 1:
        raise ValidationError(f"replay target={target!r}; expected a fraction in (0, 1]")
    if problem.source != "profile":
        raise ValidationError("replay: a Mélange config has no trace or profile to replay")
    source = trace if trace is not None else problem.trace
    if source is None or problem.trace_scale is None:
        raise ValidationError("replay: the load was given as per-class rates, not a trace; pass trace=")
    tr = load_trace(source) if not hasattr(source, "arrival_s") else source
    if profile is None:
        src = problem.profile_source
        profile = Profile.default() if not src or src.startswith("bundled:") else Profile.read(src)
    elif not isinstance(profile, Profile):
        profile = Profile.read(profile)
    slos = SLOTable(per_class={c: SLO(ttft_ms=a, tbt_ms=b) for c, a, b in problem.slo_ms}) if problem.slo_ms else None
    inventory = {h: int(n) for h, n in fleet.items() if n > 0}
    if not inventory:
        raise ValidationError("replay: the fleet is empty")
    scaled = scale_trace(tr, problem.trace_scale, seed=0, label=f"replay scale x{problem.trace_scale:.3g}")
    kw = {"slos": slos} if slos is not None else {}
    inp = prepare(scaled, profile=profile, inventory=inventory, **kw)
    res = replay(inp, DynamoLLM(), progress=progress)
    s = res.summary
    by_class = {c: float(v) for c, v in s.slo_attainment_by_class.items()}
    failing = sorted(c for c, v in by_class.items() if v == v and v < target)
    return {"policy": s.policy, "trace": s.trace, "scale": float(problem.trace_scale), "duration_s": s.duration_s,
            "requests": s.requests, "target": float(target), "slo_attainment": float(s.slo_attainment),
            "slo_attainment_by_class": by_class, "failing_classes": failing,
            "unserved_requests": float(s.unserved_requests), "meets_slos": not failing,
            "energy_kwh": float(s.energy_kwh), "peak_servers": float(s.peak_servers)}


def with_replay(plan, problem: CapacityProblem, *, trace=None, profile=None, target: float = DEFAULT_TARGET,
                progress: Callable[[int, int], None] | None = None):
    """``plan`` with ``replay`` and ``verdict`` set from :func:`replay_fleet` on its fleet."""
    rep = replay_fleet(problem, plan.fleet, trace=trace, profile=profile, target=target, progress=progress)
    verdict = ("meets SLOs in replay" if rep["meets_slos"]
               else f"MISSES SLOs IN REPLAY: {', '.join(rep['failing_classes'])} under {target:.0%}")
    return plan.model_copy(update={"replay": rep, "verdict": verdict})
