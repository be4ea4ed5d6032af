"""B200 and H200 in the bundled profile: specifications, memory fit, calibration on ML.ENERGY v3's
B200 (TP2) and H100 (TP4) runs of Llama-3.1/3.3-70B, and the facts that must hold against H100.

The measured rows are the fixtures in tests/data (verbatim ML.ENERGY v3 lm-arena-chat rows);
docs/profiles.md ("B200 and H200") states the residuals these tests hold the profile to.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dynaplan.cli import main
from dynaplan.domain.hardware import B200_180GB, DEFAULT_HARDWARE, H100_80GB, H200_141GB
from dynaplan.domain.model import LLAMA2_70B
from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.profiles import Profile
from dynaplan.profiles import analytic as am

DATA = Path(__file__).parent / "data"
B200, H200, H100 = B200_180GB.name, H200_141GB.name, H100_80GB.name
FMAX = {h: hw.max_clock_mhz for h, hw in DEFAULT_HARDWARE.items()}
CHAT_INPUT_TOKENS = 500.0  # the calibration's assumed lm-arena-chat prompt length (not in the source)


@pytest.fixture(scope="module")
def prof() -> Profile:
    return Profile.default()


@pytest.fixture(scope="module")
def table(prof) -> pd.DataFrame:
    return prof.table


@pytest.fixture(scope="module")
def mls(prof) -> pd.DataFrame:
    return prof.max_load_under_slo(DEFAULT_SLOS).reset_index()


@pytest.fixture(scope="module")
def measured() -> pd.DataFrame:
    d = pd.concat([pd.read_csv(DATA / "mlenergy_v3_llama31_70b_lm_arena_chat.csv"),
                   pd.read_csv(DATA / "mlenergy_v3_llama33_70b_lm_arena_chat.csv")], ignore_index=True)
    return d[d.max_num_seqs <= 1024].reset_index(drop=True)  # the range the calibration uses


def _cap(table, hw, tp, f, cls) -> float:
    g = table[(table.hardware == hw) & (table.tp == tp) & (table.freq_mhz == f) & (table.request_class == cls)]
    return float(g.throughput_rps.max())


# ---------------------------------------------------------------------------------- hardware
def test_specifications():
    b, h = B200_180GB, H200_141GB
    assert (b.gpus_per_server, b.gpu_memory_gb, b.hbm_bandwidth_tb_s, b.peak_tflops_bf16) == (8, 180.0, 8.0, 2250.0)
    assert (b.interconnect_gb_s, b.max_power_w, b.max_clock_mhz) == (1800.0, 1000.0, 1965)
    assert (h.gpus_per_server, h.gpu_memory_gb, h.hbm_bandwidth_tb_s, h.peak_tflops_bf16) == (8, 141.0, 4.8, 989.0)
    assert (h.max_power_w, h.clock_levels_mhz) == (700.0, H100_80GB.clock_levels_mhz)  # H100's chip
    assert B200 in DEFAULT_HARDWARE and H200 in DEFAULT_HARDWARE
    assert b.price_usd_per_server_h > h.price_usd_per_server_h > 0


def test_memory_fit_per_tp_and_the_profiles_tp_degrees(table):
    """Weights 138 GB; 5% of HBM reserved for activations and the engine; the rest is KV cache."""
    kv_b = 327_680  # bytes per token: 2 x 80 layers x 8 KV heads x 128 x 2 bytes
    for hw, tp, kv_gb in ((B200_180GB, 1, 180 * 0.95 - 138), (B200_180GB, 2, 360 * 0.95 - 138),
                          (H200_141GB, 2, 282 * 0.95 - 138), (H100_80GB, 2, 160 * 0.95 - 138)):
        assert LLAMA2_70B.kv_cache_bytes(hw, tp) == pytest.approx(kv_gb * 1e9)
    # TP1 fits only on B200: 33 GB of KV cache, ~100k tokens (36 LL requests of ~2.5k tokens)
    assert LLAMA2_70B.kv_cache_bytes(B200_180GB, 1) / kv_b == pytest.approx(100_708, rel=1e-3)
    assert LLAMA2_70B.kv_cache_bytes(H200_141GB, 1) < 0 and LLAMA2_70B.kv_cache_bytes(H100_80GB, 1) < 0
    tps = table.groupby("hardware").tp.unique().map(lambda a: tuple(sorted(a)))
    for name in (B200, H200):
        assert tps[name] == LLAMA2_70B.feasible_tp_degrees(DEFAULT_HARDWARE[name])
    assert tps[B200] == (1, 2, 4, 8) and tps[H200] == (2, 4, 8)


def test_every_clock_and_class_from_light_load_to_saturation(table):
    for name in (B200, H200):
        sub = table[table.hardware == name]
        assert set(sub.freq_mhz) == set(DEFAULT_HARDWARE[name].clock_levels_mhz)
        groups = sub.groupby(["tp", "freq_mhz", "request_class"])
        assert len(groups) == len(set(sub.tp)) * 7 * 9
        for _, g in groups:
            cap = g.throughput_rps.max()
            assert g.load_rps.min() <= 0.05 * cap and g.load_rps.max() >= 1.2 * cap  # 2% .. 125%


# ---------------------------------------------------------------------------------- calibration
def _engine_itl_ms(fit: am.EngineFit, hw, tp, rows: pd.DataFrame, params: am.AnalyticParams):
    """Median ITL of the measured engine at the rows' batch (M5 with the stored engine fit)."""
    b = rows.avg_batch_size.to_numpy(float)
    n_out = rows.avg_output_len.to_numpy(float)
    t_w = am.weight_read_ms(LLAMA2_70B.weight_bytes, tp, hw.hbm_bandwidth_tb_s, params.hbm_efficiency)
    t_kv = am.kv_read_ms_per_token(LLAMA2_70B.kv_bytes_per_token, tp, hw.hbm_bandwidth_tb_s, params.hbm_efficiency)
    return am.decode_step_ms(b, fit.input_tokens + n_out / 2, fit.gpu_overhead_ms, fit.gemm_ms_per_token, t_w, t_kv,
                             params.smooth_max_order, extra_tokens=b * fit.input_tokens / n_out,
                             host_ms=fit.host_overhead_ms, host_ms_per_seq=fit.host_ms_per_seq)


