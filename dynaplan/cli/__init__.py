"""The ``dynaplan`` command line: one typer app, a sub-app per area.

Every user error (a :class:`dynaplan.errors.DynaplanError`, or a bad option or argument that
click rejects) ends the command with a one-line message on stderr and exit code 2 — never a
traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import typer

from dynaplan.cli.console import PIPE_CLOSED_EXIT, PipeClosed, silence_stdout
from dynaplan.cli.plan import plan_command
from dynaplan.cli.reconfig import register as register_reconfig
from dynaplan.cli.replay import register as register_replay
from dynaplan.cli.sweep import register as register_sweep
from dynaplan.cli.profile import app as profile_app
from dynaplan.errors import DynaplanError

try:  # typer >= 0.20 vendors click as typer._click; older typer uses click itself
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as _click_errors

# Looked up once, never assumed: typer's vendored click has no Abort (typer.Abort is its own).
_USAGE_ERRORS = (_click_errors.UsageError,)
_CLICK_ERRORS = (_click_errors.ClickException,)
_ABORTS = tuple({typer.Abort, getattr(_click_errors, "Abort", typer.Abort)})

app = typer.Typer(
    name="dynaplan",
    help="Plan LLM inference clusters for energy and performance under latency SLOs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(profile_app, name="profile")
app.command("plan")(plan_command)
register_reconfig(app)
register_replay(app)
register_sweep(app)

try:  # the trace commands live in the workload package
    from dynaplan.cli.trace import app as trace_app
except ImportError:  # pragma: no cover - only while the workload layer is absent
    trace_app = None
if trace_app is not None:
    app.add_typer(trace_app, name="trace")


def _fail(message: str, code: int = 2) -> None:
    """Print ``message`` as one line on stderr and exit with ``code``."""
    print("dynaplan: error: " + " ".join(str(message).split()), file=sys.stderr)
    sys.exit(code)


def _pipe_closed() -> None:
    """The reader of stdout went away (``dynaplan plan | head -2``): end quietly."""
    silence_stdout()
    sys.exit(PIPE_CLOSED_EXIT)


def _stdout_id() -> tuple[int, int] | None:
    try:
        st = os.fstat(sys.stdout.fileno())
        return st.st_dev, st.st_ino
    except (OSError, ValueError, AttributeError):
        return None


def _stdout_closed(before: tuple[int, int] | None) -> bool:
    """Typer and rich answer a closed pipe (e.g. while printing help) with exit code 1, after
    wrapping stdout (typer) or pointing its descriptor at /dev/null (rich)."""
    return type(sys.stdout).__name__ == "PacifyFlushWrapper" or (before is not None and _stdout_id() != before)


def main() -> None:
    """Console-script entry point: every way a command can end is one line at most.

    Exit codes: 0 done; 1 the run failed (a failed independent check, an unexpected error);
    2 a user error (bad flag, file or value); 130 interrupted; 141 stdout closed by its reader.
    An unexpected exception (a bug) prints one line naming it; ``DYNAPLAN_TRACEBACK=1`` shows
    its traceback instead.
    """
    stdout_before = _stdout_id()
    try:
        rv = app(standalone_mode=False)
    except (PipeClosed, BrokenPipeError):
        _pipe_closed()
    except SystemExit:
        if _stdout_closed(stdout_before):
            _pipe_closed()
        raise
    except DynaplanError as exc:
        _fail(str(exc))
    except _USAGE_ERRORS as exc:  # unknown command or option, bad or missing value
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:  # a bare group: its help
            try:
                typer.echo(exc.ctx.get_help())
            except BrokenPipeError:
                _pipe_closed()
            sys.exit(exc.exit_code)
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _fail(exc.format_message() + hint, exc.exit_code)
    except _CLICK_ERRORS as exc:
        _fail(exc.format_message(), exc.exit_code)
    except _ABORTS:
        _fail("aborted", 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except MemoryError:
        _fail("out of memory; reduce the size of the input (servers, rate, trace length)", 1)
    except Exception as exc:  # a bug: one line, not a traceback (unless asked for)
        if os.environ.get("DYNAPLAN_TRACEBACK"):
            raise
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
        _fail(f"internal error{at}: {type(exc).__name__}: {exc} (a bug in dynaplan; rerun with "
              f"DYNAPLAN_TRACEBACK=1 for the traceback)", 1)
    sys.exit(rv if isinstance(rv, int) else 0)
