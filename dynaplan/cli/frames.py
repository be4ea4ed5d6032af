"""Flat tables of the commands' results, for analysts: one row per instance group, per action,
per window; written as CSV or parquet beside the JSON the commands keep for machines.

Every frame has plain columns (no nested dicts): per-class loads become ``load_rps_<class>``
columns, GPU lists become strings such as ``"0-3"``. ``pd.read_csv(path)`` or
``pd.read_parquet(path)`` reads them back as they are.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

TABLE_SUFFIXES = (".csv", ".parquet")


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as CSV or parquet, by the suffix of ``path`` (a temporary keeps the suffix)."""
    if path.name.lower().endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def plan_frame(plan) -> pd.DataFrame:
    """One row per instance group of a :class:`~dynaplan.planning.Plan`, and one per pool's idle
    GPUs (``kind = "idle_gpus"``, ``count`` = GPUs): the ``power_w`` column sums to the plan's power."""
    classes = list(plan.forecast_rps)
    rows = []
    for pp in plan.pools:
        for g in pp.groups:
            row = {"pool": pp.pool, "kind": "instances", "hardware": g.hardware, "tp": g.tp, "freq_mhz": g.freq_mhz,
                   "count": g.count, "gpus": g.gpus, "utilisation": g.utilisation, "slo_margin": g.slo_margin,
                   "power_w_per_instance": g.power_w_per_instance, "power_w": g.power_w, "energy_j": g.energy_j}
            row.update({f"load_rps_{c}": g.load_rps_per_instance.get(c, 0.0) for c in classes})
            rows.append(row)
        idle = sum(pp.idle_gpus.values())
        if idle:
            hw = ",".join(sorted(h for h, n in pp.idle_gpus.items() if n))
            rows.append({"pool": pp.pool, "kind": "idle_gpus", "hardware": hw, "count": idle, "gpus": idle,
                         "power_w": pp.idle_power_w, "energy_j": pp.idle_power_w * plan.epoch_s})
    cols = ["pool", "kind", "hardware", "tp", "freq_mhz", "count", "gpus", "utilisation", "slo_margin",
            "power_w_per_instance", "power_w", "energy_j"] + [f"load_rps_{c}" for c in classes]
    frame = pd.DataFrame(rows, columns=cols)
    return frame.astype({"tp": "Int64", "freq_mhz": "Int64"})


def _gpus(gpus) -> str:
    g = sorted(gpus)
    if g and g == list(range(g[0], g[-1] + 1)):
        return f"{g[0]}" if len(g) == 1 else f"{g[0]}-{g[-1]}"
    return ",".join(map(str, g))


def actions_frame(rp) -> pd.DataFrame:
    """One row per action of a :class:`~dynaplan.reconfig.ReconfigPlan`."""
    rows = []
    for a in rp.actions:
        rows.append({"seq": a.seq, "kind": a.kind, "instance": a.instance, "server": a.server,
                     "hardware": a.hardware, "start_s": a.start_s, "end_s": a.end_s,
                     "pool_from": a.pool_from, "pool_to": a.pool_to, "tp_from": a.tp_from, "tp_to": a.tp_to,
                     "gpus_from": _gpus(a.gpus_from), "gpus_to": _gpus(a.gpus_to),
                     "freq_from_mhz": a.freq_from_mhz, "freq_to_mhz": a.freq_to_mhz,
                     "serves_during": a.serves_during,
                     "load_rps": ";".join(f"{c}={v:g}" for c, v in a.load_rps.items()),
                     "energy_j": a.cost.energy_j, "gpu_s_unavailable": a.cost.gpu_s_unavailable,
                     "lost_capacity_rps_s": a.cost.lost_capacity_rps_s, "bytes_moved": a.cost.bytes_moved,
                     "reason": a.reason})
    frame = pd.DataFrame(rows, columns=["seq", "kind", "instance", "server", "hardware", "start_s", "end_s",
                                        "pool_from", "pool_to", "tp_from", "tp_to", "gpus_from", "gpus_to",
                                        "freq_from_mhz", "freq_to_mhz", "serves_during", "load_rps", "energy_j",
                                        "gpu_s_unavailable", "lost_capacity_rps_s", "bytes_moved", "reason"])
    return frame.astype({c: "Int64" for c in ("tp_from", "tp_to", "freq_from_mhz", "freq_to_mhz")})


def windows_frame(results) -> pd.DataFrame:
    """One row per (policy, window) of replay results: the per-window accounting, long format."""
    parts = []
    for r in results:
        w = r.windows.reset_index()
        w.insert(0, "policy", r.policy)
        parts.append(w)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


__all__ = ["TABLE_SUFFIXES", "actions_frame", "plan_frame", "windows_frame", "write_frame"]
