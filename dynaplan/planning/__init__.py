"""Planning: validated inputs, the hierarchical planner, plans and the independent checker."""

from dynaplan.planning.check import PlanCheck, check_plan
from dynaplan.planning.plan import Allotment, InstanceGroup, Plan, PoolPlan
from dynaplan.planning.planner import Planner
from dynaplan.planning.problem import Inventory, PlannerOptions

__all__ = ["Allotment", "InstanceGroup", "Inventory", "Plan", "PlanCheck", "Planner", "PlannerOptions", "PoolPlan", "check_plan"]
