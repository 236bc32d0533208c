"""Calibration of a classifier's readings: reliability bins and the expected calibration error (ECE).

Used for the face attribute head (its gender reading's confidence against how often it is right), by
`ftv_train.evaluation.calibration` (fitting the temperature) and by the evaluation report.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ECE_BINS", "expected_calibration_error", "reliability_bins"]

ECE_BINS = 10


def reliability_bins(
    confidences: Sequence[float], correct: Sequence[float], bins: int = ECE_BINS
) -> list[dict[str, float]]:
    """Equal-width confidence bins over [0, 1]: count, mean confidence and accuracy of the readings in each."""
    conf = np.asarray(confidences, dtype=np.float64)
    hits = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": count,
                "confidence": float(conf[members].mean()) if count else float("nan"),
                "accuracy": float(hits[members].mean()) if count else float("nan"),
            }
        )
    return rows


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[float], bins: int = ECE_BINS) -> float:
    """sum_b (n_b / n) |accuracy_b - confidence_b| over equal-width bins of the predicted class's probability."""
    total = len(confidences)
    if total == 0:
        return float("nan")
    return float(
        sum(
            row["count"] / total * abs(row["accuracy"] - row["confidence"])
            for row in reliability_bins(confidences, correct, bins)
            if row["count"]
        )
    )
