"""Dense lookup tables of a profile for replay: power and latency vs load, by (hardware, TP, clock, class).

The replay evaluates every instance group in every 5-s window, for every candidate clock when
the instance level picks clocks: millions of profile lookups. :meth:`Profile.interpolate` does a
binary search per value; here each (hardware, TP, clock, class) cell is resampled once onto a
uniform load grid from 0 to its highest profiled load, so a lookup is a gather and a lerp.

Index of a cell: ``((key * n_clocks) + clock) * n_classes + class`` with ``key`` the position of
(hardware, TP) in :attr:`ProfileTables.keys` and ``clock`` the position of the clock in that
hardware's ascending levels (``n_clocks`` is the largest number of levels of any hardware;
missing columns are invalid).

**Capacity.** ``lmax`` is the profile's max load under the SLO (:meth:`Profile.max_load_under_slo`).
``ref`` is the capacity used to add the loads of different classes on one instance: ``lmax`` when
the class can meet its SLO on the configuration, else the configuration's saturation throughput
(requests of such a class always miss their SLO, but still take capacity).

**Below the lightest profiled load** the profile holds its first value. For latency that is
right (an almost idle instance answers at its unloaded latency). For power it is not: the
lightest point is an instance busy ~all the time, and an instance with no request draws only
its GPUs' idle power. ``idle_power`` chooses the bridge from zero load to the first point
``x0``:

* ``"busy-fraction"`` (default): the profile model's own busy fraction (docs/profiles.md, M13),
  ``P(x) = P_idle + (P(x0) - P_idle) (1 - exp(-N0 x / x0)) / (1 - exp(-N0))`` with ``P_idle`` =
  TP x the hardware's idle power per GPU and ``N0`` the requests in the instance at ``x0`` by
  Little's law, ``x0 (TTFT_p50 + n_out TBT_p50)``, ``n_out = throughput_tok_s / throughput_rps``;
* ``"linear"``: a straight line from ``P_idle`` to ``P(x0)``;
* ``"hold"``: the profile's convention (the first value down to zero load).

Above the highest profiled load every column holds its top value (the profile answers NaN there;
such windows are overloaded and counted as SLO misses anyway).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynaplan.domain.slo import SLOTable
from dynaplan.errors import ValidationError
from dynaplan.profiles.profile import Profile

COLUMNS = ("power_w", "ttft_p50_ms", "ttft_p99_ms", "tbt_p50_ms", "tbt_p99_ms")
IDLE_POWER_MODES = ("busy-fraction", "linear", "hold")


@dataclass(frozen=True, eq=False)
class ProfileTables:
    """Per-cell capacities and resampled columns (see the module docstring).

    Attributes:
        keys: (hardware, tp) of every key, sorted.
        clocks_mhz: per key, the clock of every column (0 where the hardware has fewer levels).
        n_clocks: per key, the number of valid clock columns.
        class_names: the classes, in the profile's scheme order.
        lmax: (keys, clocks, classes) max load under the SLO (req/s per instance), 0 if infeasible.
        ref: (keys, clocks, classes) capacity used to add loads of different classes (req/s).
        feasible: (keys, clocks, classes) the class meets its SLO at some load.
        step: flat per cell, the load-grid step (req/s).
        values: column name -> flat array (cells * grid_points).
        grid_points: points per cell.
        idle_instance_power_w: per key, TP x the hardware's idle power per GPU (W).
    """

    keys: tuple[tuple[str, int], ...]
    clocks_mhz: np.ndarray
    n_clocks: np.ndarray
    class_names: tuple[str, ...]
    lmax: np.ndarray
    ref: np.ndarray
    feasible: np.ndarray
    step: np.ndarray
    values: dict
    grid_points: int
    idle_instance_power_w: np.ndarray
    idle_power: str

    @property
    def n_keys(self) -> int:
        return len(self.keys)

    @property
    def width(self) -> int:
        """Clock columns per key."""
        return self.clocks_mhz.shape[1]

    def key_of(self, hardware: str, tp: int) -> int:
        try:
            return self.keys.index((hardware, int(tp)))
        except ValueError:
            raise ValidationError(f"profile has no rows for {hardware} TP{tp}; known: {list(self.keys)}") from None

    def clock_col(self, key: int, freq_mhz: int) -> int:
        cols = np.flatnonzero(self.clocks_mhz[key, : self.n_clocks[key]] == int(freq_mhz))
        if cols.size == 0:
            hw, tp = self.keys[key]
            raise ValidationError(f"{hw} TP{tp}: clock {freq_mhz} MHz is not profiled; levels "
                                  f"{self.clocks_mhz[key, : self.n_clocks[key]].tolist()}")
        return int(cols[0])

    def cell(self, key, col, cls) -> np.ndarray:
        """Flat cell index (vectorised, broadcasting)."""
        return (np.asarray(key) * self.width + np.asarray(col)) * len(self.class_names) + np.asarray(cls)

    def lookup(self, column: str, cell: np.ndarray, load_rps: np.ndarray) -> np.ndarray:
        """Value of ``column`` at ``load_rps`` in each ``cell`` (linear in load, held beyond the grid)."""
        vals = self.values[column]
        g = self.grid_points
        pos = np.asarray(load_rps, dtype=float) / self.step[cell]
        i = np.clip(np.floor(pos), 0, g - 2).astype(np.int64)
        frac = np.clip(pos - i, 0.0, 1.0)
        base = np.asarray(cell, dtype=np.int64) * g + i
        lo = vals[base]
        return lo + frac * (vals[base + 1] - lo)

    @classmethod
    def build(cls, profile: Profile, slos: SLOTable, *, hardware: tuple[str, ...] | None = None,
              model: str | None = None, grid_points: int = 512, idle_power: str = "busy-fraction") -> "ProfileTables":
        if idle_power not in IDLE_POWER_MODES:
            raise ValidationError(f"idle_power={idle_power!r}; expected one of {IDLE_POWER_MODES}")
        if grid_points < 8:
            raise ValidationError(f"grid_points={grid_points}; expected >= 8")
        if model is None:
            if len(profile.models) != 1:
                raise ValidationError(f"profile holds models {profile.models}; pass model=")
            model = profile.models[0]
        ml = profile.max_load_under_slo(slos).reset_index()
        ml = ml[ml["model"] == model]
        if hardware is not None:
            unknown = sorted(set(hardware) - set(ml["hardware"]))
            if unknown:
                raise ValidationError(f"profile has no rows for hardware {unknown}")
            ml = ml[ml["hardware"].isin(list(hardware))]
        if ml.empty:
            raise ValidationError(f"profile {profile.source}: no rows for model {model!r}")
        names = profile.classes.names
        keys = tuple(sorted({(h, int(t)) for h, t in zip(ml["hardware"], ml["tp"])}))
        clocks = {h: sorted(ml.loc[ml["hardware"] == h, "freq_mhz"].astype(int).unique())
                  for h in ml["hardware"].unique()}
        width = max(len(v) for v in clocks.values())
        n_k, n_c = len(keys), len(names)
        clocks_mhz = np.zeros((n_k, width), dtype=np.int64)
        n_clocks = np.zeros(n_k, dtype=np.int64)
        for k, (h, _) in enumerate(keys):
            clocks_mhz[k, : len(clocks[h])] = clocks[h]
            n_clocks[k] = len(clocks[h])
        key_pos = {kk: i for i, kk in enumerate(keys)}
        kidx = np.array([key_pos[(h, int(t))] for h, t in zip(ml["hardware"], ml["tp"])])
        fidx = np.array([clocks[h].index(int(f)) for h, f in zip(ml["hardware"], ml["freq_mhz"])])
        cidx = np.array([names.index(c) for c in ml["request_class"]])
        n_cells = n_k * width * n_c
        flat = (kidx * width + fidx) * n_c + cidx
        gid = np.full(n_cells, -1, dtype=np.int64)
        gid[flat] = ml["group_id"].to_numpy()
        lmax = np.zeros(n_cells)
        lmax[flat] = ml["max_load_rps"].to_numpy()
        feasible = np.zeros(n_cells, dtype=bool)
        feasible[flat] = ml["feasible"].to_numpy() & (ml["max_load_rps"].to_numpy() > 0)

        table = profile.table
        starts, ends = profile.group_bounds
        load = table["load_rps"].to_numpy()
        thr = table["throughput_rps"].to_numpy()
        valid = gid >= 0
        g = gid[valid]
        top = np.ones(n_cells)
        top[valid] = load[ends[g] - 1]
        x0 = np.ones(n_cells)
        x0[valid] = load[starts[g]]
        sat = np.ones(n_cells)
        sat[valid] = np.maximum.reduceat(thr, starts)[g] if len(starts) else 1.0
        ref = np.where(feasible, lmax, sat)
        step = top / (grid_points - 1)

        x = step[valid, None] * np.arange(grid_points)[None, :]
        gg = np.broadcast_to(g[:, None], x.shape)
        values = {}
        present = set(table.columns)
        for col in COLUMNS:
            src = col if col in present else col.replace("_p50_", "_p99_")
            v = np.zeros((n_cells, grid_points))
            v[valid] = profile.interpolate(src, gg, x)
            values[col] = v
        hw_of_key = np.array([profile.hardware[h].idle_power_w * t for h, t in keys])
        idle_inst = np.repeat(hw_of_key, width * n_c)  # per cell
        if idle_power != "hold":
            _bridge_idle_power(values["power_w"], valid, x0, step, idle_inst, idle_power, table, starts, g,
                               values["ttft_p50_ms"], values["tbt_p50_ms"])
        for col in COLUMNS:
            values[col] = np.ascontiguousarray(values[col].ravel())
        return cls(keys=keys, clocks_mhz=clocks_mhz, n_clocks=n_clocks, class_names=tuple(names),
                   lmax=lmax.reshape(n_k, width, n_c), ref=ref.reshape(n_k, width, n_c),
                   feasible=feasible.reshape(n_k, width, n_c), step=step, values=values,
                   grid_points=grid_points, idle_instance_power_w=hw_of_key, idle_power=idle_power)


def _bridge_idle_power(power: np.ndarray, valid: np.ndarray, x0: np.ndarray, step: np.ndarray,
                       idle_inst: np.ndarray, mode: str, table, starts: np.ndarray, g: np.ndarray,
                       ttft50: np.ndarray, tbt50: np.ndarray) -> None:
    """Replace the held power below the lightest profiled load by a bridge from idle (in place)."""
    n_cells, n_pts = power.shape
    x = step[:, None] * np.arange(n_pts)[None, :]
    below = valid[:, None] & (x < x0[:, None])
    p0 = np.zeros(n_cells)
    p0[valid] = table["power_w"].to_numpy()[starts[g]]
    p_idle = np.minimum(idle_inst, p0)
    r = np.where(x0[:, None] > 0, x / x0[:, None], 1.0)
    if mode == "linear":
        shape = r
    else:
        n0 = np.ones(n_cells)
        if "throughput_tok_s" in table.columns:
            tok = table["throughput_tok_s"].to_numpy()[starts[g]] / table["throughput_rps"].to_numpy()[starts[g]]
        else:
            tok = np.full(g.shape, 100.0)
        lat_s = (ttft50[valid, 0] + tok * tbt50[valid, 0]) / 1e3
        n0[valid] = np.maximum(x0[valid] * lat_s, 1e-6)
        shape = (1 - np.exp(-n0[:, None] * r)) / (1 - np.exp(-n0[:, None]))
    bridged = p_idle[:, None] + (p0 - p_idle)[:, None] * shape
    power[below] = bridged[below]
