"""Analytic energy/latency model of one LLM instance (the source of the bundled default profile).

No public per-clock power/latency data exists for LLM inference, so the bundled profile is
*modelled*: latency from a continuous-batching mean-field model calibrated on splitwise-sim's
measured prefill/decode times (Llama2-70B, A100/H100, TP 2/4/8), power from a duty-cycle model
calibrated on ML.ENERGY's measured power vs batch (H100, B200) and splitwise-sim's A100 power
fractions, and clock scaling from first principles. B200 latency is the H100's scaled by the
data sheets (compute, HBM bandwidth) with host costs from ML.ENERGY's B200 runs; H200 is modelled
from its data sheet only. ``docs/profiles.md`` writes the equations
out (numbered M1..M14 there; the docstrings below cite them) and lists every parameter's source.

Every function is a pure, vectorised numpy function of per-row arrays; nothing here reads data
files, and the library never calls this module at import time (the default profile is a
generated CSV, see ``scripts/generate_default_profile.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dynaplan.domain.classes import DEFAULT_CLASSES, ClassScheme
from dynaplan.domain.hardware import DEFAULT_HARDWARE, HardwareType
from dynaplan.domain.model import LLAMA2_70B, ModelSpec


# ---------------------------------------------------------------------------------- parameters
class LatencyFit(BaseModel):
    """Latency parameters of one (hardware, TP degree), at the hardware's maximum clock."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hardware: str = Field(description="Hardware type name.")
    tp: int = Field(gt=0, description="Tensor-parallel degree (GPUs).")
    prefill_overhead_ms: float = Field(
        ge=0, description="Fixed time of a prefill pass (ms). Fitted: splitwise-sim prompt_time vs prompt size."
    )
    gemm_ms_per_token: float = Field(
        gt=0, description="Compute-bound GEMM time per token at max clock (ms/token). Fitted: same data."
    )
    prefill_quadratic_ms_per_token2: float = Field(
        ge=0, description="Super-linear prefill term (ms/token^2). Fitted: same data."
    )
    decode_overhead_ms: float = Field(
        ge=0, description="Fixed GPU time of a decode iteration beyond the weight read (ms). "
        "Fitted: splitwise-sim token_time vs batch (shared by the TP degrees of one hardware)."
    )
    host_overhead_ms: float = Field(
        ge=0, description="Host (CPU) time per iteration: scheduling, sampling, launches (ms). Clock-invariant. "
        "Fitted: splitwise-sim token_time vs batch (shared by the TP degrees of one hardware)."
    )
    host_ms_per_seq: float = Field(
        ge=0, description="Host time per running sequence per iteration (ms/request). Clock-invariant. "
        "Fitted: same data."
    )


class PowerFit(BaseModel):
    """Power parameters of one GPU of a hardware type, at its maximum clock (M11-M13)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hardware: str = Field(description="Hardware type name.")
    active_w: float = Field(
        ge=0, description="Extra power of a GPU that runs iterations, beyond idle, at zero duty (W). "
        "Fitted: ML.ENERGY (H100) / splitwise-sim average_power (A100)."
    )
    memory_w: float = Field(
        ge=0, description="Extra power at 100% memory-bound duty (W), HBM plus on-chip. Fitted: same data."
    )
    hbm_w: float = Field(
        ge=0, description="Clock-invariant (HBM) share of memory_w (W). First principles: ~4 pJ/bit x peak bandwidth."
    )
    tensor_w: float = Field(
        ge=0, description="Extra power at 100% tensor-core (compute-bound) duty (W). Fitted: same data, "
        "with prefill at TDP (splitwise-sim constant power model: prompt phase = TDP)."
    )
    voltage_ratio_at_min_clock: float = Field(
        gt=0, le=1, description="Core voltage at the lowest clock level relative to max clock (fraction). "
        "Assumption: typical GPU V/f curves span ~0.70 V..1.0 V."
    )


class EngineFit(BaseModel):
    """Iteration timing of the engine ML.ENERGY measured (vLLM), fitted on its median ITL vs batch.

    ITL(b) = smax(o' + smax(t_w, (b + p) c') + b ctx t_kv, o_h' + s_h b) (M5 with the measured
    engine's constants, p = b n_in / n_out chunked-prefill tokens per iteration). Kept as the
    record of the calibration of ``LatencyFit.host_ms_per_seq`` (and, for hardware without
    splitwise-sim data, of the host overhead ratio); the profile rows never use it directly.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    hardware: str = Field(description="Hardware type name.")
    tp: int = Field(gt=0, description="Tensor-parallel degree of the measured runs (GPUs).")
    gpu_overhead_ms: float = Field(ge=0, description="o': fixed GPU time per iteration (ms). Fitted.")
    gemm_ms_per_token: float = Field(
        gt=0, description="c': GEMM time per token (ms/token). Fitted (H100) or from the H100 fit scaled "
        "by the data-sheet BF16 ratio (B200; the B200 runs are host-bound and do not identify it).",
    )
    host_overhead_ms: float = Field(ge=0, description="o_h': host time per iteration (ms). Fitted.")
    host_ms_per_seq: float = Field(ge=0, description="s_h: host time per running sequence (ms/request). Fitted.")
    input_tokens: float = Field(gt=0, description="Assumed prompt length of the runs (tokens; not in the source).")
    source: str = Field(description="Measured rows the fit used.")


