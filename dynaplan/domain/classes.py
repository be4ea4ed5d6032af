"""Request classes: bins of (input tokens, output tokens), and a vectorised classifier.

The default scheme is DynamoLLM's 3 x 3 grid (HPCA 2025): input S < 256 tokens, M 256..1023,
L >= 1024; output S < 100, M 100..349, L >= 350. Class names join the input and output bin
names: SS, SM, SL, MS, MM, ML, LS, LM, LL.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from pydantic import ConfigDict, Field, model_validator

from dynaplan.validation import InputModel


class TokenBins(InputModel):
    """Bins of one token axis. Bin ``i`` holds counts in ``[edges[i-1], edges[i])``.

    ``edges_tokens`` are the interior lower bounds of bins 1..n-1; bin 0 starts at 0 and the
    last bin is unbounded above.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    names: tuple[str, ...] = Field(description="Bin names, shortest first.")
    edges_tokens: tuple[int, ...] = Field(
        description="Lower bound (tokens, inclusive) of every bin but the first, ascending."
    )
    max_tokens: int | None = Field(
        default=None, gt=0,
        description="Largest token count the last bin covers (tokens, inclusive): what a profile built for "
        "these bins was modelled or measured up to. Longer requests are out of profile. None: unbounded.",
    )

    @model_validator(mode="after")
    def _check(self) -> "TokenBins":
        if len(self.names) != len(self.edges_tokens) + 1:
            raise ValueError(
                f"{len(self.names)} bin names need {len(self.names) - 1} edges, "
                f"got {len(self.edges_tokens)}"
            )
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"bin names must be unique: {self.names}")
        e = self.edges_tokens
        if any(b <= a for a, b in zip(e, e[1:])) or (e and e[0] <= 0):
            raise ValueError(f"bin edges must be positive and strictly ascending: {e}")
        if self.max_tokens is not None and e and self.max_tokens < e[-1]:
            raise ValueError(f"max_tokens {self.max_tokens} is below the last bin's lower bound {e[-1]}")
        return self

    def beyond(self, tokens: np.ndarray) -> np.ndarray:
        """True where a token count exceeds :attr:`max_tokens` (never, if unbounded)."""
        tokens = np.asarray(tokens)
        return np.zeros(tokens.shape, dtype=bool) if self.max_tokens is None else tokens > self.max_tokens

    def index(self, tokens: np.ndarray) -> np.ndarray:
        """Bin index of every token count (vectorised)."""
        return np.searchsorted(np.asarray(self.edges_tokens), tokens, side="right")


class ClassScheme(InputModel):
    """A grid of request classes: every (input bin, output bin) pair is one class."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_bins: TokenBins
    output_bins: TokenBins

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Class names, input-major: for the default scheme SS, SM, SL, MS, ..., LL."""
        return tuple(i + o for i in self.input_bins.names for o in self.output_bins.names)

    @property
    def n_classes(self) -> int:
        return len(self.input_bins.names) * len(self.output_bins.names)

    def class_index(self, input_tokens, output_tokens) -> np.ndarray:
        """Index into :attr:`names` of every request (vectorised over numpy arrays).

        Raises ``ValueError`` on negative or non-finite token counts.
        """
        inp = np.asarray(input_tokens)
        out = np.asarray(output_tokens)
        if inp.shape != out.shape:
            raise ValueError(f"input and output token arrays differ in shape: {inp.shape} vs {out.shape}")
        for label, arr in (("input", inp), ("output", out)):
            if arr.size and (not np.all(np.isfinite(arr)) or np.any(arr < 0)):
                bad = int(np.flatnonzero(~np.isfinite(arr) | (arr < 0))[0])
                raise ValueError(f"{label} tokens at position {bad} is {arr.flat[bad]!r}; expected >= 0")
        return self.input_bins.index(inp) * len(self.output_bins.names) + self.output_bins.index(out)

    def out_of_profile(self, input_tokens, output_tokens) -> np.ndarray:
        """True for every request longer than the bins cover (``TokenBins.max_tokens``): a profile
        for this scheme says nothing about its latency, so it cannot be counted as within SLO."""
        return self.input_bins.beyond(input_tokens) | self.output_bins.beyond(output_tokens)

    def classify(self, input_tokens, output_tokens) -> np.ndarray:
        """Class name of every request (vectorised; returns an array of str)."""
        return np.asarray(self.names, dtype=object)[self.class_index(input_tokens, output_tokens)]

    def neighbours(self, name: str) -> tuple[str, ...]:
        """Classes with the same input bin and an adjacent output bin."""
        i = self.names.index(name)
        n_out = len(self.output_bins.names)
        row, col = divmod(i, n_out)
        return tuple(self.names[row * n_out + c] for c in (col - 1, col + 1) if 0 <= c < n_out)


# The bundled profile models input lengths up to 8,192 tokens (its L bin's P99 is 7,436 tokens of
# the Azure 2023 traces, capped at 8,192); output lengths are not bounded by it.
DEFAULT_INPUT_BINS = TokenBins(names=("S", "M", "L"), edges_tokens=(256, 1024), max_tokens=8192)
DEFAULT_OUTPUT_BINS = TokenBins(names=("S", "M", "L"), edges_tokens=(100, 350))
DEFAULT_CLASSES = ClassScheme(input_bins=DEFAULT_INPUT_BINS, output_bins=DEFAULT_OUTPUT_BINS)

# Representative token counts of each default bin, used by the analytic profile model: a
# typical request of the bin (close to the bin's mean in the Azure 2023 traces), with the
# long bins capped at the 8192-token input limit of DynamoLLM's classes (arXiv 2408.00741).
DEFAULT_REPRESENTATIVE_INPUT_TOKENS = {"S": 128, "M": 512, "L": 2048}
DEFAULT_REPRESENTATIVE_OUTPUT_TOKENS = {"S": 40, "M": 200, "L": 500}
