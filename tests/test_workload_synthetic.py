"""Synthetic traces: envelope targets, burstiness, determinism, labelling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dynaplan.errors import ValidationError
from dynaplan.workload import (
    CODING_ENVELOPE,
    CONVERSATION_ENVELOPE,
    BurstSpec,
    EnvelopeSpec,
    envelope_ratios,
    generate_trace,
    load_trace,
    measure_burstiness,
    save_trace,
    weekly_envelope,
)


@pytest.mark.parametrize("spec", [CONVERSATION_ENVELOPE, CODING_ENVELOPE])
def test_weekly_envelope_hits_targets_exactly(spec):
    env = weekly_envelope(spec)
    assert env.shape == (7 * 24 * 60,) and env.mean() == pytest.approx(1.0)
    hourly = env.reshape(-1, 60).mean(axis=1)
    assert hourly.max() / hourly.mean() == pytest.approx(spec.peak_to_mean, rel=1e-6)
    assert hourly.max() / hourly.min() == pytest.approx(spec.peak_to_valley, rel=1e-6)


@pytest.mark.parametrize(
    "source, rate_rps, peak_to_mean, peak_to_valley",
    [("azure-conv-2023", 5.0, 1.7, 3.3), ("azure-code-2023", 10.0, 2.8, 34.6)],
)
def test_generated_week_envelope_within_5_percent(source, rate_rps, peak_to_mean, peak_to_valley):
    # The envelope is rate-independent; a lower rate keeps the test fast.
    tr = generate_trace(source, days=7, mean_rate_rps=rate_rps, seed=11)
    p2m, p2v = envelope_ratios(tr, window_s=3600)
    assert p2m == pytest.approx(peak_to_mean, rel=0.05)
    assert p2v == pytest.approx(peak_to_valley, rel=0.05)
    assert len(tr) / tr.duration_s == pytest.approx(rate_rps, rel=0.01)


def test_weekend_is_quieter_and_peak_hour_is_respected():
    tr = generate_trace("azure-code-2023", days=7, mean_rate_rps=2.0, seed=1)
    hourly = np.bincount((tr.arrival_s // 3600).astype(int), minlength=168)[:168].reshape(7, 24)
    assert hourly[5:].sum() < 0.6 * hourly[:2].sum()  # Sat+Sun vs Mon+Tue
    assert abs(int(hourly[:5].sum(axis=0).argmax()) - CODING_ENVELOPE.peak_hour_utc) <= 2


def test_code_burstiness_is_reproduced_at_the_source_rate():
    src = load_trace("azure-code-2023")
    target = measure_burstiness(src)
    tr = generate_trace(src, days=2, mean_rate_rps=src.mean_rate_rps, envelope=CODING_ENVELOPE, seed=5)
    got = measure_burstiness(tr)
    for g, t in zip(got.rate_cv2, target.rate_cv2):
        assert g == pytest.approx(t, rel=0.2)
    assert got.rate_cv2[0] > 3  # far from Poisson (0)


def test_conversation_is_nearly_poisson_like_its_source():
    tr = generate_trace("azure-conv-2023", days=1, mean_rate_rps=5.53, seed=2)
    cv2_1s, cv2_60s = measure_burstiness(tr).rate_cv2
    assert cv2_1s == pytest.approx(0.0697, abs=0.03) and cv2_60s == pytest.approx(0.046, abs=0.02)


def test_burst_fit_closed_form():
    spec = BurstSpec.from_trace(load_trace("azure-code-2023"))
    stats = measure_burstiness(load_trace("azure-code-2023"))
    assert spec.slow_rate_cv2 == pytest.approx(stats.rate_cv2[1])
    assert (1 + spec.slow_rate_cv2) * (1 + spec.fast_rate_cv2) - 1 == pytest.approx(stats.rate_cv2[0])


def test_deterministic_for_a_seed_and_labelled_synthetic():
    a = generate_trace("azure-conv-2023", days=0.25, seed=7)
    b = generate_trace("azure-conv-2023", days=0.25, seed=7)
    c = generate_trace("azure-conv-2023", days=0.25, seed=8)
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)
    np.testing.assert_array_equal(a.output_tokens, b.output_tokens)
    assert len(a) != len(c) or not np.array_equal(a.arrival_s, c.arrival_s)
    assert a.synthetic and a.label.startswith("SYNTHETIC") and a.metadata["seed"] == "7"
    assert a.duration_s == 6 * 3600 and a.arrival_s[-1] <= a.duration_s
    assert a.start == pd.Timestamp("2024-05-13", tz="UTC")


def test_tokens_are_resampled_pairs_of_the_source():
    src = load_trace("azure-code-2023")
    tr = generate_trace(src, days=0.1, mean_rate_rps=3, seed=0)
    pairs = set(zip(src.input_tokens.tolist(), src.output_tokens.tolist()))
    assert set(zip(tr.input_tokens.tolist(), tr.output_tokens.tolist())) <= pairs


def test_synthetic_label_survives_a_file_round_trip(tmp_path):
    tr = generate_trace("azure-code-2023", days=0.05, seed=3)
    back = load_trace(save_trace(tr, tmp_path / "s.csv"))
    assert back.synthetic and back.label == tr.label and len(back) == len(tr)
    first = (tmp_path / "s.csv").read_text().splitlines()[0]
    assert first == '"arrival_s","input_tokens","output_tokens"'  # plain CSV, for pandas.read_csv
    assert len(pd.read_csv(tmp_path / "s.csv")) == len(tr)
    assert '"synthetic": true' in (tmp_path / "s.meta.json").read_text()  # provenance beside it


def test_unreachable_envelope_and_bad_arguments_raise():
    with pytest.raises(ValidationError, match="not reachable"):
        weekly_envelope(EnvelopeSpec(peak_to_mean=6.0, peak_to_valley=6.5, night_floor=0.9))
    with pytest.raises(ValidationError, match="days"):
        generate_trace("azure-conv-2023", days=0)
    with pytest.raises(ValidationError, match="mean_rate_rps"):
        generate_trace("azure-conv-2023", days=1, mean_rate_rps=-1)
