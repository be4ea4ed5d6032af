"""The ``dynaplan`` command line: one typer app, a sub-app per area.

Every user error (a :class:`dynaplan.errors.DynaplanError`) ends the command with a one-line
message on stderr and exit code 2 — never a traceback.
"""

from __future__ import annotations

import sys

import typer

from dynaplan.cli.plan import plan_command
from dynaplan.cli.reconfig import register as register_reconfig
from dynaplan.cli.replay import register as register_replay
from dynaplan.cli.profile import app as profile_app
from dynaplan.errors import DynaplanError

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


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except DynaplanError as exc:
        print(f"dynaplan: error: {exc}", file=sys.stderr)
        sys.exit(2)