class AnalyticParams(BaseModel):
    """All parameters of the analytic model, each with unit and source (``docs/profiles.md``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelSpec = Field(default=LLAMA2_70B, description="Served model (weights and KV bytes).")
    latency: tuple[LatencyFit, ...] = Field(description="Per (hardware, TP) latency fits.")
    power: tuple[PowerFit, ...] = Field(description="Per hardware power fits.")
    hbm_efficiency: float = Field(
        default=0.80, gt=0, le=1,
        description="Achieved fraction of peak HBM bandwidth for weight/KV streaming (fraction). Assumption.",
    )
    overhead_clock_fraction: float = Field(
        default=0.35, ge=0, le=1,
        description="Share of the fixed per-iteration/prefill overhead that runs on the SM clock "
        "(scales 1/f); the rest (CPU scheduling, launches, NVLink latency) is clock-invariant (fraction). "
        "Assumption, chosen so small-batch decode is only weakly clock dependent.",
    )
    prefill_clock_fraction: float = Field(
        default=1.0, ge=0, le=1,
        description="Share of GEMM time that scales 1/f when compute bound (fraction). First principles.",
    )
    smooth_max_order: float = Field(
        default=4.0, ge=1, description="Order k of the smooth roofline max (x^k+y^k)^(1/k) (-). Modelling choice."
    )
    chunk_tokens: dict[str, int] = Field(
        default={"h100-80gb": 1024, "a100-80gb": 512},
        description="Prefill token budget per iteration (chunked prefill), per hardware (tokens). Rule "
        "(Sarathi-Serve style): the largest power of two whose chunk costs at most half the 100 ms TBT "
        "SLO on TP8 at max clock; computed by the generator.",
    )
    max_batch: int = Field(
        default=512, gt=0, description="Engine cap on concurrently running requests (max_num_seqs) (requests). "
        "Assumption; ML.ENERGY ran 8..1024.",
    )
    kv_fill_fraction: float = Field(
        default=0.90, gt=0, le=1,
        description="Usable fraction of the KV-cache pool before the engine stops admitting (fraction). Assumption.",
    )
    batch_quantile_z: float = Field(
        default=2.326, ge=0, description="Normal quantile for the P99 batch size b + z sqrt(b) (-). P99 of N(0,1)."
    )
    tbt_tail_fraction: float = Field(
        default=0.01, gt=0, lt=1,
        description="Token fraction that defines the P99 (fraction): once more than this share of "
        "iterations carries a prefill chunk, the P99 TBT includes it.",
    )
    ttft_wait_p99_factor: float = Field(
        default=2.303, ge=0, description="P99 queueing wait = factor x rho/(1-rho) x service (-). "
        "M/D/1 with exponential tail: ln(100)/2.",
    )
    ttft_wait_p50_factor: float = Field(
        default=0.35, ge=0, description="Median queueing wait = factor x rho/(1-rho) x service (-). "
        "M/D/1 mean wait rho/(2(1-rho)) x ln 2.",
    )
    overload_window_s: float = Field(
        default=60.0, gt=0,
        description="Measurement window used to report latencies past saturation, where the queue grows (s).",
    )
    input_tokens_mean: dict[str, float] = Field(
        default={"S": 153.0, "M": 579.0, "L": 2293.0},
        description="Mean input tokens per input bin (tokens). Azure LLM 2023 conv+code, L capped at 8192.",
    )
    input_tokens_p99: dict[str, float] = Field(
        default={"S": 249.0, "M": 1021.0, "L": 7436.0},
        description="P99 input tokens per input bin (tokens); drives P99 TTFT. Same traces.",
    )
    output_tokens_mean: dict[str, float] = Field(
        default={"S": 42.0, "M": 148.0, "L": 428.0},
        description="Mean output tokens per output bin (tokens). Same traces.",
    )
    reference_engines: tuple[EngineFit, ...] = Field(
        default=(), description="Timing fits of the engine ML.ENERGY measured (calibration record, "
        "not used to compute rows).",
    )

    def latency_fit(self, hardware: str, tp: int) -> LatencyFit:
        for f in self.latency:
            if f.hardware == hardware and f.tp == tp:
                return f
        raise KeyError(f"no latency fit for {hardware} TP{tp}")

    def reference_engine(self, hardware: str) -> EngineFit:
        for f in self.reference_engines:
            if f.hardware == hardware:
                return f
        raise KeyError(f"no reference engine fit for {hardware}")

    def power_fit(self, hardware: str) -> PowerFit:
        for f in self.power:
            if f.hardware == hardware:
                return f
        raise KeyError(f"no power fit for {hardware}")


DEFAULT_PARAMS_FILE = "default_llama2_70b_params.json"


def default_params() -> AnalyticParams:
    """The calibrated parameters behind the bundled default profile (read from package data)."""
    ref = resources.files("dynaplan.profiles") / "data" / DEFAULT_PARAMS_FILE
    return AnalyticParams.model_validate_json(ref.read_text())


# ---------------------------------------------------------------------------------- primitives
def smooth_max(x, y, k: float):
    """Smooth roofline max (x^k + y^k)^(1/k) of non-negative arrays (M1)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    m = np.maximum(np.maximum(x, y), 1e-300)
    return m * ((x / m) ** k + (y / m) ** k) ** (1.0 / k)


