"""Calibrate the analytic model on public data and write the bundled default profile.

    python scripts/generate_default_profile.py [--data ../shared/data] [--out PATH] [--check-only]

Steps (equations and sources in docs/profiles.md):
1. ML.ENERGY v3 (Llama-3.1-70B-Instruct, TP4 H100, lm-arena-chat): fit that engine's iteration
   time on median ITL vs batch; keep its per-sequence host cost ``s_host`` (the only large-batch
   data) and its duty cycles for the power fit. B200 (TP2, Llama-3.1- and 3.3-70B, batch <= 1024):
   the same fit with the GEMM time fixed at the H100's scaled by the data-sheet BF16 ratio (the
   runs are host-bound and do not identify it); gives the B200 host costs.
2. splitwise-sim perf model (Llama2-70B rows, medians over replicates): per (hardware, TP) fit the
   prefill overhead, GEMM time per token and super-linear term on the prompt sweep; per hardware
   the decode GPU and host overheads on the batch sweep (batch <= 8). Weight and KV read times
   are physics (bytes / bandwidth), not fitted.
3. Per-GPU power (active, memory-duty, tensor-duty watts) by non-negative least squares: H100 on
   ML.ENERGY avg power vs batch, A100 on splitwise-sim's average_power fractions, both with
   "prefill runs at TDP" (splitwise-sim's constant power model).
3b. Hardware without splitwise-sim data (B200, H200): latency is the H100's with GEMM terms
   scaled by the data-sheet BF16 ratio, physics HBM reads, and host costs from step 1 (B200) or
   the H100's (H200); TP1 where the weights fit (B200) extrapolated from TP2. Power: B200 fitted
   on ML.ENERGY's B200 power vs batch like H100; H200 takes the H100 fit with its faster HBM.
4. Prefill chunk budget per hardware: largest power of two costing <= half the TBT SLO on TP8.
5. Evaluate the model on a load grid per (hardware, TP, class): 23 loads from 2% to 125% of the
   max-clock capacity, shared by all clocks; write the CSV with ``Profile.write`` and the fitted
   parameters as JSON next to it; re-read the CSV through validation.
Residuals of every fit are printed. This is a dev script: it reads ../shared/data; the shipped
files do not need it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, nnls

from dynaplan.domain.classes import DEFAULT_CLASSES
from dynaplan.domain.hardware import DEFAULT_HARDWARE
from dynaplan.domain.model import LLAMA2_70B
from dynaplan.profiles import analytic as am
from dynaplan.profiles.profile import Profile

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "dynaplan" / "profiles" / "data" / "default_llama2_70b.csv"
PARAMS_OUT = REPO / "dynaplan" / "profiles" / "data" / am.DEFAULT_PARAMS_FILE
HARDWARE = ("h100-80gb", "a100-80gb", "h200-141gb", "b200-180gb")
SPLITWISE_HARDWARE = ("h100-80gb", "a100-80gb")  # measured latency (splitwise-sim)
SPEC_BASE = "h100-80gb"  # the measured hardware the others are scaled from
TPS = (2, 4, 8)  # splitwise-sim's TP degrees
# Load grid as fractions of the max-clock capacity of each (hardware, TP, class).
LOAD_FRACTIONS = np.array(
    [0.02, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60,
     0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95, 1.00, 1.10, 1.25]
)
MLENERGY_MODEL = "meta-llama/Llama-3.1-70B-Instruct"
MLENERGY_B200_MODELS = ("meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.3-70B-Instruct")
MLENERGY_B200_MAX_BATCH = 1024  # the H100 runs reach batch ~900; B200 runs past 1024 are left out
MLENERGY_CHAT_INPUT_TOKENS = 500.0  # assumption: lm-arena-chat prompt length is not in the CSV
SPLITWISE_BATCH_SWEEP_PROMPT = 512
SPLITWISE_TOKENS = 128
PREFILL_TDP_WEIGHT = {"h100-80gb": 1.0, "a100-80gb": 3.0, "b200-180gb": 1.0}  # one prefill row against many decode rows
HBM_PJ_PER_BIT = 4.0
DECODE_FIT_MAX_BATCH = 8  # splitwise decode overheads are fitted where its engine is overhead-bound  # HBM2e/HBM3 access energy, order of magnitude (first principles)


# ---------------------------------------------------------------------------------- data
def splitwise_medians(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prompt sweep (batch 1, 128 output tokens) and batch sweep (prompt 512) medians per (hw, tp)."""
    d = pd.read_csv(path)
    d = d[(d["model"] == "llama2-70b") & d["hardware"].isin(SPLITWISE_HARDWARE)]
    keys = ["hardware", "tensor_parallel"]
    prompt = (d[(d["batch_size"] == 1) & (d["token_size"] == SPLITWISE_TOKENS)]
              .groupby(keys + ["prompt_size"])[["prompt_time", "token_time", "average_power", "e2e_time"]]
              .median().reset_index())
    batch = (d[(d["prompt_size"] == SPLITWISE_BATCH_SWEEP_PROMPT) & (d["token_size"] == SPLITWISE_TOKENS)]
             .groupby(keys + ["batch_size"])[["prompt_time", "token_time", "average_power", "e2e_time"]]
             .median().reset_index())
    return prompt, batch


