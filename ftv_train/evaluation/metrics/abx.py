"""Objective ABX / face-to-voice matching: a speaker-embedding stand-in for the paper's 1-of-4 listening tests.

For each synthesized utterance, the target speaker's real voice and the real voices of k other speakers are
candidates; the utterance scores when its nearest candidate (cosine of Resemblyzer embeddings) is the target.
With k=3 this is the paper's 1:4 comparison set, and chance is 1/(k+1) = 25%.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .base import Column, Metric, Record, Results, SplitContext, embeddings_of, fmt, fmt_ci, mean_or_none
from .intervals import proportion_interval
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


def chance_level(results: Results) -> float | None:
    """The ABX chance of the report's rows (the same for all of them)."""
    return next((s["overall"]["abx_chance"] for s in results["systems"].values() if s["overall"]["abx_chance"]), None)


class AbxMatching(Metric):
    """Top-1 ABX accuracy of each split's utterances against its speakers' real voices, with its chance level."""

    name = "abx"

    def split_items(self, records: Sequence[Record], context: SplitContext) -> dict[str, list]:
        if len(context.references.speakers) < 2:
            return {"abx": [], "chance": []}
        speakers, ids = [r["speaker"] for r in records], [r["id"] for r in records]
        result = abx_accuracy(
            embeddings_of(records), speakers, ids, context.references, k=context.abx_k, seed=context.seed
        )
        return {"abx": [float(x) for x in result.correct], "chance": [result.chance] * len(records)}

    def summarize(self, records: Sequence[Record], items: dict[str, list]) -> dict[str, object]:
        return {
            "abx_accuracy": mean_or_none(items["abx"]),
            "abx_accuracy_ci95": proportion_interval(items["abx"]),
            "abx_chance": mean_or_none(items["chance"]),
        }

    def columns(self, results: Results) -> list[Column]:
        header = f"ABX top-1 (chance {fmt(chance_level(results), '.0%')})"
        return [
            Column(header, lambda row: fmt_ci(row["overall"]["abx_accuracy"], row["overall"].get("abx_accuracy_ci95")))
        ]

    def split_columns(self, results: Results) -> list[Column]:
        return [Column("ABX", lambda summary: fmt(summary["abx_accuracy"], ".1%"))]

    def note(self, results: Results) -> str:
        return (
            "ABX: the target speaker's real voice is the nearest (cosine) among it and "
            f"k={results['config']['abx_k']} other speakers' real voices."
        )

    def plots(self, results: Results, records: dict[str, dict[str, list[Record]]], folder: Path) -> list[Path]:
        systems = results["systems"]
        names = list(systems)
        values = [systems[s]["overall"]["abx_accuracy"] for s in names]
        if all(v is None for v in values):
            return []
        from .plots import bar_chart

        path = folder / "abx_by_system.png"
        return [bar_chart(names, values, path, "Objective ABX (top-1)", "accuracy", reference=chance_level(results))]
