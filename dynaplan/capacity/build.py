"""Build a :class:`CapacityProblem` from a profile, a load (trace or rates), the catalogue and the
site's energy and carbon series (the boundary: every argument is checked here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dynaplan.capacity.catalogue import MIXED_RENT, PLAN_PRICE_KINDS, Catalogue, default_catalogue
from dynaplan.capacity.problem import MAX_PERIODS, CapacityProblem, Offer, Recipe
from dynaplan.domain.slo import DEFAULT_SLOS, SLOTable
from dynaplan.errors import ValidationError
from dynaplan.planning.problem import MAX_FORECAST_RPS, operating_points, power_segments
from dynaplan.profiles.profile import Profile
from dynaplan.validation import excerpt, number

DEFAULT_CARBON = "caiso-2022-week"
_WEEK_START_H = 3 * 24  # the load and carbon series start on a Thursday 00:00 UTC (the trace's weekday)


def _profile(profile) -> Profile:
    if profile is None:
        return Profile.default()
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, (str, Path)):
        return Profile.read(profile)
    raise ValidationError(f"profile: {type(profile).__name__} {excerpt(profile)}; expected a Profile, a path or None")


def _restrict(profile: Profile, hardware: Sequence[str]) -> Profile:
    """The profile's rows on ``hardware`` only (operating points are computed on these alone)."""
    table = profile.table
    sub = table[table["hardware"].isin(list(hardware))]
    hw = {h: profile.hardware[h] for h in hardware if h in profile.hardware}
    return Profile(sub, source=profile.source, hardware=hw, classes=profile.classes, complete=False)


# recipes already computed, per profile object (weakly held: a profile no longer used frees its
# entries) and per question (:func:`recipe_question`); at most _MEMO_PER_PROFILE per profile
_MEMO: "weakref.WeakKeyDictionary[Profile, dict]" = weakref.WeakKeyDictionary()
_MEMO_PER_PROFILE = 256
_FINGERPRINTS: "weakref.WeakKeyDictionary[Profile, str]" = weakref.WeakKeyDictionary()


def profile_fingerprint(profile: Profile) -> str:
    """A digest of the profile's content (its table, hardware types and classes), the same in every
    process that holds a copy of it; computed once per profile object."""
    fp = _FINGERPRINTS.get(profile)
    if fp is None:
        import hashlib

        h = hashlib.blake2b(digest_size=16)
        h.update(pd.util.hash_pandas_object(profile.table, index=False).to_numpy().tobytes())
        h.update(repr(sorted((k, repr(v)) for k, v in profile.hardware.items())).encode())
        h.update(repr(profile.classes).encode())
        fp = _FINGERPRINTS[profile] = h.hexdigest()
    return fp


def recipe_question(slos: SLOTable, hardware: Sequence[str], load_segments: int = 3,
                    model: str | None = None) -> tuple:
    """What a recipe set answers: the SLOs, the hardware, the load segments and the model."""
    return (slos.model_dump_json(), tuple(hardware), int(load_segments), model)


@dataclass(frozen=True)
class RecipeSet:
    """Recipes computed once and handed to :func:`capacity_problem` (e.g. by a sweep, to every
    worker): the recipes and what they answer, which the builder checks against its own problem."""

    profile_fingerprint: str
    question: tuple
    recipes: tuple[Recipe, ...]


def recipes_from_profile(profile: Profile, slos: SLOTable, hardware: Sequence[str], load_segments: int = 3,
                         model: str | None = None) -> tuple[Recipe, ...]:
    """Per-instance recipes (``formulations/capacity.md``, "Recipes"): every non-dominated
    operating point meeting the SLOs on ``hardware``, with its piecewise-linear power pieces.

    Remembered per profile object and arguments (a sweep or a growth study asks the same question
    of one profile many times; the recipes are frozen, so sharing them is safe). A profile is
    treated as immutable, as everywhere in dynaplan."""
    key = recipe_question(slos, hardware, load_segments, model)
    memo = _MEMO.setdefault(profile, {})
    if key not in memo:
        if len(memo) >= _MEMO_PER_PROFILE:
            memo.clear()
        memo[key] = _recipes(profile, slos, hardware, load_segments, model)
    return memo[key]


def _hardware(hardware: Sequence[str] | None, cat: Catalogue) -> tuple[str, ...]:
    return tuple(hardware) if hardware else (cat.default_hardware or cat.names)


