"""``summary.md``: the targets, backends, slopes and checks of one run, read back from its CSVs."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1000 or abs(v) < 1e-3:
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


def table(df: pd.DataFrame, cols: list[str] | None = None, headers: list[str] | None = None) -> str:
    """A GitHub markdown table (no tabulate dependency)."""
    cols = cols or list(df.columns)
    headers = headers or cols
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def _read(out: Path, name: str) -> pd.DataFrame | None:
    p = out / f"{name}.csv"
    if not p.exists():
        return None
    try:
        return pd.read_csv(p)
    except pd.errors.EmptyDataError:
        return None


def target_c(hvm: pd.DataFrame | None) -> dict | None:
    """(c) hierarchical energy within 1% of monolithic on the corpus."""
    if hvm is None or "energy_ratio" not in hvm:
        return None
    d = hvm.dropna(subset=["energy_ratio"])
    if d.empty:
        return None
    miss = d[d["energy_ratio"] > 1.01]
    out = {"cases": len(d), "within": int((d["energy_ratio"] <= 1.01).sum()), "max_ratio": float(d["energy_ratio"].max()),
           "median_ratio": float(d["energy_ratio"].median()), "misses": miss, "met": miss.empty}
    if "energy_ratio_mix" in d:
        out.update({"within_mix": int((d["energy_ratio_mix"] <= 1.01).sum()), "max_mix": float(d["energy_ratio_mix"].max()),
                    "median_mix": float(d["energy_ratio_mix"].median())})
    return out


def targets_section(out: Path) -> list[str]:
    lines = ["## Planner targets", ""]
    tg = _read(out, "targets")
    if tg is not None:
        for _, r in tg.iterrows():
            verdict = "MET" if bool(r["met"]) else "MISSED"
            if r["key"] == "a":
                lines.append(f"- **{r['target']}: {verdict}.** HiGHS `plan_pool` median {r['median_s'] * 1e3:.2f} ms, "
                             f"p95 {r['p95_s'] * 1e3:.2f} ms over {int(r['calls'])} calls ({int(r['pools'])} pools) "
                             f"= {r['ratio_p95_over_target']:.2f}x the 5 ms target; Pyomo median "
                             f"{r['baseline_median_s'] * 1e3:.1f} ms = {r['ratio_baseline_over_median']:.1f}x slower "
                             f"(slowest-pool ratio {r['min_pool_ratio']:.1f}x); largest objective difference "
                             f"{r['max_obj_rel_diff']:.2g} (relative). Raw path per pool: build "
                             f"{r['raw_build_median_s'] * 1e3:.2f} ms + HiGHS {r['raw_solve_median_s'] * 1e3:.2f} ms "
                             f"(median). Calibration units: median {r['median_calib_units']:.2f}, p95 "
                             f"{r['p95_calib_units']:.2f}.")
            elif "_gap" in str(r["key"]):
                lines.append(f"- {r['target']}: would be {verdict}: median {r['median_s'] * 1e3:.1f} ms, p95 "
                             f"{r['p95_s'] * 1e3:.1f} ms (p95 = {r['ratio_p95_over_target']:.2f}x target); cluster solve "
                             f"median {r['cluster_solve_s_median_s'] * 1e3:.1f} ms, pool solves "
                             f"{r['pool_solve_s_median_s'] * 1e3:.1f} ms; objective at most "
                             f"{r.get('obj_rel_diff_vs_default_gap', float('nan')):.2g} (relative) above the default gap's.")
            else:
                lines.append(f"- **{r['target']}: {verdict}.** median {r['median_s'] * 1e3:.1f} ms, p95 "
                             f"{r['p95_s'] * 1e3:.1f} ms over {int(r['calls'])} calls "
                             f"(p95 = {r['ratio_p95_over_target']:.2f}x target; {r['pools_range']} pools, "
                             f"~{r['instances']:.0f} instances); first call of a new planner "
                             f"{r['cold_first_call_s'] * 1e3:.0f} ms (+{r['planner_construct_s'] * 1e3:.0f} ms to "
                             f"construct it)"
                             + (f"; monolithic on the first forecast {r['baseline_median_s'] * 1e3:.0f} ms "
                                f"({r['baseline_status']}) = {r['ratio_baseline_over_median']:.0f}x the hierarchy's median. "
                                if pd.notna(r['baseline_median_s']) else ". ")
                             + (f"Power against the default per forecast: worst {r['obj_rel_diff_vs_ladder']:+.2%}"
                                + (f", mean {r['obj_rel_mean_vs_ladder']:+.2%}" if pd.notna(r.get('obj_rel_mean_vs_ladder'))
                                   else "") + ". " if pd.notna(r.get('obj_rel_diff_vs_ladder')) else "")
                             + f"Median parts (ms): cluster build {r['cluster_build_s_median_s'] * 1e3:.1f}, cluster "
                             f"solve {r['cluster_solve_s_median_s'] * 1e3:.1f}, pool builds "
                             f"{r['pool_build_s_median_s'] * 1e3:.1f}, pool solves {r['pool_solve_s_median_s'] * 1e3:.1f}, "
                             f"rest of plan() {r['plan_other_s_median_s'] * 1e3:.1f} (of which the global bound "
                             f"{r.get('bound_s_median_s', float('nan')) * 1e3:.1f}, a median "
                             f"{r.get('bound_share_median', float('nan')):.0%} of plan()), instance level "
                             f"{r['instance_s_median_s'] * 1e3:.1f}. Calibration units: median "
                             f"{r['median_calib_units']:.1f}, p95 {r['p95_calib_units']:.1f}.")
    c = target_c(_read(out, "hier_vs_mono"))
    if c is not None:
        verdict = "MET" if c["met"] else "MISSED"
        lines.append(f"- **(c) hierarchical energy within 1% of monolithic: {verdict}:** within 1% on {c['within']} "
                     f"of {c['cases']} corpus forecasts (median ratio {c['median_ratio']:.4f}, worst {c['max_ratio']:.4f}) "
                     f"by the planner's own energy accounting"
                     + (f"; re-priced class by class (mixed instances at each class's own power curve): within 1% on "
                        f"{c['within_mix']} of {c['cases']} (median {c['median_mix']:.4f}, worst {c['max_mix']:.4f})."
                        if "within_mix" in c else "."))
        if not c["misses"].empty:
            lines += ["", table(c["misses"], ["case", "energy_ratio", "energy_ratio_vs_bound", "energy_ratio_mix",
                                              "hier_foreign_share", "mono_foreign_share", "mono_status",
                                              "hier_servers", "mono_servers", "hier_idle_w", "mono_idle_w",
                                              "pool_reopt_ratio", "allotment_diff"],
                                ["case", "hier/mono energy", "hier/mono bound", "hier/mono re-priced",
                                 "hier foreign load", "mono foreign load", "mono status", "hier servers",
                                 "mono servers", "hier idle W", "mono idle W", "pool re-opt / mono",
                                 "servers per pool hier/mono"])]
    lines.append("")
    return lines


def backends_section(out: Path) -> list[str]:
    lines = ["## Backends at 40 servers (median solve, ms; ratio to HiGHS; objective difference)", ""]
    rows = []
    for name in ("pool", "cluster", "monolithic", "hierarchy"):
        df = _read(out, name)
        if df is None:
            continue
        d = df[(df["dimension"] == "servers") & (df["value"] == 40)]
        for _, r in d.iterrows():
            rows.append({"scenario": name, "backend": r["backend"], "build_ms": r["build_median_s"] * 1e3,
                         "solve_ms": r["solve_median_s"] * 1e3, "solve_p95_ms": r["solve_p95_s"] * 1e3,
                         "ratio": r["solve_ratio_vs_highs"], "obj_diff": r["obj_rel_diff_vs_highs"],
                         "status": r["status"], "check": bool(r["check_ok"])})
    if rows:
        lines.append(table(pd.DataFrame(rows), None, ["scenario", "backend", "build ms", "solve ms", "solve p95 ms",
                                                      "solve / HiGHS", "objective vs HiGHS", "status", "checked"]))
    lines.append("")
    return lines


def slopes_section(out: Path) -> list[str]:
    frames = [f for n in ("pool", "cluster", "instance", "monolithic", "hierarchy", "trace")
              if (f := _read(out, f"{n}_slopes")) is not None and len(f)]
    if not frames:
        return []
    s = pd.concat(frames)
    s = s[s["backend"].isin(["highs", "numpy"])]
    wide = s.pivot_table(index=["scenario", "dimension", "x_min", "x_max"], columns="phase", values="slope").reset_index()
    ymax = s[s["phase"] == "total"].set_index(["scenario", "dimension"])["y_max_s"]
    ymin = s[s["phase"] == "total"].set_index(["scenario", "dimension"])["y_min_s"]
    wide["total_range_ms"] = [f"{ymin.get((a, b), float('nan')) * 1e3:.3g} .. {ymax.get((a, b), float('nan')) * 1e3:.3g}"
                              for a, b in zip(wide["scenario"], wide["dimension"])]
    lines = ["## Scaling: log-log slope of median time against each dimension (HiGHS / no solver)", "",
             "Slope 0 = flat, 1 = linear. Each dimension moves alone from its base (see `inputs.py`).", "",
             table(wide, ["scenario", "dimension", "x_min", "x_max", "build", "solve", "total", "total_range_ms"],
                   ["scenario", "dimension", "from", "to", "build slope", "solve slope", "total slope",
                    "total median (ms)"]), ""]
    return lines


def pareto_section(out: Path) -> list[str]:
    df = _read(out, "pareto")
    if df is None or df.empty or "true_objective" not in df:
        return []
    rows = []
    for (sc, b), g in df.groupby(["scenario", "backend"], sort=False):
        g = g.sort_values("time_limit_s")
        gap = g["gap_to_exact"].where(g["gap_to_exact"].notna(), g["gap_to_reference"])
        first = {}
        for tol in (1e-2, 1e-4):
            ok = g[gap <= tol]
            first[tol] = (ok["time_limit_s"].iloc[0], ok["solve_s"].iloc[0]) if len(ok) else (None, None)
        last = g.iloc[-1]
        rows.append({"scenario": sc, "backend": b, "against": "exact" if last["reference_proven"] else "reference",
                     "lim1": first[1e-2][0], "t1": first[1e-2][1], "lim4": first[1e-4][0], "t4": first[1e-4][1],
                     "final_gap": gap.iloc[-1], "final_bound_gap": last["gap_to_bound"], "final_status": last["status"]})
    return ["## Time against optimality (true power of the returned plan; first time limit reaching a gap to the "
            "exact optimum, or to the monolithic reference where none is proven)", "",
            table(pd.DataFrame(rows), ["scenario", "backend", "against", "lim1", "t1", "lim4", "t4", "final_gap",
                                       "final_bound_gap", "final_status"],
                  ["scenario", "backend", "gap to", "limit for gap <= 1% (s)", "its wall (s)",
                   "limit for gap <= 0.01% (s)", "its wall (s)", "gap at the longest limit",
                   "gap to the lower bound there", "status there"]), ""]


def discretisation_section(out: Path) -> list[str]:
    df = _read(out, "discretisation")
    if df is None or df.empty or "energy_vs_finest" not in df or "pieces" not in df:
        return []
    order = list(dict.fromkeys(df.sort_values("load_segments", na_position="last")["pieces"].astype(str)))
    wide = df.assign(pieces=df["pieces"].astype(str)).pivot_table(
        index=["case", "mode"], columns="pieces", values="energy_vs_finest").reset_index()
    segs = [c for c in order if c in wide.columns]
    for c in segs:
        wide[c] = wide[c] * 100
    err = df[df["model_error"].notna()].groupby("pieces", sort=False)["model_error"].apply(lambda s: s.abs().max() * 100)
    return ["## Discretisation: plan energy vs the plan on exact pieces (%, by load_segments)", "",
            table(wide, ["case", "mode"] + segs, ["case", "mode"] + [f"{s} pieces" for s in segs]), "",
            "Largest |monolithic MILP objective / profile power - 1| (%) by load_segments: "
            + ", ".join(f"{k}: {v:.3g}" for k, v in err.items()), ""]


def exactness_section(out: Path) -> list[str]:
    df = _read(out, "pool_exactness")
    if df is None or df.empty:
        return []
    df = df.assign(worst_pct=df["worst_rel"] * 100)
    r = df.iloc[0]
    return [f"## Pool level against the exact optimum ({int(r['pools'])} random pools, seed {int(r['seed'])}; "
            "tests/reference_solver.py)", "",
            table(df, ["representation", "above_1e-6", "below_-1e-6", "worst_pct", "optimal_but_above", "p50_ms",
                       "p95_ms", "cpu_p50_ms", "cpu_p95_ms"],
                  ["path", "above the optimum (> 1e-6)", "below it", "worst excess (%)",
                   "labelled optimal yet above", "median call (ms)", "p95 call (ms)", "median CPU (ms)",
                   "p95 CPU (ms)"]), "",
            "Same run: the pool DP over 3 chords, median "
            f"{r['p50_ratio_dp_vs_chords3']:.3f}x, p95 {r['p95_ratio_dp_vs_chords3']:.3f}x (CPU "
            f"{r['cpu_p50_ratio_dp_vs_chords3']:.3f}x, {r['cpu_p95_ratio_dp_vs_chords3']:.3f}x); the exact MILP "
            f"over 3 chords, median {r['p50_ratio_highs_vs_chords3']:.2f}x, p95 {r['p95_ratio_highs_vs_chords3']:.2f}x.",
            ""]


def write_summary(out: Path, info: dict) -> Path:
    lines = ["# Benchmark summary", "", f"Command: `{info['command']}`  ", f"Started: {info['started']}; "
             f"duration {info.get('duration_s', float('nan')):.0f} s", "",
             f"Machine: {info['platform']}, {info['cpu_model']}, {info['cpu_count']} CPUs "
             f"({info['cpus_usable']} usable), Python {info['python']}; HiGHS {info['highs']} (highspy "
             f"{info['highspy']}), Pyomo {info['pyomo']}, OR-Tools {info['ortools']}, PuLP {info['pulp']} "
             f"({info['cbc'] or 'no CBC'}), numpy {info['numpy']}, pandas {info['pandas']}.  ",
             f"Noise gauges: load average {info.get('loadavg_1m_start')} -> {info.get('loadavg_1m_end')}; "
             f"calibration workload median {info.get('calib_median_ms_start', float('nan')):.1f} -> "
             f"{info.get('calib_median_ms_end', float('nan')):.1f} ms (p95 "
             f"{info.get('calib_p95_ms_start', float('nan')):.1f} -> {info.get('calib_p95_ms_end', float('nan')):.1f}).", ""]
    durations = info.get("scenario_durations_s", {})
    if durations:
        lines += ["Scenario wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in durations.items()), ""]
    lines += targets_section(out)
    lines += backends_section(out)
    lines += slopes_section(out)
    lines += pareto_section(out)
    lines += discretisation_section(out)
    lines += exactness_section(out)
    failures = info.get("failures", [])
    lines += ["## Checks", "", f"{len(failures)} failed check(s)." if failures else "Every check passed.", ""]
    lines += [f"- {f}" for f in failures[:50]]
    claims = info.get("claim_warnings", [])
    if claims:
        lines += ["", f"Solver claims contradicted by another backend's verified solution ({len(claims)}): a bound above "
                  "a feasible objective, or 'optimal' well above it.", ""]
        lines += [f"- {c}" for c in claims[:60]]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path
