"""``dynaplan plan``: plan a cluster for a trace's peak load or a forecast file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dynaplan.cli.console import out_console, progress
from dynaplan.cli.frames import TABLE_SUFFIXES, plan_frame, write_frame
from dynaplan.cli.options import build_options, check_positive, check_rate_source, check_window
from dynaplan.cli.outputs import OutputSet
from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import ValidationError
from dynaplan.limits import INVENTORY_SERVERS
from dynaplan.planning import Plan, Planner, PlannerOptions, check_plan
from dynaplan.planning.inputs import peak_forecast, read_forecast
from dynaplan.profiles.profile import Profile
from dynaplan.reconfig.state import ClusterState
from dynaplan.solvers import SolveOptions
from dynaplan.workload.aggregate import parse_duration_s
from dynaplan.workload.loading import load_trace


def plan_tables(plan: Plan, inventory: dict[str, int] | None = None) -> list[Table]:
    """The plan's head (status, forecast, servers, power, energy, time) and its instances by pool;
    with ``inventory`` (servers by hardware) the head says how much of it the plan uses."""
    head = Table(title=f"{plan.mode} plan", show_header=False, title_justify="left")
    head.add_column("field", style="bold")
    head.add_column("value")
    r = plan.report
    head.add_row("status", f"{r.status.value} (backend {r.backend.value if r.backend else 'none'}, gap {r.gap if r.gap is None else f'{r.gap:.2e}'})")
    head.add_row("forecast (req/s)", ", ".join(f"{c} {v:.2f}" for c, v in plan.forecast_rps.items()))
    if inventory is not None:
        head.add_row("inventory", ", ".join(f"{n} {h} servers" for h, n in inventory.items()) or "none")
    head.add_row("servers / GPUs", ", ".join(f"{h}: {n} servers active, {plan.gpus.get(h, 0)} GPUs in use"
                                            for h, n in plan.servers.items()) or "none")
    head.add_row("power", f"{plan.power_w / 1e3:.2f} kW  (model error bound ±{plan.approx_error_bound_w / 1e3:.2f} kW)")
    head.add_row("energy per epoch", f"{plan.energy_j / 3.6e6:.3f} kWh over {plan.epoch_s:.0f} s")
    head.add_row("time", f"wall {plan.wall_time_s * 1e3:.1f} ms (build {r.build_time_s * 1e3:.1f}, "
                         f"solve {r.solve_time_s * 1e3:.1f})")
    if plan.unserved_rps:
        head.add_row("UNSERVED (req/s)", ", ".join(f"{c} {v:.2f}" for c, v in plan.unserved_rps.items()))
    for note in plan.notes:
        head.add_row("note", note)
    pools = Table(title="instances by pool", title_justify="left")
    for col in ("pool", "servers", "config", "count", "load per instance (req/s)", "utilisation", "power (W)"):
        pools.add_column(col, justify="right" if col in ("count", "utilisation", "power (W)") else "left")
    for pp in plan.pools:
        srv = ", ".join(f"{n}x{h}" for h, n in pp.servers.items())
        for i, g in enumerate(pp.groups):
            loads = ", ".join(f"{c} {v:.2f}" for c, v in g.load_rps_per_instance.items())
            pools.add_row(pp.pool if i == 0 else "", srv if i == 0 else "", f"{g.hardware}/TP{g.tp}@{g.freq_mhz}",
                          str(g.count), loads, f"{g.utilisation:.2f}", f"{g.power_w:.0f}")
        if any(pp.idle_gpus.values()):
            pools.add_row("", "", "idle GPUs", str(sum(pp.idle_gpus.values())), "", "", f"{pp.idle_power_w:.0f}")
    return [head, pools]


def plan_command(
    trace: Annotated[str, typer.Option(help="Bundled trace name or trace file; its per-class peak is the forecast.")] = "azure-conv-2023",
    forecast: Annotated[Path | None, typer.Option(help="Forecast CSV (request_class, load_rps); overrides --trace.")] = None,
    servers: Annotated[int, typer.Option(help="Servers in the inventory.")] = 40,
    hardware: Annotated[str, typer.Option(help="Hardware type of the inventory.")] = "h100-80gb",
    profile: Annotated[Path | None, typer.Option(help="Profile file (default: the bundled one).")] = None,
    target_mean_rps: Annotated[float, typer.Option("--rate", "--target-mean-rps", help="Mean arrival rate of "
                                                   "the trace, all classes (req/s): the trace is scaled to it "
                                                   "before its peak is taken.")] = 45.0,
    peak_window: Annotated[str, typer.Option(help="Window over which the trace's peak rate is taken.")] = "60s",
    spill: Annotated[str, typer.Option(help="none | next | larger")] = "next",
    monolithic: Annotated[bool, typer.Option(help="Solve the monolithic reference instead of the hierarchy.")] = False,
    best_effort: Annotated[bool, typer.Option(help="Serve what fits and report the rest instead of failing.")] = False,
    time_limit_s: Annotated[float, typer.Option(help="Solver time limit per solve (s).")] = 10.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the plan as JSON here.")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write the plan as a flat table here (.csv or "
                                                 ".parquet): one row per instance group and per pool's idle GPUs.")] = None,
    state_out: Annotated[Path | None, typer.Option(help="Write the cluster state running the plan on the whole "
                                                   "inventory (idle servers included) here: the --state of the "
                                                   "next 'dynaplan plan-reconfig'.")] = None,
) -> None:
    """Plan a cluster: servers per pool, instances by TP and clock, power and energy."""
    if servers < 0:
        raise ValidationError(f"--servers {servers}: expected >= 0")
    INVENTORY_SERVERS.check(servers, f"--servers {servers}", "an inventory of")
    check_positive(time_limit_s, "--time-limit-s", "seconds")
    check_positive(target_mean_rps, "--rate", "req/s")
    try:
        window_s = parse_duration_s(peak_window)
    except ValueError as exc:
        raise ValidationError(f"--peak-window {peak_window!r}: {exc}") from None
    with OutputSet() as outs:
        outs.file(json_out, "--json")
        outs.file(csv_out, "--csv", suffixes=TABLE_SUFFIXES)
        outs.file(state_out, "--state-out")
        opts = build_options(lambda: PlannerOptions(spill=spill, best_effort=best_effort), {"spill": ("--spill", spill)})
        sopts = build_options(lambda: SolveOptions(time_limit_s=time_limit_s),
                              {"time_limit_s": ("--time-limit-s", time_limit_s)})
        prof = Profile.default() if profile is None else Profile.read(profile)
        if forecast is not None:
            fc = read_forecast(forecast, prof.classes)
        else:
            tr = check_rate_source(load_trace(trace))
            check_window(tr, window_s, "--peak-window", peak_window, must_fit=True)
            fc = peak_forecast(tr, window_s=window_s, target_mean_rps=target_mean_rps, scheme=prof.classes)
        with progress() as bar:
            step = bar.add_task("planning", total=None)
            planner = Planner(prof, {hardware: servers}, DEFAULT_SLOS, options=opts, solve_options=sopts)
            plan = planner.plan_monolithic(fc) if monolithic else planner.plan(fc)
            bar.update(step, description="checking")
            check = check_plan(prof, {hardware: servers}, DEFAULT_SLOS, plan, forecast=fc, options=opts)
        console = out_console()
        for t in plan_tables(plan, {hardware: servers}):
            console.print(t)
        if not check.ok:
            console.print("independent check: FAILED: " + "; ".join(check.violations))
            written = ", ".join(str(p) for p in (json_out, csv_out, state_out) if p is not None)
            print("dynaplan: error: the independent check of the plan failed: " + "; ".join(check.violations)
                  + (f"; nothing written ({written} left as they were)" if written else ""), file=sys.stderr)
            raise typer.Exit(1)
        console.print("independent check: passed")
        if json_out is not None:
            outs.write_text(json_out, plan.to_json(indent=2))
        if csv_out is not None:
            outs.write(csv_out, lambda tmp: write_frame(plan_frame(plan), tmp))
        if state_out is not None:
            state = ClusterState.from_plan(plan, planner)
            outs.write_text(state_out, state.to_json(indent=2))
        for path in outs.commit():
            console.print(f"wrote {path}", highlight=False)
