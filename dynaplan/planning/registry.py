"""The planner's formulations, chosen by a typed key instead of by name.

Each :class:`ModelKind` names one model the planner builds and caches; :data:`FORMULATIONS`
holds, per kind, how to build it from the planner's inputs, how to read its solution back into
typed results, and what it is (whole-server recipes or instances per piece, one model per pool
or one for the cluster, with or without transition terms). Adding a formulation is one enum
member and one registry entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from dynaplan.formulations import cluster as cluster_f
from dynaplan.formulations import monolithic as mono_f
from dynaplan.formulations import pool as pool_f
from dynaplan.planning.decode import pool_plans
from dynaplan.solvers import Backend


class ModelKind(str, Enum):
    """A model the planner builds (its value is the name messages and caches use)."""

    POOL = "pool"
    POOL_TRANSITIONS = "pool+transitions"
    CLUSTER = "cluster"
    CLUSTER_TRANSITIONS = "cluster+transitions"
    MONOLITHIC = "monolithic"


@dataclass(frozen=True)
class Formulation:
    """One kind of model: ``build(planner, pool, transition_prices)`` returns ``(model, network,
    blocks)`` (nothing solved); ``read(planner, net_arrays, x, epoch_s, reports)`` turns a
    solution ``x`` into the kind's typed result (pool-network models: a list of
    :class:`~dynaplan.planning.plan.PoolPlan`; recipe models: servers and routed load by pool);
    ``recipe``: its count variables are whole servers (``s``); ``per_pool``: one model per pool;
    ``transitions``: it prices changes from a current state."""

    build: Callable
    read: Callable
    recipe: bool = False
    per_pool: bool = False
    transitions: bool = False


def _pool(pl, pool, prices):
    classes = {c: 1.0 for c in pl.classes if pool in pl.routes[c]}
    return pool_f.build(pl.ops, pl.segments, pool, classes, {h: 1 for h in pl.hardware}, pl.hardware,
                        pl._penalty, prices, routed_ops=pl.routed_ops)


def _linking(pl) -> bool:
    """Whether the cluster and monolithic models get the (linking) rows: not for CP-SAT, which
    puts loads on a grid and may round a demand up past ``L_c``, so that it could use only the
    weak coefficients, rows (utilisation) and (capacity) imply already (cluster.md, "Linking rows")."""
    return pl.backend is not Backend.CPSAT


def _cluster(pl, pool, prices):
    return cluster_f.build(pl.ops, pl.routes, {c: 1.0 for c in pl.classes}, pl.inventory.servers, pl.hardware,
                           pl.classes, pl._penalty, prices, routed_ops=pl.routed_ops, linking=_linking(pl))


def _monolithic(pl, pool, prices):
    return mono_f.build(pl.ops, pl.segments, pl.routes, {c: 1.0 for c in pl.classes}, pl.inventory.servers,
                        pl.hardware, pl.classes, pl._penalty, routed_ops=pl.routed_ops, linking=_linking(pl))


def _read_pools(pl, na, x, epoch_s, reports):
    return pool_plans(na, x, pl.profile, pl.hardware, pl.classes, epoch_s, reports)


def _read_allotment(pl, na, x, epoch_s, reports):
    return cluster_f.allotment(na, x)


FORMULATIONS: Mapping[ModelKind, Formulation] = MappingProxyType({
    ModelKind.POOL: Formulation(_pool, _read_pools, per_pool=True),
    ModelKind.POOL_TRANSITIONS: Formulation(_pool, _read_pools, per_pool=True, transitions=True),
    ModelKind.CLUSTER: Formulation(_cluster, _read_allotment, recipe=True),
    ModelKind.CLUSTER_TRANSITIONS: Formulation(_cluster, _read_allotment, recipe=True, transitions=True),
    ModelKind.MONOLITHIC: Formulation(_monolithic, _read_pools),
})