def test_calibration_b200_itl_matches_mlenergy(measured):
    """B200 TP2 (16 runs, Llama-3.1 and 3.3-70B, batch 8..1022): median ITL within 6% (max 5.1%,
    RMS 3.2% in docs/profiles.md), with c' from the data sheet, not fitted."""
    params = am.default_params()
    fit = params.reference_engine(B200)
    rows = measured[measured.gpu_model == "B200"]
    assert len(rows) == 16 and fit.input_tokens == CHAT_INPUT_TOKENS
    err = _engine_itl_ms(fit, B200_180GB, 2, rows, params) / rows.median_itl_ms.to_numpy() - 1
    assert np.abs(err).max() < 0.06 and np.sqrt(np.mean(err**2)) < 0.04
    # c' is the H100 TP4 engine's scaled to TP2 (splitwise H100 TP2/TP4 GEMM ratio) and by BF16 peak
    h_eng = params.reference_engine(H100)
    ratio = params.latency_fit(H100, 2).gemm_ms_per_token / params.latency_fit(H100, 4).gemm_ms_per_token
    assert fit.gemm_ms_per_token == pytest.approx(h_eng.gemm_ms_per_token * ratio * 989 / 2250)
    # the fit finds a 15% lower per-sequence host cost on B200 than on H100; the profile uses it
    assert fit.host_ms_per_seq == pytest.approx(0.083, abs=0.002) and fit.host_ms_per_seq < h_eng.host_ms_per_seq
    for tp in (1, 2, 4, 8):
        lf = params.latency_fit(B200, tp)
        assert lf.host_ms_per_seq == fit.host_ms_per_seq
        assert lf.host_overhead_ms == pytest.approx(params.latency_fit(H100, 4).host_overhead_ms
                                                    * fit.host_overhead_ms / h_eng.host_overhead_ms)


