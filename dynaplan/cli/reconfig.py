"""``dynaplan plan-reconfig``: plan for a forecast from the cluster as it is, and how to get there.

Wire it into the app with :func:`register`. Every user error raises
:class:`dynaplan.errors.DynaplanError` (a bad state file: :class:`ValidationError` naming the
file, the instance or server, and the problem); :func:`dynaplan.cli.main` prints it on one line
and exits with code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError as PydanticValidationError
from rich.table import Table

from dynaplan.cli.console import out_console, progress
from dynaplan.cli.frames import actions_frame, plan_frame, write_frame
from dynaplan.cli.options import build_options, check_finite
from dynaplan.cli.outputs import OutputSet
from dynaplan.cli.plan import plan_tables
from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.errors import InputError, ValidationError, read_text_file
from dynaplan.limits import STATE_SERVERS
from dynaplan.planning import Plan, Planner, PlannerOptions
from dynaplan.planning.inputs import read_forecast
from dynaplan.profiles.profile import Profile
from dynaplan.reconfig.actions import ReconfigPlan
from dynaplan.reconfig.apply import apply
from dynaplan.reconfig.diff import diff
from dynaplan.reconfig.state import ClusterState, Server, pydantic_message
from dynaplan.domain.transitions import TransitionCosts
from dynaplan.validation import check_time_s, loads_json


def _fmt_s(t: float) -> str:
    return f"{t:.3f}" if t < 10 else f"{t:.1f}"


def reconfig_tables(rp: ReconfigPlan) -> list[Table]:
    """The action schedule, the dips (if any) and the summary, as rich tables."""
    acts = Table(title="reconfiguration schedule", title_justify="left")
    for col in ("#", "start (s)", "end (s)", "action", "instance", "server", "from", "to", "energy (kJ)",
                "GPU·s", "why"):
        acts.add_column(col, justify="right" if col in ("#", "start (s)", "end (s)", "energy (kJ)", "GPU·s")
                        else "left")

    def gpus_text(gpus) -> str:
        g = sorted(gpus)
        if g and g == list(range(g[0], g[-1] + 1)):
            return f"{g[0]}" if len(g) == 1 else f"{g[0]}-{g[-1]}"
        return ",".join(map(str, g))

    def cfg(pool, tp, f, gpus):
        if tp is None and pool is None:
            return ""
        head = " ".join(p for p in (pool, f"TP{tp}@{f}" if tp else None) if p)
        return head + (f" gpu {gpus_text(gpus)}" if gpus else "")

    for a in rp.actions:
        acts.add_row(str(a.seq), _fmt_s(a.start_s), _fmt_s(a.end_s), a.kind, a.instance, a.server,
                     cfg(a.pool_from, a.tp_from, a.freq_from_mhz, a.gpus_from),
                     cfg(a.pool_to, a.tp_to, a.freq_to_mhz, a.gpus_to),
                     f"{a.cost.energy_j / 1e3:.1f}", f"{a.cost.gpu_s_unavailable:.1f}", a.reason)
    out = [acts]
    if rp.dips:
        dips = Table(title="capacity dips (capacity under SLO below the forecast)", title_justify="left")
        for col in ("pool", "from (s)", "to (s)", "demand (req/s)", "capacity (req/s)", "short (req/s)", "cause"):
            dips.add_column(col)
        for d in rp.dips:
            dips.add_row(d.pool, _fmt_s(d.start_s), "never" if d.end_s is None else _fmt_s(d.end_s),
                         f"{d.demand_rps:.2f}", f"{d.capacity_rps:.2f}", f"{d.shortfall_rps:.2f}", d.cause)
        out.append(dips)
    s = rp.summary
    head = Table(title="reconfiguration summary", show_header=False, title_justify="left")
    head.add_column("field", style="bold")
    head.add_column("value")
    head.add_row("actions", ", ".join(f"{k} {v}" for k, v in sorted(s.n_actions.items())) or "none")
    head.add_row("target reached at", f"{s.target_reached_s - rp.now_s:.1f} s after {rp.now_s:g} s")
    head.add_row("transition energy", f"{s.transition_energy_j / 3.6e6:.4f} kWh")
    head.add_row("GPU time unavailable", f"{s.gpu_s_unavailable:.1f} GPU·s")
    head.add_row("weight bytes moved", f"{s.weight_bytes_moved / 1e9:.1f} GB")
    head.add_row("servers touched", str(s.servers_touched))
    head.add_row("dips", "none" if not rp.dips else f"{len(rp.dips)} ({s.shortfall_rps_s:.1f} req/s·s short)")
    head.add_row("placement", rp.placement_status)
    for n in rp.notes:
        head.add_row("note", n)
    out.append(head)
    return out


def _load_costs(path: Path | None, reshard: str | None) -> TransitionCosts:
    costs = TransitionCosts()
    if path is not None:
        text = read_text_file(path, "a transition-costs JSON file", "transition-costs")
        try:
            costs = TransitionCosts.model_validate(loads_json(text, str(path)))  # refuses repeated keys
        except (PydanticValidationError, InputError) as exc:  # InputError keeps pydantic's errors()
            raise ValidationError(pydantic_message(exc, str(path))) from None
    if reshard is not None:
        if reshard not in ("transfer", "reload"):
            raise ValidationError(f"--reshard {reshard!r}: expected 'transfer' or 'reload'")
        costs = costs.with_reshard_mode(reshard)  # type: ignore[arg-type]
    return costs


def _with_inventory(state: ClusterState, servers: int | None, hardware: str) -> ClusterState:
    """The state with empty servers of ``hardware`` added up to ``servers`` (never removed)."""
    if servers is None:
        return state
    if servers < 0:
        raise ValidationError(f"--servers {servers}: expected >= 0")
    STATE_SERVERS.check(servers, f"--servers {servers}", "a cluster state of")
    if hardware not in state.hardware:
        raise ValidationError(f"--hardware {hardware!r}: unknown; the state knows {sorted(state.hardware)}")
    have = state.servers_by_hardware().get(hardware, 0)
    if servers < have:
        raise ValidationError(f"--servers {servers}: the state already has {have} {hardware} servers")
    ids = {s.id for s in state.servers}
    extra, k = [], 0
    while have + len(extra) < servers:
        sid = f"{hardware}-new-{k}"
        k += 1
        if sid not in ids:
            extra.append(Server(id=sid, hardware=hardware))
    return ClusterState(model=state.model, time_s=state.time_s, servers=state.servers + tuple(extra),
                        instances=state.instances, hardware=state.hardware)


def _check_classes(state: ClusterState, names, source: str) -> None:
    """Every pool and every class an instance carries load of must be a class of the profile."""
    known = set(names)
    for inst in state.instances:
        fl = inst.in_flight
        pools = [("pool", inst.pool)] + ([("in_flight.target_pool", fl.target_pool)] if fl and fl.target_pool else [])
        for field, pool in pools:
            if pool not in known:
                raise ValidationError(f"{source}: instance {inst.id}: {field} {pool!r} is not a request class "
                                      f"{list(names)}")
        for c in inst.load_rps:
            if c not in known:
                raise ValidationError(f"{source}: instance {inst.id}: load_rps has unknown class {c!r}; "
                                      f"known: {list(names)}")


def _read_state(path: Path, servers: int | None, hardware: str, prof: Profile) -> tuple[ClusterState, bool]:
    """The state in ``path``: a cluster state JSON, or a plan JSON (``dynaplan plan --json``)
    placed on an inventory of ``servers`` x ``hardware``. Second value: whether it was a plan."""
    text = read_text_file(path, "a cluster state or plan JSON file", "state")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        doc = None
    if not (isinstance(doc, dict) and "pools" in doc and "mode" in doc):
        return ClusterState.from_json(text, source=str(path)), False
    try:
        plan = Plan.from_json(text)
    except PydanticValidationError as exc:
        raise ValidationError(pydantic_message(exc, str(path))) from None
    if servers is None:
        used = ", ".join(f"{n} {h}" for h, n in plan.servers.items()) or "none"
        raise ValidationError(f"--state {path}: a plan, which records only the servers it uses ({used}), not the "
                              f"inventory: add --servers N [--hardware H], or write a full state with "
                              f"'dynaplan plan --state-out state.json'")
    if servers < 0:
        raise ValidationError(f"--servers {servers}: expected >= 0")
    if hardware not in prof.hardware:
        raise ValidationError(f"--hardware {hardware!r}: unknown; the profile knows {sorted(prof.hardware)}")
    inventory = {h: 0 for h in plan.servers}
    inventory[hardware] = servers
    model = prof.models[0] if len(prof.models) == 1 else None
    try:
        return ClusterState.from_plan(plan, prof.hardware, servers=inventory, model=model), True
    except ValidationError as exc:
        raise ValidationError(f"--state {path} with --servers {servers} --hardware {hardware}: {exc}") from None


def plan_reconfig_command(
    state: Annotated[Path, typer.Option(help="Cluster state JSON (servers, instances, operations in flight; "
                                        "'dynaplan plan --state-out' writes one), or a plan JSON ('dynaplan plan "
                                        "--json') with --servers.")],
    forecast: Annotated[Path, typer.Option(help="Forecast CSV (request_class, load_rps).")],
    servers: Annotated[int | None, typer.Option(help="Servers of --hardware in the inventory (default: the "
                                                "state's); extra ones are added empty.")] = None,
    hardware: Annotated[str, typer.Option(help="Hardware type of --servers.")] = "h100-80gb",
    profile: Annotated[Path | None, typer.Option(help="Profile file (default: the bundled one).")] = None,
    costs: Annotated[Path | None, typer.Option(help="TransitionCosts JSON (default: DynamoLLM's published "
                                               "durations; docs/reconfiguration.md lists them).")] = None,
    reshard: Annotated[str | None, typer.Option(help="transfer | reload: how the engine re-shards (default: "
                                                "transfer, or the mode of --costs).", show_default=False)] = None,
    spill: Annotated[str, typer.Option(help="none | next | larger")] = "next",
    now_s: Annotated[float | None, typer.Option(help="Time the schedule starts (s; default: the state's "
                                                "time_s).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(help="Directory to write plan.json, reconfig.json and the flat "
                                             "tables plan.csv (one row per instance group) and actions.csv "
                                             "(one row per action) to.")] = None,
    state_out: Annotated[Path | None, typer.Option(help="Write the cluster state once the schedule is done here: "
                                                   "the --state of the next plan-reconfig.")] = None,
) -> None:
    """Plan for a forecast and schedule the reconfiguration from the current cluster state."""
    if now_s is not None:
        check_time_s(now_s, "--now-s")
    with OutputSet() as outs:
        if out is not None:
            files = {name: outs.in_dir(out, name, "--out")
                     for name in ("plan.json", "reconfig.json", "plan.csv", "actions.csv")}
        outs.file(state_out, "--state-out")
        opts = build_options(lambda: PlannerOptions(spill=spill), {"spill": ("--spill", spill)})
        prof = Profile.default() if profile is None else Profile.read(profile)
        st, from_plan = _read_state(state, servers, hardware, prof)
        if not from_plan:
            st = _with_inventory(st, servers, hardware)
        tc = _load_costs(costs, reshard)
        fc = read_forecast(forecast, prof.classes)
        if st.model not in prof.models:
            raise ValidationError(f"{state}: model {st.model!r} has no profile (the profile holds {list(prof.models)})")
        inventory = st.servers_by_hardware()
        if not inventory:
            raise ValidationError(f"{state}: the state has no servers; add empty ones with --servers N --hardware NAME")
        unknown = sorted(set(inventory) - set(prof.hardware))
        if unknown:
            raise ValidationError(f"{state}: hardware {unknown} has no profile (the profile knows {sorted(prof.hardware)})")
        _check_classes(st, prof.classes.names, str(state))
        with progress() as bar:
            step = bar.add_task("planning", total=None)
            planner = Planner(prof, inventory, DEFAULT_SLOS, options=opts, model=st.model)
            target = planner.plan(fc)
            bar.update(step, description="scheduling")
            rp = diff(prof, st, DEFAULT_SLOS, target, tc, now_s=st.time_s if now_s is None else now_s)
        console = out_console()
        for t in plan_tables(target, inventory) + reconfig_tables(rp):
            console.print(t)
        if out is not None:
            outs.write_text(files["plan.json"], target.to_json(indent=2))
            outs.write_text(files["reconfig.json"], rp.to_json(indent=2))
            outs.write(files["plan.csv"], lambda tmp: write_frame(plan_frame(target), tmp))
            outs.write(files["actions.csv"], lambda tmp: write_frame(actions_frame(rp), tmp))
        if state_out is not None:
            outs.write_text(state_out, apply(st, rp.actions).to_json(indent=2))
        for path in outs.commit():
            console.print(f"wrote {path}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``plan-reconfig`` to a typer app."""
    app.command("plan-reconfig")(plan_reconfig_command)


__all__ = ["plan_reconfig_command", "reconfig_tables", "register"]
