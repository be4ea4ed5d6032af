"""Where the commands print: tables on stdout, progress on stderr, a closed pipe ends quietly.

* :func:`out_console` prints tables. On a terminal it takes the terminal's width; redirected to a
  file or a pipe it is :data:`WIDE` columns wide, so that no table is cut or wrapped
  (``dynaplan plan > plan.txt`` keeps every column).
* :func:`progress` is a rich progress bar on stderr (stdout stays clean for tables); it draws
  only on a terminal.
* A closed stdout (``dynaplan plan | head -2``) raises :class:`PipeClosed` from the console;
  :func:`dynaplan.cli.main` ends the command quietly with exit code 141 (128 + SIGPIPE), as a
  Unix tool killed by SIGPIPE does.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

WIDE = 400
"""Columns of a console that does not print to a terminal (wider than any dynaplan table)."""

PIPE_CLOSED_EXIT = 141
"""Exit code when stdout is closed by the reader (128 + SIGPIPE)."""


class PipeClosed(Exception):
    """Stdout was closed by its reader."""


def silence_stdout() -> None:
    """Point stdout's descriptor at /dev/null, so the interpreter's last flush cannot fail."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (e.g. under a test runner)
        pass


class _Console(Console):
    def on_broken_pipe(self) -> None:
        self.quiet = True
        silence_stdout()
        raise PipeClosed()


def out_console() -> Console:
    """The console for tables and results (stdout); see the module docstring."""
    tty = sys.stdout.isatty()
    return _Console(width=None if tty else WIDE, soft_wrap=False)


def err_console() -> Console:
    """The console for progress and notes (stderr)."""
    return Console(stderr=True)


def progress(unit: str = "") -> Progress:
    """A transient progress bar on stderr: description, bar, done/total, elapsed and remaining time."""
    cols = [TextColumn("{task.description:>14}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        cols.append(TextColumn(unit))
    cols += [TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    console = err_console()
    return Progress(*cols, console=console, transient=True, disable=not console.is_terminal)


__all__ = ["PIPE_CLOSED_EXIT", "PipeClosed", "WIDE", "err_console", "out_console", "progress", "silence_stdout"]
