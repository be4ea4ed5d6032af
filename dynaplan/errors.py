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


class NoSolutionError(SolverError):
    """The solver stopped at its time limit before finding any solution.

    An honest outcome of a time-limited solve (a longer limit may find one), not a broken solver;
    ``report`` is the solve's :class:`~dynaplan.solvers.SolveReport` when known.
    """

    def __init__(self, message: str, report=None) -> None:
        super().__init__(message)
        self.report = report


def require_file(path, expected: str, kind: str) -> None:
    """Raise :class:`ValidationError` unless ``path`` is an existing file: "<path>: is a
    directory; expected <expected>" or "<path>: <kind> file not found"."""
    if path.is_dir():
        raise ValidationError(f"{path}: is a directory; expected {expected}")
    if not path.is_file():
        raise ValidationError(f"{path}: {kind} file not found")


def read_text_file(path, expected: str, kind: str) -> str:
    """The text of ``path`` (see :func:`require_file`); an unreadable or undecodable file raises
    "<path>: cannot read <kind> file (<reason>)"."""
    require_file(path, expected, kind)
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path}: cannot read {kind} file ({exc.__class__.__name__}: "
                              f"{' '.join(str(exc).split())})") from None
