"""``dynaplan capacity``: which servers to buy or rent for a load curve, at what cost, energy and carbon."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from dynaplan.cli.console import err_console, out_console
from dynaplan.cli.outputs import OutputSet
from dynaplan.errors import ValidationError


def _floats(text: str, flag: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValidationError(f"{flag} {text!r}: expected comma-separated numbers, e.g. 1,1.5,2") from None
    if not vals or any(not v > 0 for v in vals):
        raise ValidationError(f"{flag} {text!r}: expected positive numbers")
    return vals


def _availability(text: str | None) -> dict[str, tuple[int, int]] | None:
    """``h100-80gb=0:20,a100-80gb=:8``."""
    if not text:
        return None
    out = {}
    for item in text.split(","):
        try:
            name, rng = item.split("=")
            lo, hi = rng.split(":")
            out[name.strip()] = (int(lo or 0), int(hi) if hi else 1_000_000_000)
        except ValueError:
            raise ValidationError(f"--availability {item!r}: expected NAME=MIN:MAX, e.g. h100-80gb=0:20") from None
    return out


def _table(rows: list, growths: list[float]) -> Table:
    t = Table(title="capacity plans")
    rent = any(pl.on_demand_server_h for pl in rows)  # priced reserved+on_demand: fleet + servers per period
    cols = ["growth", "fleet", "USD/h", "fleet USD"]
    if rent:
        cols[1:2] = ["reserved fleet", "on-demand (most in a period)"]
        cols += ["reserved USD", "on-demand USD"]
    for col in cols + ["energy USD", "carbon USD", "energy kWh", "carbon kg", "peak kW", "status", "gap"]:
        t.add_column(col)
    for g, pl in zip(growths, rows):
        fleet = ", ".join(f"{n} x {h}" for h, n in pl.fleet.items() if n) or "none"
        gap = "-" if pl.report.gap is None else f"{pl.report.gap:.3%}"
        cells = [f"{g:g}", fleet, f"{pl.cost_usd_per_h:,.2f}", f"{pl.fleet_usd:,.0f}"]
        if rent:
            cells[2:2] = [", ".join(f"{n} x {h}" for h, n in pl.on_demand_peak_servers.items() if n) or "none"]
            cells += [f"{pl.reserved_usd:,.0f}", f"{pl.on_demand_usd:,.0f}"]
        t.add_row(*cells, f"{pl.energy_usd:,.0f}", f"{pl.carbon_usd:,.0f}", f"{pl.energy_kwh:,.0f}",
                  f"{pl.carbon_kg:,.0f}", f"{pl.peak_power_w / 1e3:,.1f}", pl.report.status.value, gap)
    return t


def _headroom_table(plan) -> Table:
    t = Table(title="SLO headroom per class (least over periods of 1 - load / SLO capacity)")
    t.add_column("class")
    t.add_column("headroom")
    for c, v in plan.headroom.items():
        t.add_row(c, f"{v:.1%}")
    return t


def _replay_table(plans, growths) -> Table:
    t = Table(title="replay of the trace on the fleet (DynamoLLM policy): requests within the SLOs")
    t.add_column("growth")
    classes = list(next(pl for pl in plans if pl.replay).replay["slo_attainment_by_class"]) if any(
        pl.replay for pl in plans) else []
    for c in classes:
        t.add_column(c)
    t.add_column("verdict")
    for g, pl in zip(growths, plans):
        if not pl.replay:
            continue
        by = pl.replay["slo_attainment_by_class"]
        t.add_row(f"{g:g}", *[f"{by[c]:.3%}" for c in classes],
                  pl.verdict if pl.replay["meets_slos"] else f"[bold red]{pl.verdict}[/bold red]")
    return t


def _csv(plans, growths) -> str:
    lines = ["growth,hardware,servers,cost_usd_per_h,fleet_usd,energy_usd,carbon_usd,energy_kwh,carbon_kg,status,gap,"
             "verdict,reserved_usd,on_demand_usd,on_demand_peak_servers,on_demand_server_h"]
    for g, pl in zip(growths, plans):
        for h, n in pl.fleet.items():
            lines.append(f"{g},{h},{n},{pl.cost_usd_per_h:.6g},{pl.fleet_usd:.6g},{pl.energy_usd:.6g},"
                         f"{pl.carbon_usd:.6g},{pl.energy_kwh:.6g},{pl.carbon_kg:.6g},{pl.report.status.value},"
                         f"{'' if pl.report.gap is None else f'{pl.report.gap:.3g}'},\"{pl.verdict}\","
                         f"{pl.reserved_usd:.6g},{pl.on_demand_usd:.6g},{pl.on_demand_peak_servers.get(h, 0)},"
                         f"{pl.on_demand_server_h.get(h, 0.0):.6g}")
    return "\n".join(lines) + "\n"


def _plot(plans, growths, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    hw = list(plans[0].fleet)
    bottom = [0.0] * len(plans)
    for h in hw:
        vals = [pl.fleet[h] for pl in plans]
        a1.bar([str(g) for g in growths], vals, bottom=bottom, label=h)
        bottom = [b + v for b, v in zip(bottom, vals)]
    a1.set_xlabel("load growth (x)")
    a1.set_ylabel("servers")
    a1.legend()
    a1.set_title("fleet mix")
    a2.plot(growths, [pl.cost_usd_per_h for pl in plans], marker="o")
    a2.set_xlabel("load growth (x)")
    a2.set_ylabel("USD per hour")
    a2.set_title("cost vs growth")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_pareto(front, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([p.energy_kwh for p in front], [p.cost_usd for p in front], marker="o")
    ax.set_xlabel("energy over the horizon (kWh)")
    ax.set_ylabel("cost over the horizon (USD)")
    ax.set_title("Pareto front: cost vs energy")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def capacity_command(
    trace: str = typer.Option("azure-conv-2023", "--trace", help="Bundled trace name or a trace file."),
    peak_rps: float = typer.Option(None, "--peak-rps", help="Scale the load so its busiest period carries this (req/s)."),
    mean_rps: float = typer.Option(None, "--mean-rps", help="Scale the load to this mean (req/s)."),
    growth: str = typer.Option("1", "--growth", help="Comma-separated load multipliers, one plan each."),
    periods: int = typer.Option(24, "--periods", help="Hourly periods in the horizon (168: a week)."),
    hardware: str = typer.Option(None, "--hardware", help="Comma-separated hardware types (default: the catalogue's)."),
    objective: str = typer.Option("cost", "--objective", help="cost, energy or carbon."),
    price: str = typer.Option("on_demand", "--price", help="on_demand, reserved or purchase: one fleet held over "
                              "the horizon at that price; reserved+on_demand: a reserved fleet plus servers "
                              "rented on demand per period, within --availability's MAX in every period."),
    idle: str = typer.Option("idle", "--idle", help="Servers not needed in a period: idle or off."),
    availability: str = typer.Option(None, "--availability", help="NAME=MIN:MAX,... servers per type."),
    carbon_price: float = typer.Option(0.0, "--carbon-price", help="Carbon price (USD per tonne CO2)."),
    electricity: float = typer.Option(None, "--electricity", help="Flat electricity price (USD/kWh)."),
    profile: Path = typer.Option(None, "--profile", help="Profile file (default: the bundled one)."),
    melange: Path = typer.Option(None, "--melange", help="Solve a Mélange config (JSON) instead."),
    assignment: str = typer.Option("divisible", "--assignment", help="Mélange: divisible or sliced."),
    pareto: int = typer.Option(0, "--pareto", help="Also compute a cost/energy Pareto front of N points."),
    time_limit: float = typer.Option(60.0, "--time-limit", help="Solver time limit per plan (s)."),
    json_out: Path = typer.Option(Path("capacity.json"), "--json", help="Write the plans as JSON here."),
    csv_out: Path = typer.Option(Path("capacity.csv"), "--csv", help="Write the fleet table as CSV here."),
    plot: bool = typer.Option(False, "--plot", help="Write PNGs: fleet mix and cost vs growth, Pareto front."),
    plot_dir: Path = typer.Option(Path("."), "--plot-dir", help="Directory of the PNGs."),
    replay: bool = typer.Option(False, "--replay", help="Replay the trace, scaled to the busiest period, on each "
                                "fleet with the DynamoLLM policy and report SLO attainment per class."),
    replay_target: float = typer.Option(0.99, "--replay-target", help="Share of a class's requests that must "
                                        "meet the SLOs in the replay (fraction)."),
    period_plans: bool = typer.Option(False, "--period-plans", help="Plan every period on each fleet with the "
                                      "Planner and write the Plans into the JSON, with their power next to the model's."),
) -> None:
    """Size a fleet across GPU types for a load curve: cost, energy, carbon, SLO headroom."""
    from dynaplan.capacity import capacity_problem, plan_capacity, read_melange
    from dynaplan.capacity.pareto import pareto_front
    from dynaplan.capacity.replay import with_replay

    growths = _floats(growth, "--growth")
    out, err = out_console(), err_console()
    with OutputSet() as outs:
        jpath = outs.file(json_out, "--json", suffixes=(".json",))
        cpath = outs.file(csv_out, "--csv", suffixes=(".csv",))
        ppath = outs.in_dir(outs.directory(plot_dir, "--plot-dir"), "capacity_growth.png", "--plot") if plot else None
        fpath = (outs.in_dir(outs.directory(plot_dir, "--plot-dir"), "capacity_pareto.png", "--plot")
                 if plot and pareto else None)
        if melange is not None:
            problems = [read_melange(melange, assignment=assignment)]
            growths = [1.0]
        else:
            hw = [h.strip() for h in hardware.split(",")] if hardware else None
            problems = []
            with err.status("building the capacity problem(s) from the profile ..."):
                for g in growths:
                    problems.append(capacity_problem(
                        profile=profile, trace=trace, peak_rps=peak_rps, mean_rps=mean_rps, growth=g,
                        periods=periods, hardware=hw, availability=_availability(availability), price=price,
                        electricity_usd_per_kwh=electricity, carbon_price_usd_per_t=carbon_price,
                        objective=objective, idle=idle))
        if replay and melange is not None:
            raise ValidationError("--replay: a Mélange config has no trace to replay")
        if (replay or period_plans) and price == "reserved+on_demand":
            raise ValidationError(f"{'--replay' if replay else '--period-plans'}: takes one fleet for every period; "
                                  "--price reserved+on_demand rents servers per period")
        if period_plans and melange is not None:
            raise ValidationError("--period-plans: a Mélange config has no profile to plan its periods with")
        if not 0 < replay_target <= 1:
            raise ValidationError(f"--replay-target {replay_target:g}: expected a fraction in (0, 1]")
        plans = []
        for g, prob in zip(growths, problems):
            with err.status(f"solving growth x{g:g} ({prob.n_periods} periods, {len(prob.offers)} types) ..."):
                plans.append(plan_capacity(prob, time_limit_s=time_limit))
            if period_plans:
                from dynaplan.capacity.deploy import with_period_plans

                with err.status(f"planning every period of growth x{g:g} on its fleet with the Planner ..."):
                    plans[-1] = with_period_plans(plans[-1], prob, profile=profile)
                unserved = [pp["period"] for pp in plans[-1].period_plans if not pp["served"]]
                if unserved:
                    out.print(f"[bold red]note:[/bold red] growth x{g:g}: the Planner cannot serve period(s) "
                              f"{unserved} on the fleet (see period_plans in the JSON)")
            if replay:
                with err.status(f"replaying the trace x{prob.trace_scale:.3g} on the fleet of growth x{g:g} ...") as st:
                    def progress(done, total, st=st, g=g):
                        st.update(f"replaying the trace on the fleet of growth x{g:g}: {done}/{total} epochs")
                    plans[-1] = with_replay(plans[-1], prob, profile=profile, target=replay_target,
                                            progress=progress)
        front = ()
        if pareto:
            with err.status(f"Pareto front, {pareto} points ..."):
                front = pareto_front(problems[0], points=pareto, time_limit_s=time_limit)
        out.print(f"load: {plans[0].load_basis}")
        out.print(_table(plans, growths))
        out.print(_headroom_table(plans[-1]))
        if replay:
            out.print(_replay_table(plans, growths))
        for pl in plans:
            if pl.report.status.value != "optimal":
                out.print(f"note: not proven optimal ({pl.report.status.value}, gap "
                          f"{'unknown' if pl.report.gap is None else f'{pl.report.gap:.3%}'})")
        payload = {"plans": [pl.model_dump(mode="json") for pl in plans],
                   "pareto": [pl.model_dump(mode="json", exclude={"periods"}) for pl in front]}
        outs.write(jpath, lambda tmp: tmp.write_text(json.dumps(payload)))
        outs.write(cpath, lambda tmp: tmp.write_text(_csv(plans, growths)))
        if ppath is not None:
            outs.write(ppath, lambda tmp: _plot(plans, growths, tmp))
        if fpath is not None and front:
            outs.write(fpath, lambda tmp: _plot_pareto(front, tmp))
        written = outs.commit()
    err.print("wrote " + ", ".join(str(p) for p in written))
    missed = [f"x{g:g}" for g, pl in zip(growths, plans) if pl.replay and not pl.replay["meets_slos"]]
    if missed:
        err.print(f"[bold red]error:[/bold red] the fleet of growth {', '.join(missed)} misses its SLOs in replay "
                  "(see the verdict in the table and the JSON)")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``capacity`` to a typer app."""
    app.command("capacity")(capacity_command)


__all__ = ["capacity_command", "register"]