def mlenergy_rows(path: Path, gpu: str = "H100", tp: int = 4, models=(MLENERGY_MODEL,),
                  max_batch: int | None = None) -> pd.DataFrame:
    d = pd.read_csv(path)
    sel = ((d["task"] == "lm-arena-chat") & d["model_id"].isin(models)
           & (d["gpu_model"] == gpu) & (d["tensor_parallel"] == tp))
    if max_batch is not None:
        sel &= d["max_num_seqs"] <= max_batch
    return d[sel].sort_values(["avg_batch_size", "model_id"]).reset_index(drop=True)


def tp_degrees(hw_name: str) -> tuple[int, ...]:
    """TP degrees of the profile: splitwise-sim's for measured hardware; for the others every TP
    inside a server on which the weights and an 8,192-token KV cache fit."""
    if hw_name in SPLITWISE_HARDWARE:
        return TPS
    return LLAMA2_70B.feasible_tp_degrees(DEFAULT_HARDWARE[hw_name])


# ---------------------------------------------------------------------------------- fits
def physics(hw_name: str, tp: int, hbm_eff: float) -> tuple[float, float]:
    hw = DEFAULT_HARDWARE[hw_name]
    t_w = float(am.weight_read_ms(LLAMA2_70B.weight_bytes, tp, hw.hbm_bandwidth_tb_s, hbm_eff))
    t_kv = float(am.kv_read_ms_per_token(LLAMA2_70B.kv_bytes_per_token, tp, hw.hbm_bandwidth_tb_s, hbm_eff))
    return t_w, t_kv


