"""The bundled (modelled) Llama2-70B profile: shape, calibration and DynamoLLM's published facts.

Facts use H100, DEFAULT_SLOS and ``mls = Profile.default().max_load_under_slo(DEFAULT_SLOS)``.
Where the calibrated model does not reproduce a published fact under the strict operational
definition, the strict test is a strict xfail that names the reason (docs/profiles.md,
"Where we differ from DynamoLLM") and a companion test asserts what the model does show.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dynaplan.domain.hardware import DEFAULT_HARDWARE, H100_80GB
from dynaplan.domain.slo import DEFAULT_SLOS
from dynaplan.profiles import Profile
from dynaplan.profiles import analytic as am

H100 = "h100-80gb"
A100 = "a100-80gb"
FMAX = H100_80GB.max_clock_mhz
DATA = Path(__file__).parent / "data"
PKG_DATA = Path(am.__file__).parent / "data"
SAT = 1e-6  # throughput below load by more than this fraction = saturated


@pytest.fixture(scope="module")
def prof() -> Profile:
    return Profile.default()


@pytest.fixture(scope="module")
def table(prof) -> pd.DataFrame:
    return prof.table


@pytest.fixture(scope="module")
def mls(prof) -> pd.DataFrame:
    return prof.max_load_under_slo(DEFAULT_SLOS).set_index(["hardware", "tp", "freq_mhz", "request_class"])


def _ml(mls, tp, f, cls, hw=H100) -> float:
    return float(mls.loc[(hw, tp, f, cls), "max_load_rps"])


def _group(table, tp, f, cls, hw=H100) -> pd.DataFrame:
    g = table[(table.hardware == hw) & (table.tp == tp) & (table.freq_mhz == f) & (table.request_class == cls)]
    return g.sort_values("load_rps")


def _unsaturated(g: pd.DataFrame) -> pd.DataFrame:
    return g[g["throughput_rps"] >= g["load_rps"] * (1 - SAT)]


# ---------------------------------------------------------------------------------- shape
def test_shape_size_and_grid(prof, table):
    csv = PKG_DATA / "default_llama2_70b.csv"
    assert csv.stat().st_size < 2_000_000
    assert 3_000 <= len(prof) <= 20_000
    assert prof.missing_grid_points().empty
    n = table.groupby(["hardware", "tp", "freq_mhz", "request_class"]).size()
    # H100, A100, H200 at TP 2/4/8; B200 also at TP1 (weights fit on one 180 GB GPU)
    assert len(n) == 9 * (3 * (7 + 4 + 7) + 4 * 7) and n.min() >= 16 and n.max() <= 24
    tps = table.groupby("hardware").tp.unique().map(sorted).to_dict()
    assert tps == {H100: [2, 4, 8], A100: [2, 4, 8], "h200-141gb": [2, 4, 8], "b200-180gb": [1, 2, 4, 8]}
    # every group runs from light load into saturation (points past the SLO limit included)
    sat = table.groupby(["hardware", "tp", "freq_mhz", "request_class"]).apply(
        lambda g: bool((g.throughput_rps < g.load_rps * (1 - SAT)).any()), include_groups=False)
    assert sat.all()


def test_throughput_equals_load_until_saturation_then_flat(table):
    for _, g in table.groupby(["hardware", "tp", "freq_mhz", "request_class"]):
        g = g.sort_values("load_rps")
        saturated = (g.throughput_rps < g.load_rps * (1 - SAT)).to_numpy()
        first = np.argmax(saturated)
        assert not saturated[:first].any() and saturated[first:].all()  # a suffix
        thr = g.throughput_rps.to_numpy()
        assert np.all(np.diff(thr) >= -1e-9 * thr[1:])
        assert np.allclose(thr[first:], thr[first], rtol=1e-5)  # capacity, then flat


def test_library_does_not_compute_the_profile_at_import():
    code = ("import sys, dynaplan, dynaplan.profiles; from dynaplan.profiles import Profile; "
            "Profile.default(); print('dynaplan.profiles.analytic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_csv_is_the_model_evaluated_with_the_shipped_parameters(table):
    """A sample of rows recomputed from analytic.py + the shipped params matches the CSV."""
    params = am.default_params()
    rows = table.sample(60, random_state=1)
    r = am.row_inputs(params, rows.hardware.to_numpy(object), rows.tp.to_numpy(), rows.freq_mhz.to_numpy(),
                      rows.request_class.to_numpy(object))
    # the grid's capacity is each row's own-clock capacity (throughput at the top load point)
    cap = table.groupby(["hardware", "tp", "freq_mhz", "request_class"]).throughput_rps.max()
    cap_rows = cap.loc[list(zip(rows.hardware, rows.tp, rows.freq_mhz, rows.request_class))].to_numpy()
    pts = am.operating_points(rows.load_rps.to_numpy(), r, params, cap_rps=cap_rows)
    for c in ("power_w", "ttft_p99_ms", "tbt_p99_ms", "throughput_rps"):
        np.testing.assert_allclose(pts[c], rows[c].to_numpy(), rtol=1e-3, err_msg=c)  # CSV keeps 6 digits


# ---------------------------------------------------------------------------------- facts
@pytest.mark.xfail(strict=True, reason=(
    "calibrated on splitwise-sim, TP8 carries ~3x the SS load of TP2 at max clock and ~5x of TP2 "
    "at 1.2 GHz, so 50% of TP8's max load is beyond TP2@1.2GHz; see docs/profiles.md"))
def test_a_ss_meets_slo_on_tp2_at_1200_at_medium_load_per_instance(mls):
    assert _ml(mls, 2, 1200, "SS") >= 0.5 * _ml(mls, 8, FMAX, "SS")


def test_a_ss_meets_slo_on_tp2_at_1200_at_medium_server_load(mls):
    """Per 8-GPU server: medium load = 50% of one TP8 instance's max load, spread over 4 TP2s."""
    medium_per_server = 0.5 * _ml(mls, 8, FMAX, "SS")
    assert 4 * _ml(mls, 2, 1200, "SS") >= medium_per_server
    # and 1.2 GHz is a real saving there: TP2 at 1.2 GHz uses less energy per request than at max
    e = _energy_at(mls, 2, "SS", medium_per_server / 4)
    assert e[1200] < 0.9 * e[FMAX]


