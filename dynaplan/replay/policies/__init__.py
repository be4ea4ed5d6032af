"""The bundled replay policies, one module each, all implementing :class:`dynaplan.replay.Policy`.

| name | knobs | decides |
|---|---|---|
| ``SinglePool`` | none | once: TP8 at the max clock, sized for the trace's peak |
| ``MultiPool`` | none | once: a pool per class, TP8 at the max clock, each sized for its peak |
| ``ScaleInst`` | instances | every cluster epoch: TP8 instances per class pool for the forecast |
| ``ScaleShard`` | TP | every pool epoch: TP mix of each (fixed-server) class pool, max clock |
| ``ScaleFreq`` | clock | MultiPool's instances, clock of every instance every window |
| ``DynamoLLM`` | all three | cluster, pool and instance levels (``Planner``) |
| ``Oracle`` | all three | DynamoLLM with the true future and free transitions (a bound) |
"""

from __future__ import annotations

from collections.abc import Callable

from dynaplan.errors import ValidationError
from dynaplan.replay.policies.dynamollm import DynamoLLM
from dynaplan.replay.policies.multi_pool import MultiPool, ScaleFreq
from dynaplan.replay.policies.oracle import Oracle
from dynaplan.replay.policies.scale_inst import ScaleInst
from dynaplan.replay.policies.scale_shard import ScaleShard
from dynaplan.replay.policies.single_pool import SinglePool
from dynaplan.replay.policy import Policy

POLICIES: dict[str, Callable[[], Policy]] = {
    "SinglePool": SinglePool, "MultiPool": MultiPool, "ScaleInst": ScaleInst, "ScaleShard": ScaleShard,
    "ScaleFreq": ScaleFreq, "DynamoLLM": DynamoLLM, "Oracle": Oracle,
}


STATIC = ("SinglePool", "MultiPool", "ScaleShard", "ScaleFreq")  # sized for a peak (accept peak_scale)


def make_policies(names: str | list[str], *, peak_scale: float = 1.0) -> list[Policy]:
    """Policies by name (case-insensitive; ``"all"`` = every bundled policy, in table order).
    ``peak_scale`` goes to the policies whose servers are sized for a peak (``STATIC``)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if any(n.lower() == "all" for n in names):
        names = list(POLICIES)
    lookup = {k.lower(): k for k in POLICIES}
    out = []
    for n in names:
        if n.lower() not in lookup:
            raise ValidationError(f"unknown policy {n!r}; known: {', '.join(POLICIES)} or all")
        name = lookup[n.lower()]
        out.append(POLICIES[name](peak_scale=peak_scale) if name in STATIC else POLICIES[name]())
    return out


__all__ = ["DynamoLLM", "MultiPool", "Oracle", "POLICIES", "ScaleFreq", "ScaleInst", "ScaleShard", "SinglePool",
           "STATIC", "make_policies"]
