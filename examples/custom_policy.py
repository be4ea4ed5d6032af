"""A user-defined replay policy, replayed beside the bundled ones on the Azure conversation hour.

``RightSizedTP4`` is a policy of our own: every cluster epoch (30 min) it gives each class a pool
of TP4 instances, as many as the class's last 30-min peak (+20%) needs at the top clock, and lets
the instance level pick every instance's clock each 5 s (``freq_mhz=None``). A policy implements
one method, ``decide(obs) -> Deployment | None``; it sees only the past (``obs.history_rps``,
``obs.peaks(...)``), and the engine applies its decisions with real boot, re-shard and clock
delays and energy.

The script replays the bundled 1-hour conversation trace, scaled to 60 req/s, through
SinglePool, MultiPool, the custom policy and DynamoLLM, prints the comparison table and checks
its own results.

Run: python examples/custom_policy.py
"""

from __future__ import annotations

import math

from rich.console import Console

from dynaplan.cli.replay import results_table
from dynaplan.replay import Deployment, GroupSpec, Policy, comparison_table, compare, prepare, scale_trace
from dynaplan.replay.policies import DynamoLLM, MultiPool, SinglePool
from dynaplan.workload import load_trace

HW = "h100-80gb"


class RightSizedTP4(Policy):
    """Per-class TP4 pools sized every cluster epoch for the last peak; clocks by the instance level."""

    name = "RightSizedTP4"

    def __init__(self, headroom: float = 0.2) -> None:
        self.headroom = headroom

    def decide(self, obs):
        if obs.level != "cluster" and obs.current is not None:
            return None                                   # keep the pools between cluster epochs
        ctx = self.ctx
        tab = ctx.tables
        key = tab.key_of(HW, 4)
        top = tab.n_clocks[key] - 1
        peaks = obs.peaks(ctx.cluster_epoch_s, last=1)    # last 30-min peak per predicted class
        last = peaks.iloc[-1].to_numpy() if len(peaks) else tab.lmax[key, top, :] * 0
        groups = []
        for i, c in enumerate(ctx.class_names):
            cap = tab.lmax[key, top, i]                     # TP4 capacity at the top clock (req/s)
            if last[i] > 0 and cap > 0:
                n = math.ceil(last[i] * (1 + self.headroom) / cap)
                groups.append(GroupSpec(pool=c, hardware=HW, tp=4, count=n, freq_mhz=None))
        return Deployment(groups=tuple(groups), routing={g.pool: {g.pool: 1.0} for g in groups})


def main() -> None:
    trace = load_trace("azure-conv-2023")
    trace = scale_trace(trace, 60.0 / trace.mean_rate_rps, seed=0)
    inp = prepare(trace, inventory={HW: 40})
    results = compare(inp, [SinglePool(), MultiPool(), RightSizedTP4(), DynamoLLM()])
    table = comparison_table(results)
    Console(width=140).print(results_table(table, f"replay: {trace.name} at 60 req/s, 40 x {HW}"))

    mine = table.loc["RightSizedTP4"]
    assert mine["slo_attainment"] >= 0.99, mine
    assert mine["energy_kwh"] < table.loc["MultiPool", "energy_kwh"], table["energy_kwh"]
    custom = next(r for r in results if r.policy == "RightSizedTP4")
    assert set(custom.config_hours["tp"]) == {4}                       # only TP4 instances ran
    assert custom.config_hours["freq_mhz"].nunique() > 1               # the instance level moved clocks
    assert custom.summary.decisions == 12                              # asked every 5 min for an hour
    for r in results:                                                  # energy adds up
        s = r.summary
        assert abs(s.energy_kwh - (s.serving_kwh + s.idle_kwh + s.transition_kwh)) < 1e-9 * s.energy_kwh
    print("custom policy checks passed")


if __name__ == "__main__":
    main()
