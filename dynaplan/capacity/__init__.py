"""Capacity planning: which servers to buy or rent, across GPU types, for a load curve
(``formulations/capacity.md``, ``docs/capacity.md``)."""

from dynaplan.capacity.build import RecipeSet, capacity_problem, carbon_series, recipe_set, recipes_from_profile
from dynaplan.capacity.catalogue import Catalogue, CatalogueEntry, default_catalogue
from dynaplan.capacity.melange import read_melange
from dynaplan.capacity.problem import CapacityProblem, Offer, Recipe
from dynaplan.capacity.solve import CapacityPlan, PeriodDeployment, plan_capacity

__all__ = ["CapacityPlan", "CapacityProblem", "RecipeSet", "Catalogue", "CatalogueEntry", "Offer", "PeriodDeployment", "Recipe",
           "capacity_problem", "carbon_series", "default_catalogue", "plan_capacity", "read_melange",
           "recipe_set", "recipes_from_profile"]
