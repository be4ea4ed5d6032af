"""``dynaplan replay``: replay a trace through policies and compare energy, SLOs, carbon and cost.

Wire it into the app with :func:`register`. Every user error raises
:class:`dynaplan.errors.DynaplanError`; :func:`dynaplan.cli.main` prints it on one line and exits 2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from dynaplan.cli.console import out_console, progress
from dynaplan.cli.frames import windows_frame
from dynaplan.cli.options import build_options, check_rate_source, check_window
from dynaplan.cli.outputs import OutputSet
from dynaplan.cli.rates import PEAK_HELP, RATE_HELP, check_rate_flags, peak_rps, scaled, synthetic
from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import ValidationError
from dynaplan.limits import INVENTORY_SERVERS, REPLAY_EPOCHS
from dynaplan.profiles.profile import Profile
from dynaplan.replay.engine import (ReplayOptions, baseline_peak_instances, comparison_table, prepare, replay,
                                    scale_to_baseline)
from dynaplan.replay.grid import GridSeries, caiso_carbon_intensity, caiso_price, read_hourly_series
from dynaplan.replay.plots import PLOT_SUFFIXES
from dynaplan.replay.policies import POLICIES, make_policies
from dynaplan.workload.aggregate import parse_duration_s
from dynaplan.workload.loading import load_trace


AUTO_FILL = 0.5  # --rate auto: SinglePool sized for the trace's peak needs this share of the servers
POLICY_NAMES = ", ".join(POLICIES)


def _trace(trace: str, days: float | None, seed: int, rate: str, peak: float | None, servers: int, hardware: str,
           pkw: dict, window: str, bar):
    """The trace to replay and a note on how its rate was set; ``--window`` is checked against
    it before any work (rate scaling already replays it)."""
    rate = rate.strip().lower()
    mean = None if rate in ("auto", "none") else _rate_value(rate)
    check_rate_flags(mean, peak)
    if peak is not None and rate == "none":
        raise ValidationError("--rate none and --peak-rps: give one of them, not both")
    if days is not None:
        step = bar.add_task("generating", total=None)
        tr, how = synthetic(trace, days, seed, rate=mean, peak=peak)  # checks its size first
        bar.remove_task(step)
        check_window(tr, pkw["options"].window_s, "--window", window)
        return tr, how
    tr = load_trace(trace)
    check_window(tr, pkw["options"].window_s, "--window", window)
    if rate == "none" and peak is None:
        return tr, f"rate as recorded ({tr.mean_rate_rps:.1f} req/s mean)"
    if mean is not None or peak is not None:
        return scaled(tr, seed, rate=mean, peak=peak)
    check_rate_source(tr)
    step = bar.add_task("sizing rate", total=None)
    tr2, factor = scale_to_baseline(tr, AUTO_FILL * servers, prepare_kwargs=pkw, seed=seed, hardware=hardware,
                                    label=f"--servers {servers} (with --rate auto)")
    bar.remove_task(step)
    return tr2, (f"rate x{factor:.3g} ({tr2.mean_rate_rps:.1f} req/s mean; --rate auto) so that SinglePool, sized "
                 f"for the peak, needs {AUTO_FILL:.0%} of the {servers} servers")


def _rate_value(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValidationError(f"--rate {text!r}: expected auto, none or a mean rate in req/s") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValidationError(f"--rate {text!r}: expected a positive number of req/s")
    return v


def _grid(carbon: Optional[Path], carbon_column: str, price: Optional[Path], price_column: str,
          mode: str) -> GridSeries:
    c = read_hourly_series(carbon, carbon_column, unit="gCO2/kWh") if carbon else caiso_carbon_intensity()
    p = read_hourly_series(price, price_column, unit="USD/MWh") if price else caiso_price()
    return GridSeries(c, p, mode)


def results_table(df, title: str) -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("policy", "energy (kWh)", "vs SinglePool", "SLO met", "P99 TTFT (ms)", "P99 TBT (ms)",
                "avg servers", "carbon (kgCO2)", "cost (USD)"):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for name, r in df.iterrows():
        pct = r.get("energy_vs_baseline_pct")
        t.add_row(str(name), f"{r['energy_kwh']:,.1f}", "" if pct is None or math.isnan(pct) else f"{pct:+.1f}%",
                  f"{100 * r['slo_attainment']:.2f}%", f"{r['ttft_p99_ms']:,.0f}", f"{r['tbt_p99_ms']:,.1f}",
                  f"{r['avg_servers']:.1f}", f"{r['carbon_kg']:,.1f}", f"{r['cost_usd']:,.0f}")
    return t


def explain(tr, how: str, servers: int, hardware: str, gpus_per_server: int, static_sizing: str, peak_scale: float,
            single_pool_servers: float, results) -> list[str]:
    """What the table shows: the trace and its scale, the inventory, how the baselines were sized,
    and, when DynamoLLM does not beat SinglePool, why (the causes measured in docs/results.md)."""
    hours = tr.duration_s / 3600
    peak, mean = peak_rps(tr), tr.mean_rate_rps
    lines = [
        f"trace: {'SYNTHETIC' if tr.synthetic else 'measured'} {tr.name}, {hours:.2f} h, {len(tr):,} requests, "
        f"{mean:.1f} req/s mean, {peak:.1f} req/s 1-min peak ({peak / max(mean, 1e-12):.2f} x the mean); {how}",
        f"inventory: {servers} servers x {hardware} ({servers * gpus_per_server} GPUs); SinglePool (TP8 at the top "
        f"clock) needs {single_pool_servers:.1f} servers at the trace's peak",
        "baselines: SinglePool, MultiPool, ScaleShard and ScaleFreq are static, sized "
        + (f"for this trace's own peak, known in advance (--static-sizing peak)" if static_sizing == "peak" else
           f"for {peak_scale:.2f} x the trace's peak, so that SinglePool fills the {servers} servers "
           "(--static-sizing inventory)")
        + "; ScaleInst and DynamoLLM re-plan from forecasts; Oracle knows the future and pays no transitions (a bound)",
        "columns: GPU energy over the trace and its change vs SinglePool; share of requests within their TTFT and "
        "TBT SLOs; time-averaged servers; cost = server-hours x the server price + energy x the grid price",
    ]
    by = {r.policy: r.summary for r in results}
    sp, dy = by.get("SinglePool"), by.get("DynamoLLM")
    if sp is not None and dy is not None and dy.energy_kwh > 0.95 * sp.energy_kwh:
        why = [f"why DynamoLLM saves little here ({100 * (dy.energy_kwh / sp.energy_kwh - 1):+.1f}% energy):"]
        if static_sizing == "peak":
            why.append("the static baselines are sized for this very trace's peak, so they have nothing to give "
                       "back, while DynamoLLM must forecast with headroom;")
        if hours < 6:
            why.append(f"{hours:.1f} h of load moving {peak / max(mean, 1e-12):.2f} x peak-to-mean leaves little "
                       "variation to exploit — the savings come from fewer instances and lower clocks off-peak, "
                       "which a day or a week has (try --synthetic-days 1);")
        why.append("per-class pools must each cover their own class's peak (a drifting class mix costs them). "
                   "Try --static-sizing inventory; docs/results.md ('One hour') measures each cause.")
        lines.append(" ".join(why))
    if sp is not None and dy is not None and dy.cost_usd > 1.1 * sp.cost_usd:
        lines.append(f"cost: DynamoLLM keeps {dy.avg_servers:.1f} servers on average against SinglePool's "
                     f"{sp.avg_servers:.1f}, and cost counts server-hours")
    return lines


def replay_command(
    trace: Annotated[str, typer.Option("--trace", "-t", help="Bundled trace name or trace file.")] = "azure-conv-2023",
    policy: Annotated[str, typer.Option(help=f"Policies, comma-separated, or 'all': {POLICY_NAMES}.")] = "all",
    servers: Annotated[int, typer.Option(help="Servers in the inventory.")] = 40,
    hardware: Annotated[str, typer.Option(help="Hardware type of the inventory.")] = "h100-80gb",
    rate: Annotated[str, typer.Option(help="auto: scale the trace so that SinglePool, sized for its peak, needs "
                                      "half of --servers; none: as recorded (or the preset rate with "
                                      "--synthetic-days); or R, the m" + RATE_HELP[1:])] = "auto",
    peak_rps_: Annotated[Optional[float], typer.Option("--peak-rps", help=PEAK_HELP)] = None,
    static_sizing: Annotated[str, typer.Option(help="peak: static pools sized for the trace's peak; inventory: "
                                               "for the load at which SinglePool fills --servers.")] = "peak",
    synthetic_days: Annotated[Optional[float], typer.Option(help="Replay N synthetic days generated from "
                                                            "--trace instead.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of rate scaling, synthetic generation and the predictor.")] = 0,
    profile: Annotated[Optional[Path], typer.Option(help="Profile file (default: the bundled one).")] = None,
    window: Annotated[str, typer.Option(help="Instance-level window.")] = "5s",
    pool_epoch: Annotated[str, typer.Option(help="Pool-level period.")] = "5min",
    cluster_epoch: Annotated[str, typer.Option(help="Cluster-level period.")] = "30min",
    rate_window: Annotated[str, typer.Option(help="Trailing window of the rate that sets latency and power.")] = "30s",
    carbon: Annotated[Optional[Path], typer.Option(help="Hourly carbon-intensity CSV (gCO2/kWh; first column "
                                                   "UTC time). Default: bundled CAISO.")] = None,
    carbon_column: Annotated[str, typer.Option(help="Column of --carbon.")] = "avg_CI",
    price: Annotated[Optional[Path], typer.Option(help="Hourly electricity price CSV (USD/MWh). Default: bundled "
                                                  "CAISO.")] = None,
    price_column: Annotated[str, typer.Option(help="Column of --price.")] = "US-CAL-CISO",
    grid_mode: Annotated[str, typer.Option(help="hour_of_day or calendar.")] = "hour_of_day",
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for replay.csv (one row per policy), "
                                      "replay.json and windows.parquet (one row per policy and window).")] = Path(
        "replay-out"),
    plot: Annotated[Optional[Path], typer.Option(help="Write a figure here (.png, .svg, .pdf): cluster power by "
                                                 "policy and servers per pool of --plot-policy.")] = None,
    plot_policy: Annotated[str, typer.Option(help="Policy whose servers per pool are plotted.")] = "DynamoLLM",
) -> None:
    """Replay a trace through policies; print energy, SLO attainment, latency, servers, carbon and cost."""
    durations = {}
    for flag, text in (("--window", window), ("--pool-epoch", pool_epoch), ("--cluster-epoch", cluster_epoch),
                       ("--rate-window", rate_window)):
        try:
            durations[flag] = parse_duration_s(text)
        except ValueError as exc:
            raise ValidationError(f"{flag} {text!r}: {exc}") from None
    opts = build_options(
        lambda: ReplayOptions(window_s=durations["--window"], pool_epoch_s=durations["--pool-epoch"],
                              cluster_epoch_s=durations["--cluster-epoch"], rate_window_s=durations["--rate-window"],
                              predictor_seed=seed, grid_mode=grid_mode),
        {"window_s": ("--window", window), "pool_epoch_s": ("--pool-epoch", pool_epoch),
         "cluster_epoch_s": ("--cluster-epoch", cluster_epoch), "rate_window_s": ("--rate-window", rate_window),
         "grid_mode": ("--grid-mode", grid_mode)},
        rename_fields=True)
    if static_sizing not in ("peak", "inventory"):
        raise ValidationError(f"--static-sizing {static_sizing!r}: expected peak or inventory")
    if servers < 1:
        raise ValidationError(f"--servers {servers}: expected at least 1 server")
    INVENTORY_SERVERS.check(servers, f"--servers {servers}", "an inventory of")
    if not [n for n in policy.split(",") if n.strip()]:
        raise ValidationError(f"--policy {policy!r}: expected policy names, comma-separated, or all ({POLICY_NAMES})")
    labels = [p.label for p in make_policies(policy)]  # unknown names fail here, before any work
    if plot is not None and plot_policy.lower() not in {lb.lower() for lb in labels} and plot_policy != "DynamoLLM":
        raise ValidationError(f"--plot-policy {plot_policy!r}: not among the replayed policies {labels}")
    for flag, path, col, default in (("--carbon", carbon, carbon_column, "avg_CI"),
                                     ("--price", price, price_column, "US-CAL-CISO")):
        if path is None and col != default:
            raise ValidationError(f"{flag}-column {col!r}: only applies with {flag} FILE")
    with OutputSet() as outs:
        files = {n: outs.in_dir(out, n, "--out") for n in ("replay.csv", "replay.json", "windows.parquet")}
        outs.file(plot, "--plot", suffixes=PLOT_SUFFIXES)
        prof = Profile.default() if profile is None else Profile.read(profile)
        if hardware not in prof.hardware:
            raise ValidationError(f"--hardware {hardware!r}: unknown; the profile knows {sorted(prof.hardware)}")
        grid = _grid(carbon, carbon_column, price, price_column, grid_mode)
        pkw = dict(profile=prof, slos=DEFAULT_SLOS, inventory={hardware: servers}, options=opts, grid=grid)
        console = out_console()
        with progress("epochs") as bar:
            tr, how = _trace(trace, synthetic_days, seed, rate, peak_rps_, servers, hardware, pkw, window, bar)
            REPLAY_EPOCHS.check(tr.duration_s / opts.pool_epoch_s, f"--pool-epoch {pool_epoch}",
                                f"cuts the {tr.duration_s:g} s of trace {tr.name!r} into")
            tag = "[bold yellow]SYNTHETIC[/]" if tr.synthetic else "[green]measured[/]"
            if bar.console.is_terminal:  # the summary under the table says it again, for files and pipes
                bar.console.print(f"{tag} trace [bold]{tr.name}[/]: {tr.label}", highlight=False)
            step = bar.add_task("preparing", total=None)
            inp = prepare(tr, **pkw)
            bar.remove_task(step)
            gps = prof.hardware[hardware].gpus_per_server
            single_pool = baseline_peak_instances(inp, hardware) / max(gps // 8, 1)
            peak_scale = 1.0
            if static_sizing == "inventory":
                peak_scale = servers / max(single_pool, 1e-9)
            policies = make_policies(policy, peak_scale=peak_scale)
            results = []
            for pol in policies:
                task = bar.add_task(pol.label, total=None)
                results.append(replay(inp, pol, progress=lambda i, n, _t=task: bar.update(_t, completed=i, total=n)))
        df = comparison_table(results)
        scale = f"{tr.mean_rate_rps:.1f} req/s mean" + (", SYNTHETIC" if tr.synthetic else "")
        console.print(results_table(df, f"replay: {tr.name} ({tr.duration_s / 3600:.2f} h, {scale}), "
                                        f"{servers} x {hardware}"))
        for line in explain(tr, how, servers, hardware, gps, static_sizing, peak_scale, single_pool, results):
            console.print(line, highlight=False)
        csv = df.assign(trace=tr.label, synthetic=tr.synthetic)
        outs.write(files["replay.csv"], lambda tmp: csv.to_csv(tmp, float_format="%.6g"))
        doc = {"trace": tr.provenance(), "rate": how, "inventory": {hardware: servers},
               "static_sizing": static_sizing, "static_peak_scale": peak_scale, "options": opts.model_dump(),
               "grid": {"carbon": grid.carbon.source, "price": grid.price.source, "mode": grid.mode},
               "results": [json.loads(r.summary.model_dump_json()) for r in results]}
        outs.write_text(files["replay.json"], json.dumps(doc, indent=2, default=str))
        outs.write(files["windows.parquet"], lambda tmp: windows_frame(results).to_parquet(tmp, index=False))
        if plot is not None:
            from dynaplan.replay.plots import plot_replay

            title = (f"{'SYNTHETIC ' if tr.synthetic else ''}{tr.name}, {tr.duration_s / 3600:.2f} h at "
                     f"{tr.mean_rate_rps:.1f} req/s mean; {servers} x {hardware}; static baselines sized for "
                     + ("the trace's peak" if static_sizing == "peak" else f"{peak_scale:.2f} x its peak"))
            outs.write(plot, lambda tmp: plot_replay(results, tmp, pools_of=plot_policy, title=title,
                                                     note=f"{tr.label}; {how}"))
        written = outs.commit()
    console.print("written: " + ", ".join(str(p) for p in written), highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``replay`` to a typer app."""
    app.command("replay")(replay_command)


__all__ = ["explain", "register", "replay_command", "results_table"]