def test_calibration_b200_power_fit_matches_mlenergy(measured):
    """Per-GPU power of the 16 B200 runs from the shipped power fit at the measured engine's duty
    cycles (M12): within 5% (max 4.9%, RMS 2.1% on these rows)."""
    params = am.default_params()
    fit, pf, hw = params.reference_engine(B200), params.power_fit(B200), B200_180GB
    rows = measured[measured.gpu_model == "B200"]
    b = rows.avg_batch_size.to_numpy(float)
    T = rows.median_itl_ms.to_numpy(float)
    n_out = rows.avg_output_len.to_numpy(float)
    ctx = fit.input_tokens + n_out / 2
    t_w = am.weight_read_ms(LLAMA2_70B.weight_bytes, 2, hw.hbm_bandwidth_tb_s, params.hbm_efficiency)
    t_kv = am.kv_read_ms_per_token(LLAMA2_70B.kv_bytes_per_token, 2, hw.hbm_bandwidth_tb_s, params.hbm_efficiency)
    d_mem = np.clip((t_w + b * ctx * t_kv) / T, 0, 1)
    d_tc = np.clip((b + b * fit.input_tokens / n_out) * fit.gemm_ms_per_token / T, 0, 1)
    model_w = hw.idle_power_w + pf.active_w + pf.memory_w * d_mem + pf.tensor_w * d_tc
    err = model_w / (rows.avg_power_watts.to_numpy() / rows.num_gpus.to_numpy()) - 1
    assert np.abs(err).max() < 0.05 and np.sqrt(np.mean(err**2)) < 0.03
    assert pf.hbm_w == pytest.approx(4e-12 * 8 * 8e12)  # 4 pJ/bit x 8 TB/s, first principles


def test_calibration_b200_profile_power_range_matches_mlenergy(table, mls, measured):
    """TP2 B200 at max clock, class ML (ML.ENERGY's ~350-410 output tokens): power at the lightest
    load within 20% of the smallest batch (~1700 W, batch 8), at the max load under SLO within 15%
    of the largest batches (~1935 W, batch 510..1022) -- the tolerances of the H100 test."""
    rows = measured[measured.gpu_model == "B200"].sort_values("avg_batch_size")
    light, heavy = rows.avg_power_watts.iloc[:2].mean(), rows.avg_power_watts.iloc[-4:].mean()
    g = table[(table.hardware == B200) & (table.tp == 2) & (table.freq_mhz == FMAX[B200]) & (table.request_class == "ML")]
    assert g.sort_values("load_rps").power_w.iloc[0] == pytest.approx(light, rel=0.20)
    at = mls[(mls.hardware == B200) & (mls.tp == 2) & (mls.freq_mhz == FMAX[B200]) & (mls.request_class == "ML")]
    assert float(at.power_w.iloc[0]) == pytest.approx(heavy, rel=0.15)


def test_b200_tp2_vs_h100_tp4_follows_the_measured_ratios(table, mls, measured):
    """ML.ENERGY ran B200 TP2 and H100 TP4 under one set-up: at equal batch, power ratio
    0.96 (batch 8) falling to 0.77 (batch 512..1024), ITL ratio 0.86..1.0. In the profile (class
    ML, max clocks, equal load from 1 req/s to H100 TP4's max load under SLO): power ratio falls
    with load inside 0.75..1.05, TBT median ratio inside 0.85..1.02."""
    m = measured.groupby(["gpu_model", "max_num_seqs"])[["avg_power_watts", "median_itl_ms"]].mean()
    common = m.loc["B200"].index.intersection(m.loc["H100"].index)
    p_ratio = m.loc["B200"].loc[common, "avg_power_watts"] / m.loc["H100"].loc[common, "avg_power_watts"]
    itl_ratio = m.loc["B200"].loc[common, "median_itl_ms"] / m.loc["H100"].loc[common, "median_itl_ms"]
    assert 0.74 < p_ratio.min() and p_ratio.max() < 0.99 and 0.84 < itl_ratio.min() and itl_ratio.max() < 1.02

    def grp(hw, tp):
        g = table[(table.hardware == hw) & (table.tp == tp) & (table.freq_mhz == FMAX[hw]) & (table.request_class == "ML")]
        return g.sort_values("load_rps")

    b, h = grp(B200, 2), grp(H100, 4)
    h_max = mls[(mls.hardware == H100) & (mls.tp == 4) & (mls.freq_mhz == FMAX[H100]) & (mls.request_class == "ML")]
    loads = np.linspace(1.0, float(h_max.max_load_rps.iloc[0]), 12)
    pr = np.interp(loads, b.load_rps, b.power_w) / np.interp(loads, h.load_rps, h.power_w)
    tr = np.interp(loads, b.load_rps, b.tbt_p50_ms) / np.interp(loads, h.load_rps, h.tbt_p50_ms)
    assert np.all(np.diff(pr) < 0) and 0.75 < pr.min() and pr.max() < 1.05
    assert 0.85 < tr.min() and tr.max() < 1.02
    # and the 2-GPU B200 instance carries more ML load than the 4-GPU H100 one, as measured (the
    # B200 completed 1.2-1.25x the tokens/s at max_num_seqs 512..1024)
    assert _cap(table, B200, 2, FMAX[B200], "ML") > _cap(table, H100, 4, FMAX[H100], "ML")