def fit_latency(prompt: pd.DataFrame, batch: pd.DataFrame, base: am.AnalyticParams, s_host: float):
    """Prefill terms per (hw, TP) on the prompt sweep; decode GPU and host overheads per hw on the
    batch sweep at batch <= DECODE_FIT_MAX_BATCH, with the per-sequence host cost ``s_host`` fixed
    (from ML.ENERGY's large-batch ITL)."""
    fits, report = [], []
    k = base.smooth_max_order
    ctx = SPLITWISE_BATCH_SWEEP_PROMPT + SPLITWISE_TOKENS / 2
    for hw_name in SPLITWISE_HARDWARE:
        pre = {}
        for tp in TPS:
            t_w, t_kv = physics(hw_name, tp, base.hbm_efficiency)
            ps = prompt[(prompt["hardware"] == hw_name) & (prompt["tensor_parallel"] == tp)]
            n = ps["prompt_size"].to_numpy(float)
            y = ps["prompt_time"].to_numpy(float)

            def resid(x):
                return (am.prefill_ms(n, x[0], x[1], x[2] * 1e-6, t_w, k) - y) / y

            sol = least_squares(resid, x0=[30.0, 0.05, 1.0], bounds=([0, 1e-4, 0], [500, 5, 1e3]))
            pre[tp] = (sol.x[0], sol.x[1], sol.x[2] * 1e-6)
            for ni, yi, mi in zip(n, y, am.prefill_ms(n, *pre[tp][:2], pre[tp][2], t_w, k)):
                report.append(dict(hardware=hw_name, tp=tp, kind="prefill", x=int(ni), measured_ms=yi, model_ms=mi))
        bs_all = batch[batch["hardware"] == hw_name]
        bs = bs_all[bs_all["batch_size"] <= DECODE_FIT_MAX_BATCH]
        b = bs["batch_size"].to_numpy(float)
        tt = bs["token_time"].to_numpy(float)
        tpv = bs["tensor_parallel"].to_numpy(int)
        tw = np.array([physics(hw_name, t, base.hbm_efficiency)[0] for t in tpv])
        tkv = np.array([physics(hw_name, t, base.hbm_efficiency)[1] for t in tpv])
        cv = np.array([pre[t][1] for t in tpv])

        def dec(x, b=b, cv=cv, tw=tw, tkv=tkv):
            return am.decode_step_ms(b, ctx, x[0], cv, tw, tkv, k, host_ms=x[1], host_ms_per_seq=s_host)

        sol = least_squares(lambda x: (dec(x) - tt) / tt, x0=[10.0, 25.0], bounds=([0, 0], [200, 200]))
        o_dec, o_host = sol.x
        for tp in TPS:
            o_pf, c, q = pre[tp]
            fits.append(am.LatencyFit(hardware=hw_name, tp=tp, prefill_overhead_ms=o_pf, gemm_ms_per_token=c,
                                      prefill_quadratic_ms_per_token2=q, decode_overhead_ms=o_dec,
                                      host_overhead_ms=o_host, host_ms_per_seq=s_host))
        b = bs_all["batch_size"].to_numpy(float)
        tt = bs_all["token_time"].to_numpy(float)
        tpv = bs_all["tensor_parallel"].to_numpy(int)
        tw = np.array([physics(hw_name, t, base.hbm_efficiency)[0] for t in tpv])
        tkv = np.array([physics(hw_name, t, base.hbm_efficiency)[1] for t in tpv])
        cv = np.array([pre[t][1] for t in tpv])
        for ti, bi, yi, mi in zip(tpv, b, tt, dec(sol.x, b, cv, tw, tkv)):
            report.append(dict(hardware=hw_name, tp=int(ti), kind="decode", x=int(bi), measured_ms=yi, model_ms=mi))
    rep = pd.DataFrame(report)
    rep["rel_err"] = rep["model_ms"] / rep["measured_ms"] - 1.0
    return tuple(fits), rep


def _duties(T, b, p_tokens, ctx, t_w, t_kv, c):
    d_mem = np.clip((t_w + b * ctx * t_kv) / T, 0, 1)
    d_tc = np.clip((b + p_tokens) * c / T, 0, 1)
    return d_mem, d_tc


def fit_mlenergy_engine(mle: pd.DataFrame, base: am.AnalyticParams, hw_name: str = "h100-80gb", tp: int = 4,
                        gemm_ms_per_token: float | None = None, source: str = ""):
    """Fit ML.ENERGY's engine timing on its median ITL vs batch (vLLM).

    ITL(b) = smax(o' + smax(t_w, (b + p) c') + b ctx t_kv, o_h' + s_host b), p = b n_in / n_out
    prefill tokens per iteration (chunked prefill), physics t_w and t_kv. Gives the per-sequence
    host cost s_host used by the model (the only large-batch data) and the duty cycles of the
    power fit (duties from the engine that was measured). ``gemm_ms_per_token`` fixes c' (B200:
    its runs are host-bound, so c' is not identified and comes from the data sheet).
    Returns (o', c', o_h', s_host), the EngineFit and a residual table.
    """
    k = base.smooth_max_order
    t_w, t_kv = physics(hw_name, tp, base.hbm_efficiency)
    b = mle["avg_batch_size"].to_numpy(float)
    y = mle["median_itl_ms"].to_numpy(float)
    n_out = mle["avg_output_len"].to_numpy(float)
    ctx = MLENERGY_CHAT_INPUT_TOKENS + n_out / 2
    p_tok = b * MLENERGY_CHAT_INPUT_TOKENS / n_out

    def full(x):
        return x if gemm_ms_per_token is None else np.array([x[0], gemm_ms_per_token, x[1], x[2]])

    def model(x):
        x = full(x)
        return am.decode_step_ms(b, ctx, x[0], x[1], t_w, t_kv, k, extra_tokens=p_tok, host_ms=x[2],
                                 host_ms_per_seq=x[3])

    if gemm_ms_per_token is None:
        x0, lb, ub = [3.0, 0.03, 5.0, 0.05], [0, 1e-4, 0, 0], [100, 1, 100, 2]
    else:
        x0, lb, ub = [3.0, 5.0, 0.05], [0, 0, 0], [100, 100, 2]
    sol = least_squares(lambda x: (model(x) - y) / y, x0=x0, bounds=(lb, ub))
    x = tuple(float(v) for v in full(sol.x))
    rep = pd.DataFrame({"hardware": hw_name, "model_id": mle["model_id"].str.split("/").str[-1],
                        "batch": b, "measured_ms": y, "model_ms": model(sol.x)})
    rep["rel_err"] = rep["model_ms"] / rep["measured_ms"] - 1
    fit = am.EngineFit(hardware=hw_name, tp=tp, gpu_overhead_ms=x[0], gemm_ms_per_token=x[1], host_overhead_ms=x[2],
                       host_ms_per_seq=x[3], input_tokens=MLENERGY_CHAT_INPUT_TOKENS, source=source)
    return x, fit, rep


