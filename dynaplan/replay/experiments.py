"""The experiments behind ``docs/results.md``: our numbers beside DynamoLLM's (HPCA 2025).

    python -m dynaplan.replay.experiments [hour hour-fixed hour-shuffled load-levels day week-conv week-code spread]

Each experiment prints a markdown table. These are experiments, not timing benchmarks, so
they are not in ``python -m benchmarks``'s registry (``benchmarks.registry.OUTSIDE``). Inventory: 40 H100 servers. Unless said otherwise the
static baselines (SinglePool, MultiPool; ScaleShard's and ScaleFreq's servers) are sized for the
trace's own peak (the smoothed rate instances see), the dynamic ones forecast from history.

* ``hour``: the bundled 1-hour conversation trace scaled (superposed, jittered copies) so that
  SinglePool needs 20 of the 40 servers at its peak (the CLI's ``--rate auto``).
* ``hour-fixed``: the same, static baselines sized for the whole 40-server cluster (the load at
  which SinglePool fills it), i.e. a cluster provisioned for a busier time than this hour.
* ``hour-shuffled``: ``hour`` with the (input, output) token pairs shuffled over the requests:
  same arrivals and class mix, no drift of the mix within the hour.
* ``load-levels``: the fixed 40-server cluster (static sized for it) at loads where SinglePool's
  peak need is 25% (low), 50% (medium), 70% and 85% (high) of it.
* ``day``: a synthetic day of conversation (generate_trace, seed 0, 45.1 req/s mean).
* ``week-conv`` / ``week-code``: a synthetic week (seed 0) at the 2024 traces' mean rates.
* ``spread``: the profile's energy per request at full utilisation, TP8 at the top clock vs the
  best configuration of each class (the ceiling on what choosing configurations can save).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from dynaplan.domain import DEFAULT_SLOS
from dynaplan.profiles import Profile
from dynaplan.replay.engine import (ReplayInput, baseline_peak_instances, comparison_table, compare, prepare,
                                    scale_to_baseline)
from dynaplan.replay.policies import make_policies
from dynaplan.workload import classify_trace, generate_trace, load_trace
from dynaplan.workload.trace import Trace

HW = "h100-80gb"
SERVERS = 40
PKW = {"inventory": {HW: SERVERS}}
PAPER_1H = {"SinglePool": 0.0, "MultiPool": 20.0, "ScaleInst": -2.0, "ScaleShard": -6.0, "ScaleFreq": -19.0,
            "DynamoLLM": -35.0}


def _hour(fill: float = 0.5, seed: int = 0) -> Trace:
    tr, _ = scale_to_baseline(load_trace("azure-conv-2023"), fill * SERVERS, prepare_kwargs=PKW, seed=seed)
    return tr


def shuffle_tokens(trace: Trace, seed: int = 0) -> Trace:
    """The trace with its (input, output) pairs permuted over the requests (arrivals unchanged)."""
    perm = np.random.default_rng(seed).permutation(len(trace))
    return Trace(arrival_s=trace.arrival_s, input_tokens=trace.input_tokens[perm],
                 output_tokens=trace.output_tokens[perm], name=trace.name, start=trace.start,
                 duration_s=trace.duration_s, synthetic=True, label=trace.label + " [token pairs shuffled]",
                 source=trace.source)


def _static_scale(inp: ReplayInput) -> float:
    return SERVERS / baseline_peak_instances(inp, HW)


def _table(results, paper: dict | None = None) -> str:
    df = comparison_table(results)
    head = ("| policy | energy (kWh) | vs SinglePool | paper | SLO met | P99 TTFT (ms) | P99 TBT (ms) | avg servers "
            "| carbon (kg) | cost (USD) |")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for name, r in df.iterrows():
        p = "" if paper is None or name not in paper else f"{paper[name]:+.0f}%"
        lines.append(f"| {name} | {r['energy_kwh']:,.1f} | {r['energy_vs_baseline_pct']:+.1f}% | {p} | "
                     f"{100 * r['slo_attainment']:.2f}% | {r['ttft_p99_ms']:,.0f} | {r['tbt_p99_ms']:.1f} | "
                     f"{r['avg_servers']:.1f} | {r['carbon_kg']:,.1f} | {r['cost_usd']:,.0f} |")
    return "\n".join(lines)


def hour() -> str:
    inp = prepare(_hour(), **PKW)
    return _table(compare(inp, make_policies("all")), PAPER_1H)


def hour_fixed() -> str:
    inp = prepare(_hour(), **PKW)
    return _table(compare(inp, make_policies("all", peak_scale=_static_scale(inp))), PAPER_1H)


def hour_shuffled() -> str:
    inp = prepare(shuffle_tokens(_hour()), **PKW)
    return _table(compare(inp, make_policies("all")), PAPER_1H)


def load_levels() -> str:
    rows = ["| load | SinglePool peak need | mean req/s | SinglePool (kWh) | DynamoLLM | paper | DynamoLLM SLO met | "
            "DynamoLLM avg servers | Oracle | Oracle SLO met |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label, fill, paper in (("low", 0.25, "-57%"), ("medium", 0.5, "-42%"), ("medium-high", 0.7, ""),
                               ("high", 0.85, "-15%")):
        tr = _hour(fill)
        inp = prepare(tr, **PKW)
        res = compare(inp, make_policies("SinglePool,DynamoLLM,Oracle", peak_scale=_static_scale(inp)))
        e = {r.policy: r.summary for r in res}
        base = e["SinglePool"].energy_kwh
        rows.append(f"| {label} | {fill:.0%} of 40 servers | {tr.mean_rate_rps:.0f} | {base:,.1f} | "
                    f"{100 * (e['DynamoLLM'].energy_kwh / base - 1):+.1f}% | {paper} | "
                    f"{100 * e['DynamoLLM'].slo_attainment:.2f}% | {e['DynamoLLM'].avg_servers:.1f} | "
                    f"{100 * (e['Oracle'].energy_kwh / base - 1):+.1f}% | {100 * e['Oracle'].slo_attainment:.2f}% |")
    return "\n".join(rows)


def day() -> str:
    inp = prepare(generate_trace("azure-conv-2023", days=1, seed=0), **PKW)
    return _table(compare(inp, make_policies("all")), {"DynamoLLM": -42.0})


def _week(source: str, paper: float) -> str:
    inp = prepare(generate_trace(source, days=7, seed=0), **PKW)
    return _table(compare(inp, make_policies("all")), {"DynamoLLM": paper})


def week_conv() -> str:
    return _week("azure-conv-2023", -47.0)


def week_code() -> str:
    return _week("azure-code-2023", -56.0)


def spread() -> str:
    """Energy per request at each configuration's max load under the SLO, by class."""
    prof = Profile.default()
    ml = prof.max_load_under_slo(DEFAULT_SLOS).reset_index()
    ml = ml[(ml["hardware"] == HW) & ml["feasible"]]
    ml = ml.assign(j=ml["power_w"] / ml["max_load_rps"])
    top = ml[(ml["tp"] == 8) & (ml["freq_mhz"] == prof.hardware[HW].max_clock_mhz)].set_index("request_class")["j"]
    best = ml.loc[ml.groupby("request_class")["j"].idxmin()].set_index("request_class")
    rows = []
    for name in ("azure-conv-2023", "azure-code-2023"):
        mix = pd.Series(np.bincount(classify_trace(load_trace(name)).true_class, minlength=9) / 1.0,
                        index=prof.classes.names)
        mix /= mix.sum()
        rows.append((name, float((mix * top).sum()), float((mix * best["j"]).sum())))
    out = ["| class | TP8 @1980 (J/req) | best (J/req) | best config | saving |", "|---|---|---|---|---|"]
    for c in prof.classes.names:
        b = best.loc[c]
        out.append(f"| {c} | {top[c]:.0f} | {b['j']:.0f} | TP{int(b['tp'])} @{int(b['freq_mhz'])} | "
                   f"{100 * (b['j'] / top[c] - 1):+.0f}% |")
    for name, t, b in rows:
        out.append(f"| {name} mix | {t:.0f} | {b:.0f} | | {100 * (b / t - 1):+.0f}% |")
    return "\n".join(out)


EXPERIMENTS = {"hour": hour, "hour-fixed": hour_fixed, "hour-shuffled": hour_shuffled, "load-levels": load_levels,
               "day": day, "week-conv": week_conv, "week-code": week_code, "spread": spread}


def main(argv: list[str] | None = None) -> None:
    names = (argv if argv is not None else sys.argv[1:]) or list(EXPERIMENTS)
    for n in names:
        t0 = time.perf_counter()
        text = EXPERIMENTS[n]()
        print(f"\n### {n} ({time.perf_counter() - t0:.0f} s)\n\n{text}\n", flush=True)


if __name__ == "__main__":
    main()