# ---------------------------------------------------------------------------------- facts
def test_b200_capacity_above_h100_at_equal_tp_and_h200_not_below(table):
    classes = sorted(set(table.request_class))
    for tp in (2, 4, 8):
        for cls in classes:
            h = _cap(table, H100, tp, FMAX[H100], cls)
            assert _cap(table, B200, tp, FMAX[B200], cls) > 1.05 * h, (tp, cls)
            assert _cap(table, H200, tp, FMAX[H200], cls) >= h * (1 - 1e-6), (tp, cls)
    # H200's extra HBM lifts TP2, where H100's KV cache (~39k tokens) binds
    assert all(_cap(table, H200, 2, FMAX[H200], c) > 1.05 * _cap(table, H100, 2, FMAX[H100], c) for c in classes)


def _best_energy(mls, hw, tp=None):
    f = mls[(mls.hardware == hw) & mls.feasible & (mls.max_load_rps > 0)]
    if tp is not None:
        f = f[f.tp == tp]
    return f.groupby("request_class").energy_per_request_j.min()


def test_b200_energy_per_request_lower_than_h100(table, mls):
    """At the max load under SLO (least-energy clock): per class, the best B200 configuration uses
    less energy per request than the best H100 one; at equal TP, lower everywhere on TP2/TP4 and on
    TP8 except where both are host-bound (decode-heavy classes whose capacity B200 raises by < 15%:
    eight ~1 kW GPUs waiting on the same host)."""
    b, h = _best_energy(mls, B200), _best_energy(mls, H100)
    assert (b < h).all(), (b / h).round(2).to_dict()
    for tp in (2, 4, 8):
        bt, ht = _best_energy(mls, B200, tp), _best_energy(mls, H100, tp)
        common = bt.index.intersection(ht.index)
        worse = {c for c in common if bt[c] >= ht[c]}
        if tp < 8:
            assert worse == set(), (tp, worse)
        else:
            host_bound = {c for c in common
                          if _cap(table, B200, 8, FMAX[B200], c) < 1.15 * _cap(table, H100, 8, FMAX[H100], c)}
            assert worse <= host_bound and len(worse) <= 1, (worse, host_bound)


def test_h200_is_modelled_from_spec_only():
    """H200: H100's latency and power fits (same chip), its own HBM bandwidth and capacity."""
    p = am.default_params()
    for tp in (2, 4, 8):
        a, b = p.latency_fit(H200, tp), p.latency_fit(H100, tp)
        assert a.model_dump(exclude={"hardware"}) == b.model_dump(exclude={"hardware"})
    ph, p1 = p.power_fit(H200), p.power_fit(H100)
    assert (ph.active_w, ph.tensor_w) == (p1.active_w, p1.tensor_w)
    assert ph.hbm_w == pytest.approx(p1.hbm_w * 4.8 / 3.35)
    with pytest.raises(KeyError):
        p.reference_engine(H200)  # no measurement


# ---------------------------------------------------------------------------------- CLI
def test_cli_profile_show_b200(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.setattr("sys.argv", ["dynaplan", "profile", "show", "--hardware", B200])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None)
    out = capsys.readouterr().out
    assert "b200-180gb: max load under the default SLO at 1965 MHz" in out
    assert "800, 1000, 1200, 1400, 1600, 1800, 1965" in out
    for tp in ("TP1", "TP2", "TP4", "TP8"):
        assert tp in out
    assert "h100-80gb: max load" not in out


def test_every_default_price_states_its_source_and_date():
    import re

    from dynaplan.domain.hardware import DEFAULT_HARDWARE

    for hw in DEFAULT_HARDWARE.values():
        assert hw.price_source.startswith("placeholder: AWS EC2 "), hw.name
        assert re.search(r"\b20\d\d\b", hw.price_source), hw.name  # a list date
    assert DEFAULT_HARDWARE["h100-80gb"].model_copy(update={"price_usd_per_server_h": 55.04}).price_usd_per_server_h == 55.04
