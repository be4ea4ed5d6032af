"""From a sweep spec to its scenarios, each with its resolved options and a stable id.

The resolved options of a scenario are the kind's input model filled from ``base`` and the
scenario's axis values, defaults included, as JSON-like values. Its id (column ``scenario_id``)
is the first 16 hex digits of the SHA-256 of the kind and those options in canonical JSON
(sorted keys): the same scenario has the same id in every sweep that contains it, whatever the
spec's order, axes or mode, so results can be joined and a sweep resumed. Scenarios with equal
resolved options are one scenario.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from dynaplan.errors import ValidationError
from dynaplan.sweep.kinds import get_kind
from dynaplan.sweep.spec import SweepSpec
from dynaplan.validation import excerpt


@dataclass(frozen=True)
class Scenario:
    """One scenario: its id, kind, resolved options and the axis values that made it."""

    scenario_id: str
    kind: str
    options: dict[str, Any]
    axes: dict[str, Any]


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def scenario_id(kind: str, options: dict) -> str:
    """Stable id of a scenario: a hash of its kind and resolved options."""
    return hashlib.sha256(canonical_json({"kind": kind, "options": options}).encode()).hexdigest()[:16]


def resolve(spec: SweepSpec, values: dict[str, Any]) -> dict[str, Any]:
    """The resolved options of the scenario with axis ``values`` (validated by the kind's model)."""
    kind = get_kind(spec.kind)
    try:
        opts = kind.options.model_validate({**spec.base, **values})
    except ValidationError as exc:
        at = ", ".join(f"{k}={excerpt(v, 40)}" for k, v in values.items())
        raise type(exc)(f"scenario {at or '(base)'}: {exc}") from None
    return opts.model_dump(mode="json")


def combinations(spec: SweepSpec) -> list[dict[str, Any]]:
    """The axis values of every scenario, in spec order (product: last axis fastest)."""
    names = list(spec.axes)
    cols = [spec.axis_values(n) for n in names]
    rows = zip(*cols) if spec.mode == "zip" else itertools.product(*cols)
    return [dict(zip(names, r)) for r in rows]


def expand(spec: SweepSpec) -> list[Scenario]:
    """Every scenario of ``spec``, in spec order, each once."""
    out: dict[str, Scenario] = {}
    for values in combinations(spec):
        opts = resolve(spec, values)
        sid = scenario_id(spec.kind, opts)
        out.setdefault(sid, Scenario(sid, spec.kind, opts, values))
    return list(out.values())


__all__ = ["Scenario", "canonical_json", "combinations", "expand", "resolve", "scenario_id"]
