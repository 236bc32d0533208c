"""Does each person get their own voice? Speaker-embedding similarities that a listener would notice.

The averages (SECS, agreement) cannot tell a model that speaks in two voices, one per gender, from one that gives
each face its own voice. These can (Resemblyzer cosine similarities, as for SECS, on a 0-1 scale):

- ``within_gender_similarity``: between the voices made for *different* speakers of the same gender label (each
  speaker's utterances averaged). Near 1: everyone of a gender sounds the same; the corpus's own recordings give
  the target (the ``ground_truth`` row).
- ``same_speaker_similarity``: between two utterances of the *same* speaker, which the evaluation speaks from
  different photos of that person (different views of the dataset): a voice that stays when the photo changes.

Intervals: percentile bootstrap over speakers (seeded), since pairs that share a speaker are not independent.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from .base import Metric, Record, Results, fmt_ci

BOOTSTRAP_ROUNDS = 300


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-9)


def _within_gender(means: dict[str, np.ndarray], genders: dict[str, int], speakers: Sequence[str]) -> float | None:
    values = [
        float(means[a] @ means[b])
        for a, b in combinations(speakers, 2)
        if a != b and genders[a] == genders[b] and genders[a] >= 0
    ]
    return float(np.mean(values)) if values else None


def _same_speaker(by_speaker: dict[str, np.ndarray], speakers: Sequence[str]) -> float | None:
    values = [
        float(vectors[i] @ vectors[j])
        for speaker in speakers
        for vectors in (by_speaker[speaker],)
        for i, j in combinations(range(len(vectors)), 2)
    ]
    return float(np.mean(values)) if values else None


def voice_similarities(
    embeddings: Sequence[Sequence[float]], speakers: Sequence[str], genders: Sequence[int], seed: int = 0
) -> dict[str, float | list[float] | None]:
    """Within-gender and same-speaker similarity of utterance embeddings, with 95% speaker-bootstrap intervals."""
    if not len(embeddings):
        return {"within_gender_similarity": None, "same_speaker_similarity": None}
    vectors = _unit(np.asarray(embeddings, dtype=np.float64))
    by_speaker: dict[str, np.ndarray] = {}
    gender_of: dict[str, int] = {}
    for speaker in dict.fromkeys(speakers):
        rows = [i for i, s in enumerate(speakers) if s == speaker]
        by_speaker[speaker] = vectors[rows]
        gender_of[speaker] = int(genders[rows[0]])
    means = {speaker: _unit(rows.mean(axis=0)) for speaker, rows in by_speaker.items()}
    names = list(by_speaker)
    result: dict[str, float | list[float] | None] = {
        "within_gender_similarity": _within_gender(means, gender_of, names),
        "same_speaker_similarity": _same_speaker(by_speaker, names),
    }
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"within_gender_similarity": [], "same_speaker_similarity": []}
    for _ in range(BOOTSTRAP_ROUNDS if len(names) >= 3 else 0):
        sample = [names[i] for i in rng.integers(0, len(names), len(names))]
        # a speaker drawn twice is one speaker: pairs of it with itself are not "different speakers"
        within = _within_gender(means, gender_of, sorted(set(sample)))
        same = _same_speaker(by_speaker, sample)
        if within is not None:
            draws["within_gender_similarity"].append(within)
        if same is not None:
            draws["same_speaker_similarity"].append(same)
    for key, values in draws.items():
        result[f"{key}_ci95"] = [float(x) for x in np.percentile(values, [2.5, 97.5])] if len(values) > 10 else None
    return result


class VoiceDiversity(Metric):
    """Within-gender and same-speaker similarity of a system's voices (over its records, not per utterance)."""

    name = "diversity"

    def summarize(self, records: Sequence[Record], items: dict[str, list]) -> dict[str, float | list[float] | None]:
        return voice_similarities(
            [r["embedding"] for r in records],
            [r["speaker"] for r in records],
            [int(r.get("gender", -1)) for r in records],
        )

    def section(self, results: Results) -> list[str]:
        lines = [
            "## One voice per person",
            "",
            "| System | Similarity between different speakers of one gender | Same speaker, different photos |",
            "|---|---|---|",
        ]
        for row in results["systems"].values():
            o = row["overall"]
            lines.append(
                f"| {row['title']} | "
                f"{fmt_ci(o.get('within_gender_similarity'), o.get('within_gender_similarity_ci95'), '.3f')} | "
                f"{fmt_ci(o.get('same_speaker_similarity'), o.get('same_speaker_similarity_ci95'), '.3f')} |"
            )
        return lines + [
            "",
            "Speaker-embedding cosine similarities (evaluation.metrics.diversity). Between different speakers of one "
            "gender label (each speaker's utterances averaged): near 1 means everyone of a gender gets the same "
            "voice; the model should sit near the ground-truth row. Same speaker: two utterances of one speaker, "
            "spoken from different photos of them. In brackets: 95% bootstrap intervals over speakers.",
            "",
        ]