def clock_slowdown(freq_mhz, max_mhz, clock_fraction):
    """Time multiplier of work whose ``clock_fraction`` scales with 1/f (M2): (1-a) + a f_max/f."""
    r = np.asarray(max_mhz, dtype=float) / np.asarray(freq_mhz, dtype=float)
    return (1.0 - clock_fraction) + clock_fraction * r


def dynamic_power_scale(freq_mhz, min_mhz, max_mhz, v_min_ratio):
    """Dynamic power relative to max clock, f V(f)^2 / (f_max V_max^2), V linear in f (M11)."""
    f = np.asarray(freq_mhz, dtype=float)
    span = np.maximum(np.asarray(max_mhz, float) - np.asarray(min_mhz, float), 1e-9)
    v = v_min_ratio + (1.0 - v_min_ratio) * np.clip((f - min_mhz) / span, 0.0, 1.0)
    return (f / max_mhz) * v**2


def weight_read_ms(weight_bytes, tp, hbm_tb_s, hbm_eff):
    """Time to stream one GPU's weight shard from HBM (ms): W / (tp B eta) (M3)."""
    return weight_bytes / (np.asarray(tp, float) * hbm_tb_s * 1e12 * hbm_eff) * 1e3


def kv_read_ms_per_token(kv_bytes_per_token, tp, hbm_tb_s, hbm_eff):
    """Time to read one context token's KV shard from HBM (ms/token) (M3)."""
    return kv_bytes_per_token / (np.asarray(tp, float) * hbm_tb_s * 1e12 * hbm_eff) * 1e3


