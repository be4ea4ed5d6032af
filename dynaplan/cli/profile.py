"""``dynaplan profile show|validate|export``."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Inspect, validate and export energy/latency profiles.", no_args_is_help=True)


@app.command("show")
def show() -> None:
    """Placeholder replaced below."""