def _scaled_slos(slos: SLOTable | None, slo_scale: float) -> SLOTable:
    base = slos or DEFAULT_SLOS
    slo_scale = number(slo_scale, "slo_scale", lo=0.0, hi=1e3, lo_open=True)
    return base.scaled(slo_scale)


def recipe_set(*, profile=None, hardware: Sequence[str] | None = None, catalogue: Catalogue | None = None,
               slo_scale: float = 1.0, slos: SLOTable | None = None, load_segments: int = 3) -> RecipeSet:
    """The recipes :func:`capacity_problem` with these arguments would compute, as a
    :class:`RecipeSet` to pass it as ``recipes=`` (compute once, use in many problems)."""
    prof = _profile(profile)
    hw = _hardware(hardware, catalogue or default_catalogue())
    scaled = _scaled_slos(slos, slo_scale)
    return RecipeSet(profile_fingerprint(prof), recipe_question(scaled, hw, load_segments),
                     recipes_from_profile(prof, scaled, hw, load_segments))


def _recipes(profile: Profile, slos: SLOTable, hardware: Sequence[str], load_segments: int,
             model: str | None) -> tuple[Recipe, ...]:
    """:func:`recipes_from_profile`, computed."""
    sub = _restrict(profile, hardware)
    if len(sub.table) == 0:
        return ()
    model = model or sub.models[0]
    ops = operating_points(sub, slos)
    ops = ops[ops["model"] == model].reset_index(drop=True)
    if ops.empty:
        return ()
    seg = power_segments(sub, ops, load_segments)
    seg = seg.merge(ops[["hardware", "tp", "freq_mhz", "request_class", "max_load_rps"]],
                    on=["hardware", "tp", "freq_mhz", "request_class"])
    curves = _curves(sub, ops)
    seg = _below_profile(seg, curves)
    seg = seg[hull_pieces(seg)].reset_index(drop=True)
    out = []
    for r in seg.itertuples(index=False):
        x, q = curves[(r.hardware, int(r.tp), int(r.freq_mhz), r.request_class)]
        out.append(Recipe(hardware=r.hardware, request_class=r.request_class, tp=int(r.tp), freq_mhz=int(r.freq_mhz),
                          segment=int(r.segment), max_load_rps=float(r.max_load_rps), u_hi=float(min(1.0, r.u_hi)),
                          static_w=float(r.static_w), w_per_util=float(r.w_per_util),
                          segment_error_w=float(r.segment_error_w), curve_load_rps=x, curve_power_w=q))
    return tuple(out)


def _curves(profile: Profile, ops: pd.DataFrame) -> dict[tuple, tuple[tuple[float, ...], tuple[float, ...]]]:
    """Per operating point, the profile's load points up to its SLO capacity and their power:
    what the plan's power is computed from (capacity.md, (R2))."""
    out = {}
    for r in ops.itertuples(index=False):
        x, q = profile.points_up_to(r.group_id, r.max_load_rps)
        x[-1] = r.max_load_rps  # the last point meeting the SLO is lmax (up to rounding)
        out[(r.hardware, int(r.tp), int(r.freq_mhz), r.request_class)] = (tuple(x.tolist()), tuple(q.tolist()))
    return out


def _below_profile(seg: pd.DataFrame, curves: dict) -> pd.DataFrame:
    """(cap.pieces_below) Lower every piece's line by the most it exceeds the profile on its load
    range, so that no piece prices an instance above the profile's power: the model is then a
    relaxation of the profile's problem and its bound valid for it. The profile is linear between
    its points, so the largest excess over a range is at a point of it or at the range's ends.
    On the bundled profiles (concave between their points) no piece moves."""
    a = seg["static_w"].to_numpy(dtype=float).copy()
    b = seg["w_per_util"].to_numpy(dtype=float)
    for i, r in enumerate(seg.itertuples(index=False)):
        x, q = curves[(r.hardware, int(r.tp), int(r.freq_mhz), r.request_class)]
        x, q = np.asarray(x) / r.max_load_rps, np.asarray(q)
        u = np.unique(np.r_[x[(x >= r.u_lo) & (x <= r.u_hi)], r.u_lo, r.u_hi])
        excess = float(np.max(a[i] + b[i] * u - np.interp(u, x, q)))
        if excess > 1e-9 * max(1.0, float(q.max())):
            a[i] -= excess
    return seg.assign(static_w=a)


