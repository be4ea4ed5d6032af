"""Typed errors raised by dynaplan.

Every error a user can trigger with bad input derives from :class:`DynaplanError`, so a
scheduler can catch one type; the CLI turns them into a one-line message and a non-zero exit.
"""

from __future__ import annotations


class DynaplanError(Exception):
    """Base class of all errors dynaplan raises on purpose."""


class ValidationError(DynaplanError, ValueError):
    """Input data (profile, trace, state, options) is malformed.

    The message names the source (file or table), the row and the field, and what was expected.
    """


class InfeasibleError(DynaplanError):
    """No plan meets the SLOs within the inventory; the message names the class and the limit."""


class SolverError(DynaplanError):
    """A solver backend failed in a way that left no usable plan."""