def prefill_ms(n_tokens, overhead_ms, gemm_ms_per_token, quad_ms, weight_ms, k):
    """Single-pass prefill time of ``n_tokens`` (ms) (M4):

    t_pf(n) = o_pf + smax(t_w, c n) + q n^2

    where o_pf is the fixed overhead, t_w the weight read, c the GEMM time per token (both at
    the clock of interest) and q the fitted super-linear term.
    """
    n = np.asarray(n_tokens, dtype=float)
    return overhead_ms + smooth_max(weight_ms, gemm_ms_per_token * n, k) + quad_ms * n**2


def decode_step_ms(batch, ctx_tokens, overhead_ms, gemm_ms_per_token, weight_ms, kv_ms_per_token, k,
                   extra_tokens=0.0, host_ms=0.0, host_ms_per_seq=0.0):
    """One iteration with ``batch`` decoding requests and ``extra_tokens`` prefill tokens (ms) (M5):

    T(b, p) = smax(T_gpu, T_host),  T_gpu = o_dec + smax(t_w, (b + p) c) + b ctx t_kv,
                                    T_host = o_host + s_host b

    The host (CPU) work of an iteration overlaps the GPU work, so the slower of the two sets the
    pace; at small TP the GPU is slower (large weight shard), at TP8 the host is.
    """
    b = np.asarray(batch, dtype=float)
    gpu = overhead_ms + smooth_max(weight_ms, (b + extra_tokens) * gemm_ms_per_token, k) + b * ctx_tokens * kv_ms_per_token
    host = host_ms + host_ms_per_seq * b
    return smooth_max(gpu, host, k)


# ---------------------------------------------------------------------------------- row arrays
@dataclass(frozen=True)
class RowInputs:
    """Per-row model inputs (all numpy arrays of one length), at the row's clock."""

    tp: np.ndarray
    n_in: np.ndarray  # mean input tokens
    n_in_p99: np.ndarray
    n_out: np.ndarray
    o_pf: np.ndarray  # prefill overhead at f (ms)
    o_dec: np.ndarray  # decode GPU overhead at f (ms)
    o_host: np.ndarray  # host time per iteration (ms)
    s_host: np.ndarray  # host time per sequence (ms)
    c: np.ndarray  # GEMM ms/token at f
    q: np.ndarray  # quadratic prefill term at f
    t_w: np.ndarray  # weight read (ms)
    t_kv: np.ndarray  # KV read per context token (ms)
    kv_tokens: np.ndarray  # usable KV-cache tokens of the instance
    chunk: np.ndarray  # prefill token budget per iteration (tokens)
    p_idle: np.ndarray  # per-GPU idle power (W)
    p_tdp: np.ndarray  # per-GPU TDP (W)
    p_active: np.ndarray  # per-GPU active power at f (W)
    p_mem: np.ndarray  # per-GPU memory-duty power at f (W)
    p_tensor: np.ndarray  # per-GPU tensor-duty power at f (W)


