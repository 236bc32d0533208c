"""The offline corpus's rule from a face to the identity part of its voice: a fixed, smooth function of the face.

Why: a voice part drawn at random per identity cannot be predicted from any face, so a model trained on such a
corpus can only learn the mean voice of each gender (what the first bundled checkpoint did). Here the identity part
comes from dlib's face descriptor (`ftv_model.face_descriptor`): two photos of one person get the same voice,
similar faces similar voices, and different people of one gender clearly different voices. This is a rule the corpus
chose, not something learnt from real people: nothing says that a face's descriptor predicts its owner's voice.

The rule: the descriptor (mean over the identity's real photos) minus its gender pool's mean, projected onto the
leading principal directions of those within-pool deviations, each divided by its spread, gives a standard score
per voice axis; the normal CDF turns it into a position in (0, 1), which `ftv_train.corpus.voices.voice_params`
maps onto the pool's range of that axis (base voice, F0, vocal-tract warp, speaking rate). The principal directions
are the face differences the descriptor holds most strongly, so photo-to-photo noise moves a voice least along
them. Gender and age set the region as before. The fit (pool means, directions, spreads) is made once per corpus
from its own identities and saved with it (``voice_mapping.json``), so a corpus rebuilt from the same faces gets
the same voices.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AXES = ("base", "f0", "warp", "rate")  # in order of the principal directions: the strongest face difference first
MAPPING_NAME = "voice_mapping.json"


@dataclass(frozen=True)
class VoiceMapping:
    """Pool means (pool -> D), unit principal directions (axes x D) and their spreads (axes)."""

    centers: dict[str, np.ndarray]
    directions: np.ndarray
    scales: np.ndarray
    axes: tuple[str, ...] = AXES

    @classmethod
    def fit(cls, descriptors: np.ndarray, pools: list[str], axes: tuple[str, ...] = AXES) -> VoiceMapping:
        """Fit on identity descriptors (N x D) with their gender pools (labelled identities only)."""
        descriptors = np.asarray(descriptors, dtype=np.float64)
        names = sorted(set(pools))
        if len(descriptors) != len(pools) or len(descriptors) <= len(axes):
            raise ValueError(f"Need more identities than axes ({len(axes)}) to fit a voice mapping, got {len(pools)}.")
        labels = np.asarray(pools)
        centers = {name: descriptors[labels == name].mean(axis=0) for name in names}
        deviations = descriptors - np.stack([centers[name] for name in pools])
        _, singular, vt = np.linalg.svd(deviations, full_matrices=False)
        directions = vt[: len(axes)]
        # a principal direction's sign is arbitrary: fix it so the rule is the same on every machine
        directions = directions * np.sign(directions[np.arange(len(axes)), np.abs(directions).argmax(axis=1)])[:, None]
        scales = singular[: len(axes)] / math.sqrt(len(descriptors))
        return cls(centers=centers, directions=directions, scales=scales, axes=tuple(axes))

    def nearest_pool(self, descriptor: np.ndarray) -> str:
        """The pool whose mean face is closest: the pool of an identity without a gender label."""
        return min(self.centers, key=lambda name: float(np.linalg.norm(descriptor - self.centers[name])))

    def scores(self, descriptor: np.ndarray, pool: str) -> np.ndarray:
        """Standard scores of a descriptor along the axes, relative to its pool."""
        return (self.directions @ (np.asarray(descriptor, dtype=np.float64) - self.centers[pool])) / self.scales

    def position(self, descriptor: np.ndarray, pool: str) -> dict[str, float]:
        """Axis -> position in (0, 1): the normal CDF of the standard score (0.5 is the pool's typical face)."""
        return {
            axis: min(max(0.5 * (1.0 + math.erf(float(z) / math.sqrt(2.0))), 1e-4), 1.0 - 1e-4)
            for axis, z in zip(self.axes, self.scores(descriptor, pool))
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        payload = {
            "axes": list(self.axes),
            "centers": {name: center.round(7).tolist() for name, center in self.centers.items()},
            "directions": self.directions.round(7).tolist(),
            "scales": self.scales.round(7).tolist(),
            "about": __doc__.split("\n\n")[2].replace("\n", " "),
        }
        Path(path).write_text(json.dumps(payload))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VoiceMapping:
        payload = json.loads(Path(path).read_text())
        return cls(
            centers={name: np.asarray(center) for name, center in payload["centers"].items()},
            directions=np.asarray(payload["directions"]),
            scales=np.asarray(payload["scales"]),
            axes=tuple(payload["axes"]),
        )