def _energy_at(mls, tp, cls, load):
    prof = Profile.default()
    out = {}
    for f in H100_80GB.clock_levels_mhz:
        out[f] = float(np.asarray(prof.energy_per_request_j(H100, tp, f, cls, load)).ravel()[0])
    return out


@pytest.mark.xfail(strict=True, reason=(
    "splitwise-sim's TP8 prefill is only ~1.5x faster than TP4's, so TP4 at 1.98 GHz carries "
    "~58% of TP8's LL load; see docs/profiles.md"))
def test_b_ll_meets_slo_only_on_tp8_per_instance(mls):
    medium = 0.5 * _ml(mls, 8, FMAX, "LL")
    for tp in (2, 4):
        assert all(_ml(mls, tp, f, "LL") < medium for f in H100_80GB.clock_levels_mhz)


def test_b_ll_needs_tp8_or_top_clocks(mls):
    medium = 0.5 * _ml(mls, 8, FMAX, "LL")
    clocks = H100_80GB.clock_levels_mhz
    ok = {tp: [f for f in clocks if _ml(mls, tp, f, "LL") >= medium] for tp in (2, 4, 8)}
    assert ok[2] == []  # TP2: KV cache holds ~17 LL requests; prefill chunks break the TBT SLO
    assert set(ok[4]) <= {1600, 1800, 1980}  # TP4 only at the top clocks
    assert len(ok[8]) > len(ok[4]) and min(ok[8]) <= 1400
    # LL capacity grows superlinearly from TP4 to TP8 at every clock below 1.6 GHz
    for f in (1000, 1200, 1400):
        assert _ml(mls, 8, f, "LL") > 2 * _ml(mls, 4, f, "LL")


