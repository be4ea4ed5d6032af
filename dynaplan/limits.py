"""Stated limits on every size that drives dynaplan's memory or time.

Each input size that makes dynaplan allocate or loop in proportion to it — requests in a trace,
windows of an aggregation, servers of a cluster state, nesting of a JSON file, servers of an
inventory — is checked here, up front, before anything of that size is built. A size beyond its
limit raises one :class:`~dynaplan.errors.ValidationError` line naming the flag or field the
caller passes as ``label``, the size asked for, and the limit by name and value, e.g.::

    --rate 1e+07: scales trace 'azure-code-2023' to about 1.64e+10 requests (at most 100,000,000,
    dynaplan.limits.MAX_TRACE_REQUESTS); use a lower rate, ...

The library and the CLI use the same :class:`Limit` objects, so the README's table of limits,
the errors and the checks cannot disagree. Work that grows with the number of *instances* of a
plan is not limited: it is counted per instance group (``check_plan`` packs 20 million identical
instances by arithmetic).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from dynaplan.errors import ValidationError


@dataclass(frozen=True)
class Limit:
    """A named upper bound on one size, with the reason and what to do instead."""

    name: str
    value: int
    what: str = ""  # what is counted, plural ("requests")
    hint: str = ""  # what the user can do instead

    def check(self, size: float, label: str, detail: str = "") -> float:
        """``size`` if it is at most :attr:`value`; else a ValidationError naming ``label``."""
        if not (size <= self.value):  # NaN is over the limit too
            where = f" {detail}" if detail else ""
            raise ValidationError(f"{label}:{where} {_size(size)} {self.what} (at most {self.value:,}, "
                                  f"dynaplan.limits.{self.name})" + (f"; {self.hint}" if self.hint else ""))
        return size


def _size(x: float) -> str:
    return f"{int(x):,}" if isinstance(x, (int, np.integer)) or (math.isfinite(x) and x == int(x) and x < 1e15) \
        else f"about {x:.3g}"


TRACE_REQUESTS = Limit(
    "MAX_TRACE_REQUESTS", 100_000_000, "requests",
    "use a lower rate, fewer servers, fewer days or a shorter trace")
"""Requests a trace in memory may hold (a scaled or synthetic trace: about 2.4 GB of arrays)."""

WINDOWS = Limit("MAX_WINDOWS", 10_000_000, "windows", "use a longer window")
"""Windows a trace may be cut into (a 1-week trace in 60 ms windows); more is a typo."""

REPLAY_EPOCHS = Limit(
    "MAX_REPLAY_EPOCHS", 20_000, "pool epochs",
    "each is a planning decision (up to a second of solves); use a longer pool epoch or a shorter trace")
"""Pool-level epochs of a replay (a week of 30 s epochs, 69 days of 5 min ones)."""

INVENTORY_SERVERS = Limit(
    "MAX_INVENTORY_SERVERS", 1_000_000_000, "servers",
    "more than any cluster; the MILPs' integrality tolerance no longer means whole servers beyond it")
"""Servers of one hardware type a planner inventory may hold (counts, not objects)."""

STATE_SERVERS = Limit(
    "MAX_STATE_SERVERS", 2_000, "servers",
    "placing a plan on a cluster state takes time that grows with servers x instances; plan larger "
    "inventories with `dynaplan plan`")
"""Servers a cluster state (a state file, or ``plan-reconfig --servers``) may hold. Measured on a
loaded 2-core machine, ``reconfig.diff`` from a state to a plan 30% larger took 7 s at 1,000
servers, 12 s at 2,000 and 44 s at 5,000 when the greedy placement scanned every server per
instance (20,000 took over a minute and 200,000 ran out of memory); it now takes the best free
block from a heap (a 2,000-server placement: about a second), and above
:data:`MAX_PLACEMENT_SOLVER_BLOCKS` the CP-SAT placement model is not built."""

MAX_PLACEMENT_SOLVER_BLOCKS = 2_000
"""Candidate (planned group, server, GPU block) triples up to which :func:`dynaplan.reconfig.place`
tries the CP-SAT placement model; beyond, it places greedily and says so in ``Placement.message``
(not an error). Measured on a loaded 2-core machine: at 1,400 blocks (200 servers) CP-SAT found no
placement within its 5 s limit, at 4,000 (500 servers) its presolve ran for over 100 s."""

STATE_INSTANCES = Limit(
    "MAX_STATE_INSTANCES", 16_000, "instances", "one instance per GPU of MAX_STATE_SERVERS 8-GPU servers")
"""Instances a cluster state may hold."""

FRAME_ROWS = Limit(
    "MAX_FRAME_ROWS", 50_000_000, "rows", "one row per instance and class: about 2 GB of frame at the limit")
"""Rows of a per-instance frame (``Planner.instances_of``, the instance level's input)."""

JSON_DEPTH = Limit("MAX_JSON_DEPTH", 64, "levels of nesting", "a cluster state nests 5 levels deep")
"""Nesting depth of a JSON input (deep nesting exhausts the parser's recursion)."""

ALL = (TRACE_REQUESTS, WINDOWS, REPLAY_EPOCHS, INVENTORY_SERVERS, STATE_SERVERS, STATE_INSTANCES, FRAME_ROWS, JSON_DEPTH)

# the values as plain integers, under the names the errors and the README use
MAX_TRACE_REQUESTS = TRACE_REQUESTS.value
MAX_WINDOWS = WINDOWS.value
MAX_REPLAY_EPOCHS = REPLAY_EPOCHS.value
MAX_INVENTORY_SERVERS = INVENTORY_SERVERS.value
MAX_STATE_SERVERS = STATE_SERVERS.value
MAX_STATE_INSTANCES = STATE_INSTANCES.value
MAX_FRAME_ROWS = FRAME_ROWS.value
MAX_JSON_DEPTH = JSON_DEPTH.value

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(text: str) -> int:
    """Deepest nesting of arrays and objects in JSON ``text`` (brackets inside strings ignored).

    Linear in the text and free of recursion: strings are blanked by one regular expression, then
    the running count of opening minus closing brackets is a cumulative sum over the bytes.
    """
    bare = _JSON_STRING.sub('""', text).encode("utf-8", "replace")
    b = np.frombuffer(bare, dtype=np.uint8)
    step = np.zeros(b.size, dtype=np.int64)
    step[(b == ord("[")) | (b == ord("{"))] = 1
    step[(b == ord("]")) | (b == ord("}"))] = -1
    return int(np.cumsum(step).max()) if b.size else 0


def check_json_depth(text: str, label: str) -> None:
    """Refuse JSON nested deeper than :data:`MAX_JSON_DEPTH` before it is parsed."""
    JSON_DEPTH.check(json_depth(text), label)


__all__ = ["ALL", "FRAME_ROWS", "INVENTORY_SERVERS", "JSON_DEPTH", "Limit", "MAX_FRAME_ROWS",
           "MAX_INVENTORY_SERVERS", "MAX_JSON_DEPTH", "MAX_REPLAY_EPOCHS", "MAX_STATE_INSTANCES",
           "MAX_STATE_SERVERS", "MAX_TRACE_REQUESTS", "MAX_WINDOWS", "REPLAY_EPOCHS", "STATE_INSTANCES",
           "STATE_SERVERS", "TRACE_REQUESTS", "WINDOWS", "check_json_depth", "json_depth"]
