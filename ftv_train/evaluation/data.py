"""The test data: a prepared dataset's split read lazily, which utterances a run scores, and their references.

Audio stays encoded until an utterance is scored, and faces are decoded only for the batch being synthesized, so a
large split costs nothing up front.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ftv_train.common.audio import as_mono_float32, load_audio, resample


@dataclass(frozen=True)
class Utterance:
    """The text-side facts of one test item; audio and faces are fetched lazily from the dataset."""

    split: str
    index: int
    id: str
    speaker: str
    text: str
    phonemes: str
    gender: int
    race: int
    age: float | None = None


def speaker_ages(data: str | os.PathLike[str]) -> dict[str, float | None]:
    """Each speaker's age label from the corpus's ``report.json`` (the offline corpus writes ``offline.ages``);
    empty for datasets without one, whose rows then count in neither age group."""
    path = Path(data) / "report.json"
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text()).get("offline", {}).get("ages", {}))


class SplitData:
    """One split of the prepared dataset. Audio stays encoded (decoded here with soundfile, not by `datasets`),
    and rows are fetched only for the utterances a run touches, so large splits cost nothing up front."""

    def __init__(self, dataset: Any, split: str, ages: dict[str, float | None] | None = None) -> None:
        import datasets

        self.split = split
        if "audio" in dataset.column_names:
            dataset = dataset.cast_column("audio", datasets.Audio(decode=False))
        self.dataset = dataset
        cols = dataset.column_names
        n = len(dataset)
        meta = dataset.select_columns([c for c in ("id", "speaker", "text", "phonemes", "gender", "race") if c in cols])
        get = {c: meta[c] if c in cols else None for c in ("id", "speaker", "text", "phonemes", "gender", "race")}
        self.utterances = [
            Utterance(
                split=split,
                index=i,
                id=str(get["id"][i]) if get["id"] else f"{split}-{i:06d}",
                speaker=str(get["speaker"][i]),
                text=str(get["text"][i]),
                phonemes=str(get["phonemes"][i] or "") if get["phonemes"] else "",
                gender=int(get["gender"][i]) if get["gender"] and get["gender"][i] is not None else -1,
                race=int(get["race"][i]) if get["race"] and get["race"][i] is not None else -1,
                age=(ages or {}).get(str(get["speaker"][i])),
            )
            for i in range(n)
        ]
        self.gender_names = _label_names(dataset, "gender")
        self.race_names = _label_names(dataset, "race")

    def rows(self, indices: Sequence[int], columns: Sequence[str]) -> dict[str, list[Any]]:
        return self.dataset.select(list(indices)).select_columns(list(columns))[:]

    def audio(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Real recordings as mono float32 at 16 kHz."""
        return [_decode_audio(a) for a in self.rows(indices, ["audio"])["audio"]]

    def faces(self, indices: Sequence[int]) -> list[Image.Image]:
        """The first face crop of each utterance (the one a user would upload)."""
        out = []
        for faces in self.rows(indices, ["faces"])["faces"]:
            if not faces:
                raise ValueError(f"{self.split}: an utterance has no face crops")
            out.append(_as_pil(faces[0]))
        return out


def _label_names(dataset: Any, column: str) -> list[str]:
    """The names of a label column's ids: the dataset's ClassLabel names, else ftv_model's label sets."""
    feature = dataset.features.get(column)
    names = getattr(feature, "names", None)
    if names:
        return list(names)
    from ftv_model.attributes import GENDER_LABELS, RACE_LABELS

    return list(GENDER_LABELS if column == "gender" else RACE_LABELS)


def _decode_audio(value: Any) -> np.ndarray:
    if isinstance(value, dict) and value.get("bytes"):
        return load_audio(value["bytes"])
    if isinstance(value, dict) and value.get("path"):
        return load_audio(value["path"])
    if isinstance(value, dict) and value.get("array") is not None:
        return resample(as_mono_float32(value["array"]), int(value["sampling_rate"]))
    raise TypeError(f"Cannot decode audio from {type(value).__name__}")


def _as_pil(face: Any) -> Image.Image:
    if isinstance(face, dict):
        face = Image.open(io.BytesIO(face["bytes"])) if face.get("bytes") else Image.open(face["path"])
    return face.convert("RGB")


def select_utterances(utterances: Sequence[Utterance], max_utterances: int | None, seed: int = 0) -> list[Utterance]:
    """Round-robin over speakers, so a small --max-utterances still covers many voices, as ABX needs.

    The speakers are taken in a seeded random order, not sorted: ids sort by source and, for UTKFace, by age, so
    the first 100 sorted speakers of the offline corpus were 41% one-year-olds and no adult UTKFace women.
    """
    if max_utterances is None or max_utterances >= len(utterances):
        return list(utterances)
    by_speaker: dict[str, list[Utterance]] = {}
    for utt in utterances:
        by_speaker.setdefault(utt.speaker, []).append(utt)
    speakers = sorted(by_speaker)
    queues = [by_speaker[speakers[i]] for i in np.random.default_rng(seed).permutation(len(speakers))]
    chosen: list[Utterance] = []
    depth = 0
    while len(chosen) < max_utterances:
        for queue in queues:
            if depth < len(queue) and len(chosen) < max_utterances:
                chosen.append(queue[depth])
        depth += 1
    return sorted(chosen, key=lambda u: u.index)


def reference_utterances(split: SplitData, selected: Sequence[Utterance], per_speaker: int) -> list[Utterance]:
    """Real recordings that stand for each speaker's voice: every speaker of the split (so ABX has distractors),
    the selected utterances first, topped up to `per_speaker` from the rest of the split."""
    chosen: dict[str, list[Utterance]] = {}
    for utt in selected:
        chosen.setdefault(utt.speaker, []).append(utt)
    for utt in split.utterances:
        group = chosen.setdefault(utt.speaker, [])
        if len(group) < per_speaker and utt not in group:
            group.append(utt)
    return [u for s in sorted(chosen) for u in chosen[s]]


def shuffled_face_donors(
    utterances: Sequence[Utterance], seed: int, within_gender: bool = False
) -> dict[str, Utterance]:
    """Speaker -> an utterance of a *different* speaker whose face it gets (a seeded derangement over speakers;
    with `within_gender`, within each gender label's speakers, so only the person changes, not the gender).
    Speakers alone in their group get no donor."""
    first: dict[str, Utterance] = {}
    for utt in utterances:
        first.setdefault(utt.speaker, utt)
    groups: dict[int, list[str]] = {}
    for speaker in sorted(first):
        groups.setdefault(first[speaker].gender if within_gender else 0, []).append(speaker)
    donors: dict[str, Utterance] = {}
    for speakers in groups.values():
        if len(speakers) < 2:
            continue
        order = [speakers[i] for i in np.random.default_rng(seed).permutation(len(speakers))]
        donors.update({order[i]: first[order[(i + 1) % len(order)]] for i in range(len(order))})
    return donors
