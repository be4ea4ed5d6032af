"""The :class:`Profile`: a validated, immutable profile table with fast vectorised queries.

Interpolation between measured load points is piecewise linear in load. Below the lowest load
point of a group the value of that point is used (profiles start at light load, and power and
latency are non-decreasing, so this over-estimates both and errs on the safe side); above the
highest load point the answer is NaN, because the operating point was never observed.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from dynaplan.domain.classes import DEFAULT_CLASSES, ClassScheme
from dynaplan.domain.hardware import DEFAULT_HARDWARE, HardwareType
from dynaplan.domain.slo import SLOTable
from dynaplan.errors import NotFoundError, ValidationError, require_file
from dynaplan.validation import excerpt, number_array
from dynaplan.profiles import schema

DEFAULT_PROFILE_FILE = "default_llama2_70b.csv"
_SAT_RTOL = 1e-6  # throughput below load by more than this fraction means the point is saturated


def _as_array(x, n: int, name: str, dtype=None) -> np.ndarray:
    a = np.asarray(x, dtype=dtype)
    if a.ndim == 0:
        return np.full(n, a.item(), dtype=a.dtype if dtype is None else dtype)
    if a.shape != (n,):
        raise ValidationError(f"{name}: expected a scalar or an array of length {n}, got shape {a.shape}")
    return a


class Profile:
    """Energy and latency of (model, hardware, TP, clock, class) at a set of loads.

    Build one from a DataFrame, or with :meth:`read` / :meth:`default`. The table is validated on
    construction (see :mod:`dynaplan.profiles.schema`) and never mutated afterwards; the
    :attr:`table` property returns a copy.

    ``complete=False`` accepts partial profiles (for example an import of one TP degree) but
    still rejects malformed rows; :meth:`missing_grid_points` then lists what a planner lacks.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        *,
        source: str = "<profile>",
        hardware: Mapping[str, HardwareType] | None = None,
        classes: ClassScheme | None = None,
        complete: bool = True,
    ) -> None:
        self.source = source
        self.hardware = dict(DEFAULT_HARDWARE if hardware is None else hardware)
        self.classes = DEFAULT_CLASSES if classes is None else classes
        self.complete = complete
        df = schema.normalise(table, source)
        schema.check_keys(df, source)
        schema.check_known(df, source, self.hardware, self.classes)
        order = np.lexsort(tuple(df[c].to_numpy() for c in reversed(schema.KEY_COLUMNS)))
        df_sorted = df.iloc[order].reset_index(drop=True)
        gcols = list(schema.GROUP_COLUMNS)
        new_group = np.ones(len(df_sorted), dtype=bool)
        new_group[1:] = np.any(
            [df_sorted[c].to_numpy()[1:] != df_sorted[c].to_numpy()[:-1] for c in gcols], axis=0
        )
        starts = np.flatnonzero(new_group)
        schema.check_monotone(df_sorted, source, order, starts)
        if complete:
            schema.check_grid(df_sorted, source, self.hardware, self.classes)
        df_sorted["energy_per_request_j"] = df_sorted["power_w"] / df_sorted["throughput_rps"]

        self._df = df_sorted
        self._starts = starts
        self._ends = np.r_[starts[1:], len(df_sorted)]
        self._gid_of_row = np.repeat(np.arange(len(starts)), self._ends - starts)
        groups = df_sorted.iloc[starts][gcols].reset_index(drop=True)
        groups.index.name = "group_id"
        self._groups = groups
        self._group_index = pd.MultiIndex.from_frame(groups)
        self._load = df_sorted["load_rps"].to_numpy()
        self._columns = {c: df_sorted[c].to_numpy(dtype=float) for c in df_sorted.columns
                         if c not in schema.STRING_COLUMNS}
        # Lookups search (group, load) pairs in one sorted integer key, group x (levels + 1) +
        # rank of the load among the table's distinct loads: exact for any loads, where a float
        # key group x span + load loses the load's low digits once span is large (a single 1e15
        # req/s cell once shifted every lookup of the table).
        self._levels = np.unique(self._load)
        self._stride = np.int64(len(self._levels) + 1)
        self._composite = self._gid_of_row.astype(np.int64) * self._stride + self._rank(self._load)

    # ------------------------------------------------------------------ construction and I/O
    @classmethod
    def read(cls, path: str | Path, **kwargs) -> "Profile":
        """Load a profile from ``.csv``, ``.csv.gz`` or ``.parquet``; errors name the file."""
        path = Path(path)
        kwargs.setdefault("source", str(path))
        require_file(path, "a profile file (.csv, .csv.gz, .parquet)", "profile")
        try:
            if path.suffix.lower() == ".parquet":
                table = pd.read_parquet(path)
            else:
                # pandas renames a repeated header field (power_w, power_w.1): refuse it first
                header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]
                repeated = sorted({h.strip() for h in header if (header.str.strip() == h.strip()).sum() > 1})
                if repeated:
                    raise ValidationError(f"{path}: line 1: column(s) {repeated} appear more than once in the "
                                          "header; each column must be unique")
                table = pd.read_csv(path)
        except (ValueError, OSError, EOFError, pd.errors.ParserError) as exc:
            if isinstance(exc, ValidationError):
                raise
            detail = " ".join(str(exc).split())
            raise ValidationError(
                f"{path}: cannot read as a profile table ({exc.__class__.__name__}: {detail})") from None
        return cls(table, **kwargs)

    def write(self, path: str | Path) -> Path:
        """Save the measured columns (not derived ones) as CSV or parquet, by suffix."""
        path = Path(path)
        out = self._df.drop(columns=list(schema.DERIVED_COLUMNS))
        if path.suffix.lower() == ".parquet":
            out.to_parquet(path, index=False)
        else:
            out.to_csv(path, index=False, float_format="%.6g")
        return path

    @classmethod
    def default(cls) -> "Profile":
        """The bundled Llama2-70B profile on A100-80GB, H100-80GB, H200-141GB and B200-180GB (modelled; see docs/profiles.md)."""
        ref = resources.files("dynaplan.profiles") / "data" / DEFAULT_PROFILE_FILE
        with resources.as_file(ref) as p:
            return cls.read(p, source=f"bundled:{DEFAULT_PROFILE_FILE}")

    # ------------------------------------------------------------------ plain accessors
    @property
    def table(self) -> pd.DataFrame:
        """A copy of the validated table, sorted by key, with derived columns."""
        return self._df.copy()

    @property
    def groups(self) -> pd.DataFrame:
        """One row per (model, hardware, tp, freq_mhz, request_class), indexed by group id."""
        return self._groups.copy()

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(sorted(self._groups["model"].unique()))

    @property
    def group_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) row positions of every group in :attr:`table` (end exclusive)."""
        return self._starts.copy(), self._ends.copy()

    def missing_grid_points(self) -> pd.DataFrame:
        return schema.missing_grid_points(self._df, self.hardware, self.classes)

    def __len__(self) -> int:
        return len(self._df)

    def __repr__(self) -> str:
        return f"Profile({self.source!r}, {len(self._df)} rows, {len(self._groups)} groups)"

    # ------------------------------------------------------------------ vectorised queries
    def group_ids(self, hardware, tp, freq_mhz, request_class, model=None) -> np.ndarray:
        """Group id of each key (scalars broadcast). Unknown keys raise ``KeyError``."""
        if model is None:
            if len(self.models) != 1:
                raise ValidationError(f"profile holds models {self.models}; pass model=")
            model = self.models[0]
        n = max(np.size(x) for x in (hardware, tp, freq_mhz, request_class, model))
        arrays = [
            _as_array(model, n, "model", object),
            _as_array(hardware, n, "hardware", object),
            _as_array(number_array(tp, "tp", lo=1, integer=True), n, "tp", np.int64),
            _as_array(number_array(freq_mhz, "freq_mhz", lo=1, unit="MHz", integer=True), n, "freq_mhz", np.int64),
            _as_array(request_class, n, "request_class", object),
        ]
        gid = self._group_index.get_indexer(pd.MultiIndex.from_arrays(arrays))
        if np.any(gid < 0):
            k = int(np.flatnonzero(gid < 0)[0])
            key = dict(zip(schema.GROUP_COLUMNS, (a[k] for a in arrays)))
            key = {k: v.item() if isinstance(v, np.generic) else v for k, v in key.items()}
            raise NotFoundError(f"{self.source}: no profile rows for {key}")
        return gid

    def points_up_to(self, group_id: int, max_load_rps: float) -> tuple[np.ndarray, np.ndarray]:
        """The group's profiled points with load at most ``max_load_rps`` (within a relative
        ``1e-12``, for rounding): their loads (req/s, ascending) and power (W). With the group's
        max load under an SLO this is the part of its curve an instance may run on (the last
        point is that max load: it is a profiled point, never an interpolation beyond one)."""
        s, e = int(self._starts[group_id]), int(self._ends[group_id])
        load = self._load[s:e]
        m = int(np.searchsorted(load, float(max_load_rps) * (1 + 1e-12), side="right"))
        return load[:m].copy(), self._columns["power_w"][s:s + m].copy()

    def interpolate(self, column: str, group_id, load_rps) -> np.ndarray:
        """Piecewise-linear value of ``column`` at ``load_rps`` in each group (vectorised).

        Held at the first point below the lowest load; NaN above the highest load.
        """
        vals = self._columns.get(column)
        if vals is None:
            raise NotFoundError(f"unknown or non-numeric profile column {excerpt(column)}; numeric columns: "
                                f"{sorted(self._columns)}")
        try:
            gid = np.asarray(group_id, dtype=np.int64)
            x = np.asarray(load_rps, dtype=float)
        except (TypeError, ValueError):
            number_array(group_id, "group_id", lo=0, integer=True)
            number_array(load_rps, "load_rps", unit="req/s")  # one of the two raises, naming it
            raise
        if gid.size and (gid.min() < 0 or gid.max() >= len(self._starts)):
            raise ValidationError(f"group_id: expected ids in 0..{len(self._starts) - 1} (the profile's groups), "
                                  f"got {excerpt(gid.min() if gid.min() < 0 else gid.max())}")
        gid, x = np.broadcast_arrays(gid, x)
        s = self._starts[gid]
        e = self._ends[gid]
        pos = np.searchsorted(self._composite, gid * self._stride + self._rank(x), side="right")
        hi = np.clip(pos, s + 1, e - 1)
        lo = hi - 1
        single = e - s == 1
        lo = np.where(single, s, lo)
        hi = np.where(single, s, hi)
        x0, x1 = self._load[lo], self._load[hi]
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(x1 > x0, (x - x0) / (x1 - x0), 0.0)
        w = np.clip(w, 0.0, 1.0)
        out = vals[lo] + w * (vals[hi] - vals[lo])
        out = np.where(x <= self._load[s], vals[s], out)
        out = np.where(x > self._load[e - 1] * (1 + 1e-12), np.nan, out)
        return out

    def _rank(self, load_rps: np.ndarray) -> np.ndarray:
        """How many of the table's distinct loads are <= each load (int64; NaN ranks above all)."""
        return np.searchsorted(self._levels, load_rps, side="right").astype(np.int64)

    def mixed_power_w(self, instance, group_id, max_load_rps, load_rps, own_group_id) -> np.ndarray:
        """Power of instances serving a mix of classes (W per instance, vectorised).

        One entry per (instance, class) pair: ``instance`` (index into ``own_group_id``), the
        group of that class on the instance's configuration, the class's max load under its SLO
        there and its load. Class ``c`` takes the share ``u_c = load_c / lmax_c`` of the
        instance's capacity and the instance runs at utilisation ``U = sum_c u_c``; its power is
        the share-weighted mean of the classes' curves at that utilisation,

            P = sum_c (u_c / U) P_c(min(U, 1) lmax_c),

        exact for a single class, and for a mix when the classes' curves differ by a term linear
        in utilisation (they agree at zero load: same configuration, same idle draw). An idle
        instance (``U = 0``) draws its own group's power at the lightest load point.
        """
        inst = np.asarray(instance, dtype=np.int64)
        gid = np.asarray(group_id, dtype=np.int64)
        lmax = np.asarray(max_load_rps, dtype=float)
        load = np.asarray(load_rps, dtype=float)
        own = np.asarray(own_group_id, dtype=np.int64)
        n = len(own)
        with np.errstate(invalid="ignore", divide="ignore"):
            u = np.where(load > 0, load / lmax, 0.0)
        total = np.bincount(inst, weights=u, minlength=n)
        busy = total[inst] > 0
        p_pair = self.interpolate("power_w", gid[busy], np.minimum(total[inst[busy]], 1.0) * lmax[busy])
        power = np.bincount(inst[busy], weights=u[busy] / total[inst[busy]] * p_pair, minlength=n).astype(float)
        idle = total <= 0
        if idle.any():
            power[idle] = self.interpolate("power_w", own[idle], np.zeros(int(idle.sum())))
        return power

    def _query(self, column, hardware, tp, freq_mhz, request_class, load_rps, model=None):
        """``column`` at ``load_rps`` of each key; every argument checked, errors name it."""
        load = number_array(load_rps, "load_rps", lo=0.0, unit="req/s")
        gid = self.group_ids(hardware, tp, freq_mhz, request_class, model)
        return self.interpolate(column, gid, load)

    def power_w(self, hardware, tp, freq_mhz, request_class, load_rps, model=None) -> np.ndarray:
        """Instance power (W) at ``load_rps`` (req/s)."""
        return self._query("power_w", hardware, tp, freq_mhz, request_class, load_rps, model)

    def ttft_p99_ms(self, hardware, tp, freq_mhz, request_class, load_rps, model=None) -> np.ndarray:
        return self._query("ttft_p99_ms", hardware, tp, freq_mhz, request_class, load_rps, model)

    def tbt_p99_ms(self, hardware, tp, freq_mhz, request_class, load_rps, model=None) -> np.ndarray:
        return self._query("tbt_p99_ms", hardware, tp, freq_mhz, request_class, load_rps, model)

    def energy_per_request_j(self, hardware, tp, freq_mhz, request_class, load_rps, model=None) -> np.ndarray:
        """Energy per request (J) = interpolated instance power / load, below saturation."""
        x = number_array(load_rps, "load_rps", lo=0.0, unit="req/s")
        return self.power_w(hardware, tp, freq_mhz, request_class, x, model) / x

    def max_load_under_slo(self, slos: SLOTable) -> pd.DataFrame:
        """Highest profiled load meeting the class's P99 TTFT and TBT SLO, for every group.

        One vectorised pass over the table. A point meets the SLO when both P99 latencies are
        within the class's SLO and the instance is not saturated (throughput equals load).
        Because latency is non-decreasing in load (validated), the feasible points of a group
        form a prefix; the answer is the last of them, never an extrapolation. Groups whose
        lightest load already breaks the SLO get ``max_load_rps = 0`` and ``feasible = False``.

        Returns a frame indexed like :attr:`groups` with ``max_load_rps`` and, at that point,
        ``power_w``, ``energy_per_request_j``, ``ttft_p99_ms``, ``tbt_p99_ms`` (NaN when
        infeasible), plus ``feasible``.
        """
        df = self._df
        cls = df["request_class"].to_numpy()
        uniq, inv = np.unique(cls, return_inverse=True)
        try:
            ttft_slo = np.array([slos[c].ttft_ms for c in uniq])[inv]
            tbt_slo = np.array([slos[c].tbt_ms for c in uniq])[inv]
        except KeyError as exc:
            raise ValidationError(str(exc.args[0])) from None
        ok = (
            (df["ttft_p99_ms"].to_numpy() <= ttft_slo)
            & (df["tbt_p99_ms"].to_numpy() <= tbt_slo)
            & (df["throughput_rps"].to_numpy() >= df["load_rps"].to_numpy() * (1 - _SAT_RTOL))
        )
        n = len(df)
        pos = np.arange(n)
        first_bad = np.minimum.reduceat(np.where(ok, n, pos), self._starts)
        first_bad = np.minimum(first_bad, self._ends)
        feasible = first_bad > self._starts
        last_ok = np.where(feasible, first_bad - 1, self._starts)
        out = self._groups.copy()
        out["max_load_rps"] = np.where(feasible, self._load[last_ok], 0.0)
        for c in ("power_w", "energy_per_request_j", "ttft_p99_ms", "tbt_p99_ms"):
            out[c] = np.where(feasible, df[c].to_numpy()[last_ok], np.nan)
        out["feasible"] = feasible
        return out

    def min_energy_clock(
        self,
        load_rps,
        slos: SLOTable | None = None,
        hardware=None,
        tp=None,
        request_class=None,
        model=None,
    ) -> pd.DataFrame:
        """For each (model, hardware, tp, request_class) and load, the clock of least energy.

        Evaluates every clock level at the load in one vectorised call. When ``slos`` is given,
        only clocks whose interpolated P99 TTFT and TBT meet the SLO at that load are eligible;
        if none is, the maximum clock is returned with ``meets_slo = False``. Clocks whose
        profiled load range ends below the load, or that are saturated at it (interpolated
        throughput below the load), are never eligible.

        ``load_rps`` is a scalar (applied to every selected combination) or an array aligned
        with explicit ``hardware``/``tp``/``request_class`` arrays.
        """
        base_cols = ["model", "hardware", "tp", "request_class"]
        if hardware is None:
            combos = self._groups[base_cols].drop_duplicates().reset_index(drop=True)
            load = _as_array(number_array(load_rps, "load_rps", lo=0.0, unit="req/s"), len(combos), "load_rps", float)
        else:
            n = max(np.size(x) for x in (hardware, tp, request_class, load_rps))
            if model is None:
                if len(self.models) != 1:
                    raise ValidationError(f"profile holds models {self.models}; pass model=")
                model = self.models[0]
            combos = pd.DataFrame({
                "model": _as_array(model, n, "model", object),
                "hardware": _as_array(hardware, n, "hardware", object),
                "tp": _as_array(number_array(tp, "tp", lo=1, integer=True), n, "tp", np.int64),
                "request_class": _as_array(request_class, n, "request_class", object),
            })
            load = _as_array(number_array(load_rps, "load_rps", lo=0.0, unit="req/s"), n, "load_rps", float)
        combos = combos.assign(load_rps=load, query=np.arange(len(combos)))
        freqs = self._groups[["model", "hardware", "tp", "request_class", "freq_mhz"]].drop_duplicates()
        cand = combos.merge(freqs, on=base_cols, how="left")
        if cand["freq_mhz"].isna().any():
            r = cand.loc[cand["freq_mhz"].isna(), base_cols].iloc[0].to_dict()
            raise NotFoundError(f"{self.source}: no profile rows for {r}")
        cand["freq_mhz"] = cand["freq_mhz"].astype(np.int64)
        gid = self.group_ids(cand["hardware"].to_numpy(), cand["tp"].to_numpy(), cand["freq_mhz"].to_numpy(),
                             cand["request_class"].to_numpy(), cand["model"].to_numpy())
        x = cand["load_rps"].to_numpy()
        power = self.interpolate("power_w", gid, x)
        ttft = self.interpolate("ttft_p99_ms", gid, x)
        tbt = self.interpolate("tbt_p99_ms", gid, x)
        # a clock saturated at this load (interpolated throughput below it) cannot serve it
        thr = self.interpolate("throughput_rps", gid, x)
        eligible = np.isfinite(power) & (thr >= x * (1 - _SAT_RTOL))
        if slos is not None:
            cls = cand["request_class"].to_numpy()
            ttft_slo = np.array([slos[c].ttft_ms for c in cls])
            tbt_slo = np.array([slos[c].tbt_ms for c in cls])
            eligible &= (ttft <= ttft_slo) & (tbt <= tbt_slo)
        cand = cand.assign(power_w=power, ttft_p99_ms=ttft, tbt_p99_ms=tbt, eligible=eligible)
        cand["energy_per_request_j"] = cand["power_w"] / cand["load_rps"]
        # rank: eligible first, then least power (= least energy at fixed load), then fastest clock
        cand["_key"] = np.where(eligible, power, np.inf)
        cand = cand.sort_values(["query", "_key", "freq_mhz"], ascending=[True, True, False])
        best = cand.groupby("query", sort=True).head(1).set_index("query")
        fallback = cand.sort_values(["query", "freq_mhz"]).groupby("query").tail(1).set_index("query")
        meets = best["eligible"].to_numpy()
        res = best.where(np.broadcast_to(meets[:, None], best.shape), fallback.loc[best.index])
        res = res.drop(columns=["_key", "eligible"])
        res["meets_slo"] = meets
        res.index.name = None
        return res.reset_index(drop=True)[base_cols + ["load_rps", "freq_mhz", "power_w",
                                                       "energy_per_request_j", "ttft_p99_ms",
                                                       "tbt_p99_ms", "meets_slo"]]
