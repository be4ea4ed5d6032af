"""Reconfiguration: the cluster as it is, what moving it costs, and how to get to a plan safely.

* :mod:`.state` — :class:`ClusterState`: servers, instances on concrete GPUs, operations in flight;
* :mod:`dynaplan.domain.transitions` — :class:`TransitionCosts` and the cost of every action;
  amortised costs for the planner's MILP terms (re-exported here);
* :mod:`.placement` — the plan's instances on concrete servers and GPU blocks (CP-SAT, through
  :mod:`dynaplan.solvers`);
* :mod:`.diff` — :func:`diff`: the ordered, timed, make-before-break actions and any dips;
* :mod:`.apply` — :func:`apply` the actions to a state, one at a time or all at once;
* :mod:`.actions` — the typed actions, dips and summaries a diff returns; :mod:`.capacity` —
  :class:`CapacityModel`, a pool's capacity under SLO at every step of a change.

See ``docs/reconfiguration.md`` and ``formulations/placement.md``.
"""

from dynaplan.reconfig.actions import Action, Dip, ReconfigPlan, ReconfigSummary
from dynaplan.reconfig.apply import advance, apply, begin, settle, state_at, steps
from dynaplan.reconfig.capacity import CapacityModel
from dynaplan.reconfig.diff import diff, plan_of
from dynaplan.reconfig.placement import Placement, PlacementOptions, place
from dynaplan.reconfig.state import ClusterState, InFlight, Instance, Server
from dynaplan.domain.transitions import (ActionCost, AmortisedCost, TransitionCosts, TransitionParams,
                                           amortised_cost, amortised_cost_table)

__all__ = [
    "Action", "ActionCost", "AmortisedCost", "CapacityModel", "ClusterState", "Dip", "InFlight", "Instance",
    "Placement", "PlacementOptions", "ReconfigPlan", "ReconfigSummary", "Server", "TransitionCosts",
    "TransitionParams", "advance", "amortised_cost", "amortised_cost_table", "apply", "begin", "diff", "place",
    "plan_of", "settle", "state_at", "steps",
]