def spec_latency(hw_name: str, base_fits, engines: dict) -> tuple:
    """LatencyFit per TP of hardware without splitwise-sim data, from the H100's (step 3b).

    GEMM and super-linear prefill terms scale by the data-sheet BF16 ratio; fixed prefill and
    decode GPU overheads stay the H100's; host costs: the measured engine's ratio (o_host) and
    value (s_host) where ML.ENERGY measured the hardware, else the H100's. TP1 (weights fit on
    one GPU) extrapolates TP2: twice the per-GPU GEMM and attention work, and the prefill
    overhead one TP step lower (o_pf grows ~linearly in log2 TP on H100).
    """
    hw, ref = DEFAULT_HARDWARE[hw_name], DEFAULT_HARDWARE[SPEC_BASE]
    r = ref.peak_tflops_bf16 / hw.peak_tflops_bf16
    by_tp = {f.tp: f for f in base_fits if f.hardware == SPEC_BASE}
    if hw_name in engines:
        host_ratio = engines[hw_name].host_overhead_ms / engines[SPEC_BASE].host_overhead_ms
        s_host = engines[hw_name].host_ms_per_seq
    else:
        host_ratio, s_host = 1.0, by_tp[4].host_ms_per_seq
    out = []
    for tp in tp_degrees(hw_name):
        if tp in by_tp:
            f = by_tp[tp]
            o_pf, c, q = f.prefill_overhead_ms, f.gemm_ms_per_token * r, f.prefill_quadratic_ms_per_token2 * r
        elif tp == 1:
            f2, f4 = by_tp[2], by_tp[4]
            o_pf = max(0.0, 2 * f2.prefill_overhead_ms - f4.prefill_overhead_ms)
            c, q = 2 * f2.gemm_ms_per_token * r, 2 * f2.prefill_quadratic_ms_per_token2 * r
        else:
            raise ValueError(f"{hw_name}: no rule for TP{tp}")
        out.append(am.LatencyFit(hardware=hw_name, tp=tp, prefill_overhead_ms=o_pf, gemm_ms_per_token=c,
                                 prefill_quadratic_ms_per_token2=q, decode_overhead_ms=by_tp[4].decode_overhead_ms,
                                 host_overhead_ms=by_tp[4].host_overhead_ms * host_ratio, host_ms_per_seq=s_host))
    return tuple(out)


