"""Deterministic train / validation / test_seen / test_unseen assignment of utterances.

Seen-speaker tests need the speaker's voice in training, unseen-speaker tests need it nowhere in training, and
both need to be reproducible from a seed, so the rules are:

1. ``test_unseen`` speakers: the ones the corpus itself holds out (LRS3 ``test/``) when there are also others;
   otherwise a seeded ``unseen_speaker_fraction`` of the speakers (at least one when there are two or more, never
   all of them).
2. Every other speaker keeps one seeded utterance pinned to ``train``; the rest form a shuffled hold-out pool.
3. ``test_seen`` takes ``test_seen_fraction`` of the seen utterances from the pool, then ``validation`` takes
   ``validation_fraction`` (the paper's 9:1) of what is left; each gets at least one utterance when possible.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

__all__ = ["assign_splits"]


def assign_splits(
    items: Sequence[tuple[str, str, bool]],
    seed: int = 0,
    validation_fraction: float = 0.1,
    test_seen_fraction: float = 0.05,
    unseen_speaker_fraction: float = 0.1,
) -> dict[str, str]:
    """Map each ``(id, speaker, corpus_says_unseen)`` to its split name; the same inputs and seed, the same map."""
    rng = random.Random(f"ftv-splits:{seed}")
    by_speaker: dict[str, list[str]] = defaultdict(list)
    marked: set[str] = set()
    for item_id, speaker, unseen in sorted(items):
        by_speaker[speaker].append(item_id)
        if unseen:
            marked.add(speaker)
    speakers = sorted(by_speaker)
    if marked and len(marked) < len(speakers):
        unseen_speakers = marked
    else:
        shuffled = speakers[:]
        rng.shuffle(shuffled)
        count = round(unseen_speaker_fraction * len(shuffled))
        count = min(max(count, 1 if len(shuffled) >= 2 else 0), max(len(shuffled) - 1, 0))
        unseen_speakers = set(shuffled[:count])

    splits: dict[str, str] = {}
    pool: list[str] = []
    seen_total = 0
    for speaker in speakers:
        ids = by_speaker[speaker][:]
        if speaker in unseen_speakers:
            splits.update(dict.fromkeys(ids, "test_unseen"))
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
