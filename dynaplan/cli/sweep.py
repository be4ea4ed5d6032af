"""``dynaplan sweep``: run a sweep spec on Dask, or report on a finished one.

    dynaplan sweep SPEC --out DIR [--scheduler ADDR] [--workers N]   # run (resumes when DIR has rows)
    dynaplan sweep report DIR [--plot] [--metric M] [--x AXIS] [--by AXIS]

Wire it into the app with :func:`register`. Progress (done / failed / remaining, ETA) goes to
stderr on a terminal; the summary table to stdout. Exit codes: 0 every scenario ok, 1 some
scenario failed (its error is in the ``error`` column), 2 a user error, 130 interrupted (the
rows written so far stay; the same command resumes).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from dynaplan.cli.console import err_console, out_console
from dynaplan.errors import ValidationError
from dynaplan.sweep.engine import run_sweep
from dynaplan.sweep.report import label, read_meta, standard_figures, summary
from dynaplan.sweep.spec import read_spec
from dynaplan.sweep.store import STATUS_OK, read_results

REPORT = "report"
FIGURES = "_figures"


def _progress() -> Progress:
    console = err_console()
    return Progress(TextColumn("{task.description:>10}"), BarColumn(),
                    TextColumn("done {task.fields[done]}  failed {task.fields[failed]}  remaining "
                               "{task.fields[remaining]}"),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=console, transient=True, disable=not console.is_terminal)


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:,.4g}"
    return str(v)


def summary_table(df: pd.DataFrame, meta: dict, title: str) -> tuple[Table, Table | None, str]:
    """The metrics table, a table of the failures (or None) and a line of counts."""
    counts, stats = summary(df, meta)
    t = Table(title=title, title_justify="left")
    for col in stats.columns:
        t.add_column(col, justify="left" if col in ("metric", "at min") else "right")
    for _, r in stats.iterrows():
        t.add_row(*(_fmt(r[c]) for c in stats.columns))
    failed = df[df["status"] != STATUS_OK]
    ft = None
    if len(failed):
        ft = Table(title=f"failed scenarios ({len(failed)})", title_justify="left")
        ft.add_column("scenario_id")
        ft.add_column("error")
        for _, r in failed.head(10).iterrows():
            ft.add_row(str(r["scenario_id"]), str(r["error"]))
    line = f"{len(df)} scenarios: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return t, ft, line


def _print_summary(df: pd.DataFrame, meta: dict, title: str) -> int:
    console = out_console()
    t, ft, line = summary_table(df, meta, title)
    console.print(t)
    if ft is not None:
        console.print(ft)
    console.print(line, highlight=False)
    return int((df["status"] != STATUS_OK).sum())


def _run(spec_path: Path, out: Path, scheduler: str | None, workers: int | None, resume: bool,
         retry_failed: bool) -> int:
    spec = read_spec(spec_path)  # every problem of the spec, before a cluster starts
    with _progress() as bar:
        task = bar.add_task("sweep", total=None, done=0, failed=0, remaining="?")
        seen = {}

        def on_row(row: dict, c: dict) -> None:
            seen.update(c)
            bar.update(task, total=c["total"] - c["skipped"], completed=c["done"] + c["failed"], done=c["done"],
                       failed=c["failed"], remaining=c["remaining"])

        try:
            df = run_sweep(spec, out, workers=workers, scheduler=scheduler, resume=resume,
                           retry_failed=retry_failed, progress=on_row)
        except KeyboardInterrupt:
            bar.stop()
            print(interrupted_line(spec, out), file=sys.stderr)
            raise typer.Exit(130) from None
    failed = _print_summary(df, read_meta(out), f"sweep {spec.name}: {spec.kind}, {len(df)} scenarios -> {out}")
    out_console().print(f"this run: {seen['done'] + seen['failed']} scenarios run ({seen['failed']} failed), "
                        f"{seen['skipped']} already in {out}", highlight=False)
    return 1 if failed else 0


def interrupted_line(spec, out: Path) -> str:
    """The one line of an interrupted sweep: how many of its scenarios have their row in ``out``
    (read from disk, so exact whenever the interrupt came) and how to resume."""
    from dynaplan.sweep.expand import expand
    from dynaplan.sweep.kinds import get_kind
    from dynaplan.sweep.store import ResultStore

    ids = [sc.scenario_id for sc in expand(spec)]
    try:
        status = ResultStore(out, get_kind(spec.kind), spec.kept_metrics()).finished()
    except ValidationError:  # out holds another sweep's rows: none of this one is there
        status = {}
    mine = [status[i] for i in ids if i in status]
    failed = sum(st != STATUS_OK for st in mine)
    failed = f" ({failed} failed)" if failed else ""
    return (f"dynaplan: interrupted; {len(mine)} of {len(ids)} scenarios finished{failed}, their rows kept in "
            f"{out}; run the same command again to resume the other {len(ids) - len(mine)}")


def _report(folder: Path, plot: bool, metric: str | None, x: str | None, by: str | None) -> int:
    df = read_results(folder)
    meta = read_meta(folder)
    name = (meta.get("spec") or {}).get("name", folder.name)
    _print_summary(df, meta, f"sweep {name}: {len(df)} scenarios in {folder}")
    if plot:
        paths = standard_figures(df, meta, folder / FIGURES, metric=metric, x=x, by=by)
        out_console().print("written: " + ", ".join(str(p) for p in paths), highlight=False)
    return 0


def sweep_command(
    spec: Annotated[str, typer.Argument(metavar="SPEC", help="Sweep spec (.toml, .yaml), or 'report' "
                                        "to report on DIR.", show_default=False)],
    folder: Annotated[Optional[Path], typer.Argument(metavar="DIR", help="With 'report': the results "
                                                     "folder.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Results folder: one parquet file per "
                                                "scenario; pandas.read_parquet(DIR) reads them all.")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Address of a running Dask scheduler "
                                                     "(tcp://host:8786); default: a LocalCluster here.")] = None,
    workers: Annotated[Optional[int], typer.Option(min=0, help="Worker processes of the LocalCluster "
                                                   "(default: the usable CPUs); 0: run in this process.")] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Skip scenarios already in --out "
                                         "(--no-resume re-runs and replaces them).")] = True,
    retry_failed: Annotated[bool, typer.Option(help="Re-run the scenarios recorded as failed.")] = False,
    plot: Annotated[bool, typer.Option(help="With 'report': write the standard figures to DIR/_figures.")] = False,
    metric: Annotated[Optional[str], typer.Option(help="With 'report': metric to plot (default cost_usd).")] = None,
    x: Annotated[Optional[str], typer.Option("--x", help="With 'report': axis on the x axis.")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="With 'report': one line per value of this axis.")] = None,
) -> None:
    """Run a sweep of scenarios (resumable), or 'dynaplan sweep report DIR --plot' on its results."""
    if spec == REPORT and not Path(REPORT).is_file():
        folder = folder or out
        if folder is None:
            raise ValidationError("sweep report: give the results folder (dynaplan sweep report DIR)")
        raise typer.Exit(_report(folder, plot, metric, x, by))
    if folder is not None:
        raise ValidationError(f"sweep {spec}: unexpected argument {str(folder)!r} (the results folder is --out DIR)")
    if out is None:
        raise ValidationError("sweep: give --out DIR, the folder of the results")
    for flag, v in (("--plot", plot or None), ("--metric", metric), ("--x", x), ("--by", by)):
        if v is not None:
            raise ValidationError(f"{flag}: only with 'dynaplan sweep report DIR'")
    raise typer.Exit(_run(Path(spec), out, scheduler, workers, resume, retry_failed))


def register(app: typer.Typer) -> None:
    """Add ``sweep`` to a typer app."""
    app.command("sweep")(sweep_command)


__all__ = ["interrupted_line", "register", "summary_table", "sweep_command"]
