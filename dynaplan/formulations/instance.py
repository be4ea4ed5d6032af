"""Instance level (every ~5 s): the GPU clock of every instance from its observed load.

Equations: ``formulations/instance.md``. For instance i on (hardware h, TP t) with load
l_{i,c} per class, clock f is eligible when its per-class utilisation
``U_i(f) = sum_c l_{i,c} / lmax_{h,t,f,c} <= 1`` (instance.eligible). Among eligible clocks take
the one of least power ``P_{h,t,f,p}(U_i(f) lmax_{h,t,f,p})`` (instance.obj; p = the pool's
class, so for an instance serving only its own class this is the profile's power at its load).
If no clock is eligible, the maximum clock is chosen and the instance is flagged.

There is no solver here: the choice is an argmin over at most a dozen clocks, done for all
instances of the cluster in one vectorised pass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dynaplan.profiles.profile import Profile


def choose_clocks(profile: Profile, max_load: pd.DataFrame, loads: pd.DataFrame) -> pd.DataFrame:
    """Pick the clock of every instance.

    ``max_load``: :meth:`Profile.max_load_under_slo` output (all clocks, feasible or not).
    ``loads``: long frame with ``instance``, ``pool``, ``hardware``, ``tp``, ``request_class``,
    ``load_rps`` (one row per instance and class it serves; an idle instance has one row with
    its pool class and load 0).

    Returns one row per instance: ``instance``, ``pool``, ``hardware``, ``tp``, ``freq_mhz``,
    ``utilisation``, ``power_w``, ``meets_slo``.
    """
    need = {"instance", "pool", "hardware", "tp", "request_class", "load_rps"}
    missing = need - set(loads.columns)
    if missing:
        raise ValueError(f"instance loads: missing column(s) {sorted(missing)}")
    if (loads["load_rps"] < 0).any() or loads["load_rps"].isna().any():
        raise ValueError("instance loads: load_rps must be finite and >= 0")
    ml = max_load[["model", "hardware", "tp", "freq_mhz", "request_class", "max_load_rps"]]
    cand = loads.merge(ml, on=["hardware", "tp", "request_class"], how="left")
    if cand["freq_mhz"].isna().any():
        bad = cand.loc[cand["freq_mhz"].isna(), ["hardware", "tp", "request_class"]].iloc[0].to_dict()
        raise ValueError(f"instance loads: no profile rows for {bad}")
    with np.errstate(divide="ignore", invalid="ignore"):
        part = np.where(cand["load_rps"].to_numpy() > 0,
                        cand["load_rps"].to_numpy() / cand["max_load_rps"].to_numpy(), 0.0)
    cand["part"] = part
    util = cand.groupby(["instance", "freq_mhz"], as_index=False).agg(
        utilisation=("part", "sum"), pool=("pool", "first"), hardware=("hardware", "first"),
        tp=("tp", "first"), model=("model", "first"))
    own = ml.rename(columns={"request_class": "pool", "max_load_rps": "own_max_load_rps"})
    util = util.merge(own, on=["model", "hardware", "tp", "freq_mhz", "pool"], how="left")
    eq_load = util["utilisation"].to_numpy() * util["own_max_load_rps"].to_numpy()
    gid = profile.group_ids(util["hardware"].to_numpy(), util["tp"].to_numpy(), util["freq_mhz"].to_numpy(),
                            util["pool"].to_numpy(), util["model"].to_numpy())
    eligible = (util["utilisation"].to_numpy() <= 1 + 1e-9) & (util["own_max_load_rps"].to_numpy() > 0)
    power = profile.interpolate("power_w", gid, np.where(eligible, eq_load, 0.0))
    util["power_w"] = power
    util["eligible"] = eligible
    util["_key"] = np.where(eligible, power, np.inf)
    best = util.sort_values(["instance", "_key", "freq_mhz"]).groupby("instance").head(1).set_index("instance")
    top = util.sort_values(["instance", "freq_mhz"]).groupby("instance").tail(1).set_index("instance")
    ok = best["eligible"].to_numpy()
    res = best.copy()
    res.loc[~ok] = top.loc[best.index[~ok]]
    if (~ok).any():  # at max clock and overloaded: power at the profile's highest load point
        fallback = res.loc[~ok]
        fgid = profile.group_ids(fallback["hardware"].to_numpy(), fallback["tp"].to_numpy(),
                                 fallback["freq_mhz"].to_numpy(), fallback["pool"].to_numpy(),
                                 fallback["model"].to_numpy())
        _, ends = profile.group_bounds
        max_row_load = profile.table["load_rps"].to_numpy()[ends[fgid] - 1]
        res.loc[~ok, "power_w"] = profile.interpolate("power_w", fgid, max_row_load)
    res["meets_slo"] = ok
    res = res.reset_index()
    return res[["instance", "pool", "hardware", "tp", "freq_mhz", "utilisation", "power_w", "meets_slo"]]
