"""``dynaplan profile show|validate|export``.

Every user error raises :class:`dynaplan.errors.DynaplanError`; :func:`dynaplan.cli.main` turns
it into one line on stderr and exit code 2.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from dynaplan.cli.console import out_console
from dynaplan.cli.outputs import OutputSet

from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import DynaplanError
from dynaplan.profiles.profile import Profile

app = typer.Typer(help="Inspect, validate and export energy/latency profiles.", no_args_is_help=True)

_SUFFIX_FORMAT = {".csv": "csv", ".gz": "csv", ".parquet": "parquet"}


class ProfileFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"


def load_profile(path: Path | None, *, complete: bool = True) -> Profile:
    """The profile at ``path``, or the bundled default when ``path`` is None."""
    return Profile.default() if path is None else Profile.read(path, complete=complete)


def _fmt(x: float) -> str:
    """Compact numbers: whole units from 100 up, 3 significant digits below, never exponents."""
    if not np.isfinite(x):
        return "-"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}" if abs(x) >= 1e-3 else f"{x:.1e}"


def summary_table(profile: Profile) -> Table:
    """Models, hardware, TP degrees, clocks, classes, size and load range of a profile."""
    g = profile.groups
    df = profile.table
    t = Table(title=f"Profile {profile.source}", show_header=False, title_justify="left")
    t.add_column("field", style="bold")
    t.add_column("value")
    t.add_row("models", ", ".join(profile.models))
    t.add_row("hardware", ", ".join(sorted(g["hardware"].unique())))
    t.add_row("TP degrees", ", ".join(str(v) for v in sorted(g["tp"].unique())))
    for hw, sub in g.groupby("hardware", sort=True):
        t.add_row(f"clocks {hw} (MHz)", ", ".join(str(v) for v in sorted(sub["freq_mhz"].unique())))
    t.add_row("request classes", ", ".join(c for c in profile.classes.names if c in set(g["request_class"])))
    t.add_row("rows / groups", f"{len(df)} / {len(g)}")
    t.add_row("load range (req/s)", f"{_fmt(df['load_rps'].min())} .. {_fmt(df['load_rps'].max())}")
    t.add_row("power range (W)", f"{_fmt(df['power_w'].min())} .. {_fmt(df['power_w'].max())}")
    return t


def max_load_frame(profile: Profile, hardware: str | None = None) -> pd.DataFrame:
    """Max load under the default SLO at the max clock, and the least-energy clock at that load.

    One row per (model, hardware, tp, request_class). ``max_load_rps`` is 0 and the ``best_*``
    columns are NaN where even the max clock misses the SLO at the lightest profiled load (the
    table then prints "none").
    """
    ml = profile.max_load_under_slo(DEFAULT_SLOS)
    if hardware is not None:
        known = sorted(ml["hardware"].unique())
        if hardware not in known:
            raise DynaplanError(f"{profile.source}: no rows for hardware {hardware!r}; the profile has {known}")
        ml = ml[ml["hardware"] == hardware]
    keys = ["model", "hardware", "tp", "request_class"]
    top = ml["freq_mhz"] == ml.groupby(keys)["freq_mhz"].transform("max")
    at_max = ml[top].reset_index(drop=True)
    feasible = at_max["feasible"].to_numpy()
    out = at_max[keys + ["freq_mhz", "max_load_rps", "power_w", "energy_per_request_j"]].copy()
    out["best_freq_mhz"] = np.nan
    out["best_power_w"] = np.nan
    out["best_energy_per_request_j"] = np.nan
    if feasible.any():
        sub = at_max[feasible]
        best = profile.min_energy_clock(
            sub["max_load_rps"].to_numpy(), DEFAULT_SLOS,
            hardware=sub["hardware"].to_numpy(), tp=sub["tp"].to_numpy(),
            request_class=sub["request_class"].to_numpy(), model=sub["model"].to_numpy(),
        )
        out.loc[feasible, "best_freq_mhz"] = best["freq_mhz"].to_numpy(dtype=float)
        out.loc[feasible, "best_power_w"] = best["power_w"].to_numpy()
        out.loc[feasible, "best_energy_per_request_j"] = best["energy_per_request_j"].to_numpy()
    order = {c: i for i, c in enumerate(profile.classes.names)}
    out["_cls"] = out["request_class"].map(order)
    return out.sort_values(["model", "hardware", "tp", "_cls"]).drop(columns="_cls").reset_index(drop=True)


def max_load_tables(frame: pd.DataFrame) -> list[Table]:
    """One rich table per (model, hardware) from :func:`max_load_frame`."""
    tables = []
    for (model, hw), sub in frame.groupby(["model", "hardware"], sort=True):
        f_max = int(sub["freq_mhz"].max())
        t = Table(title=f"{model} on {hw}: max load under the default SLO at {f_max} MHz, "
                        "and the least-energy clock at that load", title_justify="left")
        for name in ("TP", "class", "max load\nreq/s", "power W\n@max clk", "J/req\n@max clk",
                     "best clk\nMHz", "power W\n@best", "J/req\n@best", "saving"):
            t.add_column(name, justify="left" if name == "class" else "right")
        for r in sub.itertuples(index=False):
            if r.max_load_rps > 0:
                saving = 1.0 - r.best_energy_per_request_j / r.energy_per_request_j
                cells = (_fmt(r.max_load_rps), _fmt(r.power_w), _fmt(r.energy_per_request_j),
                         str(int(r.best_freq_mhz)), _fmt(r.best_power_w),
                         _fmt(r.best_energy_per_request_j), f"{saving:.0%}")
            else:
                cells = ("none", "-", "-", "-", "-", "-", "-")
            t.add_row(f"TP{r.tp}", r.request_class, *cells)
        tables.append(t)
    return tables


def slo_table() -> Table:
    t = Table(title="Default P99 SLOs (DynamoLLM)", title_justify="left")
    t.add_column("class")
    t.add_column("TTFT ms", justify="right")
    t.add_column("TBT ms", justify="right")
    for name, slo in DEFAULT_SLOS.per_class.items():
        t.add_row(name, _fmt(slo.ttft_ms), _fmt(slo.tbt_ms))
    return t


@app.command("show")
def show(
    path: Annotated[Path | None, typer.Argument(help="Profile file (.csv, .csv.gz, .parquet); default: the bundled profile.")] = None,
    hardware: Annotated[str | None, typer.Option("--hardware", help="Only this hardware type, e.g. h100-80gb.")] = None,
    slo_default: Annotated[bool, typer.Option("--slo-default", help="Also print the default SLO table the limits use.")] = False,
) -> None:
    """Summarise a profile and, per (hardware, TP, class), the max load under the default SLO."""
    profile = load_profile(path)
    frame = max_load_frame(profile, hardware)
    console = out_console()
    console.print(summary_table(profile))
    if slo_default:
        console.print(slo_table())
    for t in max_load_tables(frame):
        console.print(t)


@app.command("validate")
def validate(
    path: Annotated[Path, typer.Argument(help="Profile file (.csv, .csv.gz, .parquet).")],
    partial: Annotated[bool, typer.Option("--partial", help="Accept a profile that lacks grid points a planner needs; count them.")] = False,
) -> None:
    """Check a profile file; print 'OK: N rows, G groups' or exit 2 naming the first problem."""
    profile = load_profile(path, complete=not partial)
    msg = f"OK: {len(profile)} rows, {len(profile.groups)} groups"
    if partial:
        missing = profile.missing_grid_points()
        msg += f"; {len(missing)} missing grid point(s)"
        if len(missing):
            first = missing.iloc[0]
            msg += (f", e.g. hardware={first['hardware']} tp={first['tp']} freq_mhz={first['freq_mhz']} "
                    f"request_class={first['request_class']}")
    typer.echo(msg)


@app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="Output file; its suffix (.csv, .csv.gz, .parquet) picks the format. "
                                        "An existing directory gets profile.csv (or .parquet) inside it.")],
    source: Annotated[Path | None, typer.Option("--from", help="Profile to export; default: the bundled profile.")] = None,
    fmt: Annotated[ProfileFormat | None, typer.Option("--format", help="csv or parquet; must agree with the suffix (added if OUT has none).")] = None,
) -> None:
    """Write a profile (the bundled default unless --from) as CSV or parquet."""
    if out.is_dir():
        out = out / ("profile." + (fmt.value if fmt is not None else "csv"))
    suffix = out.suffix.lower()
    if suffix == "":
        out = out.with_suffix("." + (fmt.value if fmt is not None else "csv"))
    elif suffix not in _SUFFIX_FORMAT:
        raise DynaplanError(f"{out}: unknown suffix {out.suffix!r}; use .csv, .csv.gz or .parquet")
    elif fmt is not None and _SUFFIX_FORMAT[suffix] != fmt.value:
        raise DynaplanError(f"{out}: suffix {out.suffix!r} does not match --format {fmt.value}")
    with OutputSet() as outs:
        outs.file(out, "OUT")
        profile = load_profile(source)
        outs.write(out, profile.write)
        outs.commit()
    typer.echo(f"wrote {len(profile)} rows to {out}")
