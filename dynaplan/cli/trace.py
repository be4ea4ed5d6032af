"""``dynaplan trace stats|classify|load|forecast|generate``.

Every command takes ``--trace NAME_OR_PATH`` (bundled ``azure-conv-2023``, ``azure-code-2023``,
or a CSV/parquet file); ``--synthetic-days N --seed S`` replaces it by a synthetic trace of N
days whose tokens come from it. The trace's label (``SYNTHETIC: ...`` or ``measured: ...``) is
printed first and written into every output: as ``trace`` and ``synthetic`` columns in table
CSVs, and, for ``classify``'s per-request table, in a sidecar ``<name>.meta.json`` (CSV; the CSV
itself is plain, for ``pd.read_csv``) or the parquet schema metadata. ``--plot FILE`` writes a
figure (.png, .svg or .pdf) wherever a command has one; every output is reserved before any work
and written only when the command succeeds (:mod:`dynaplan.cli.outputs`). User errors raise
:class:`dynaplan.errors.ValidationError`; :func:`dynaplan.cli.main` prints them on one line and
exits with code 2.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from dynaplan.cli.console import out_console, progress
from dynaplan.cli.options import check_window
from dynaplan.cli.outputs import OutputSet
from dynaplan.cli.rates import PEAK_HELP, RATE_HELP, synthetic
from dynaplan.cli.trace_figures import load_figure, save, stats_figure
from dynaplan.replay.plots import PLOT_SUFFIXES
from dynaplan.errors import ValidationError
from dynaplan.workload.aggregate import LoadTable, aggregate_load, epoch_peaks, parse_duration_s
from dynaplan.workload.classify import DEFAULT_PREDICTOR_ACCURACY, classify_trace
from dynaplan.workload.forecast import (
    EWMAForecaster,
    LastPeakForecaster,
    OracleForecaster,
    SeasonalForecaster,
    forecast_errors,
)
from dynaplan.workload.loading import load_trace
from dynaplan.workload.stats import trace_stats
from dynaplan.workload.synthetic import envelope_ratios, generate_trace
from dynaplan.workload.trace import PARQUET_METADATA_KEY, Trace, csv_sidecar, save_trace

app = typer.Typer(
    help="Load, generate, classify and aggregate request traces.", no_args_is_help=True, add_completion=False
)

TraceOpt = Annotated[
    str, typer.Option("--trace", "-t", help="Bundled name (azure-conv-2023, azure-code-2023) or CSV/parquet path.")
]
DaysOpt = Annotated[
    Optional[float], typer.Option("--synthetic-days", help="Generate N days from --trace instead of using it.")
]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="Seed of the generator and of the predictor.")]
RepairOpt = Annotated[bool, typer.Option("--repair", help="Drop invalid rows and sort instead of failing.")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the table to this CSV file.")]
PlotOpt = Annotated[Optional[Path], typer.Option("--plot", help="Write a figure here (.png, .svg or .pdf).")]


class ClassSource(str, Enum):
    true = "true"
    predicted = "predicted"


def _console() -> Console:
    return out_console()


def _get_trace(trace: str, days: float | None, seed: int, repair: bool) -> Trace:
    with progress() as bar:
        step = bar.add_task("loading", total=None)
        tr = load_trace(trace, repair=repair)
        if days is not None:
            bar.update(step, description="generating")
            tr = generate_trace(tr, days=days, seed=seed)  # bundled names keep their preset; size checked first
    return tr


def _busy(what: str):
    """A spinner on stderr while a step runs (only on a terminal)."""
    bar = progress()
    bar.add_task(what, total=None)
    return bar


def _header(console: Console, tr: Trace) -> None:
    tag = "[bold yellow]SYNTHETIC[/]" if tr.synthetic else "[green]measured[/]"
    console.print(f"{tag} trace [bold]{tr.name}[/]: {tr.label}", highlight=False)
    if tr.repairs is not None and tr.repairs.actions:
        console.print(f"[yellow]repairs:[/] {tr.repairs}", highlight=False)


def _fmt(x) -> str:
    if isinstance(x, (int, np.integer)):
        return f"{x:,}"
    x = float(x)
    if not np.isfinite(x):
        return "-"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _table(df: pd.DataFrame, title: str) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column(df.index.name or "", style="bold")
    for c in df.columns:
        t.add_column(str(c), justify="right")
    for idx, row in df.iterrows():
        t.add_row(str(idx), *(_fmt(v) for v in row.to_numpy()))
    return t


def _labelled(df: pd.DataFrame, tr: Trace) -> pd.DataFrame:
    """A (small) table with the provenance columns ``trace`` and ``synthetic``."""
    frame = df.reset_index()
    frame["trace"] = tr.label
    frame["synthetic"] = tr.synthetic
    return frame


def _write_table(outs: OutputSet, df: pd.DataFrame, out: Path, tr: Trace) -> None:
    frame = _labelled(df, tr)
    outs.write(out, lambda tmp: frame.to_csv(tmp, index=False))


STATS_FILES = ("summary.csv", "class_mix.csv", "token_percentiles.csv")


@app.command("stats")
def stats(trace: TraceOpt = "azure-conv-2023", synthetic_days: DaysOpt = None, seed: SeedOpt = 0,
          repair: RepairOpt = False,
          out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Directory to write every table to: "
                                                      + ", ".join(STATS_FILES) + ".")] = None,
          plot: PlotOpt = None) -> None:
    """Size, rate, class mix and token percentiles of a trace."""
    if out is not None and out.name.lower().endswith((".csv", ".parquet", ".json", ".gz")):
        raise ValidationError(f"--out {out}: stats writes {len(STATS_FILES)} tables ({', '.join(STATS_FILES)}) into a "
                              "directory; give a directory name")
    with OutputSet() as outs:
        files = {n: outs.in_dir(out, n, "--out") for n in STATS_FILES} if out is not None else {}
        outs.file(plot, "--plot", suffixes=PLOT_SUFFIXES)
        console = _console()
        tr = _get_trace(trace, synthetic_days, seed, repair)
        _header(console, tr)
        st = trace_stats(tr)
        rows = {"requests": st.n_requests, "start_utc": "-" if st.start is None else str(st.start),
                "duration_s": st.duration_s, "mean_rate_rps": st.mean_rate_rps,
                "rows_sharing_a_timestamp": st.n_tied_timestamps, "synthetic": st.synthetic}
        summary = Table(show_header=False, title="Summary", title_justify="left")
        summary.add_column("field", style="bold")
        summary.add_column("value")
        summary.add_row("requests", f"{st.n_requests:,}")
        summary.add_row("start (UTC)", rows["start_utc"])
        summary.add_row("duration (s)", f"{st.duration_s:,.1f}")
        summary.add_row("mean rate (req/s)", f"{st.mean_rate_rps:.4g}")
        summary.add_row("rows sharing a timestamp", f"{st.n_tied_timestamps:,}")
        summary.add_row("synthetic", str(st.synthetic))
        console.print(summary)
        console.print(_table(st.class_mix, "Class mix"))
        console.print(_table(st.token_percentiles, "Token percentiles"))
        if files:
            frame = pd.DataFrame([{**rows, "trace": tr.label}])
            outs.write(files["summary.csv"], lambda tmp: frame.to_csv(tmp, index=False))
            _write_table(outs, st.class_mix, files["class_mix.csv"], tr)
            _write_table(outs, st.token_percentiles, files["token_percentiles.csv"], tr)
        if plot is not None:
            save(outs, stats_figure(tr, st), plot)
        for path in outs.commit():
            console.print(f"wrote {path}", highlight=False)


@app.command("classify")
def classify(trace: TraceOpt = "azure-conv-2023", synthetic_days: DaysOpt = None, seed: SeedOpt = 0,
             repair: RepairOpt = False,
             accuracy: Annotated[float, typer.Option(help="Predictor accuracy (output bin).")] = DEFAULT_PREDICTOR_ACCURACY,
             over_fraction: Annotated[float, typer.Option(help="Share of misses predicted too long.")] = 0.5,
             out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Per-request table with true and "
                                                         "predicted class: .csv (plain; provenance in "
                                                         "<name>.meta.json beside it) or .parquet (provenance in "
                                                         "its metadata).")] = None,
             ) -> None:
    """True vs predicted class of every request (confusion matrix)."""
    with OutputSet() as outs:
        outs.file(out, "--out", suffixes=(".csv", ".parquet"))
        is_csv = out is not None and out.name.lower().endswith(".csv")
        meta_path = outs.file(out.with_name(out.name[:-4] + ".meta.json"), "--out (metadata)") if is_csv else None
        console = _console()
        tr = _get_trace(trace, synthetic_days, seed, repair)
        _header(console, tr)
        with _busy("classifying"):
            c = classify_trace(tr, accuracy=accuracy, over_fraction=over_fraction, seed=seed)
        conf = c.confusion()
        console.print(_table(conf, f"Requests by true (rows) and predicted (columns) class; "
                                   f"accuracy {c.measured_accuracy:.3f} (target {accuracy:g}, seed {seed})"))
        if out is not None:
            names = np.asarray(c.names)
            frame = pd.DataFrame({
                "arrival_s": tr.arrival_s, "input_tokens": tr.input_tokens, "output_tokens": tr.output_tokens,
                "true_class": pd.Categorical.from_codes(c.true_class, names),
                "predicted_class": pd.Categorical.from_codes(c.predicted_class, names),
            })
            meta = {**tr.provenance(), "predictor_accuracy": accuracy, "predictor_seed": seed,
                    "measured_accuracy": c.measured_accuracy}
            text = json.dumps(meta, sort_keys=True, default=str)
            if is_csv:
                outs.write(out, lambda tmp: frame.to_csv(tmp, index=False))
                outs.write_text(meta_path, text + "\n")
            else:
                outs.write(out, lambda tmp: _parquet_with_meta(frame, tmp, text))
        for path in outs.commit():
            console.print(f"wrote {path}", highlight=False)


def _parquet_with_meta(frame: pd.DataFrame, path: Path, meta: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md[PARQUET_METADATA_KEY] = meta.encode()
    pq.write_table(table.replace_schema_metadata(md), path)


def _complete_last_window(lt: LoadTable, tr: Trace) -> tuple[LoadTable, float]:
    """The rates (the library divides a partial last window by the time it covers already) and
    the end of the last window the trace covers (s)."""
    n = len(lt.load_rps)
    end = n * lt.window_s
    if lt.peak_window_s is not None or n == 0:
        return lt, min(end, max(tr.duration_s, (n - 1) * lt.window_s)) if n else end
    last = (n - 1) * lt.window_s
    covered = tr.duration_s - last
    if not (0 < covered < lt.window_s - 1e-9):
        return lt, end
    return lt, last + covered


def _duration_s(text: str, flag: str) -> float:
    """Seconds of a duration flag; a bad one is refused naming the flag."""
    try:
        return parse_duration_s(text)
    except ValueError as exc:
        raise ValidationError(f"{flag} {text!r}: {exc}") from None


def _load_table(tr: Trace, window: str, epoch: str | None, classes: ClassSource, accuracy: float, seed: int):
    idx = None
    if classes == ClassSource.predicted:
        idx = classify_trace(tr, accuracy=accuracy, seed=seed).predicted_class
    if epoch is None:
        return aggregate_load(tr, idx, window_s=window)
    return epoch_peaks(tr, idx, epoch_s=epoch, inner_window_s=window)


WindowOpt = Annotated[str, typer.Option("--window", "-w", help="Window, e.g. 5s, 5min, 30min.")]
EpochOpt = Annotated[Optional[str], typer.Option("--epoch", help="Report the peak --window rate within each epoch (e.g. 30min).")]
ClassesOpt = Annotated[ClassSource, typer.Option("--classes", help="Aggregate by true or predicted class.")]


@app.command("load")
def load(trace: TraceOpt = "azure-conv-2023", synthetic_days: DaysOpt = None, seed: SeedOpt = 0,
         repair: RepairOpt = False, window: WindowOpt = "5min", epoch: EpochOpt = None,
         classes: ClassesOpt = ClassSource.true,
         accuracy: Annotated[float, typer.Option(help="Predictor accuracy for --classes predicted.")] = DEFAULT_PREDICTOR_ACCURACY,
         out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Long CSV: window_start_s, class, rates.")] = None,
         plot: Annotated[Optional[Path], typer.Option("--plot", help="Figure of per-class load over time (.png, "
                                                      ".svg or .pdf).")] = None,
         ) -> None:
    """Per-class request and token rates per window (or per-epoch peaks with --epoch).

    A last window the trace covers only in part is divided by the time it covers."""
    with OutputSet() as outs:
        outs.file(out, "--out", suffixes=(".csv",))
        outs.file(plot, "--plot", suffixes=PLOT_SUFFIXES)
        console = _console()
        tr = _get_trace(trace, synthetic_days, seed, repair)
        _header(console, tr)
        check_window(tr, _duration_s(window, "--window"), "--window", window)
        if epoch is not None:
            _duration_s(epoch, "--epoch")
        with _busy("aggregating"):
            lt = _load_table(tr, window, epoch, classes, accuracy, seed)
        lt, end_s = _complete_last_window(lt, tr)
        what = f"peak {_fmt(lt.peak_window_s)} s rate per {_fmt(lt.window_s)} s epoch" if lt.peak_window_s else \
            f"mean rate per {_fmt(lt.window_s)} s window"
        rps = lt.load_rps
        summary = pd.DataFrame(
            {"mean_rps": rps.mean(), "p50_rps": rps.median(), "max_rps": rps.max(),
             "mean_input_tok_s": lt.input_tokens_per_s.mean(), "mean_output_tok_s": lt.output_tokens_per_s.mean()}
        )
        summary.index.name = "class"
        console.print(_table(summary, f"{classes.value} classes, {what}, {len(rps)} windows"))
        if out is not None:
            _write_table(outs, lt.long(), out, tr)
        if plot is not None:
            kind = "SYNTHETIC trace" if tr.synthetic else "measured trace"
            title = f"Load by {classes.value} class: {what} ({len(rps)} windows), {kind} {tr.name}"
            save(outs, load_figure(lt, end_s, title, tr.label), plot)
        for path in outs.commit():
            console.print(f"wrote {path}", highlight=False)


@app.command("forecast")
def forecast(trace: TraceOpt = "azure-conv-2023", synthetic_days: DaysOpt = None, seed: SeedOpt = 0,
             repair: RepairOpt = False,
             epoch: Annotated[str, typer.Option("--epoch", help="Epoch length, e.g. 30min.")] = "30min",
             window: Annotated[str, typer.Option("--window", "-w", help="Inner window of the peak.")] = "1min",
             headroom: Annotated[float, typer.Option(help="Headroom of the practical forecasters.")] = 0.1,
             out: OutOpt = None) -> None:
    """Forecast error of the last-peak, EWMA, seasonal and oracle forecasters on a trace."""
    outs = OutputSet()
    outs.file(out, "--out", suffixes=(".csv",))
    console = _console()
    tr = _get_trace(trace, synthetic_days, seed, repair)
    _header(console, tr)
    check_window(tr, _duration_s(window, "--window"), "--window", window)
    _duration_s(epoch, "--epoch")
    peaks = epoch_peaks(tr, epoch_s=epoch, inner_window_s=window).load_rps
    if len(peaks) < 2:
        raise ValidationError(f"trace {tr.name!r} has {len(peaks)} epoch(s) of {epoch}; forecasting needs 2 or more")
    day = max(1, int(round(86400 / parse_duration_s(epoch))))
    rows = []
    for f in (LastPeakForecaster(headroom), EWMAForecaster(0.5, headroom), SeasonalForecaster(day, 1, headroom),
              OracleForecaster(peaks)):
        err = forecast_errors(f, peaks)
        err.insert(0, "forecaster", f.name)
        rows.append(err)
    table = pd.concat(rows).reset_index().set_index(["forecaster", "class"])
    overall = table.groupby(level="forecaster", sort=False)[
        ["mean_over_forecast", "mean_under_forecast", "under_fraction", "mape"]].mean()
    console.print(_table(overall, f"Mean over classes of per-class forecast error (req/s), {len(peaks)} epochs"))
    with outs:
        if out is not None:
            _write_table(outs, table, out, tr)
        for path in outs.commit():
            console.print(f"wrote {path}", highlight=False)


@app.command("generate")
def generate(source: Annotated[str, typer.Option("--source", "--trace", "-t", help="Token source and preset.")] = "azure-conv-2023",
             days: Annotated[float, typer.Option("--days", "--synthetic-days", help="Days to generate.")] = 7.0,
             seed: SeedOpt = 0,
             rate: Annotated[Optional[float], typer.Option("--rate", help=RATE_HELP + " Default: the preset's "
                                                           "rate (a week's mean of the Azure 2024 trace).")] = None,
             peak: Annotated[Optional[float], typer.Option("--peak-rps", help=PEAK_HELP)] = None,
             out: Annotated[Optional[Path], typer.Option("--out", "-o", help=".csv, .csv.gz or .parquet.")] = None,
             ) -> None:
    """Generate a synthetic trace (seeded) and write it; prints its measured envelope."""
    from dynaplan.cli.rates import peak_rps

    if out is not None and not out.name.lower().endswith((".csv", ".csv.gz", ".parquet", ".pq")):
        raise ValidationError(f"--out {out}: unknown trace format; use .csv, .csv.gz or .parquet")
    with OutputSet() as outs:
        outs.file(out, "--out")
        is_csv = out is not None and out.name.lower().endswith((".csv", ".csv.gz"))
        meta_path = outs.file(csv_sidecar(out), "--out (metadata)") if is_csv else None
        console = _console()
        with _busy("generating"):
            # checks the size (before loading, for a preset or --rate) and, for a file, that it has a rate
            tr, how = synthetic(source, days, seed, rate=rate, peak=peak)
        _header(console, tr)
        t = Table(show_header=False, title="Synthetic trace", title_justify="left")
        t.add_column("field", style="bold")
        t.add_column("value")
        t.add_row("requests", f"{len(tr):,}")
        t.add_row("mean rate (req/s)", f"{tr.mean_rate_rps:.4g}")
        t.add_row("1-min peak rate (req/s)", f"{peak_rps(tr):.4g}")
        t.add_row("rate", how)
        if tr.duration_s >= 2 * 3600:
            p2m, p2v = envelope_ratios(tr)
            t.add_row("hourly peak/mean", f"{p2m:.3f}")
            t.add_row("hourly peak/valley", f"{p2v:.3f}")
        console.print(t)
        if out is not None:
            with _busy("writing"):
                if is_csv:
                    outs.write(out, lambda tmp: save_trace(tr, tmp, sidecar=False))
                    outs.write_text(meta_path, json.dumps(tr.provenance(), sort_keys=True) + "\n")
                else:
                    outs.write(out, lambda tmp: save_trace(tr, tmp))
        for path in outs.commit():
            console.print(f"wrote {path}", highlight=False)
