"""Importers of splitwise-sim and ML.ENERGY data into partial profiles (fixtures in tests/data)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dynaplan.domain.classes import DEFAULT_CLASSES
from dynaplan.errors import ValidationError
from dynaplan.profiles import Profile, schema
from dynaplan.profiles.importers import import_mlenergy, import_splitwise

DATA = Path(__file__).parent / "data"
SPLITWISE = DATA / "splitwise_perf_model_llama2_70b.csv"
MLE_V3 = DATA / "mlenergy_v3_llama31_70b_lm_arena_chat.csv"
MLE_V2 = DATA / "mlenergy_v2_llama31_70b_chat.csv"
PROFILE_COLUMNS = list(schema.KEY_COLUMNS + schema.REQUIRED_VALUE_COLUMNS + schema.OPTIONAL_VALUE_COLUMNS)


def _row(df, **key):
    sel = np.all([df[k] == v for k, v in key.items()], axis=0)
    assert sel.sum() == 1, f"{sel.sum()} rows for {key}"
    return df[sel].iloc[0]


# ---------------------------------------------------------------------------------- splitwise
def test_splitwise_unknown_hardware_is_reported():
    with pytest.raises(ValidationError, match=r"unknown hardware \['h100-80gb-pcap'\]"):
        import_splitwise(SPLITWISE)


def test_splitwise_rows_map_to_schema():
    df = import_splitwise(SPLITWISE, unknown_hardware="drop", p99_over_median=1.0)
    assert list(df.columns) == PROFILE_COLUMNS
    assert set(df["hardware"]) == {"a100-80gb", "h100-80gb"}
    assert any("h100-80gb-pcap" in n for n in df.attrs["notes"])
    raw = pd.read_csv(SPLITWISE)
    # A100 TP2, prompt 512, batch 8, 128 output tokens: one run, median of its replicates
    src = raw[(raw.hardware == "a100-80gb") & (raw.tensor_parallel == 2) & (raw.prompt_size == 512)
              & (raw.batch_size == 8) & (raw.token_size == 128)]
    e2e = src["e2e_time"].median()
    r = _row(df, hardware="a100-80gb", tp=2, ttft_p50_ms=src["prompt_time"].median())
    assert r["request_class"] == "MM"  # 512 input tokens (M), 128 output tokens (M)
    assert r["freq_mhz"] == 1410  # A100 max clock
    assert r["load_rps"] == pytest.approx(8 / (e2e / 1000.0))  # Little's law
    assert r["throughput_rps"] == r["load_rps"]
    assert r["tbt_p50_ms"] == pytest.approx(src["token_time"].median())
    assert r["tbt_p99_ms"] == r["tbt_p50_ms"]  # explicit p99_over_median=1.0
    assert r["power_w"] == pytest.approx(src["average_power"].median() * 400.0 * 2)
    # classes follow the scheme: prompt 128 -> S, 1024 -> L; 128 output tokens -> M
    assert set(df.loc[df["ttft_p50_ms"] < 70, "request_class"]) >= {"SM"}
    assert "LM" in set(df["request_class"])
    # H100 rows carry no power in splitwise-sim: left NaN, never invented
    assert df.loc[df["hardware"] == "h100-80gb", "power_w"].isna().all()


def test_splitwise_defaults_leave_missing_quantities_nan_and_validation_rejects():
    df = import_splitwise(SPLITWISE, unknown_hardware="drop")
    assert df["ttft_p99_ms"].isna().all() and df["tbt_p99_ms"].isna().all()
    with pytest.raises(ValidationError, match="NaN; expected a number"):
        Profile(df, complete=False)


def test_splitwise_h100_power_missing_until_constant_model_requested():
    h100 = import_splitwise(SPLITWISE, unknown_hardware="drop", p99_over_median=1.0)
    h100 = h100[h100["hardware"] == "h100-80gb"]
    with pytest.raises(ValidationError, match=r"field 'power_w': NaN"):
        Profile(h100, complete=False)
    filled = import_splitwise(SPLITWISE, unknown_hardware="drop", p99_over_median=1.0, power_from="constant")
    filled = filled[filled["hardware"] == "h100-80gb"]
    assert any("MODELLED" in n for n in filled.attrs["notes"])
    # constant model: between tp x token watts (380) and tp x prompt watts (700)
    assert np.all(filled["power_w"] >= filled["tp"] * 380 - 1e-9)
    assert np.all(filled["power_w"] <= filled["tp"] * 700 + 1e-9)
    # class MM on TP8 mixes runs of 256- and 512-token prompts whose latencies do not rise with
    # load: validation says so
    mm = filled[(filled["request_class"] == "MM") & (filled["tp"] == 8)]
    with pytest.raises(ValidationError, match="latency falls as load rises"):
        Profile(mm, complete=False)
    # the batch sweep alone (512-token prompts, batch 1..64, class MM) is monotone and validates
    raw = pd.read_csv(SPLITWISE)
    sweep = raw[(raw.hardware == "h100-80gb") & (raw.tensor_parallel == 8) & (raw.prompt_size == 512)]
    part = import_splitwise(sweep, p99_over_median=1.0, power_from="constant")
    prof = Profile(part, complete=False)
    assert len(prof) == 7  # batch 1, 2, 4, ..., 64
    assert len(prof.missing_grid_points()) > 0  # one TP, one clock, few classes: not a full grid


def test_splitwise_accepts_dataframe_and_checks_columns():
    raw = pd.read_csv(SPLITWISE)
    df = import_splitwise(raw, unknown_hardware="drop")
    assert len(df) > 0
    with pytest.raises(ValidationError, match="missing column"):
        import_splitwise(raw.drop(columns=["e2e_time"]))
    with pytest.raises(ValidationError, match="not found"):
        import_splitwise(DATA / "no_such_file.csv")


# ---------------------------------------------------------------------------------- ML.ENERGY
def test_mlenergy_v3_rows_map_to_schema():
    df = import_mlenergy(MLE_V3, input_tokens=500)
    assert list(df.columns) == PROFILE_COLUMNS
    assert df["hardware"].value_counts().to_dict() == {"h100-80gb": 12, "b200-180gb": 10}
    raw = pd.read_csv(MLE_V3)
    src = raw[(raw.gpu_model == "H100") & (raw.max_num_seqs == 512)].iloc[0]
    lam = src["output_throughput_tokens_per_sec"] / src["avg_output_len"]
    r = _row(df, tbt_p50_ms=src["median_itl_ms"])
    assert r["load_rps"] == pytest.approx(lam) and r["throughput_rps"] == r["load_rps"]
    assert r["power_w"] == pytest.approx(src["avg_power_watts"])  # total of the 4 GPUs
    assert r["tbt_p99_ms"] == pytest.approx(src["p99_itl_ms"])  # measured, not approximated
    assert (r["tp"], r["freq_mhz"], r["model"]) == (4, 1980, "llama-3.1-70b-instruct")
    # class from (assumed 500 input tokens, mean output 350.1) -> M input, L output
    assert r["request_class"] == DEFAULT_CLASSES.classify(np.array([500]), np.array([src["avg_output_len"]]))[0] == "ML"
    # Little's law consistency: concurrency = load x time per request ~ the measured batch
    t_req_s = src["avg_output_len"] * src["median_itl_ms"] / 1000.0
    assert lam * t_req_s == pytest.approx(src["avg_batch_size"], rel=0.35)


def test_mlenergy_v3_b200_rows_import_and_validate():
    """ML.ENERGY v3's B200 (TP2) runs become b200-180gb rows at its max clock; their measured
    P99 ITL rises with load, so the partial profile validates once a TTFT is assumed."""
    df = import_mlenergy(MLE_V3, input_tokens=500, ttft_ms=300.0, request_class="ML")
    b200 = df[df["hardware"] == "b200-180gb"]
    assert len(b200) == 10 and set(b200["tp"]) == {2} and set(b200["freq_mhz"]) == {1965}
    raw = pd.read_csv(MLE_V3)
    src = raw[(raw.gpu_model == "B200") & (raw.max_num_seqs == 512)].iloc[0]
    r = _row(b200, tbt_p50_ms=src["median_itl_ms"])
    assert r["power_w"] == pytest.approx(src["avg_power_watts"])  # total of the 2 GPUs
    assert r["load_rps"] == pytest.approx(src["output_throughput_tokens_per_sec"] / src["avg_output_len"])
    assert r["tbt_p99_ms"] == pytest.approx(src["p99_itl_ms"])
    prof = Profile(b200, complete=False)
    assert len(prof) == 10 and list(prof.groups["hardware"]) == ["b200-180gb"]
    # a B200 that the caller's hardware table does not know is still reported, not guessed
    with pytest.raises(ValidationError, match=r"unknown hardware \['B200'\]"):
        import_mlenergy(MLE_V3, input_tokens=500, hardware_names={"H100": "h100-80gb"})


def test_mlenergy_v3_without_ttft_is_rejected_then_measured_tail_is_judged():
    df = import_mlenergy(MLE_V3, input_tokens=500, unknown_hardware="drop", request_class="ML")
    df = df[df["hardware"] == "h100-80gb"]
    with pytest.raises(ValidationError, match=r"field 'ttft_p99_ms': NaN"):
        Profile(df, complete=False)
    filled = import_mlenergy(MLE_V3, input_tokens=500, unknown_hardware="drop", request_class="ML", ttft_ms=300.0)
    filled = filled[filled["hardware"] == "h100-80gb"]
    assert any("ASSUMED constant 300" in n for n in filled.attrs["notes"])
    # ML.ENERGY's measured P99 ITL is not monotone in load (436 ms at max batch 384, 299 ms at
    # 512): validation refuses the table and names the offending point.
    with pytest.raises(ValidationError, match="latency falls as load rises"):
        Profile(filled, complete=False)
    # the first nine configurations (max batch 8..384) are monotone and validate
    ok = filled.sort_values("load_rps").iloc[:9]
    assert len(Profile(ok, complete=False)) == 9


def test_mlenergy_v2_layout_and_p99_option():
    df = import_mlenergy(MLE_V2, input_tokens={"chat": 500}, unknown_hardware="drop")
    assert any("A100-SXM4-40GB" in n for n in df.attrs["notes"])  # 40 GB part is not a100-80gb
    assert set(df["hardware"]) == {"h100-80gb"} and len(df) == 8
    raw = pd.read_csv(MLE_V2)
    src = raw[(raw.gpu == "NVIDIA H100 80GB HBM3") & (raw.max_batch_size == 256)].iloc[0]
    r = _row(df, tbt_p50_ms=src["avg_tpot_s"] * 1000.0)
    assert r["power_w"] == pytest.approx(src["energy_per_output_token_j"] * src["token_throughput_tok_s"])
    assert r["load_rps"] == pytest.approx(src["token_throughput_tok_s"] / src["avg_output_tokens"])
    assert np.isnan(r["tbt_p99_ms"])  # v2 has only a mean: no P99 unless asked
    approx = import_mlenergy(MLE_V2, input_tokens=500, unknown_hardware="drop", p99_over_median=1.5)
    assert np.allclose(approx["tbt_p99_ms"], 1.5 * approx["tbt_p50_ms"])
    assert any("APPROXIMATED" in n for n in approx.attrs["notes"])


def test_mlenergy_errors_are_clear():
    other = pd.read_csv(MLE_V3).replace({"gpu_model": {"B200": "MI300X"}})
    with pytest.raises(ValidationError, match=r"unknown hardware \['MI300X'\]"):
        import_mlenergy(other, input_tokens=500)
    assert set(import_mlenergy(other, input_tokens=500, unknown_hardware="drop")["hardware"]) == {"h100-80gb"}
    with pytest.raises(ValidationError, match="no entry for task"):
        import_mlenergy(MLE_V3, input_tokens={"gpqa": 300}, unknown_hardware="drop")
    with pytest.raises(ValidationError, match="neither an ML.ENERGY v3"):
        import_mlenergy(pd.DataFrame({"a": [1]}), input_tokens=500)
    with pytest.raises(ValidationError, match="not one of"):
        import_mlenergy(MLE_V3, input_tokens=500, unknown_hardware="drop", request_class="XX")
