"""Formulations: each module builds a :class:`~dynaplan.solvers.LinearModel` from validated
inputs (no solving) and extracts typed results from a solution. The maths is in
``formulations/<name>.md`` at the top of the repository; constraint names match.
"""
