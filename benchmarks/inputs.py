"""Benchmark inputs: profiles, inventories and forecasts for every point of every sweep.

Base settings (one dimension moves at a time, the others stay here):

* ``servers`` (1 .. 12,500) and ``load_segments``: the bundled default profile (Llama2-70B on
  H100-80GB; every clock, 9 classes, 23 load points), an H100 inventory of that many servers
  (40 for ``load_segments``) and the Azure conversation trace's 1-minute peak per class,
  scaled to a mean of 45 req/s per 40 servers (so a 12,500-server cluster sees 312.5x the load);
* ``classes`` (9 .. 36), ``hardware`` (1 .. 3 types), ``clocks`` (7 .. 14 levels) and
  ``n_loads`` (profile load points): synthetic profiles (:func:`dynaplan.testing.synthetic_profile`,
  seed 0) with 9 classes, H100 only, 7 clocks and 12 load points unless the dimension says
  otherwise, 60 servers of every hardware type, and the same trace's peaks at 45 req/s mean,
  re-classified with the point's class scheme.

Everything is memoised: inputs are built once per process, never inside a timed region.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from dynaplan.domain.classes import DEFAULT_CLASSES, ClassScheme, TokenBins
from dynaplan.domain.hardware import A100_80GB, H100_80GB, HardwareType
from dynaplan.domain.slo import DEFAULT_SLOS, SLOTable
from dynaplan.planning import Planner, PlannerOptions
from dynaplan.planning.inputs import peak_forecast
from dynaplan.profiles import Profile
from dynaplan.solvers import SolveOptions
from dynaplan.testing import synthetic_profile
from dynaplan.workload import epoch_peaks, load_trace

from benchmarks.registry import Point

BASE_SERVERS = 40
MEAN_RPS_PER_40_SERVERS = 45.0  # the mean rate of Azure's week-long conversation trace (2024)
SYNTHETIC_SERVERS = 60  # per hardware type, for the synthetic sweeps
SYNTHETIC_BASE = {"classes": 9, "hardware": 1, "clocks": 7, "n_loads": 12}
CONV, CODE = "azure-conv-2023", "azure-code-2023"

# A third server type for the hardware sweep: an H200-like server (more HBM bandwidth).
H200_141GB = HardwareType(
    name="h200-141gb", gpus_per_server=8, clock_levels_mhz=H100_80GB.clock_levels_mhz, gpu_memory_gb=141.0,
    idle_power_w=80.0, max_power_w=700.0, price_usd_per_server_h=120.0, interconnect_gb_s=900.0,
    peak_tflops_bf16=989.0, hbm_bandwidth_tb_s=4.8,
)
HARDWARE_SETS = {1: (H100_80GB,), 2: (H100_80GB, A100_80GB), 3: (H100_80GB, A100_80GB, H200_141GB)}


def solve_options(time_limit_s: float = 10.0, mip_rel_gap: float = 1e-4) -> SolveOptions:
    """One thread everywhere: the machine has 2 cores and the benchmarks measure one solve at a time."""
    return SolveOptions(time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap, threads=1, seed=0)


# ------------------------------------------------------------------ class schemes and hardware
_LETTERS = "ABCDEF"
_EDGES_IN = {4: (128, 512, 2048), 5: (128, 256, 1024, 4096), 6: (64, 128, 256, 1024, 4096)}
_EDGES_OUT = {4: (50, 100, 350), 5: (25, 50, 100, 350), 6: (25, 50, 100, 200, 350)}


@lru_cache(maxsize=None)
def class_scheme(n_classes: int) -> ClassScheme:
    """A k x k scheme with k*k = ``n_classes`` (4, 9, 16, 25, 36); 9 is DynamoLLM's default."""
    k = int(round(n_classes ** 0.5))
    if k * k != n_classes or not 2 <= k <= 6:
        raise ValueError(f"classes must be a square of 2..6, got {n_classes}")
    if k == 3:
        return DEFAULT_CLASSES
    if k == 2:
        ein, eout = (512,), (100,)
    else:
        ein, eout = _EDGES_IN[k], _EDGES_OUT[k]
    names = tuple(_LETTERS[:k])
    return ClassScheme(input_bins=TokenBins(names=names, edges_tokens=ein),
                       output_bins=TokenBins(names=names, edges_tokens=eout))


@lru_cache(maxsize=None)
def slos_for(scheme: ClassScheme) -> SLOTable:
    """DynamoLLM's SLOs by input length: TTFT 250 / 400 / 2000 ms below 256 / 1024 / above; TBT 100 ms."""
    if scheme == DEFAULT_CLASSES:
        return DEFAULT_SLOS
    lows = (0,) + scheme.input_bins.edges_tokens
    ttft = {n: 250.0 if lo < 256 else 400.0 if lo < 1024 else 2000.0 for n, lo in zip(scheme.input_bins.names, lows)}
    return SLOTable.from_input_bins(scheme, ttft, tbt_ms=100.0)


@lru_cache(maxsize=None)
def h100_with_clocks(n_levels: int) -> HardwareType:
    """H100 with ``n_levels`` clock levels spread evenly over 800..1980 MHz (7 is the real one)."""
    if n_levels == len(H100_80GB.clock_levels_mhz):
        return H100_80GB
    levels = tuple(int(round(f / 10.0)) * 10 for f in np.linspace(800, 1980, n_levels))
    return H100_80GB.model_copy(update={"clock_levels_mhz": levels})