def _lower_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the vertices of the lower convex hull of points (x, y) (monotone chain)."""
    order = np.lexsort((y, x))
    hull: list[int] = []
    for i in order:
        if hull and x[hull[-1]] == x[i]:
            continue  # same x, higher y
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a]) <= 0:
                hull.pop()
            else:
                break
        hull.append(int(i))
    return np.asarray(hull, dtype=np.int64)


def hull_pieces(seg: pd.DataFrame) -> np.ndarray:
    """Which power pieces can matter to the capacity model (capacity.md, "Recipes"): per (hardware,
    class, TP), the model lets instances mix pieces in fractions, so only pieces with an end point
    on the lower convex hull of all pieces' end points (load, power) change its optimum."""
    keep = np.zeros(len(seg), dtype=bool)
    cap = (seg["u_hi"] * seg["max_load_rps"]).to_numpy()
    a = seg["static_w"].to_numpy()
    top = a + seg["w_per_util"].to_numpy() * seg["u_hi"].to_numpy()
    for _, idx in seg.groupby(["hardware", "request_class", "tp"]).indices.items():
        x = np.r_[np.zeros(len(idx)), cap[idx]]
        y = np.r_[a[idx], top[idx]]
        v = _lower_hull(x, y)
        keep[idx[np.unique(v % len(idx))]] = True
    return keep


def _hourly_envelope(trace_name: str, periods: int, period_s: float) -> np.ndarray:
    """The weekly rate multiplier of the bundled trace's kind, averaged per period (mean 1 over a
    week), from Thursday 00:00 UTC, repeating the week."""
    from dynaplan.workload.synthetic import CODING_ENVELOPE, CONVERSATION_ENVELOPE, weekly_envelope

    spec = CODING_ENVELOPE if "code" in str(trace_name) else CONVERSATION_ENVELOPE
    env = weekly_envelope(spec)  # per minute, Monday first
    minutes = int(round(period_s / 60.0))
    if minutes < 1 or abs(minutes * 60 - period_s) > 1e-6:
        raise ValidationError(f"period_s={period_s:g}: a trace load needs whole minutes per period")
    start = _WEEK_START_H * 60
    idx = (start + np.arange(periods * minutes)) % env.size
    return env[idx].reshape(periods, minutes).mean(axis=1)


def _trace_load(trace, classes: tuple[str, ...], periods: int, period_s: float) -> tuple[np.ndarray, np.ndarray, str]:
    from dynaplan.workload import epoch_peaks, load_trace

    tr = load_trace(trace) if not hasattr(trace, "arrival_s") else trace
    dur = max(float(tr.duration_s), 300.0)
    epoch = 300.0 * int(np.ceil(dur / 300.0))
    peaks = epoch_peaks(tr, epoch_s=epoch, inner_window_s=300.0).load_rps
    base = np.array([float(peaks[c].max()) if c in peaks else 0.0 for c in classes])
    env = _hourly_envelope(getattr(tr, "name", str(trace)), periods, period_s)
    return env[:, None] * base[None, :], base, (f"trace {tr.name}: per-class peak 5-min rates x the weekly "
                                          f"{'coding' if 'code' in str(tr.name) else 'conversation'} envelope "
                                          "(docs/workload.md), from Thursday 00:00 UTC")


def _rates_load(rates, classes: tuple[str, ...], periods: int | None) -> np.ndarray:
    if isinstance(rates, pd.DataFrame):
        unknown = [c for c in rates.columns if c not in classes]
        if unknown:
            raise ValidationError(f"rates: unknown class column(s) {excerpt(unknown)}; known: {list(classes)}")
        d = np.column_stack([rates[c].to_numpy(dtype=float) if c in rates else np.zeros(len(rates)) for c in classes])
        if not np.all(np.isfinite(d)) or (d < 0).any():
            raise ValidationError("rates: loads must be finite and >= 0 req/s")
        return d
    if isinstance(rates, Mapping):
        unknown = [c for c in rates if c not in classes]
        if unknown:
            raise ValidationError(f"rates: unknown class(es) {excerpt(unknown)}; known: {list(classes)}")
        row = [number(rates.get(c, 0.0), f"rates: class {c}", lo=0.0, hi=MAX_FORECAST_RPS, unit="req/s")
               for c in classes]
        return np.tile(np.asarray(row), (periods or 1, 1))
    raise ValidationError(f"rates: {type(rates).__name__} {excerpt(rates)}; expected a mapping class -> req/s "
                          "or a DataFrame of periods x classes")


