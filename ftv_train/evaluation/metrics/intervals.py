"""95% confidence intervals for the report's rates, so that a target missed can be told from sampling noise.

An evaluation on 100 utterances measures a rate of 81% only to within about +-8 points, and a CER of 10.0% only to
within about +-2. Agreement and ABX are proportions of independent 0/1 outcomes: Wilson score interval (scipy's
`binomtest`), which stays inside [0, 1] near 0% and 100%. CER is a ratio of summed counts over utterances of different
lengths: a percentile bootstrap over utterances (scipy's `bootstrap`, paired errors and reference lengths, seeded).
Both treat utterances as independent: with one utterance per speaker they are; with several, speakers cluster them
and the true intervals are wider.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95


def proportion_interval(outcomes: Sequence[float], confidence: float = CONFIDENCE) -> list[float] | None:
    """Wilson interval of the share of 1s among 0/1 `outcomes` (None when there are none)."""
    if not len(outcomes):
        return None
    from scipy import stats  # imported on use: importing the metrics stays cheap

    values = np.asarray(outcomes, dtype=float)
    if not np.all((values == 0) | (values == 1)):
        raise ValueError("proportion_interval needs 0/1 outcomes.")
    interval = stats.binomtest(int(values.sum()), len(values)).proportion_ci(confidence, method="wilson")
    return [float(interval.low), float(interval.high)]


def ratio_interval(
    errors: Sequence[int],
    reference_chars: Sequence[int],
    confidence: float = CONFIDENCE,
    seed: int = 0,
    resamples: int = 2000,
) -> list[float] | None:
    """Percentile bootstrap interval of sum(errors) / sum(reference_chars), resampling utterances (None below two)."""
    if len(errors) < 2 or sum(reference_chars) <= 0:
        return None
    from scipy import stats

    def corpus_rate(e: np.ndarray, n: np.ndarray, axis: int = -1) -> np.ndarray:
        return e.sum(axis=axis) / np.maximum(n.sum(axis=axis), 1)

    result = stats.bootstrap(
        (np.asarray(errors, dtype=float), np.asarray(reference_chars, dtype=float)),
        corpus_rate,
        paired=True,
        vectorized=True,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def mean_interval(
    values: Sequence[float], confidence: float = CONFIDENCE, seed: int = 0, resamples: int = 2000
) -> list[float] | None:
    """Percentile bootstrap interval of the mean of per-utterance `values` (None below two)."""
    if len(values) < 2:
        return None
    from scipy import stats

    result = stats.bootstrap(
        (np.asarray(values, dtype=float),),
        np.mean,
        vectorized=True,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]