def test_c_ll_tp8_min_power_clock_below_min_energy_clock(mls):
    ll = mls.xs((H100, 8), level=("hardware", "tp")).xs("LL", level="request_class")
    ll = ll[ll.feasible]
    f_power = int(ll.power_w.idxmin())
    f_energy = int(ll.energy_per_request_j.idxmin())
    assert f_power < f_energy
    assert f_energy == 1600  # published: 1.6 GHz (published min-power clock 1.2 GHz; ours is lower)
    # the tradeoff: the min-power clock carries far fewer requests per instance
    assert ll.loc[f_power, "max_load_rps"] < 0.5 * ll.loc[f_energy, "max_load_rps"]


def test_d_1600_mhz_about_same_throughput_much_less_energy(table, mls):
    rows = []
    for tp in (2, 4, 8):
        for cls in mls.index.get_level_values("request_class").unique():
            g16, g19 = _group(table, tp, 1600, cls), _group(table, tp, FMAX, cls)
            both = _unsaturated(g16).merge(_unsaturated(g19), on="load_rps", suffixes=("_16", "_19"))
            below = (both.energy_per_request_j_16 < 0.8 * both.energy_per_request_j_19).mean()
            rows.append(dict(tp=tp, cls=cls, sat_ratio=g16.throughput_rps.max() / g19.throughput_rps.max(),
                             energy_share=below, n=len(both)))
    d = pd.DataFrame(rows)
    assert (d.n >= 3).all()
    # throughput: prefill-heavy groups scale with the clock (compute bound, >= 0.8), decode-heavy
    # ones keep ~all of it; the typical group keeps >= 85%
    assert d.sat_ratio.min() >= 0.8 and d.sat_ratio.median() >= 0.85 and (d.sat_ratio >= 0.9).sum() >= 8
    # energy per request at the same load below 80% of max clock for most load points, in most groups
    assert (d.energy_share >= 0.6).mean() >= 0.8


def test_e_energy_per_request_falls_as_load_rises(table):
    for _, g in table.groupby(["hardware", "tp", "freq_mhz", "request_class"]):
        e = _unsaturated(g.sort_values("load_rps")).energy_per_request_j.to_numpy()
        assert np.all(np.diff(e) <= 1e-9 * e[:-1])


def test_power_far_from_proportional_to_load(table):
    g = _group(table, 8, FMAX, "SS")
    p = _unsaturated(g).power_w.to_numpy()
    assert p[0] > 0.5 * p[-1]  # at 2% of capacity, over half of full-load power


# ---------------------------------------------------------------------------------- calibration
@pytest.fixture(scope="module")
def splitwise_medians():
    d = pd.read_csv(DATA / "splitwise_perf_model_llama2_70b.csv")
    d = d[d.hardware.isin([H100, A100]) & (d.token_size == 128)]
    prompt = d[d.batch_size == 1].groupby(["hardware", "tensor_parallel", "prompt_size"]).prompt_time.median()
    decode = d[d.prompt_size == 512].groupby(["hardware", "tensor_parallel", "batch_size"]).token_time.median()
    return prompt, decode


def _loglog(x, xs, ys):
    return float(np.exp(np.interp(np.log(x), np.log(xs), np.log(ys))))


@pytest.mark.parametrize("hw", [H100, A100])
@pytest.mark.parametrize("tp", [2, 4, 8])
def test_calibration_light_load_ttft_and_tbt_match_splitwise(table, splitwise_medians, hw, tp):
    """Max clock, lightest load: median TTFT within 20% of splitwise-sim's prefill time at the
    class's mean prompt length, median TBT within 15% of its batch-1 decode step."""
    prompt, decode = splitwise_medians
    params = am.default_params()
    fmax = DEFAULT_HARDWARE[hw].max_clock_mhz
    pr = prompt.loc[(hw, tp)]
    for cls, in_bin in (("SS", "S"), ("MS", "M"), ("LS", "L")):
        g = _group(table, tp, fmax, cls, hw).iloc[0]
        ref = _loglog(params.input_tokens_mean[in_bin], pr.index.to_numpy(float), pr.to_numpy())
        assert g.ttft_p50_ms == pytest.approx(ref, rel=0.20), (cls, g.ttft_p50_ms, ref)
        assert g.tbt_p50_ms == pytest.approx(decode.loc[(hw, tp, 1)], rel=0.15), (cls, g.tbt_p50_ms)


