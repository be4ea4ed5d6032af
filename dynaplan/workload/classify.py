"""Request classes of a trace, true and predicted.

The true class of a request follows from its (input, output) token counts and a
:class:`~dynaplan.domain.classes.ClassScheme`. The output length is unknown when a request
arrives, so a scheduler acts on a *predicted* class. DynamoLLM uses a BERT-sized classifier of
the output bin that is right about 81% of the time. We simulate it:

- the input bin is known exactly (the prompt is there), so the prediction keeps it;
- with probability ``accuracy`` the predicted output bin is the true one;
- otherwise it is an adjacent output bin (:meth:`ClassScheme.neighbours`): the next larger
  one with probability ``over_fraction`` (over-prediction, wastes energy) and the next smaller
  one otherwise (under-prediction, risks the SLO). At the first/last output bin the only
  neighbour is used. A scheme with one output bin has no neighbours: predictions are exact.

Both arrays are kept, so replay can measure the cost of mis-prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dynaplan.domain.classes import DEFAULT_CLASSES, ClassScheme
from dynaplan.errors import ValidationError
from dynaplan.validation import checked
from dynaplan.workload.trace import Trace

DEFAULT_PREDICTOR_ACCURACY = 0.81
"""Accuracy of DynamoLLM's output-length classifier (HPCA 2025)."""


@dataclass(frozen=True, eq=False)
class Classification:
    """True and predicted class of every request of a trace.

    Attributes:
        scheme: the class scheme; class ``k`` is ``scheme.names[k]``.
        true_class: class index of every request from its real token counts (int16).
        predicted_class: class index the simulated predictor assigns on arrival (int16).
        accuracy: requested probability that the predicted output bin is right.
        over_fraction: share of mis-predictions that go to the larger output bin.
        seed: seed of the predictor's random draws.
    """

    scheme: ClassScheme
    true_class: np.ndarray
    predicted_class: np.ndarray
    accuracy: float
    over_fraction: float
    seed: int

    @property
    def names(self) -> tuple[str, ...]:
        return self.scheme.names

    def true_names(self) -> np.ndarray:
        """Class name of every request (object array; allocates one reference per request)."""
        return np.asarray(self.names, dtype=object)[self.true_class]

    def predicted_names(self) -> np.ndarray:
        return np.asarray(self.names, dtype=object)[self.predicted_class]

    @property
    def measured_accuracy(self) -> float:
        """Fraction of requests whose predicted class equals the true class."""
        return float(np.mean(self.true_class == self.predicted_class)) if self.true_class.size else float("nan")

    def confusion(self) -> pd.DataFrame:
        """Request counts, rows = true class, columns = predicted class (both named ``class``)."""
        n = self.scheme.n_classes
        counts = np.bincount(self.true_class.astype(np.int64) * n + self.predicted_class, minlength=n * n)
        idx = pd.Index(self.names, name="true_class")
        cols = pd.Index(self.names, name="predicted_class")
        return pd.DataFrame(counts.reshape(n, n), index=idx, columns=cols)


def _bin_lookup(bins, tokens: np.ndarray) -> np.ndarray:
    """``bins.index(tokens)`` through a lookup table over 0..last edge (int16, fast)."""
    top = bins.edges_tokens[-1] if bins.edges_tokens else 0
    table = np.asarray(bins.index(np.arange(top + 1)), dtype=np.int16)
    return table[np.minimum(tokens, top)]


def class_index(trace: Trace, scheme: ClassScheme = DEFAULT_CLASSES) -> np.ndarray:
    """True class index (int16) of every request of ``trace``.

    Same result as :meth:`ClassScheme.class_index` (whose bin functions build the lookup
    tables), about ten times faster on int32 token arrays.
    """
    if scheme.n_classes > np.iinfo(np.int16).max:
        raise ValidationError(f"class scheme has {scheme.n_classes} classes; at most 32767 supported")
    n_out = np.int16(len(scheme.output_bins.names))
    out = _bin_lookup(scheme.input_bins, trace.input_tokens)
    out *= n_out
    out += _bin_lookup(scheme.output_bins, trace.output_tokens)
    return out


def neighbour_table(scheme: ClassScheme) -> tuple[np.ndarray, np.ndarray]:
    """Per class: index of the next smaller and next larger output-bin class (-1 if none).

    Built from :meth:`ClassScheme.neighbours`: same input bin, adjacent output bin.
    """
    n_out = len(scheme.output_bins.names)
    lower = np.full(scheme.n_classes, -1, dtype=np.int64)
    upper = np.full(scheme.n_classes, -1, dtype=np.int64)
    for k, name in enumerate(scheme.names):
        for nb in scheme.neighbours(name):
            j = scheme.names.index(nb)
            if j % n_out < k % n_out:
                lower[k] = j
            else:
                upper[k] = j
    return lower, upper


def predict_classes(
    true_class: np.ndarray,
    scheme: ClassScheme = DEFAULT_CLASSES,
    *,
    accuracy: float = DEFAULT_PREDICTOR_ACCURACY,
    over_fraction: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """Simulated predicted class of every request (vectorised; see the module docstring)."""
    if not 0.0 <= accuracy <= 1.0:
        raise ValidationError(f"accuracy must be in [0, 1], got {accuracy}")
    if not 0.0 <= over_fraction <= 1.0:
        raise ValidationError(f"over_fraction must be in [0, 1], got {over_fraction}")
    true_class = np.asarray(true_class)
    lower, upper = neighbour_table(scheme)
    own = np.arange(scheme.n_classes)
    down_first = np.where(lower >= 0, lower, np.where(upper >= 0, upper, own))
    up_first = np.where(upper >= 0, upper, np.where(lower >= 0, lower, own))
    # table[k, choice]: choice 0 = right, 1 = wrong and smaller bin first, 2 = larger bin first.
    table = np.stack([own, down_first, up_first], axis=1).astype(np.int16).ravel()
    rng = np.random.default_rng(seed)
    u = rng.random(true_class.size)
    wrong = u >= accuracy
    # Given a miss, (u - accuracy) / (1 - accuracy) is uniform on [0, 1): reuse it for the side.
    go_up = wrong & ((u - accuracy) < over_fraction * (1.0 - accuracy))
    del u
    choice = wrong.view(np.int8) + go_up.view(np.int8)
    return table[true_class.astype(np.intp) * 3 + choice]


@checked
def classify_trace(
    trace: Trace,
    scheme: ClassScheme = DEFAULT_CLASSES,
    *,
    accuracy: float = DEFAULT_PREDICTOR_ACCURACY,
    over_fraction: float = 0.5,
    seed: int = 0,
) -> Classification:
    """True classes of ``trace`` and the classes a predictor of ``accuracy`` would assign."""
    true_class = class_index(trace, scheme)
    predicted = predict_classes(true_class, scheme, accuracy=accuracy, over_fraction=over_fraction, seed=seed)
    for arr in (true_class, predicted):
        arr.setflags(write=False)
    return Classification(scheme, true_class, predicted, accuracy, over_fraction, seed)
