"""The report's rows ("systems"): where each row's audio comes from.

- ``ground_truth``: the real recordings, scored the same way (the ceiling);
- ``model``: the model given each speaker's own face;
- ``shuffled_faces``: the model given another speaker's face (what SECS looks like when the face is ignored or
  wrong: the model must beat it for its face conditioning to mean anything);
- ``shuffled_within_gender``: the model given another speaker's face of the same gender label: the honest
  baseline once gender is right (beating it means the voice follows the person, not only the gender);
- ``average_face``: the model given one fixed face embedding, the mean over all evaluated faces (a single
  "average voice" for everyone);
- ``baseline``: another model (``--baseline-model``) given the real faces, e.g. the warm start before training
  (the imported Piper voice), to show what training changed;
- ``copy_synthesis``: the real recording through the model's posterior encoder and decoder (no text, no prior):
  the ceiling of the model's synthesis. When it is far below ground truth, the decoder cannot render the voices
  and no amount of training on the prior side will fix that (skipped for inference-only exports).

Each is a `System`: its name and title, which checkpoint speaks it, the faces it speaks from and how it makes a
batch's audio. `SYSTEMS` lists them in the report's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
from PIL import Image

from ftv_train.common.audio import SAMPLE_RATE
from ftv_train.evaluation.cache import ResultCache, digest
from ftv_train.evaluation.data import SplitData, Utterance, shuffled_face_donors
from ftv_train.evaluation.synthesizer import Synthesizer


class RunSettings(Protocol):
    """The settings a system reads (EvalConfig's fields of the same names)."""

    out: Path
    seed: int
    batch_size: int


class SystemRun(Protocol):
    """What a system needs from the run that evaluates it (the Evaluator)."""

    config: RunSettings
    cache: ResultCache
    splits: dict[str, SplitData]
    selected: dict[str, list[Utterance]]

    def synthesizer_for(self, system: System) -> Synthesizer: ...


class System:
    """One row of the report; the base is a row spoken by --model from each speaker's own face."""

    name: ClassVar[str]
    title: ClassVar[str]
    checkpoint: ClassVar[str | None] = "model"  # which model speaks it: "model", "baseline", None (recordings)
    speaks_from_photo: ClassVar[bool] = False  # its records keep the gender the model's face head read from the photo

    @property
    def synthesized(self) -> bool:
        return self.checkpoint is not None

    def skip_reason(self, run: SystemRun, split: SplitData) -> str | None:
        """Why this row cannot be made on the split (logged, and the row is left out), None when it can."""
        return None

    def faces(self, run: SystemRun, split: SplitData, batch: Sequence[Utterance]) -> list[Image.Image] | None:
        """The photos the batch is spoken from (None: no photo)."""
        return None

    def audio(
        self, run: SystemRun, split: SplitData, batch: Sequence[Utterance], faces: Sequence[Image.Image] | None
    ) -> list[np.ndarray]:
        """The batch's audio at the synthesizer's sampling rate (16 kHz for the recordings)."""
        raise NotImplementedError


class GroundTruth(System):
    name = "ground_truth"
    title = "Ground truth (ceiling)"
    checkpoint = None

    def audio(
        self, run: SystemRun, split: SplitData, batch: Sequence[Utterance], faces: Sequence[Image.Image] | None
    ) -> list[np.ndarray]:
        return list(split.audio([u.index for u in batch]))


class RealFaces(System):
    """The model given each speaker's own first face crop."""

    name = "model"
    title = "FTV model"
    speaks_from_photo = True

    def faces(self, run: SystemRun, split: SplitData, batch: Sequence[Utterance]) -> list[Image.Image] | None:
        return split.faces([u.index for u in batch])

    def audio(
        self, run: SystemRun, split: SplitData, batch: Sequence[Utterance], faces: Sequence[Image.Image] | None
    ) -> list[np.ndarray]:
        texts, phonemes = [u.text for u in batch], [u.phonemes for u in batch]
        return run.synthesizer_for(self).synthesize(texts, phonemes, faces=list(faces or []))


class Baseline(RealFaces):
    name = "baseline"
    title = "Baseline model, real faces"
    checkpoint = "baseline"


class ShuffledFaces(RealFaces):
    """The model given the face of another speaker (a seeded derangement over the split's speakers)."""

    name = "shuffled_faces"
    title = "Model, faces shuffled across speakers"
    within_gender: ClassVar[bool] = False

    def donors(self, run: SystemRun, split: SplitData) -> dict[str, Utterance]:
        return shuffled_face_donors(split.utterances, run.config.seed, self.within_gender)

    def skip_reason(self, run: SystemRun, split: SplitData) -> str | None:
        return None if self.donors(run, split) else f"too few speakers per group, no {self.name} row"

    def faces(self, run: SystemRun, split: SplitData, batch: Sequence[Utterance]) -> list[Image.Image] | None:
        donors = self.donors(run, split)
        return split.faces([donors.get(u.speaker, u).index for u in batch])


class ShuffledWithinGender(ShuffledFaces):
    name = "shuffled_within_gender"
    title = "Model, faces shuffled among speakers of the same gender"
    within_gender = True


class AverageFace(System):
    """The model given the mean face embedding over every selected utterance's face."""

    name = "average_face"
    title = "Model, one fixed average face"

    def __init__(self) -> None:
        self._embedding: np.ndarray | None = None

    def embedding(self, run: SystemRun) -> np.ndarray:
        """Computed once per run and cached on disk (stamped with the selection and the model)."""
        if self._embedding is not None:
            return self._embedding
        synthesizer = run.synthesizer_for(self)
        keys = sorted(f"{u.split}/{u.id}" for sel in run.selected.values() for u in sel)
        stamp = digest({"keys": keys, "model": synthesizer.signature})
        path = run.config.out / "cache" / "average_face.json"
        saved = run.cache.load(path)
        if saved and saved.get("stamp") == stamp:
            self._embedding = np.asarray(saved["embedding"], dtype=np.float32)
            return self._embedding
        total, count = None, 0
        batch_size = run.config.batch_size
        for split, sel in run.selected.items():
            for start in range(0, len(sel), batch_size):
                batch = sel[start : start + batch_size]
                emb = synthesizer.face_embeddings(run.splits[split].faces([u.index for u in batch]))
                total = emb.sum(0) if total is None else total + emb.sum(0)
                count += len(batch)
        self._embedding = (total / max(count, 1)).astype(np.float32)
        run.cache.save(path, {"stamp": stamp, "count": count, "embedding": self._embedding.tolist()})
        return self._embedding

    def audio(
        self, run: SystemRun, split: SplitData, batch: Sequence[Utterance], faces: Sequence[Image.Image] | None
    ) -> list[np.ndarray]:
        texts, phonemes = [u.text for u in batch], [u.phonemes for u in batch]
        embeddings = np.repeat(self.embedding(run)[None], len(batch), axis=0)
        return run.synthesizer_for(self).synthesize(texts, phonemes, face_embeddings=embeddings)


class CopySynthesis(System):
    """The recording through the model's posterior encoder and decoder, conditioned on the speaker's face."""

    name = "copy_synthesis"
    title = "Copy synthesis: recording -> posterior -> decoder (the model's ceiling)"

    def skip_reason(self, run: SystemRun, split: SplitData) -> str | None:
        if run.synthesizer_for(self).can_reconstruct():
            return None
        return "the model is an inference-only export (no posterior encoder): no copy-synthesis row"

    def audio(
        self, run: SystemRun, split: SplitData, batch: Sequence[Utterance], faces: Sequence[Image.Image] | None
    ) -> list[np.ndarray]:
        indices = [u.index for u in batch]
        return run.synthesizer_for(self).reconstruct(split.audio(indices), SAMPLE_RATE, split.faces(indices))


SYSTEM_TYPES: list[type[System]] = [
    GroundTruth,
    RealFaces,
    ShuffledFaces,
    ShuffledWithinGender,
    AverageFace,
    Baseline,
    CopySynthesis,
]
SYSTEMS: tuple[str, ...] = tuple(system.name for system in SYSTEM_TYPES)
SYSTEM_TITLES = {system.name: system.title for system in SYSTEM_TYPES}


def make_system(name: str) -> System:
    """A fresh system (some keep per-run state, such as the average face)."""
    for system in SYSTEM_TYPES:
        if system.name == name:
            return system()
    raise ValueError(f"Unknown system {name!r}; choose from {list(SYSTEMS)}")
