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
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dynaplan.cli.options import build_options, check_out_dir, check_rate_source, check_window
from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import ValidationError
from dynaplan.limits import INVENTORY_SERVERS, REPLAY_EPOCHS
from dynaplan.profiles.profile import Profile
from dynaplan.replay.engine import (ReplayOptions, baseline_peak_instances, comparison_table, prepare, replay,
                                    scale_to_baseline)
from dynaplan.replay.grid import GridSeries, caiso_carbon_intensity, caiso_price, read_hourly_series
from dynaplan.replay.load import scale_trace
from dynaplan.replay.policies import make_policies
from dynaplan.workload.aggregate import parse_duration_s
from dynaplan.workload.loading import load_trace
from dynaplan.workload.synthetic import generate_trace


AUTO_FILL = 0.5  # --rate auto: SinglePool sized for the trace's peak needs this share of the servers


def _trace(trace: str, days: float | None, seed: int, rate: str, servers: int, hardware: str, pkw: dict,
           window: str):
    """The trace to replay and a note on how its rate was set; ``--window`` is checked against
    it before any work (rate scaling already replays it)."""
    tr = load_trace(trace)
    rate = rate.strip().lower()
    if days is not None:
        mean = None if rate in ("auto", "none") else _rate_value(rate)
        tr = generate_trace(tr, days=days, seed=seed, mean_rate_rps=mean)  # checks its size first
        check_window(tr, pkw["options"].window_s, "--window", window)
        return tr, "synthetic trace generated at " + (f"{mean:g} req/s" if mean else "its preset mean rate")
    check_window(tr, pkw["options"].window_s, "--window", window)
    if rate == "none":
        return tr, "rate as in the trace"
    check_rate_source(tr)
    if rate == "auto":
        tr2, factor = scale_to_baseline(tr, AUTO_FILL * servers, prepare_kwargs=pkw, seed=seed, hardware=hardware,
                                        label=f"--servers {servers} (with --rate auto)")
        return tr2, (f"rate x{factor:.3g} ({tr2.mean_rate_rps:.1f} req/s mean) so that SinglePool, sized for the "
                     f"peak, needs {AUTO_FILL:.0%} of the {servers} servers")
    value = _rate_value(rate)
    return (scale_trace(tr, value / tr.mean_rate_rps, seed=seed, label=f"--rate {rate}"),
            f"rate scaled to {value:g} req/s mean")


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


def replay_command(
    trace: Annotated[str, typer.Option("--trace", "-t", help="Bundled trace name or trace file.")] = "azure-conv-2023",
    policy: Annotated[str, typer.Option(help="Policies, comma-separated, or 'all'.")] = "all",
    servers: Annotated[int, typer.Option(help="Servers in the inventory.")] = 40,
    hardware: Annotated[str, typer.Option(help="Hardware type of the inventory.")] = "h100-80gb",
    rate: Annotated[str, typer.Option(help="auto (scale so SinglePool, sized for the peak, needs half of "
                                      "--servers), none, or a mean rate in req/s.")] = "auto",
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
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for replay.csv, replay.json (and PNGs).")] = Path(
        "replay-out"),
    plot: Annotated[bool, typer.Option(help="Write power_by_policy.png and servers_per_pool.png.")] = False,
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
        raise ValidationError(f"--policy {policy!r}: expected policy names, comma-separated, or all")
    labels = [p.label for p in make_policies(policy)]  # unknown names fail here, before any work
    if plot and plot_policy.lower() not in {lb.lower() for lb in labels} and plot_policy != "DynamoLLM":
        raise ValidationError(f"--plot-policy {plot_policy!r}: not among the replayed policies {labels}")
    for flag, path, col, default in (("--carbon", carbon, carbon_column, "avg_CI"),
                                     ("--price", price, price_column, "US-CAL-CISO")):
        if path is None and col != default:
            raise ValidationError(f"{flag}-column {col!r}: only applies with {flag} FILE")
    check_out_dir(out, "--out")
    prof = Profile.default() if profile is None else Profile.read(profile)
    grid = _grid(carbon, carbon_column, price, price_column, grid_mode)
    pkw = dict(profile=prof, slos=DEFAULT_SLOS, inventory={hardware: servers}, options=opts, grid=grid)
    console = Console(width=140)
    tr, how = _trace(trace, synthetic_days, seed, rate, servers, hardware, pkw, window)
    REPLAY_EPOCHS.check(tr.duration_s / opts.pool_epoch_s, f"--pool-epoch {pool_epoch}",
                        f"cuts the {tr.duration_s:g} s of trace {tr.name!r} into")
    tag = "[bold yellow]SYNTHETIC[/]" if tr.synthetic else "[green]measured[/]"
    console.print(f"{tag} trace [bold]{tr.name}[/]: {tr.label}", highlight=False)
    console.print(f"{len(tr):,} requests over {tr.duration_s / 3600:.2f} h; {how}", highlight=False)
    inp = prepare(tr, **pkw)
    peak_scale = 1.0
    if static_sizing == "inventory":
        per_server = prof.hardware[hardware].gpus_per_server // 8
        peak_scale = servers * per_server / max(baseline_peak_instances(inp, hardware), 1e-9)
        console.print(f"static pools sized for {peak_scale:.2f} x the trace's peak (SinglePool fills the "
                      f"{servers} servers)", highlight=False)
    policies = make_policies(policy, peak_scale=peak_scale)
    results = []
    with Progress(TextColumn("{task.description:>12}"), BarColumn(), TextColumn("{task.completed}/{task.total} epochs"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        for pol in policies:
            task = bar.add_task(pol.label, total=None)
            results.append(replay(inp, pol, progress=lambda i, n, _t=task: bar.update(_t, completed=i, total=n)))
    df = comparison_table(results)
    console.print(results_table(df, f"replay: {tr.name}, {servers} x {hardware}"))
    oop = results[0].summary.out_of_profile_requests if results else 0
    if oop:
        console.print(f"note: {oop:,} request(s) are longer than the profile's classes cover; they are served "
                      "and counted as missing their SLO", highlight=False)
    out.mkdir(parents=True, exist_ok=True)
    csv = df.assign(trace=tr.label, synthetic=tr.synthetic)
    csv.to_csv(out / "replay.csv", float_format="%.6g")
    doc = {"trace": tr.provenance(), "rate": how, "inventory": {hardware: servers}, "static_sizing": static_sizing,
           "static_peak_scale": peak_scale, "options": opts.model_dump(),
           "grid": {"carbon": grid.carbon.source, "price": grid.price.source, "mode": grid.mode},
           "results": [json.loads(r.summary.model_dump_json()) for r in results]}
    (out / "replay.json").write_text(json.dumps(doc, indent=2, default=str))
    written = [out / "replay.csv", out / "replay.json"]
    if plot:
        from dynaplan.replay.plots import plot_pool_servers, plot_power

        label = ("SYNTHETIC: " if tr.synthetic else "") + tr.name
        written.append(plot_power(results, out / "power_by_policy.png", title=f"Cluster power, {label}"))
        chosen = next((r for r in results if r.policy.lower() == plot_policy.lower()), results[-1])
        written.append(plot_pool_servers(chosen, out / "servers_per_pool.png",
                                         title=f"Servers per pool, {chosen.policy}, {label}"))
    console.print("written: " + ", ".join(str(p) for p in written), highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``replay`` to a typer app."""
    app.command("replay")(replay_command)


__all__ = ["register", "replay_command", "results_table"]