# ------------------------------------------------------------------ profiles, traces, forecasts
@lru_cache(maxsize=None)
def default_profile() -> Profile:
    return Profile.default()


@lru_cache(maxsize=None)
def synthetic(classes: int = 9, hardware: int = 1, clocks: int = 7, n_loads: int = 12) -> Profile:
    hws = HARDWARE_SETS[hardware] if clocks == 7 else (h100_with_clocks(clocks),)
    return synthetic_profile(seed=0, hardware=hws, classes=class_scheme(classes), n_loads=n_loads)


@lru_cache(maxsize=None)
def trace(name: str = CONV):
    return load_trace(name)


@lru_cache(maxsize=None)
def _peak(name: str, scheme: ClassScheme) -> tuple[tuple[str, float], ...]:
    f = peak_forecast(trace(name), window_s="60s", target_mean_rps=MEAN_RPS_PER_40_SERVERS, scheme=scheme)
    return tuple(f.items())


def forecast(servers: float = BASE_SERVERS, name: str = CONV, scheme: ClassScheme = DEFAULT_CLASSES) -> dict[str, float]:
    """The trace's 1-minute peak per class (req/s), for a cluster of ``servers`` (45 req/s mean per 40)."""
    return {c: v * servers / BASE_SERVERS for c, v in _peak(name, scheme)}


@lru_cache(maxsize=None)
def _epoch_forecasts(name: str) -> tuple[tuple[tuple[str, float], ...], ...]:
    tr = trace(name)
    peaks = epoch_peaks(tr, epoch_s="5min", inner_window_s="60s").load_rps
    mean = len(tr) / float(tr.arrival_s.max())
    scale = MEAN_RPS_PER_40_SERVERS / mean
    return tuple(tuple((c, float(v) * scale) for c, v in row.items()) for _, row in peaks.iterrows())


def epoch_forecasts(servers: float = BASE_SERVERS, name: str = CONV) -> list[dict[str, float]]:
    """A sequence of forecasts: the per-class 1-minute peak of every 5-minute epoch of the trace
    (12 for the bundled one-hour traces), scaled like :func:`forecast`."""
    return [{c: v * servers / BASE_SERVERS for c, v in row} for row in _epoch_forecasts(name)]


def dirichlet_forecast(seed: int, servers: float = BASE_SERVERS, total_rps: float | None = None) -> dict[str, float]:
    """A random class mix (Dirichlet(1)) with the conversation peak's total load for ``servers``."""
    base = forecast(servers)
    total = sum(base.values()) if total_rps is None else total_rps
    w = np.random.default_rng(seed).dirichlet(np.ones(len(base)))
    return {c: float(total * x) for c, x in zip(base, w)}


# ------------------------------------------------------------------ settings per sweep point
@dataclass(frozen=True)
class Setting:
    """Everything the planner needs at one point of a sweep."""

    label: str
    profile: Profile = field(repr=False, compare=False)
    slos: SLOTable = field(repr=False, compare=False)
    inventory: dict = field(compare=False)
    forecast: dict = field(compare=False)
    options: PlannerOptions = field(compare=False)

    @property
    def servers(self) -> int:
        return int(sum(self.inventory.values()))


@lru_cache(maxsize=None)
def setting(point: Point) -> Setting:
    d, v = point.dimension, point.value
    if d in ("servers", "load_segments"):
        servers = int(v) if d == "servers" else BASE_SERVERS
        segs = int(v) if d == "load_segments" else PlannerOptions().load_segments
        return Setting(str(point), default_profile(), DEFAULT_SLOS, {H100_80GB.name: servers}, forecast(servers),
                       PlannerOptions(load_segments=segs))
    if d in SYNTHETIC_BASE:
        kw = dict(SYNTHETIC_BASE, **{d: int(v)})
        prof = synthetic(**kw)
        scheme = prof.classes
        inv = {h: SYNTHETIC_SERVERS for h in prof.hardware}
        return Setting(str(point), prof, slos_for(scheme), inv, forecast(BASE_SERVERS, CONV, scheme),
                       PlannerOptions())
    raise ValueError(f"unknown sweep dimension {d!r}")


_PLANNERS: dict = {}


def planner(st: Setting, backend: str = "highs", opts: SolveOptions | None = None,
            options: PlannerOptions | None = None) -> Planner:
    """A memoised Planner for a setting, backend and solve options (its model caches stay warm)."""
    opts = opts or solve_options()
    options = options or st.options
    key = (st.label, id(st.profile), backend, opts, options)
    pl = _PLANNERS.get(key)
    if pl is None:
        pl = Planner(st.profile, st.inventory, st.slos, options=options, solve_options=opts, backend=backend)
        _PLANNERS[key] = pl
    return pl


@lru_cache(maxsize=None)
def hierarchical_plan(point: Point):
    """The HiGHS hierarchical plan at a point (reference input of the pool and instance sweeps)."""
    st = setting(point)
    return planner(st).plan(st.forecast)