def fit_power(latency, prompt, batch, measured: dict, base: am.AnalyticParams, v_ratio: float):
    """NNLS of per-GPU (power - idle - hbm duty) on [1, d_mem, d_tc].

    ``measured[hw] = (ML.ENERGY rows, engine (o', c', o_h', s_host), TP)`` for the hardware fitted
    on ML.ENERGY (H100, B200); A100 on splitwise-sim; H200 is not fitted (see ``spec_power``).
    """
    k = base.smooth_max_order
    out, report = [], []
    for hw_name in (*SPLITWISE_HARDWARE, *[h for h in measured if h not in SPLITWISE_HARDWARE]):
        hw = DEFAULT_HARDWARE[hw_name]
        hbm_w = hbm_power_w(hw_name)
        rows = []  # (weight, x_active, d_mem, d_tc, measured_w, label)
        # prefill at TDP (splitwise-sim constant power model, "prompt" phase), 2048-token prompt, TP4
        lf = next(f for f in latency if f.hardware == hw_name and f.tp == 4)
        t_w, t_kv = physics(hw_name, 4, base.hbm_efficiency)
        t_pf = float(am.prefill_ms(2048, lf.prefill_overhead_ms, lf.gemm_ms_per_token,
                                   lf.prefill_quadratic_ms_per_token2, t_w, k))
        dm, dt = _duties(t_pf, 0.0, 2048.0, 0.0, t_w, t_kv, lf.gemm_ms_per_token)
        rows.append((PREFILL_TDP_WEIGHT[hw_name], 1.0, dm, dt, hw.max_power_w, "prefill 2048 tok TP4 = TDP (splitwise constant model)"))
        if hw_name in measured:
            mle, mle_engine, tp_m = measured[hw_name]
            c_mle = mle_engine[1]
            t_w, t_kv = physics(hw_name, tp_m, base.hbm_efficiency)
            for _, r in mle.iterrows():
                b = r["avg_batch_size"]
                T = r["median_itl_ms"]
                ctx = MLENERGY_CHAT_INPUT_TOKENS + r["avg_output_len"] / 2
                p_tok = b * MLENERGY_CHAT_INPUT_TOKENS / r["avg_output_len"]
                dm, dt = _duties(T, b, p_tok, ctx, t_w, t_kv, c_mle)
                label = "" if hw_name == "h100-80gb" else " " + r["model_id"].split("/")[-1][:12]
                rows.append((1.0, 1.0, dm, dt, r["avg_power_watts"] / r["num_gpus"],
                             f"ML.ENERGY TP{tp_m}{label} batch {b:.0f}"))
        else:
            # splitwise A100: average_power is a fraction of GPU TDP over the whole run
            # (prefill, then 128 decode steps); model it as the time-weighted mix of both phases.
            for tp in TPS:
                lft = next(f for f in latency if f.hardware == hw_name and f.tp == tp)
                t_w, t_kv = physics(hw_name, tp, base.hbm_efficiency)
                bs = batch[(batch["hardware"] == hw_name) & (batch["tensor_parallel"] == tp)]
                for _, r in bs[bs["average_power"] > 0].iterrows():
                    b = r["batch_size"]
                    t_pf, T = r["prompt_time"], r["token_time"]
                    w_pf = t_pf / (t_pf + SPLITWISE_TOKENS * T)
                    dm1, dt1 = _duties(t_pf, 0.0, b * SPLITWISE_BATCH_SWEEP_PROMPT, 0.0, t_w, t_kv, lft.gemm_ms_per_token)
                    ctx = SPLITWISE_BATCH_SWEEP_PROMPT + SPLITWISE_TOKENS / 2
                    dm2, dt2 = _duties(T, b, 0.0, ctx, t_w, t_kv, lft.gemm_ms_per_token)
                    dm = w_pf * dm1 + (1 - w_pf) * dm2
                    dt = w_pf * dt1 + (1 - w_pf) * dt2
                    rows.append((1.0, 1.0, dm, dt, r["average_power"] * hw.max_power_w,
                                 f"splitwise A100 TP{tp} batch {b:.0f}"))
        R = np.array([r[:5] for r in rows], dtype=float)
        A = R[:, [1, 2, 3]] * R[:, [0]]
        y = (R[:, 4] - hw.idle_power_w - hbm_w * R[:, 2]) * R[:, 0]
        x, _ = nnls(A, y)
        active_w, chip_mem_w, tensor_w = x
        pf = am.PowerFit(hardware=hw_name, active_w=active_w, memory_w=chip_mem_w + hbm_w, hbm_w=hbm_w,
                         tensor_w=tensor_w, voltage_ratio_at_min_clock=v_ratio)
        out.append(pf)
        pred = hw.idle_power_w + active_w + (chip_mem_w + hbm_w) * R[:, 2] + tensor_w * R[:, 3]
        for r, pv in zip(rows, pred):
            report.append(dict(hardware=hw_name, point=r[5], d_mem=r[2], d_tc=r[3], measured_w=r[4], model_w=pv))
    rep = pd.DataFrame(report)
    rep["rel_err"] = rep["model_w"] / rep["measured_w"] - 1.0
    return tuple(out), rep


def hbm_power_w(hw_name: str) -> float:
    """Clock-invariant HBM power at full memory duty (W): access energy x peak bandwidth."""
    return DEFAULT_HARDWARE[hw_name].hbm_bandwidth_tb_s * 1e12 * 8 * HBM_PJ_PER_BIT * 1e-12