def _series(value, periods: int, what: str, unit: str) -> np.ndarray:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.full(periods, number(value, what, lo=0.0, hi=1e6, unit=unit))
    try:
        arr = np.asarray(list(value), dtype=float)
    except (TypeError, ValueError):
        raise ValidationError(f"{what}: {excerpt(value)}; expected a number or a series of numbers ({unit})") from None
    if arr.size == 0 or not np.all(np.isfinite(arr)) or (arr < 0).any():
        raise ValidationError(f"{what}: expected finite values >= 0 ({unit})")
    return arr[np.arange(periods) % arr.size]


def carbon_series(carbon, periods: int) -> tuple[np.ndarray, str]:
    """Carbon intensity per period (gCO2/kWh) and its source; the week repeats past 168 h."""
    if carbon is None or carbon == DEFAULT_CARBON:
        text = (resources.files("dynaplan.capacity") / "data" / "caiso_week_ci.csv").read_text()
        vals = np.array([float(ln.split(",")[1]) for ln in text.splitlines()[1:] if ln.strip()])
        return vals[np.arange(periods) % vals.size], ("CAISO average intensity, 17-23 Nov 2022, US EIA-930 "
                                                       "(public domain) via HewlettPackard/dc-rl (MIT)")
    if isinstance(carbon, (str, Path)):
        path = Path(carbon)
        if not path.is_file():
            raise ValidationError(f"carbon {str(carbon)!r}: no such file, and not {DEFAULT_CARBON!r}")
        df = pd.read_csv(path)
        col = "carbon_g_per_kwh" if "carbon_g_per_kwh" in df else df.columns[-1]
        return _series(df[col].to_numpy(dtype=float), periods, f"carbon {path}: column {col}", "gCO2/kWh"), str(path)
    return _series(carbon, periods, "carbon", "gCO2/kWh"), "user series"


def _given_recipes(given: RecipeSet | None, prof: Profile, scaled: SLOTable, hw: tuple[str, ...],
                   load_segments: int) -> tuple[Recipe, ...]:
    """The problem's recipes: ``given`` if it was computed for this profile and question, else refused;
    computed (remembered) when None."""
    if given is None:
        return recipes_from_profile(prof, scaled, hw, load_segments)
    if not isinstance(given, RecipeSet):
        raise ValidationError(f"recipes: {type(given).__name__}; expected a RecipeSet from recipe_set()")
    if given.profile_fingerprint != profile_fingerprint(prof):
        raise ValidationError(f"recipes: computed for another profile than {prof.source}; recompute them")
    if given.question != recipe_question(scaled, hw, load_segments):
        raise ValidationError(f"recipes: computed for other SLOs, hardware or load segments than this problem's "
                              f"({list(hw)}, {load_segments} segments); recompute them")
    return given.recipes


