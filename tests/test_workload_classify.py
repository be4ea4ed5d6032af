"""Request classes and the simulated output-length predictor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dynaplan.domain.classes import DEFAULT_CLASSES, ClassScheme, TokenBins
from dynaplan.errors import ValidationError
from dynaplan.workload import Trace, class_index, classify_trace, load_trace, predict_classes

CONV_MIX = {"SS": 693, "SM": 1898, "SL": 10, "MS": 3680, "MM": 2016, "ML": 1498, "LS": 2922, "LM": 1699, "LL": 4950}
CODE_MIX = {"SS": 1362, "SM": 45, "SL": 9, "MS": 1829, "MM": 89, "ML": 5, "LS": 5242, "LM": 207, "LL": 31}


def toy(inp, out) -> Trace:
    n = len(inp)
    return Trace(arrival_s=np.arange(n, dtype=float), input_tokens=np.asarray(inp), output_tokens=np.asarray(out),
                 name="toy")


def test_bin_edges_of_the_default_scheme():
    tr = toy([0, 255, 256, 1023, 1024, 8192, 100_000], [99, 100, 349, 350, 0, 99, 5000])
    names = np.asarray(DEFAULT_CLASSES.names)[class_index(tr)]
    assert names.tolist() == ["SS", "SM", "MM", "ML", "LS", "LS", "LL"]


@settings(max_examples=40, deadline=None)
@given(arrays(np.int32, st.integers(0, 50), elements=st.integers(0, 20_000)),
       st.lists(st.integers(1, 3000), min_size=1, max_size=4, unique=True))
def test_class_index_agrees_with_scheme(tokens, edges):
    scheme = ClassScheme(input_bins=TokenBins(names=tuple("ABCDE"[: len(edges) + 1]), edges_tokens=tuple(sorted(edges))),
                         output_bins=DEFAULT_CLASSES.output_bins)
    tr = toy(tokens, tokens[::-1])
    np.testing.assert_array_equal(class_index(tr, scheme), scheme.class_index(tokens, tokens[::-1]))


@pytest.mark.parametrize("name, mix", [("azure-conv-2023", CONV_MIX), ("azure-code-2023", CODE_MIX)])
def test_bundled_class_mix(name, mix):
    tr = load_trace(name)
    # independent classification with pandas
    inp = pd.cut(tr.input_tokens, [-1, 255, 1023, np.inf], labels=list("SML")).astype(str)
    out = pd.cut(tr.output_tokens, [-1, 99, 349, np.inf], labels=list("SML")).astype(str)
    expected = pd.Series(np.char.add(np.asarray(inp), np.asarray(out))).value_counts().to_dict()
    assert expected == {k: v for k, v in mix.items() if v}
    counts = np.bincount(class_index(tr), minlength=9)
    assert dict(zip(DEFAULT_CLASSES.names, counts.tolist())) == mix


def test_predictor_moves_only_to_neighbours_with_the_requested_accuracy():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 9, 200_000).astype(np.int16)
    pred = predict_classes(true, accuracy=0.81, seed=4)
    assert np.mean(pred == true) == pytest.approx(0.81, abs=0.005)
    wrong = pred != true
    assert np.all(pred[wrong] // 3 == true[wrong] // 3)  # same input bin
    assert np.all(np.abs(pred[wrong] % 3 - true[wrong] % 3) == 1)  # adjacent output bin
    # middle output bin: misses split evenly up and down
    mid = wrong & (true % 3 == 1)
    assert np.mean(pred[mid] > true[mid]) == pytest.approx(0.5, abs=0.02)


def test_predictor_extremes_and_direction():
    true = np.repeat(np.arange(9, dtype=np.int16), 1000)
    assert np.array_equal(predict_classes(true, accuracy=1.0), true)
    never = predict_classes(true, accuracy=0.0)
    assert np.all(never != true)
    up = predict_classes(true, accuracy=0.0, over_fraction=1.0)
    top = true % 3 == 2
    assert np.all(up[~top] == true[~top] + 1) and np.all(up[top] == true[top] - 1)


def test_single_output_bin_scheme_predicts_exactly():
    scheme = ClassScheme(input_bins=DEFAULT_CLASSES.input_bins, output_bins=TokenBins(names=("A",), edges_tokens=()))
    tr = toy([10, 300, 5000], [1, 2, 3])
    c = classify_trace(tr, scheme, accuracy=0.0)
    assert c.true_class.tolist() == [0, 1, 2] and np.array_equal(c.predicted_class, c.true_class)


def test_classification_is_seeded_and_complete():
    tr = load_trace("azure-conv-2023")
    a, b = classify_trace(tr, seed=1), classify_trace(tr, seed=1)
    assert np.array_equal(a.predicted_class, b.predicted_class)
    assert not np.array_equal(a.predicted_class, classify_trace(tr, seed=2).predicted_class)
    conf = a.confusion()
    assert conf.to_numpy().sum() == len(tr)
    assert conf.sum(axis=1).to_dict() == CONV_MIX
    assert a.true_names()[:2].tolist() == DEFAULT_CLASSES.classify(tr.input_tokens[:2], tr.output_tokens[:2]).tolist()
    assert a.measured_accuracy == pytest.approx(0.81, abs=0.01)


def test_bad_predictor_arguments():
    with pytest.raises(ValidationError):
        predict_classes(np.zeros(3, dtype=np.int16), accuracy=1.5)
    with pytest.raises(ValidationError):
        predict_classes(np.zeros(3, dtype=np.int16), over_fraction=-0.1)