@pytest.mark.parametrize("hw", [H100, A100])
def test_calibration_model_functions_match_splitwise(splitwise_medians, hw):
    """Prefill fit within 20% at every prompt size, decode within 10% at batch <= 8 (M4, M5)."""
    prompt, decode = splitwise_medians
    params = am.default_params()
    for tp in (2, 4, 8):
        r = am.row_inputs(params, hw, tp, DEFAULT_HARDWARE[hw].max_clock_mhz, "MM")
        pr = prompt.loc[(hw, tp)]
        model = am.prefill_ms(pr.index.to_numpy(float), r.o_pf, r.c, r.q, r.t_w, params.smooth_max_order)
        np.testing.assert_allclose(model, pr.to_numpy(), rtol=0.20)
        dec = decode.loc[(hw, tp)]
        b = dec.index.to_numpy(float)
        m = am.decode_step_ms(b, 512 + 64, r.o_dec, r.c, r.t_w, r.t_kv, params.smooth_max_order,
                              host_ms=r.o_host, host_ms_per_seq=r.s_host)
        np.testing.assert_allclose(m[b <= 8], dec.to_numpy()[b <= 8], rtol=0.10)


def test_calibration_tp4_h100_power_range_matches_mlenergy(table, mls):
    """TP4 H100 at max clock, class ML (ML.ENERGY lm-arena-chat: ~350 output tokens): power at the
    lightest load within 20% of ML.ENERGY's smallest batch (1765 W, batch 8), power at the max
    load under SLO within 15% of its large-batch power (~2550 W, batch 768-1024)."""
    mle = pd.read_csv(DATA / "mlenergy_v3_llama31_70b_lm_arena_chat.csv")
    mle = mle[mle.gpu_model == "H100"].sort_values("avg_batch_size")
    light, heavy = mle.avg_power_watts.iloc[0], mle.avg_power_watts.iloc[-3:].mean()
    g = _group(table, 4, FMAX, "ML")
    assert g.power_w.iloc[0] == pytest.approx(light, rel=0.20)
    assert mls.loc[(H100, 4, FMAX, "ML"), "power_w"] == pytest.approx(heavy, rel=0.15)


# ---------------------------------------------------------------------------------- sanity
def test_a100_slower_and_lower_power_than_h100(table, mls):
    a_max, h_max = DEFAULT_HARDWARE[A100].max_clock_mhz, FMAX
    for tp in (2, 4, 8):
        for cls in ("SS", "MM", "LL", "SL", "LS"):
            a, h = _group(table, tp, a_max, cls, A100).iloc[0], _group(table, tp, h_max, cls).iloc[0]
            assert a.ttft_p50_ms > h.ttft_p50_ms and a.tbt_p50_ms > h.tbt_p50_ms
            assert _group(table, tp, a_max, cls, A100).throughput_rps.max() < _group(table, tp, h_max, cls).throughput_rps.max()
            assert _group(table, tp, a_max, cls, A100).power_w.max() < _group(table, tp, h_max, cls).power_w.max()


def test_ll_capacity_below_ss_capacity(table):
    cap = table.groupby(["hardware", "tp", "freq_mhz", "request_class"]).throughput_rps.max().unstack()
    assert (cap["LL"] < cap["SS"]).all()


def test_power_within_idle_and_tdp(table):
    hw = table.hardware.map(DEFAULT_HARDWARE)
    tdp = hw.map(lambda h: h.max_power_w) * table.tp
    idle = hw.map(lambda h: h.idle_power_w) * table.tp
    assert (table.power_w <= tdp * (1 + 1e-6)).all()
    assert (table.power_w >= idle).all()
