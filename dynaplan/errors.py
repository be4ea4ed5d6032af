"""Typed errors raised by dynaplan.

Every error a user can trigger with bad input derives from :class:`DynaplanError`, so a
scheduler can catch one type; the CLI turns them into a one-line message and a non-zero exit.
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 2000
"""Longest error message dynaplan prints (characters): a message that quotes a huge user input
keeps its start and end and says how much was left out, so an error line stays readable (a
2,000,000-entry list would otherwise make a 17 MB line)."""


def shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and end around
    ``... [N characters omitted] ...``."""
    if len(text) <= limit:
        return text
    tail = min(200, limit // 4)
    omitted = len(text) - (limit - tail)
    return f"{text[:limit - tail]} ... [{omitted:,} characters omitted] ... {text[-tail:]}"


class DynaplanError(Exception):
    """Base class of all errors dynaplan raises on purpose.

    A message longer than :data:`MAX_MESSAGE_CHARS` is shortened (:func:`shorten`), whatever it
    quotes."""

    def __init__(self, *args) -> None:
        if args and isinstance(args[0], str):
            args = (shorten(args[0]),) + args[1:]
        super().__init__(*args)


class ValidationError(DynaplanError, ValueError):
    """Input data (profile, trace, state, options) is malformed.

    The message names the source (file or table), the row and the field, and what was expected.
    """


class InputError(ValidationError):
    """A value given to one of dynaplan's input models (options, inventory, state, hardware,
    SLOs, ...) is refused; the message names ``Model.field`` and what was expected.

    :meth:`errors` keeps pydantic's structured list (``loc``, ``msg``, ``type``, ``input``) for
    callers that rename fields (the CLI names the flag instead of the field)."""

    def __init__(self, message: str, errors: list[dict] | None = None, model: str = "", input_value=None) -> None:
        super().__init__(message)
        self._errors = list(errors or [])
        self.model = model
        self.input_value = input_value  # the refused value of the first error (for nesting models)

    def errors(self) -> list[dict]:
        return list(self._errors)


class NotFoundError(DynaplanError, KeyError):
    """A look-up by name or key found nothing (a profile group, an SLO class); also a ``KeyError``.
    The message names what was looked up and, where short, what exists."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


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