def row_inputs(
    params: AnalyticParams,
    hardware,
    tp,
    freq_mhz,
    request_class,
    hardware_types: dict[str, HardwareType] | None = None,
    classes: ClassScheme = DEFAULT_CLASSES,
) -> RowInputs:
    """Gather the per-row parameters of (hardware, tp, freq, class) arrays (scalars broadcast)."""
    hw_types = DEFAULT_HARDWARE if hardware_types is None else hardware_types
    hardware, tp, freq_mhz, request_class = np.broadcast_arrays(
        np.asarray(hardware, dtype=object), np.asarray(tp), np.asarray(freq_mhz), np.asarray(request_class, dtype=object)
    )
    n = hardware.size
    out = {k: np.empty(n) for k in RowInputs.__dataclass_fields__ if k != "tp"}
    tp_f = tp.astype(float)
    n_out_bins = len(classes.output_bins.names)
    cls_idx = np.array([classes.names.index(c) for c in request_class.ravel()], dtype=int)
    in_bin = np.array(classes.input_bins.names, dtype=object)[cls_idx // n_out_bins]
    out_bin = np.array(classes.output_bins.names, dtype=object)[cls_idx % n_out_bins]
    out["n_in"] = np.array([params.input_tokens_mean[b] for b in in_bin])
    out["n_in_p99"] = np.array([params.input_tokens_p99[b] for b in in_bin])
    out["n_out"] = np.array([params.output_tokens_mean[b] for b in out_bin])
    k_oc = params.overhead_clock_fraction
    m = params.model
    for (hw_name, t), idx in _groups(hardware.ravel(), tp.ravel()).items():
        hw = hw_types[hw_name]
        lf = params.latency_fit(hw_name, int(t))
        pf = params.power_fit(hw_name)
        f = freq_mhz.ravel()[idx].astype(float)
        fmax, fmin = hw.max_clock_mhz, hw.clock_levels_mhz[0]
        slow_o = clock_slowdown(f, fmax, k_oc)
        slow_c = clock_slowdown(f, fmax, params.prefill_clock_fraction)
        out["o_pf"][idx] = lf.prefill_overhead_ms * slow_o
        out["o_dec"][idx] = lf.decode_overhead_ms * slow_o
        out["chunk"][idx] = params.chunk_tokens[hw_name]
        out["o_host"][idx] = lf.host_overhead_ms
        out["s_host"][idx] = lf.host_ms_per_seq
        out["c"][idx] = lf.gemm_ms_per_token * slow_c
        out["q"][idx] = lf.prefill_quadratic_ms_per_token2 * slow_c
        out["t_w"][idx] = weight_read_ms(m.weight_bytes, t, hw.hbm_bandwidth_tb_s, params.hbm_efficiency)
        out["t_kv"][idx] = kv_read_ms_per_token(m.kv_bytes_per_token, t, hw.hbm_bandwidth_tb_s, params.hbm_efficiency)
        out["kv_tokens"][idx] = max(m.kv_cache_bytes(hw, int(t)), 0.0) / m.kv_bytes_per_token * params.kv_fill_fraction
        s = dynamic_power_scale(f, fmin, fmax, pf.voltage_ratio_at_min_clock)
        out["p_idle"][idx] = hw.idle_power_w
        out["p_tdp"][idx] = hw.max_power_w
        out["p_active"][idx] = pf.active_w * s
        out["p_mem"][idx] = pf.hbm_w + (pf.memory_w - pf.hbm_w) * s
        out["p_tensor"][idx] = pf.tensor_w * s
    return RowInputs(tp=tp_f.ravel(), **out)


def _groups(hardware: np.ndarray, tp: np.ndarray) -> dict[tuple[str, int], np.ndarray]:
    keys = np.char.add(hardware.astype(str), np.char.add("|", tp.astype(str)))
    uniq, inv = np.unique(keys, return_inverse=True)
    res = {}
    for i, key in enumerate(uniq):
        h, t = key.split("|")
        res[(h, int(t))] = np.flatnonzero(inv == i)
    return res


# ---------------------------------------------------------------------------------- queueing
def _g(T, lam, r: RowInputs, k):
    """Right-hand side of the mean-field iteration-time equation (M6)."""
    b = lam * r.n_out * T / 1000.0
    p = lam * r.n_in * T / 1000.0
    ctx = r.n_in + 0.5 * r.n_out
    return decode_step_ms(b, ctx, r.o_dec, r.c, r.t_w, r.t_kv, k, extra_tokens=p, host_ms=r.o_host,
                          host_ms_per_seq=r.s_host)


def saturation_rate_rps(r: RowInputs, k: float):
    """Throughput limit (req/s) (M7): 1000 / smax((n_in + n_out) c + n_out ctx t_kv, n_out s_host),

    the load at which the mean-field iteration time diverges (GPU work or host work per request
    fills the whole time line).
    """
    ctx = r.n_in + 0.5 * r.n_out
    return 1000.0 / smooth_max((r.n_in + r.n_out) * r.c + r.n_out * ctx * r.t_kv, r.n_out * r.s_host, k)


def iteration_ms(lam, r: RowInputs, k: float, iters: int = 60):
    """Mean iteration time T at arrival rate ``lam`` (ms), solving T = g(T) (M6) by bisection.

    g is convex with slope below 1 when lam < saturation_rate_rps, so the root is unique; rows at
    or past that rate get ``inf``.
    """
    lam = np.asarray(lam, dtype=float)
    lam_sat = saturation_rate_rps(r, k)
    sigma = lam / lam_sat
    base = r.o_dec + r.t_w + r.o_host
    ok = sigma < 1.0
    lo = np.zeros_like(lam)
    hi = np.where(ok, base / np.maximum(1.0 - sigma, 1e-12) + 1.0, 1.0)
    for _ in range(64):  # grow the bracket until g(hi) <= hi (the root lies below)
        grow = ok & (_g(hi, lam, r, k) > hi)
        if not grow.any():
            break
        hi = np.where(grow, hi * 2.0, hi)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        above = _g(mid, lam, r, k) > mid
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return np.where(ok, hi, np.inf)


def prefill_utilisation(lam, r: RowInputs, k: float):
    """Share of GPU time spent on prefill GEMMs (M9a): lam (t_pf(n_in) - o_pf) / 1000, below 1.

    Prefills have priority over decodes (vLLM schedules waiting prompts first), so a new prompt
    queues only behind earlier prompts' prefill work.
    """
    work = prefill_ms(r.n_in, 0.0, r.c, r.q, r.t_w, k)
    return np.clip(np.asarray(lam, float) * work / 1000.0, 0.0, 0.999)


def concurrency(lam, T, ttft_ms, r: RowInputs):
    """Requests in the instance by Little's law (M8): lam (TTFT + n_out T) / 1000."""
    return lam * (ttft_ms + r.n_out * T) / 1000.0


# ---------------------------------------------------------------------------------- operating point
def _unsaturated_point(lam, r: RowInputs, p: AnalyticParams):
    """Latency and power at arrival rate ``lam`` assuming the instance keeps up (M6-M13)."""
    k = p.smooth_max_order
    T = iteration_ms(lam, r, k)
    ctx = r.n_in + 0.5 * r.n_out
    host = dict(host_ms=r.o_host, host_ms_per_seq=r.s_host)
    b = lam * r.n_out * T / 1000.0
    # M8: a prompt is prefilled in chunks of <= C tokens that share iterations with the running
    # decodes; its prefill stretches by the ratio of such a hybrid iteration under load to alone.
    chunk_mean = np.minimum(r.chunk, r.n_in)
    h_load = decode_step_ms(b, ctx, r.o_dec, r.c, r.t_w, r.t_kv, k, extra_tokens=chunk_mean, **host)
    h_alone = decode_step_ms(0.0, ctx, r.o_dec, r.c, r.t_w, r.t_kv, k, extra_tokens=chunk_mean, **host)
    stretch = np.where(np.isfinite(T), np.maximum(h_load / h_alone, 1.0), np.inf)
    pf_mean = prefill_ms(r.n_in, r.o_pf, r.c, r.q, r.t_w, k)
    pf_p99 = prefill_ms(r.n_in_p99, r.o_pf, r.c, r.q, r.t_w, k)
    rho = prefill_utilisation(lam, r, k)
    wait = rho / (1.0 - rho)
    # M9: TTFT = stretched single-pass prefill + queueing wait for earlier prefill work
    ttft_p50 = (pf_mean + p.ttft_wait_p50_factor * wait * pf_mean) * stretch
    ttft_p99 = (pf_p99 + p.ttft_wait_p99_factor * wait * pf_mean) * stretch
    ttft_mean = (pf_mean + 0.5 * wait * pf_mean) * stretch
    # M10: P99 TBT = decode step at the P99 batch, plus a prefill chunk once chunks are common
    b99 = 1.0 + b + p.batch_quantile_z * np.sqrt(b)
    td99 = decode_step_ms(b99, ctx, r.o_dec, r.c, r.t_w, r.t_kv, k, **host)
    chunk = np.minimum(r.chunk, r.n_in_p99)
    with_chunk = decode_step_ms(b99, ctx, r.o_dec, r.c, r.t_w, r.t_kv, k, extra_tokens=chunk, **host)
    n_chunks = np.ceil(r.n_in / r.chunk)
    phi = np.minimum(1.0, lam * n_chunks * T / 1000.0)
    s_tail = 1.0 - np.exp(-((phi / p.tbt_tail_fraction) ** 2))
    tbt_p99 = td99 + (with_chunk - td99) * s_tail
    tbt_p50 = np.maximum(T, decode_step_ms(1.0 + b, ctx, r.o_dec, r.c, r.t_w, r.t_kv, k, **host))
    # Near saturation the mean iteration (all arriving prefill work shared over iterations) can
    # outgrow the chunked P99 step above; a P99 is never below the median.
    tbt_p99 = np.maximum(tbt_p99, tbt_p50)
    n_conc = concurrency(lam, T, ttft_mean, r)
    return {
        "T": T, "b": b, "prefill_tokens": lam * r.n_in * T / 1000.0, "concurrency": n_conc,
        "ttft_p50_ms": ttft_p50, "ttft_p99_ms": ttft_p99, "tbt_p50_ms": tbt_p50, "tbt_p99_ms": tbt_p99,
    }


def instance_power_w(lam, point, r: RowInputs):
    """Mean instance power (W) (M12-M13).

    Per GPU while iterations run: P_run = P_idle + P_act + P_mem d_mem + P_tc d_tc, with the
    memory duty d_mem = (t_w + b ctx t_kv)/T and tensor duty d_tc = (b + p) c / T of the mean
    iteration (clipped to 1); the instance is busy a fraction u = 1 - exp(-N) of the time (N
    requests present, Poisson), idle otherwise: P = tp (P_idle + u (P_run - P_idle)), capped at
    tp x TDP.
    """
    T = point["T"]
    N = point["concurrency"]
    u = 1.0 - np.exp(-N)
    b_run = np.maximum(point["b"] / np.maximum(u, 1e-12), 1.0)
    p_run = point["prefill_tokens"] / np.maximum(u, 1e-12)
    ctx = r.n_in + 0.5 * r.n_out
    d_mem = np.clip((r.t_w + b_run * ctx * r.t_kv) / T, 0.0, 1.0)
    d_tc = np.clip((b_run + p_run) * r.c / T, 0.0, 1.0)
    p_run_w = r.p_idle + r.p_active + r.p_mem * d_mem + r.p_tensor * d_tc
    per_gpu = r.p_idle + u * (np.minimum(p_run_w, r.p_tdp) - r.p_idle)
    return r.tp * per_gpu


def capacity_rps(r: RowInputs, p: AnalyticParams, iters: int = 50):
    """Highest sustainable arrival rate (req/s) (M14): below the compute limit (M7), with the
    running batch within ``max_batch`` and the KV cache (concurrency x mean context) within the pool.
    """
    lam_sat = saturation_rate_rps(r, p.smooth_max_order)
    lo = np.zeros_like(lam_sat)
    hi = lam_sat * (1.0 - 1e-6)
    ctx_hold = r.n_in + 0.5 * r.n_out
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        pt = _unsaturated_point(mid, r, p)
        ok = (pt["b"] <= p.max_batch) & (pt["concurrency"] * ctx_hold <= r.kv_tokens) & np.isfinite(pt["T"])
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    return lo


def operating_points(load_rps, r: RowInputs, p: AnalyticParams, cap_rps=None) -> dict[str, np.ndarray]:
    """Profile columns at ``load_rps`` (req/s) for every row (vectorised).

    Below capacity: throughput = load and the mean-field latencies (M6-M10). Past capacity the
    instance completes ``cap_rps`` and the queue grows during the measurement window, so P99 and
    median TTFT add (load/cap - 1) x window x {0.99, 0.5}; TBT and power stay at their
    capacity values.
    """
    lam = np.asarray(load_rps, dtype=float)
    cap = capacity_rps(r, p) if cap_rps is None else np.asarray(cap_rps, dtype=float)
    eff = np.minimum(lam, cap)
    pt = _unsaturated_point(eff, r, p)
    power = instance_power_w(eff, pt, r)
    over = np.maximum(lam / np.maximum(cap, 1e-12) - 1.0, 0.0) * p.overload_window_s * 1000.0
    return {
        "power_w": power,
        "ttft_p99_ms": pt["ttft_p99_ms"] + 0.99 * over,
        "tbt_p99_ms": pt["tbt_p99_ms"],
        "throughput_rps": eff,
        "ttft_p50_ms": pt["ttft_p50_ms"] + 0.5 * over,
        "tbt_p50_ms": pt["tbt_p50_ms"],
        "throughput_tok_s": eff * r.n_out,
        "batch": pt["b"],
        "capacity_rps": cap,
    }
