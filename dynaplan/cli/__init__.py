"""The ``dynaplan`` command line: one typer app, a sub-app per area.

Every user error (a :class:`dynaplan.errors.DynaplanError`, or a bad option or argument that
click rejects) ends the command with a one-line message on stderr and exit code 2 — never a
traceback.
"""

from __future__ import annotations

import sys

import typer

from dynaplan.cli.plan import plan_command
from dynaplan.cli.reconfig import register as register_reconfig
from dynaplan.cli.replay import register as register_replay
from dynaplan.cli.profile import app as profile_app
from dynaplan.errors import DynaplanError

try:  # typer >= 0.20 vendors click as typer._click; older typer uses click itself
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as _click_errors

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


def main() -> None:
    """Console-script entry point."""
    try:
        rv = app(standalone_mode=False)
    except DynaplanError as exc:
        _fail(str(exc))
    except _click_errors.UsageError as exc:  # unknown command or option, bad or missing value
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:  # a bare group: its help
            typer.echo(exc.ctx.get_help())
            sys.exit(exc.exit_code)
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _fail(exc.format_message() + hint, exc.exit_code)
    except _click_errors.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except (_click_errors.Abort, typer.Abort):
        _fail("aborted", 1)
    sys.exit(rv if isinstance(rv, int) else 0)
