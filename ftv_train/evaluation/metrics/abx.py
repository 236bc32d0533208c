"""Objective ABX / face-to-voice matching: a speaker-embedding stand-in for the paper's 1-of-4 listening tests.

For each synthesized utterance, the target speaker's real voice and the real voices of k other speakers are
candidates; the utterance scores when its nearest candidate (cosine of Resemblyzer embeddings) is the target.
With k=3 this is the paper's 1:4 comparison set, and chance is 1/(k+1) = 25%.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .speaker import SpeakerReferences, l2_normalize


@dataclass
class AbxResult:
    """Top-1 accuracy with its chance level; `correct` is per utterance, in the input order."""

    accuracy: float
    chance: float
    k: int
    num_utterances: int
    correct: list[bool] = field(default_factory=list)

    def to_dict(self) -> dict[str, float | int]:
        return {"accuracy": self.accuracy, "chance": self.chance, "k": self.k, "num_utterances": self.num_utterances}


def distractor_speakers(utterance_id: str, target: str, pool: Sequence[str], k: int, seed: int = 0) -> list[str]:
    """k speakers other than the target, drawn from a generator seeded by (seed, utterance id): every system
    evaluated on the same utterance faces the same distractors, whatever the batch order or resume state."""
    others = sorted(s for s in pool if s != target)
    rng = np.random.default_rng([seed, zlib.crc32(str(utterance_id).encode())])
    return [others[i] for i in rng.choice(len(others), size=k, replace=False)]


def abx_accuracy(
    embeddings: np.ndarray,
    speakers: Sequence[str],
    ids: Sequence[str],
    references: SpeakerReferences,
    k: int = 3,
    seed: int = 0,
) -> AbxResult:
    """Fraction of utterances whose target speaker is the nearest of k+1 real voices.

    The target's reference leaves out the utterance's own recording (see SpeakerReferences), so real speech
    is not matched to itself. k shrinks to the number of other speakers available when there are fewer.
    """
    pool = references.speakers
    k = min(k, len(pool) - 1)
    if k < 1:
        raise ValueError(f"ABX needs real references of at least 2 speakers, got {len(pool)}")
    embeddings = l2_normalize(np.asarray(embeddings, dtype=np.float64))
    correct: list[bool] = []
    for emb, spk, uid in zip(embeddings, speakers, ids):
        spk = str(spk)
        if spk not in references.sums:
            raise KeyError(f"No real reference audio for speaker {spk!r} (utterance {uid})")
        candidates = [references.centroid(spk, exclude_id=uid)]
        candidates += [references.centroid(s) for s in distractor_speakers(uid, spk, pool, k, seed)]
        scores = np.stack(candidates) @ emb
        correct.append(bool(np.argmax(scores) == 0 and scores[0] > np.max(scores[1:])))
    accuracy = float(np.mean(correct)) if correct else float("nan")
    return AbxResult(accuracy, 1.0 / (k + 1), k, len(correct), correct)
