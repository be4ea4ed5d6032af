"""Instance level (every ~5 s): the GPU clock of every instance from its observed load.

Equations: ``formulations/instance.md``. For instance i on (hardware h, TP t) with load
l_{i,c} per class, clock f is eligible when its per-class utilisation
``U_i(f) = sum_c l_{i,c} / lmax_{h,t,f,c} <= 1`` (instance.eligible). Among eligible clocks take
the one of least power ``sum_c (u_{i,c}(f) / U_i(f)) P_{h,t,f,c}(U_i(f) lmax_{h,t,f,c})``
(instance.obj): each served class's curve at the instance's utilisation, weighted by its share
``u_{i,c} = l_{i,c} / lmax_{h,t,f,c}`` — the mixed-instance rule of ``Profile.mixed_power_w``,
which computes it here; for an instance serving one class, the profile's power at its load.
If no clock is eligible, the maximum clock is chosen and the instance is flagged
(instance.fallback).

There is no solver here: the choice is an argmin over at most a dozen clocks, done for all
instances of the cluster in one vectorised pass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dynaplan.profiles.profile import Profile


class ClockChooser:
    """Dense lookup tables (key = hardware, TP, class; by clock level), built once per planner."""

    def __init__(self, profile: Profile, max_load: pd.DataFrame) -> None:
        self.profile = profile
        ml = max_load if "group_id" in max_load.columns else max_load.reset_index()
        if "group_id" not in ml.columns:
            raise ValueError("max_load: expected the group_id index or column of Profile.max_load_under_slo")
        keys = ml[["hardware", "tp", "request_class"]].drop_duplicates().reset_index(drop=True)
        self.key_index = pd.MultiIndex.from_frame(keys)
        # (hardware, tp, class) -> key: the few distinct triples of a call are looked up here
        self._key_of = {(h, int(t), c): i for i, (h, t, c) in enumerate(keys.itertuples(index=False, name=None))}
        clocks = {h: sorted(ml.loc[ml["hardware"] == h, "freq_mhz"].unique()) for h in ml["hardware"].unique()}
        width = max(len(v) for v in clocks.values())
        kid = self.key_index.get_indexer(pd.MultiIndex.from_frame(ml[["hardware", "tp", "request_class"]]))
        col = np.array([clocks[h].index(f) for h, f in zip(ml["hardware"], ml["freq_mhz"])])
        self.lmax = np.zeros((len(keys), width))
        self.gid = np.full((len(keys), width), -1, dtype=np.int64)
        self.freq = np.zeros((len(keys), width), dtype=np.int64)
        self.lmax[kid, col] = ml["max_load_rps"].to_numpy()
        self.gid[kid, col] = ml["group_id"].to_numpy()
        self.freq[kid, col] = ml["freq_mhz"].to_numpy()
        self.n_clocks = np.array([len(clocks[h]) for h in keys["hardware"]])
        _, ends = profile.group_bounds
        self.top_load = profile.table["load_rps"].to_numpy()[ends - 1]

    def _keys(self, hardware, tp, request_class, what: str) -> np.ndarray:
        # the few distinct (hardware, tp, class) triples are looked up once each: factorize the
        # columns (hash tables in C), then index the triples' codes
        hw_codes, hw_names = pd.factorize(np.asarray(hardware, dtype=object))
        cls_codes, cls_names = pd.factorize(np.asarray(request_class, dtype=object))
        tp = np.asarray(tp, dtype=np.int64)
        triples, inverse = np.unique(np.stack([hw_codes, tp, cls_codes], axis=1), axis=0, return_inverse=True)
        key_of = self._key_of
        found = np.array([key_of.get((hw_names[a], int(b), cls_names[c]), -1) for a, b, c in triples], dtype=np.int64)
        k = found[np.asarray(inverse).ravel()]
        k[(hw_codes < 0) | (cls_codes < 0)] = -1  # a missing value (None/NaN) names no key
        if (k < 0).any():
            i = int(np.flatnonzero(k < 0)[0])
            raise ValueError(f"instance loads: no profile rows for {what} "
                             f"{{'hardware': {hardware[i]!r}, 'tp': {tp[i]}, 'request_class': {request_class[i]!r}}}")
        return k

    def choose(self, loads: pd.DataFrame) -> pd.DataFrame:
        need = {"instance", "pool", "hardware", "tp", "request_class", "load_rps"}
        missing = need - set(loads.columns)
        if missing:
            raise ValueError(f"instance loads: missing column(s) {sorted(missing)}")
        load = loads["load_rps"].to_numpy(dtype=float)
        if not np.all(np.isfinite(load)) or (load < 0).any():
            raise ValueError("instance loads: load_rps must be finite and >= 0")
        inst_codes, inst_ids = pd.factorize(loads["instance"], sort=True)
        n = len(inst_ids)
        hw, tp, cls = (loads[c].to_numpy() for c in ("hardware", "tp", "request_class"))
        row_key = self._keys(hw, tp, cls, "class")
        first = np.zeros(n, dtype=np.int64)
        first[inst_codes[::-1]] = np.arange(len(loads))[::-1]  # first row of every instance
        pool = loads["pool"].to_numpy()[first]
        own_key = self._keys(hw[first], tp[first], pool, "pool")
        with np.errstate(divide="ignore", invalid="ignore"):
            part = np.where(load[:, None] > 0, load[:, None] / self.lmax[row_key], 0.0)
        util = np.zeros((n, self.lmax.shape[1]))
        np.add.at(util, inst_codes, part)
        own_lmax = self.lmax[own_key]
        gid = self.gid[own_key]
        eligible = (util <= 1 + 1e-9) & (own_lmax > 0) & (gid >= 0)
        power = np.full(util.shape, np.inf)
        if eligible.any():
            # the mixed-instance power rule (Profile.mixed_power_w), for every eligible
            # (instance, clock) cell at once: cell = instance * width + clock column
            width = self.lmax.shape[1]
            r, col = np.nonzero(eligible[inst_codes] & (part > 0))
            cells = np.flatnonzero(eligible.ravel())
            pos = np.full(util.size, -1, dtype=np.int64)
            pos[cells] = np.arange(cells.size)
            flat = power.reshape(-1)  # a view: writes land in power
            flat[cells] = self.profile.mixed_power_w(
                pos[inst_codes[r] * width + col], self.gid[row_key[r], col], self.lmax[row_key[r], col],
                load[r], gid.ravel()[cells])
        # least power; ties to the higher clock (search the columns from the top down)
        rev = power[:, ::-1]
        best = self.lmax.shape[1] - 1 - np.argmin(rev, axis=1)
        ok = eligible[np.arange(n), best]
        top = self.n_clocks[own_key] - 1
        col = np.where(ok, best, top)
        rows = np.arange(n)
        chosen_power = power[rows, col]
        if (~ok).any():  # overloaded at every clock: max clock, power at its highest profiled load
            g = gid[rows[~ok], top[~ok]]
            chosen_power[~ok] = self.profile.interpolate("power_w", g, self.top_load[g])
        return pd.DataFrame({
            "instance": inst_ids, "pool": pool, "hardware": hw[first], "tp": tp[first],
            "freq_mhz": self.freq[own_key, col], "utilisation": util[rows, col], "power_w": chosen_power,
            "meets_slo": ok,
        })

