"""Test-suite settings shared by every test module.

Hypothesis profiles: ``ci`` (the default) draws the same examples on every run
(``derandomize=True``), so a run of the suite on a fresh checkout is reproducible and a property
that fails does so for everyone; ``explore`` draws fresh random examples on every run, to hunt
for new counterexamples: ``python -m pytest --hypothesis-profile=explore``. A
counterexample found by exploring becomes a regression test (an ``@example`` or a plain test).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from dynaplan.solvers import highs as highs_mod

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def highs_solves(monkeypatch) -> list:
    """Every solve of a HiGHS session during the test, as (arrays as solved, options, report):
    for tests that check what the planner hands the solver against an independent solver."""
    seen = []
    orig = highs_mod.HighsSession.update_bounds_and_resolve

    def spy(self, arrays, opts, hint=None):
        sol = orig(self, arrays, opts, hint)
        seen.append((arrays, opts, sol.report))
        return sol

    monkeypatch.setattr(highs_mod.HighsSession, "update_bounds_and_resolve", spy)
    return seen