def spec_power(hw_name: str, fits) -> am.PowerFit:
    """Power of a hardware with no measurements (H200): the H100's fit (same chip) with the HBM
    term of its own bandwidth."""
    ref = next(f for f in fits if f.hardware == SPEC_BASE)
    hbm_w = hbm_power_w(hw_name)
    return ref.model_copy(update={"hardware": hw_name, "hbm_w": hbm_w, "memory_w": ref.memory_w - ref.hbm_w + hbm_w})


def calibrate(data: Path) -> tuple[am.AnalyticParams, pd.DataFrame, pd.DataFrame]:
    prompt, batch = splitwise_medians(data / "splitwise_sim" / "perf_model.csv")
    mle_csv = data / "mlenergy" / "mlenergy_v3_llm_configs.csv"
    mle = mlenergy_rows(mle_csv)
    seed = am.AnalyticParams(latency=(), power=())
    mle_engine, eng_h, mle_rep = fit_mlenergy_engine(
        mle, seed, source=f"ML.ENERGY v3 lm-arena-chat, {MLENERGY_MODEL}, H100 TP4, {len(mle)} runs")
    latency, lat_rep = fit_latency(prompt, batch, seed, s_host=mle_engine[3])
    # B200: c' of its TP2 runs = the H100 TP4 engine's c' x (H100 TP2/TP4 GEMM ratio) x BF16 ratio
    h = {f.tp: f for f in latency if f.hardware == SPEC_BASE}
    bf16 = DEFAULT_HARDWARE[SPEC_BASE].peak_tflops_bf16 / DEFAULT_HARDWARE["b200-180gb"].peak_tflops_bf16
    c_b200 = mle_engine[1] * h[2].gemm_ms_per_token / h[4].gemm_ms_per_token * bf16
    mle_b = mlenergy_rows(mle_csv, gpu="B200", tp=2, models=MLENERGY_B200_MODELS, max_batch=MLENERGY_B200_MAX_BATCH)
    b_engine, eng_b, b_rep = fit_mlenergy_engine(
        mle_b, seed, "b200-180gb", 2, gemm_ms_per_token=c_b200,
        source=f"ML.ENERGY v3 lm-arena-chat, Llama-3.1/3.3-70B-Instruct, B200 TP2, {len(mle_b)} runs "
               f"(max_num_seqs <= {MLENERGY_B200_MAX_BATCH}); c' from the data sheet")
    for e in (eng_h, eng_b):
        print(f"== ML.ENERGY engine timing ({e.hardware} TP{e.tp}): o'={e.gpu_overhead_ms:.2f} ms, "
              f"c'={e.gemm_ms_per_token:.5f} ms/tok, o_h'={e.host_overhead_ms:.2f} ms, s_host={e.host_ms_per_seq:.4f} ms/seq ==")
    engines = {e.hardware: e for e in (eng_h, eng_b)}
    latency = latency + spec_latency("h200-141gb", latency, engines) + spec_latency("b200-180gb", latency, engines)
    eng_rep = pd.concat([mle_rep, b_rep], ignore_index=True)
    print(eng_rep.round(3).to_string(index=False))
    for hw_name, sub in eng_rep.groupby("hardware"):
        print(f"  {hw_name} ITL: RMS rel err {np.sqrt(np.mean(sub['rel_err'] ** 2)):.3f}, "
              f"max |rel err| {sub['rel_err'].abs().max():.3f}")
    measured = {"h100-80gb": (mle, mle_engine, 4), "b200-180gb": (mle_b, b_engine, 2)}
    power, pow_rep = fit_power(latency, prompt, batch, measured, seed, v_ratio=0.70)
    power = power + (spec_power("h200-141gb", power),)
    chunks = chunk_budgets(latency, seed)
    print(f"== prefill chunk budgets (tokens): {chunks} ==")
    params = seed.model_copy(update={"latency": latency, "power": power, "chunk_tokens": chunks,
                                     "reference_engines": (eng_h, eng_b)})
    return params, lat_rep, pow_rep