def capacity_problem(
    *,
    profile=None,
    trace="azure-conv-2023",
    rates=None,
    peak_rps: float | None = None,
    mean_rps: float | None = None,
    growth: float = 1.0,
    periods: int | None = None,
    period_s: float = 3600.0,
    hardware: Sequence[str] | None = None,
    catalogue: Catalogue | None = None,
    availability: Mapping[str, tuple[int, int]] | None = None,
    price: str = "on_demand",
    electricity_usd_per_kwh=None,
    carbon=None,
    carbon_price_usd_per_t: float = 0.0,
    slo_scale: float = 1.0,
    slos: SLOTable | None = None,
    objective: str = "cost",
    idle: str = "idle",
    load_segments: int = 3,
    energy_cap_kwh: float | None = None,
    carbon_cap_kg: float | None = None,
    recipes: RecipeSet | None = None,
) -> CapacityProblem:
    """The capacity question for a load, the catalogue's hardware and a profile (see
    ``docs/capacity.md``). ``periods`` defaults to 24 for a trace and 1 for a rate mapping.
    ``recipes``: precomputed by :func:`recipe_set` for this profile and question (else refused);
    None: computed here."""
    prof = _profile(profile)
    cat = catalogue or default_catalogue()
    if price not in PLAN_PRICE_KINDS:
        raise ValidationError(f"price={price!r}; expected one of {', '.join(PLAN_PRICE_KINDS)}")
    hw = _hardware(hardware, cat)
    for h in hw:
        cat.entry(h)
    missing = [h for h in hw if h not in set(prof.table["hardware"].unique())]
    if missing:
        raise ValidationError(f"hardware: {missing} not in the profile {prof.source} "
                              f"(profiled: {sorted(prof.table['hardware'].unique())})")
    classes = tuple(prof.classes.names)
    if periods is not None:
        periods = int(number(periods, "periods", lo=1, hi=MAX_PERIODS))
    period_s = number(period_s, "period_s", lo=60.0, hi=1e7, unit="s")
    trace_name, factor = None, None  # the trace and the factor that scales it to the busiest period
    if rates is not None:
        d, basis = _rates_load(rates, classes, periods), "per-class rates as given"
    elif trace is not None:
        d, base, basis = _trace_load(trace, classes, periods or 24, period_s)
        trace_name = str(getattr(trace, "name", trace)) if not isinstance(trace, (str, Path)) else str(trace)
        factor = float(d.sum(axis=1).max() / max(base.sum(), 1e-300))
    else:
        raise ValidationError("load: give a trace or rates")
    if peak_rps is not None and mean_rps is not None:
        raise ValidationError("peak_rps and mean_rps: give at most one")
    total = d.sum(axis=1)
    if peak_rps is not None:
        peak_rps = number(peak_rps, "peak_rps", lo=0.0, hi=MAX_FORECAST_RPS, lo_open=True, unit="req/s")
        d = d * (peak_rps / max(total.max(), 1e-300))
        factor = None if factor is None else factor * peak_rps / max(total.max(), 1e-300)
        basis += f"; scaled so the busiest period carries {peak_rps:g} req/s"
    elif mean_rps is not None:
        mean_rps = number(mean_rps, "mean_rps", lo=0.0, hi=MAX_FORECAST_RPS, lo_open=True, unit="req/s")
        d = d * (mean_rps / max(total.mean(), 1e-300))
        factor = None if factor is None else factor * mean_rps / max(total.mean(), 1e-300)
        basis += f"; scaled to a mean of {mean_rps:g} req/s"
    else:
        basis += "; unscaled"
    growth = number(growth, "growth", lo=0.0, hi=1e6, lo_open=True)
    if growth != 1.0:
        d = d * growth
        factor = None if factor is None else factor * growth
        basis += f"; x{growth:g} growth"
    n_t = d.shape[0]
    scaled = _scaled_slos(slos, slo_scale)
    recipes = _given_recipes(recipes, prof, scaled, hw, load_segments)
    avail = dict(availability or {})
    unknown = [h for h in avail if h not in hw]
    if unknown:
        raise ValidationError(f"availability: {unknown} are not among the planned hardware {list(hw)}")
    offers = []
    for h in hw:
        e = cat.entry(h)
        lo, hi = avail.get(h, (0, None))
        kw = {"max_servers": int(hi)} if hi is not None else {}
        if hi is not None and price == MIXED_RENT:
            kw["available_servers"] = int(hi)  # (cap.available): fleet plus on-demand servers in any period
        fleet_price, on_demand_price = e.offer_prices(price)
        offers.append(Offer(hardware=h, gpus_per_server=e.gpus_per_server, price_usd_per_server_h=fleet_price,
                            on_demand_usd_per_server_h=on_demand_price, price_kind=price,
                            idle_power_w=e.idle_power_w, min_servers=int(lo), **kw))
    el = cat.electricity_usd_per_kwh if electricity_usd_per_kwh is None else electricity_usd_per_kwh
    ci, ci_src = carbon_series(carbon, n_t)
    return CapacityProblem(
        classes=classes, period_s=period_s, demand_rps=tuple(map(tuple, d.tolist())), load_basis=basis,
        offers=tuple(offers), recipes=recipes,
        electricity_usd_per_kwh=tuple(_series(el, n_t, "electricity_usd_per_kwh", "USD/kWh").tolist()),
        carbon_g_per_kwh=tuple(ci.tolist()), carbon_source=ci_src,
        carbon_price_usd_per_t=number(carbon_price_usd_per_t, "carbon_price_usd_per_t", lo=0.0, hi=1e6),
        pue=cat.pue, objective=objective, idle=idle, energy_cap_kwh=energy_cap_kwh, carbon_cap_kg=carbon_cap_kg,
        trace=trace_name, trace_scale=factor if factor and factor > 0 else None,
        slo_ms=tuple((c, float(v.ttft_ms), float(v.tbt_ms)) for c, v in scaled.per_class.items()),
        profile_source=str(prof.source))
