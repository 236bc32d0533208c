"""Adjusting a voice: directions in face-embedding space that mean something to a listener.

A voice is a point F (the face embedding); moving F moves the voice. `train/fit_voice_directions.py` finds, once
per checkpoint, a few directions that a person can name, from the training corpus's faces and labels, and keeps
them in ``config.voice_directions``:

- ``pitch`` (lower / higher): the ridge-regression direction of the corpus voice's target F0 (log Hz) on F, with
  each gender's mean removed first, so it moves pitch within a gender instead of switching gender;
- ``age`` (younger / older): the same for the face's age label, adults and children alike;
- ``masculinity`` (less / more masculine): between the mean F of faces labelled male and of faces labelled female.

Each is stored as a unit vector and a step: one step is one standard deviation of the training faces of one
gender along it, so +1 is an ordinary difference between two people and +3 is far. `adjust_embedding` adds
``amount * step * vector`` per direction. The directions are a property of the model and its corpus (a rule the
corpus chose: see the model card), not facts about real people's voices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

MAX_STEPS = 3.0
RIDGE = 1e-2  # relative to the mean eigenvalue of the embeddings' covariance

__all__ = ["MAX_STEPS", "adjust_embedding", "check_adjustments", "fit_direction", "mean_difference_direction"]


def check_adjustments(directions: Mapping[str, Any], amounts: Mapping[str, float]) -> dict[str, float]:
    """The non-zero `amounts` as floats; a clear ValueError for unknown names or amounts beyond ±MAX_STEPS."""
    if amounts and not directions:
        raise ValueError(
            "This model has no voice directions to adjust along (fit them with train/fit_voice_directions.py)."
        )
    unknown = sorted(set(amounts) - set(directions))
    if unknown:
        raise ValueError(f"Unknown voice adjustment {unknown}: this model knows {sorted(directions)}.")
    checked = {}
    for name, amount in amounts.items():
        value = float(amount)
        if not np.isfinite(value) or abs(value) > MAX_STEPS:
            raise ValueError(f"Adjust {name} by at most {MAX_STEPS:g} steps either way (got {amount}).")
        if value:
            checked[name] = value
    return checked


def adjust_embedding(
    face_embedding: torch.Tensor, directions: Mapping[str, Any], amounts: Mapping[str, float]
) -> torch.Tensor:
    """F (B, E) moved by ``amount * step * vector`` along each named direction."""
    moved = face_embedding
    for name, amount in check_adjustments(directions, amounts).items():
        direction = directions[name]
        vector = torch.tensor(direction["vector"], dtype=face_embedding.dtype, device=face_embedding.device)
        moved = moved + amount * float(direction["step"]) * vector
    return moved


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if not norm > 0:
        raise ValueError("The direction is zero: the targets do not vary with the embeddings.")
    return vector / norm


def _within_group(values: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """`values` with each group's mean removed (the overall mean without groups)."""
    centred = values - values.mean(axis=0)
    if groups is None:
        return centred
    out = np.empty_like(values, dtype=np.float64)
    for group in np.unique(groups):
        rows = groups == group
        out[rows] = values[rows] - values[rows].mean(axis=0)
    return out


def fit_direction(
    embeddings: np.ndarray, targets: np.ndarray, groups: np.ndarray | None = None
) -> tuple[np.ndarray, float, float]:
    """Ridge regression of `targets` on `embeddings` (N, E), within `groups`: (unit vector, step, correlation).

    step: the within-group standard deviation of the embeddings' projections on the vector; correlation: between
    those projections and the targets (how well the direction follows the target on these faces)."""
    x = _within_group(np.asarray(embeddings, np.float64), groups)
    y = _within_group(np.asarray(targets, np.float64)[:, None], groups)[:, 0]
    covariance = x.T @ x / len(x)
    ridge = RIDGE * float(np.trace(covariance)) / covariance.shape[0]
    weights = np.linalg.solve(covariance + ridge * np.eye(covariance.shape[0]), x.T @ y / len(x))
    vector = _unit(weights)
    projection = x @ vector
    return vector, float(projection.std()), float(np.corrcoef(projection, y)[0, 1])


def mean_difference_direction(
    embeddings: np.ndarray, labels: np.ndarray, positive: int, negative: int
) -> tuple[np.ndarray, float, float]:
    """The unit vector from the mean embedding of `negative` to that of `positive`: (vector, step, separation).

    step: the within-class standard deviation of the projections; separation: the distance between the two means
    in steps."""
    embeddings = np.asarray(embeddings, np.float64)
    pos, neg = embeddings[labels == positive], embeddings[labels == negative]
    vector = _unit(pos.mean(axis=0) - neg.mean(axis=0))
    spread = np.concatenate([(pos - pos.mean(axis=0)) @ vector, (neg - neg.mean(axis=0)) @ vector]).std()
    return vector, float(spread), float((pos.mean(axis=0) - neg.mean(axis=0)) @ vector / spread)