def chunk_budgets(latency, base: am.AnalyticParams, tbt_slo_ms: float = 100.0) -> dict[str, int]:
    """Largest power-of-two prefill budget whose chunk (GEMM + super-linear term, beyond the
    weight read) costs at most half the TBT SLO on TP8 at max clock (Sarathi-Serve's rule of
    sizing the budget to the TBT SLO)."""
    out = {}
    for hw_name in HARDWARE:
        lf = next(f for f in latency if f.hardware == hw_name and f.tp == 8)
        t_w, _ = physics(hw_name, 8, base.hbm_efficiency)
        best = 128
        for c in (128, 256, 512, 1024, 2048, 4096):
            cost = float(am.prefill_ms(c, 0.0, lf.gemm_ms_per_token, lf.prefill_quadratic_ms_per_token2, t_w,
                                       base.smooth_max_order)) - t_w
            if cost <= 0.5 * tbt_slo_ms:
                best = c
        out[hw_name] = best
    return out


# ---------------------------------------------------------------------------------- profile
def build_table(params: am.AnalyticParams) -> pd.DataFrame:
    frames = []
    for hw_name in HARDWARE:
        hw = DEFAULT_HARDWARE[hw_name]
        fmax = hw.max_clock_mhz
        for tp in tp_degrees(hw_name):
            for cls in DEFAULT_CLASSES.names:
                r_max = am.row_inputs(params, hw_name, tp, fmax, cls)
                cap_max = float(am.capacity_rps(r_max, params)[0])
                loads = np.round(cap_max * LOAD_FRACTIONS, 6)
                loads = np.unique(loads[loads > 0])
                f = np.repeat(np.array(hw.clock_levels_mhz), len(loads))
                lam = np.tile(loads, len(hw.clock_levels_mhz))
                r = am.row_inputs(params, np.full(f.size, hw_name, dtype=object), tp, f, cls)
                pts = am.operating_points(lam, r, params)
                frames.append(pd.DataFrame({
                    "model": LLAMA2_70B.name, "hardware": hw_name, "tp": tp, "freq_mhz": f,
                    "request_class": cls, "load_rps": lam,
                    **{c: pts[c] for c in ("power_w", "ttft_p99_ms", "tbt_p99_ms", "throughput_rps",
                                           "ttft_p50_ms", "tbt_p50_ms", "throughput_tok_s")},
                }))
    return pd.concat(frames, ignore_index=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check-only", action="store_true", help="fit and report, do not write")
    args = ap.parse_args(argv)
    pd.set_option("display.width", 200)
    params, lat_rep, pow_rep = calibrate(args.data)
    print("== latency fits (per hardware, TP; max clock) ==")
    for f in params.latency:
        print(f"  {f.hardware} TP{f.tp}: o_pf={f.prefill_overhead_ms:.2f} ms  c={f.gemm_ms_per_token:.5f} ms/tok  "
              f"q={f.prefill_quadratic_ms_per_token2:.3e} ms/tok^2  o_dec={f.decode_overhead_ms:.2f} ms  "
              f"o_host={f.host_overhead_ms:.2f} ms  s_host={f.host_ms_per_seq:.4f} ms/seq")
    print("== latency residuals vs splitwise-sim (model/measured - 1) ==")
    print(lat_rep.pivot_table(index=["hardware", "tp", "kind"], columns="x", values="rel_err").round(3).to_string())
    print("== power fits (per GPU, max clock) ==")
    for f in params.power:
        print(f"  {f.hardware}: active={f.active_w:.1f} W  memory={f.memory_w:.1f} W (hbm {f.hbm_w:.1f})  "
              f"tensor={f.tensor_w:.1f} W  V(min clock)/V(max)={f.voltage_ratio_at_min_clock}")
    print("== power residuals ==")
    print(pow_rep.round(3).to_string(index=False))
    for hw_name, sub in pow_rep.groupby("hardware", sort=False):
        print(f"  {hw_name}: RMS rel err {np.sqrt(np.mean(sub['rel_err'] ** 2)):.3f}, max |rel err| {sub['rel_err'].abs().max():.3f}")
    print("== params ==")
    print(params.model_dump_json(indent=1, exclude={"model"}))
    if args.check_only:
        return 0
    args.out.with_name(PARAMS_OUT.name).write_text(params.model_dump_json(indent=1) + "\n")
    table = build_table(params)
    prof = Profile(table, source="generated")
    prof.write(args.out)
    Profile.read(args.out)
    print(f"wrote {args.out}: {len(prof)} rows, {args.out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
