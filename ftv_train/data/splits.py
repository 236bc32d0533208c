"""Deterministic train / validation / test_seen / validation_unseen / test_unseen assignment of utterances.

Seen-speaker tests need the speaker's voice in training; unseen-speaker splits need it nowhere in training. Model
selection (early stopping, recipe comparisons, calibration, face pretraining's monitor) must be made on identities
that neither training nor the final score sees, so the held-out speakers come in two disjoint splits:
``validation_unseen`` for every choice, ``test_unseen`` scored once per released checkpoint. The rules:

1. Held-out speakers: the ones the corpus itself holds out (LRS3 ``test/``) when there are also others; otherwise a
   seeded ``unseen_speaker_fraction`` of the speakers (at least one when there are two or more, never all of them).
2. ``validation_unseen``: when the corpus marked its held-out speakers, they all stay ``test_unseen`` (the paper's
   test set, whole) and ``validation_unseen`` takes as many speakers as ``validation_unseen_share`` of that count
   from the others; otherwise ``validation_unseen_share`` of the drawn held-out speakers (at least one when two or
   more are drawn). This draw uses its own seeded generator, so adding the split moved no speaker into or out of
   training: a model trained on a build without ``validation_unseen`` has seen none of its speakers.
3. Every other speaker keeps one seeded utterance pinned to ``train``; the rest form a shuffled hold-out pool.
4. ``test_seen`` takes ``test_seen_fraction`` of the seen utterances from the pool, then ``validation`` takes
   ``validation_fraction`` (the paper's 9:1) of what is left; each gets at least one utterance when possible.
   ``validation`` holds training identities: it monitors losses, never a face reading's accuracy.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

__all__ = ["HELD_OUT_SPLITS", "TRAINING_SPLITS", "assign_splits"]

TRAINING_SPLITS = ("train", "validation", "test_seen")  # the speakers (identities) training sees
HELD_OUT_SPLITS = ("validation_unseen", "test_unseen")  # speakers no training stage sees


def _held_out_count(total: int, fraction: float) -> int:
    count = round(fraction * total)
    return min(max(count, 1 if total >= 2 else 0), max(total - 1, 0))


def assign_splits(
    items: Sequence[tuple[str, str, bool]],
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_seen_fraction: float = 0.05,
    unseen_speaker_fraction: float = 0.1,
    validation_unseen_share: float = 0.5,
) -> dict[str, str]:
    """Map each ``(id, speaker, corpus_says_unseen)`` to its split name; the same inputs and seed, the same map."""
    if not 0.0 <= validation_unseen_share < 1.0:
        raise ValueError(f"validation_unseen_share must be in [0, 1), got {validation_unseen_share}")
    rng = random.Random(f"ftv-splits:{seed}")
    held_out_rng = random.Random(f"ftv-splits-validation-unseen:{seed}")
    by_speaker: dict[str, list[str]] = defaultdict(list)
    marked: set[str] = set()
    for item_id, speaker, unseen in sorted(items):
        by_speaker[speaker].append(item_id)
        if unseen:
            marked.add(speaker)
    speakers = sorted(by_speaker)
    if marked and len(marked) < len(speakers):
        test_speakers = set(marked)
        others = [s for s in speakers if s not in marked]
        held_out_rng.shuffle(others)
        count = min(round(validation_unseen_share * len(marked)), len(others) - 1)
        validation_speakers = set(others[: max(count, 0)])
    else:
        shuffled = speakers[:]
        rng.shuffle(shuffled)
        drawn = sorted(shuffled[: _held_out_count(len(shuffled), unseen_speaker_fraction)])
        held_out_rng.shuffle(drawn)
        count = round(validation_unseen_share * len(drawn))
        if validation_unseen_share > 0 and len(drawn) >= 2:
            count = min(max(count, 1), len(drawn) - 1)
        validation_speakers = set(drawn[:count])
        test_speakers = set(drawn[count:])

    splits: dict[str, str] = {}
    pool: list[str] = []
    seen_total = 0
    for speaker in speakers:
        ids = by_speaker[speaker][:]
        if speaker in test_speakers or speaker in validation_speakers:
            splits.update(dict.fromkeys(ids, "test_unseen" if speaker in test_speakers else "validation_unseen"))
            continue
        rng.shuffle(ids)
        splits[ids[0]] = "train"
        pool.extend(ids[1:])
        seen_total += len(ids)
    rng.shuffle(pool)

    n_test = round(test_seen_fraction * seen_total)
    if test_seen_fraction > 0 and seen_total >= 3:
        n_test = max(n_test, 1)
    n_test = min(n_test, len(pool))
    n_val = round(validation_fraction * (seen_total - n_test))
    if validation_fraction > 0 and seen_total - n_test >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, len(pool) - n_test)
    for index, item_id in enumerate(pool):
        splits[item_id] = "test_seen" if index < n_test else "validation" if index < n_test + n_val else "train"
    return splits
