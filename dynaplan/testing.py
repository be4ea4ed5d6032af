"""Public testing helpers: synthetic, physically shaped profiles and Hypothesis strategies.

Used by dynaplan's own property tests and meant for users who test code built on dynaplan.
Nothing here is imported by the library itself; Hypothesis is imported lazily, so the library
does not need it at run time.

The synthetic profile is a small analytic model with random parameters (one draw of a
``numpy.random.Generator`` per seed, so a seed always gives the same table):

* capacity (req/s) of an instance is ``1 / (in_tok / P + out_tok / D)`` where the prefill rate
  ``P`` (tok/s) grows with TP and almost linearly with the clock and the decode rate ``D``
  (tok/s) grows with TP and weakly with the clock; longer classes therefore have less capacity;
* every (hardware, TP, class) is measured at the same ``n_loads`` loads, from light load up to
  about the capacity at the maximum clock, so lower clocks saturate (throughput < load) at the
  top of the grid;
* power (W) = ``tp * (static + dynamic(f) * u**gamma)`` with utilisation ``u = min(load /
  capacity, 1)``, ``gamma < 1`` (concave), a large static part (idle plus weights-loaded) and a
  dynamic part growing faster than linearly with the clock, so at equal load a higher clock
  costs more power;
* P99 TTFT and TBT are a light-load latency times a queueing factor that is non-decreasing in
  load and rises steeply near saturation;
* latencies of each (hardware, class) are scaled down, if needed, so that at the lightest load
  the largest TP meets :data:`~dynaplan.domain.slo.DEFAULT_SLOS` at every clock.

Values are rounded to 6 significant digits, so a CSV written with ``Profile.write`` reads back
exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dynaplan.domain.classes import (
    DEFAULT_CLASSES,
    DEFAULT_REPRESENTATIVE_INPUT_TOKENS,
    DEFAULT_REPRESENTATIVE_OUTPUT_TOKENS,
    ClassScheme,
    TokenBins,
)
from dynaplan.domain.hardware import H100_80GB, HardwareType
from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.profiles import schema
from dynaplan.profiles.profile import Profile

__all__ = ["profile_tables", "profiles", "synthetic_profile", "synthetic_profile_table"]

_PARAMS = 69e9  # parameters of the synthetic model (Llama2-70B-sized)
_WEIGHT_BYTES = 138e9  # BF16 weights (bytes)
_KNEE = 0.95  # utilisation where the queueing factor turns from 1/(1-rho) into a straight line
_SLO_MARGIN = 0.7  # light-load latency of the largest TP is at most this fraction of the SLO

ClockSpec = Sequence[int] | Mapping[str, Sequence[int]] | None


def _bin_tokens(bins: TokenBins) -> np.ndarray:
    """Representative token count of each bin: its midpoint (the last bin: 1.5x its lower edge)."""
    e = list(bins.edges_tokens)
    lo = np.array([0] + e, dtype=float)
    hi = np.array(e + [2 * e[-1] if e else 256], dtype=float)
    return (lo + hi) / 2.0


def _class_tokens(classes: ClassScheme) -> tuple[np.ndarray, np.ndarray]:
    """Input and output tokens of a typical request of every class, in ``classes.names`` order."""
    if classes == DEFAULT_CLASSES:
        inp = np.array([DEFAULT_REPRESENTATIVE_INPUT_TOKENS[b] for b in classes.input_bins.names], float)
        out = np.array([DEFAULT_REPRESENTATIVE_OUTPUT_TOKENS[b] for b in classes.output_bins.names], float)
    else:
        inp, out = _bin_tokens(classes.input_bins), _bin_tokens(classes.output_bins)
    n_out = len(out)
    return np.repeat(inp, n_out), np.tile(out, len(inp))


def _round_sig(a: np.ndarray, digits: int = 6) -> np.ndarray:
    """Round to ``digits`` significant digits exactly as ``%.{digits}g`` prints them."""
    fmt = f"{{:.{digits}g}}".format
    return np.array([float(fmt(v)) for v in np.asarray(a, dtype=float).ravel()]).reshape(np.shape(a))


def _queue_factor(rho: np.ndarray, k: float) -> np.ndarray:
    """``1 + k rho / (1 - rho)`` up to the knee, then its tangent line: non-decreasing, steep."""
    r = np.minimum(rho, _KNEE)
    g = 1.0 + k * r / (1.0 - r)
    slope = k / (1.0 - _KNEE) ** 2
    return g + slope * np.maximum(rho - _KNEE, 0.0)


def _clocks_of(hw: HardwareType, clocks: ClockSpec) -> tuple[int, ...]:
    if clocks is None:
        chosen = tuple(hw.clock_levels_mhz)
    elif isinstance(clocks, Mapping):
        if hw.name not in clocks:
            raise ValueError(f"clocks: no entry for hardware {hw.name!r}")
        chosen = tuple(int(f) for f in clocks[hw.name])
    else:
        chosen = tuple(int(f) for f in clocks)
    bad = [f for f in chosen if f not in hw.clock_levels_mhz]
    if bad or not chosen:
        raise ValueError(f"clocks {chosen} must be a non-empty subset of {hw.name} levels {hw.clock_levels_mhz}")
    return tuple(sorted(set(chosen)))


def _hardware_block(
    rng: np.random.Generator,
    hw: HardwareType,
    tps: tuple[int, ...],
    freqs: tuple[int, ...],
    classes: ClassScheme,
    n_loads: int,
) -> pd.DataFrame:
    """The rows of one hardware type, all (tp, freq, class, load) at once."""
    # --- random parameters of this hardware (fixed draw order: part of the seed's contract)
    prefill_eff = rng.uniform(0.3, 0.5)  # fraction of peak BF16 reached by prefill
    decode_tok_per_gpu = hw.hbm_bandwidth_tb_s * rng.uniform(90.0, 130.0)  # tok/s/GPU at full batch
    tp_exp_prefill = rng.uniform(0.85, 1.0)
    tp_exp_decode = rng.uniform(1.05, 1.35)  # more KV memory per instance -> larger batches
    clk_exp_prefill = rng.uniform(0.85, 1.0)  # prefill is compute-bound
    clk_exp_decode = rng.uniform(0.2, 0.45)  # decode is mostly memory-bound
    static_frac = rng.uniform(0.15, 0.3)  # weights-loaded power above idle, share of the headroom
    dyn_frac = rng.uniform(0.75, 0.95)
    clk_exp_power = rng.uniform(1.8, 2.6)
    gamma = rng.uniform(0.6, 0.85)
    ttft_overhead_ms = rng.uniform(10.0, 30.0)
    ttft_p99_mult = rng.uniform(1.5, 2.2)
    ttft_queue_k = rng.uniform(0.4, 0.9)
    step_eff = rng.uniform(0.55, 0.75)  # fraction of HBM bandwidth reached by a decode step
    tbt_batch_slope = rng.uniform(1.0, 2.5)
    tbt_p99_mult = rng.uniform(1.2, 1.6)
    tbt_queue_k = rng.uniform(0.1, 0.3)
    rho_lo = rng.uniform(0.03, 0.08)
    rho_hi = rng.uniform(0.9, 1.0)

    in_tok, out_tok = _class_tokens(classes)
    n_tp, n_f, n_c = len(tps), len(freqs), len(classes.names)
    jitter = rng.uniform(0.97, 1.03, size=(n_tp, n_f, n_c, 1))  # per-group latency noise

    # --- broadcast axes: (tp, freq, class, load)
    tp = np.asarray(tps, float)[:, None, None, None]
    clk = (np.asarray(freqs, float) / hw.max_clock_mhz)[None, :, None, None]
    ti = in_tok[None, None, :, None]
    to = out_tok[None, None, :, None]
    prefill_tok_s = hw.peak_tflops_bf16 * 1e12 * prefill_eff / (2 * _PARAMS) * tp**tp_exp_prefill
    decode_tok_s = decode_tok_per_gpu * tp**tp_exp_decode
    cap = 1.0 / (ti / (prefill_tok_s * clk**clk_exp_prefill) + to / (decode_tok_s * clk**clk_exp_decode))
    cap_max_clock = 1.0 / (ti / prefill_tok_s + to / decode_tok_s)  # shape (tp, 1, class, 1)

    frac = np.linspace(rho_lo, rho_hi, n_loads) if n_loads > 1 else np.array([rho_lo])
    load = _round_sig(cap_max_clock * frac[None, None, None, :])  # same loads at every clock
    load = np.broadcast_to(load, (n_tp, n_f, n_c, n_loads))
    rho = load / cap
    thr = np.minimum(load, cap)
    util = np.minimum(rho, 1.0)

    static_w = hw.idle_power_w + static_frac * (hw.max_power_w - hw.idle_power_w)
    dyn_w = dyn_frac * (hw.max_power_w - static_w) * clk**clk_exp_power
    power = tp * (static_w + dyn_w * util**gamma)

    ttft_light = ttft_overhead_ms + 1e3 * ti / (prefill_tok_s * clk**clk_exp_prefill)
    ttft = ttft_light * ttft_p99_mult * _queue_factor(rho, ttft_queue_k) * jitter
    step_ms = 1e3 * _WEIGHT_BYTES / (tp * hw.hbm_bandwidth_tb_s * 1e12 * step_eff) / clk**clk_exp_decode
    tbt = step_ms * (1.0 + tbt_batch_slope * util) * tbt_p99_mult * _queue_factor(rho, tbt_queue_k) * jitter

    # --- guarantee: at the lightest load the largest TP meets the default SLO at every clock
    for c, name in enumerate(classes.names):
        if name not in DEFAULT_SLOS.per_class:
            continue
        slo = DEFAULT_SLOS[name]
        ttft[..., c, :] *= min(1.0, _SLO_MARGIN * slo.ttft_ms / ttft[-1, :, c, 0].max())
        tbt[..., c, :] *= min(1.0, _SLO_MARGIN * slo.tbt_ms / tbt[-1, :, c, 0].max())

    shape = (n_tp, n_f, n_c, n_loads)
    full = lambda a: np.broadcast_to(a, shape).ravel()  # noqa: E731
    return pd.DataFrame({
        "hardware": hw.name,
        "tp": full(np.asarray(tps, np.int64)[:, None, None, None]),
        "freq_mhz": full(np.asarray(freqs, np.int64)[None, :, None, None]),
        "request_class": full(np.asarray(classes.names, dtype=object)[None, None, :, None]),
        "load_rps": full(load),
        "power_w": _round_sig(full(power)),
        "ttft_p99_ms": _round_sig(full(ttft)),
        "tbt_p99_ms": _round_sig(full(tbt)),
        "throughput_rps": _round_sig(full(thr)),
        "ttft_p50_ms": _round_sig(full(ttft / ttft_p99_mult)),
        "tbt_p50_ms": _round_sig(full(tbt / tbt_p99_mult)),
        "throughput_tok_s": _round_sig(full(thr * to)),
    })


def synthetic_profile_table(
    *,
    seed: int = 0,
    hardware: Sequence[HardwareType] = (H100_80GB,),
    tps: Sequence[int] = (2, 4, 8),
    classes: ClassScheme = DEFAULT_CLASSES,
    n_loads: int = 6,
    model: str = "llama2-70b",
    clocks: ClockSpec = None,
) -> pd.DataFrame:
    """A valid, complete, physically shaped random profile table (see the module docstring).

    ``clocks`` is ``None`` (every clock level of each hardware), one sequence of clock levels
    (MHz) used for every hardware type, or a mapping from hardware name to clock levels. With a
    subset of clock levels the table is complete only against hardware restricted to those
    levels, which is what :func:`synthetic_profile` passes to :class:`Profile`.

    The same arguments always give the same table.
    """
    hardware = tuple(hardware)
    tps = tuple(sorted({int(t) for t in tps}))
    if not hardware:
        raise ValueError("hardware must name at least one HardwareType")
    if len({h.name for h in hardware}) != len(hardware):
        raise ValueError(f"hardware names must be unique: {[h.name for h in hardware]}")
    if not tps or tps[0] < 1:
        raise ValueError(f"tps must be positive TP degrees, got {tps}")
    if n_loads < 1:
        raise ValueError(f"n_loads must be >= 1, got {n_loads}")
    for h in hardware:
        if not set(tps) <= set(h.tp_degrees()):
            raise ValueError(f"tps {tps} do not all fit in one {h.name} server ({h.tp_degrees()})")
    rng = np.random.default_rng(seed)
    blocks = [_hardware_block(rng, h, tps, _clocks_of(h, clocks), classes, n_loads) for h in hardware]
    out = pd.concat(blocks, ignore_index=True)
    out.insert(0, "model", model)
    return out[[c for c in schema.KEY_COLUMNS + schema.REQUIRED_VALUE_COLUMNS + schema.OPTIONAL_VALUE_COLUMNS]]


def synthetic_profile(
    *,
    seed: int = 0,
    hardware: Sequence[HardwareType] = (H100_80GB,),
    tps: Sequence[int] = (2, 4, 8),
    classes: ClassScheme = DEFAULT_CLASSES,
    n_loads: int = 6,
    model: str = "llama2-70b",
    clocks: ClockSpec = None,
) -> Profile:
    """:func:`synthetic_profile_table` wrapped in a validated, complete :class:`Profile`.

    The profile's hardware mapping holds the given hardware types, restricted to ``clocks`` when
    those are given, and its class scheme is ``classes``.
    """
    table = synthetic_profile_table(
        seed=seed, hardware=hardware, tps=tps, classes=classes, n_loads=n_loads, model=model, clocks=clocks
    )
    hw_map = {
        h.name: h if clocks is None else h.model_copy(update={"clock_levels_mhz": _clocks_of(h, clocks)})
        for h in hardware
    }
    return Profile(table, source=f"synthetic(seed={seed})", hardware=hw_map, classes=classes)


def _kwargs(*, seed, hardware, tps, classes, n_loads, model, clocks):
    """Hypothesis strategy of :func:`synthetic_profile_table` arguments; ``None`` ones are drawn."""
    from hypothesis import strategies as st

    hw = tuple(hardware) if hardware is not None else (H100_80GB,)
    allowed_tps = [t for t in (2, 4, 8) if all(t in h.tp_degrees() for h in hw)]
    clock_subsets = {
        h.name: st.lists(st.sampled_from(h.clock_levels_mhz), min_size=1, max_size=4, unique=True) for h in hw
    }
    return st.fixed_dictionaries({
        "seed": st.integers(0, 2**32 - 1) if seed is None else st.just(seed),
        "hardware": st.just(hw),
        "tps": (st.lists(st.sampled_from(allowed_tps), min_size=1, max_size=len(allowed_tps), unique=True)
                if tps is None else st.just(tuple(tps))),
        "classes": st.just(DEFAULT_CLASSES if classes is None else classes),
        "n_loads": st.integers(2, 8) if n_loads is None else st.just(n_loads),
        "model": st.just(model),
        "clocks": st.fixed_dictionaries(clock_subsets) if clocks is None else st.just(clocks),
    })


def profile_tables(
    *,
    seed: int | None = None,
    hardware: Sequence[HardwareType] | None = None,
    tps: Sequence[int] | None = None,
    classes: ClassScheme | None = None,
    n_loads: int | None = None,
    model: str = "llama2-70b",
    clocks: ClockSpec = None,
):
    """Hypothesis strategy of raw valid profile tables (``pandas.DataFrame``).

    Every argument left ``None`` is drawn: the seed, a non-empty set of TP degrees from
    (2, 4, 8), 2..8 load points and 1..4 clock levels per hardware type (so the table is complete
    only against hardware restricted to the drawn clocks; use :func:`profiles` for Profiles, or
    pass ``clocks=`` explicitly, e.g. every level, to get a table complete for the default
    hardware). Hardware defaults to H100-80GB and classes to the default 3 x 3 scheme.
    """
    kw = _kwargs(seed=seed, hardware=hardware, tps=tps, classes=classes, n_loads=n_loads, model=model,
                 clocks=clocks)
    return kw.map(lambda k: synthetic_profile_table(**k))


def profiles(
    *,
    seed: int | None = None,
    hardware: Sequence[HardwareType] | None = None,
    tps: Sequence[int] | None = None,
    classes: ClassScheme | None = None,
    n_loads: int | None = None,
    model: str = "llama2-70b",
    clocks: ClockSpec = None,
):
    """Hypothesis strategy of valid, complete :class:`Profile` objects (see :func:`profile_tables`)."""
    kw = _kwargs(seed=seed, hardware=hardware, tps=tps, classes=classes, n_loads=n_loads, model=model,
                 clocks=clocks)
    return kw.map(lambda k: synthetic_profile(**k))
