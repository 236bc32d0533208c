"""Evaluation runner: synthesize test splits with a trained FTV model and score them like the paper's tables.

For every selected utterance it synthesizes the transcript from the speaker's face and scores the audio with
the objective metrics of section 4.1 (SECS, CER, naturalness) plus objective stand-ins for the listening tests
(ABX / face-to-voice matching, voice-gender agreement). Three reference rows frame the model's numbers:

- ``ground_truth``: the real recordings, scored the same way (the ceiling);
- ``shuffled_faces``: the model given another speaker's face (what SECS looks like when the face is ignored
  or wrong: the model must beat it for its face conditioning to mean anything);
- ``shuffled_within_gender``: the model given another speaker's face of the same gender label: the honest
  baseline once gender is right (beating it means the voice follows the person, not only the gender);
- ``average_face``: the model given one fixed face embedding, the mean over all evaluated faces (a single
  "average voice" for everyone);
- ``baseline``: another model (``--baseline-model``) given the real faces, e.g. the warm start before training
  (the imported Piper voice), to show what training changed;
- ``copy_synthesis``: the real recording through the model's posterior encoder and decoder (no text, no prior):
  the ceiling of the model's synthesis. When it is far below ground truth, the decoder cannot render the voices
  and no amount of training on the prior side will fix that (skipped for inference-only exports).

Work is cached per utterance under ``OUT/cache`` (scores) and ``OUT/audio`` (wavs), so an interrupted run on
a large split resumes where it stopped, and changing only the recogniser or the naturalness scorer re-scores the
saved audio without synthesizing again. Outputs: ``report.md``, ``metrics.json``, ``audio/``, ``plots/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ftv_train.common.audio import SAMPLE_RATE, load_audio, save_wav
from ftv_train.evaluation.metrics import abx as abx_metric
from ftv_train.evaluation.metrics import plots
from ftv_train.evaluation.metrics.calibration import expected_calibration_error
from ftv_train.evaluation.metrics.cer import cer_from_counts, character_errors, load_recognizer
from ftv_train.evaluation.metrics.diversity import voice_similarities
from ftv_train.evaluation.metrics.gender import VoiceGenderClassifier, held_out_speaker_accuracy
from ftv_train.evaluation.metrics.intervals import proportion_interval, ratio_interval
from ftv_train.evaluation.metrics.naturalness import load_naturalness
from ftv_train.evaluation.metrics.speaker import SpeakerEncoder, SpeakerReferences, secs_to_references
from ftv_train.evaluation.metrics.subgroups import subgroup_table

logger = logging.getLogger(__name__)

SYSTEMS: tuple[str, ...] = (
    "ground_truth",
    "model",
    "shuffled_faces",
    "shuffled_within_gender",
    "average_face",
    "baseline",
    "copy_synthesis",
)
SHUFFLED_SYSTEMS = frozenset({"shuffled_faces", "shuffled_within_gender"})
MODEL_SYSTEMS = frozenset({"model", *SHUFFLED_SYSTEMS, "average_face", "copy_synthesis"})  # made by --model
SYNTHESIZED_SYSTEMS = MODEL_SYSTEMS | {"baseline"}
# Systems that speak from a photo: their records keep the gender the model's face head read from it.
FACE_SYSTEMS = frozenset({"model", *SHUFFLED_SYSTEMS, "baseline"})
SYSTEM_TITLES = {
    "ground_truth": "Ground truth (ceiling)",
    "model": "FTV model",
    "shuffled_faces": "Model, faces shuffled across speakers",
    "shuffled_within_gender": "Model, faces shuffled among speakers of the same gender",
    "average_face": "Model, one fixed average face",
    "baseline": "Baseline model, real faces",
    "copy_synthesis": "Copy synthesis: recording -> posterior -> decoder (the model's ceiling)",
}
SPLIT_TITLES = {"test_seen": "Seen SECS", "test_unseen": "Unseen SECS"}


# ---------------------------------------------------------------------------------------------------------------
# Configuration


@dataclass
class EvalConfig:
    """Everything a run depends on; saved into metrics.json so a report says how it was made."""

    data: Path
    out: Path
    model: Path | None = None
    baseline_model: Path | None = None  # scored as the "baseline" row (e.g. the warm start before training)
    splits: list[str] = field(default_factory=lambda: ["test_unseen"])
    max_utterances: int | None = None  # per split, picked round-robin over speakers
    recognizer: str = "whisper"
    recognizer_path: str | None = None
    naturalness: str = "auto"
    utmos_path: str | None = None
    batch_size: int = 8
    device: str = "auto"
    seed: int = 0
    noise_scale: float | None = None  # None: the model config's own (each model's, for the baseline row)
    noise_scale_duration: float | None = None
    speaking_rate: float | None = None  # None: the model config's own
    abx_k: int = 3
    refs_per_speaker: int = 5
    gender_classifier: Path | None = None
    gender_fit_split: str = "train"
    gender_fit_max: int = 400
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    tsne_max_speakers: int = 20
    plots: bool = True

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        self.model = Path(self.model) if self.model else None
        self.baseline_model = Path(self.baseline_model) if self.baseline_model else None
        self.gender_classifier = Path(self.gender_classifier) if self.gender_classifier else None
        unknown = [s for s in self.systems if s not in SYSTEMS]
        if unknown:
            raise ValueError(f"Unknown systems {unknown}; choose from {list(SYSTEMS)}")
        if self.model is None:
            self.systems = [s for s in self.systems if s not in MODEL_SYSTEMS]
        if self.baseline_model is None:
            self.systems = [s for s in self.systems if s != "baseline"]
        if not self.systems:
            raise ValueError("Nothing to evaluate: give --model or --baseline-model, or keep the ground_truth row.")
        if self.gender_classifier is None and self.gender_fit_split in self.splits:
            raise ValueError(
                f"The voice-gender classifier would be fitted on {self.gender_fit_split!r}, which is also scored: "
                "its agreement there would be measured on the speech it learnt from. Fit it on a training split "
                "(--gender-fit-split train) or score other splits."
            )


def resolve_device(device: str) -> str:
    """`auto` -> cuda when present, else cpu."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# ---------------------------------------------------------------------------------------------------------------
# Data


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


ADULT_AGE = 18.0


def speaker_ages(data: str | os.PathLike[str]) -> dict[str, float | None]:
    """Each speaker's age label from the corpus's ``report.json`` (the offline corpus writes ``offline.ages``);
    empty for datasets without one, whose rows then count in neither age group."""
    path = Path(data) / "report.json"
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text()).get("offline", {}).get("ages", {}))


def age_group(age: float | None) -> str | None:
    """The age group of a label: adults (18 and over), children (under 18), None when the age is unknown."""
    if age is None:
        return None
    return "adults" if age >= ADULT_AGE else "children"


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
        from ftv_train.common.audio import as_mono_float32, resample

        return resample(as_mono_float32(value["array"]), int(value["sampling_rate"]))
    raise TypeError(f"Cannot decode audio from {type(value).__name__}")


def _as_pil(face: Any) -> Image.Image:
    if isinstance(face, dict):
        import io

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


# ---------------------------------------------------------------------------------------------------------------
# Model adapter


class Synthesizer(Protocol):
    """What the runner needs from a model; FTVSynthesizer adapts FTVModel, tests may pass stubs."""

    sampling_rate: int
    signature: str

    def face_embeddings(self, faces: Sequence[Image.Image]) -> np.ndarray: ...

    def synthesize(
        self,
        texts: Sequence[str],
        phonemes: Sequence[str] | None,
        faces: Sequence[Image.Image] | None = None,
        face_embeddings: np.ndarray | None = None,
    ) -> list[np.ndarray]: ...

    def can_reconstruct(self) -> bool: ...

    def reconstruct(
        self, waves: Sequence[np.ndarray], sample_rate: int, faces: Sequence[Image.Image]
    ) -> list[np.ndarray]: ...


class FTVSynthesizer:
    """The only code that knows the FTVModel / FTVProcessor API (kept small so an API change is a local fix)."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "cpu",
        noise_scale: float | None = None,
        noise_scale_duration: float | None = None,
        seed: int = 0,
        speaking_rate: float | None = None,
    ) -> None:
        """None: the model config's own setting, as synthesis uses it."""
        from ftv_model import FTVModel, FTVProcessor

        self.device = torch.device(device)
        self.model = FTVModel.from_pretrained(str(model_dir)).eval().to(self.device)
        self.processor = FTVProcessor.from_pretrained(str(model_dir))
        self.sampling_rate = int(self.model.config.sampling_rate)
        config = self.model.config
        duration_noise = config.noise_scale_duration if noise_scale_duration is None else noise_scale_duration
        self.kwargs: dict[str, Any] = {
            "noise_scale": config.noise_scale if noise_scale is None else noise_scale,
            "noise_scale_duration": duration_noise,
            "seed": seed,
        }
        if speaking_rate is not None:
            self.kwargs["speaking_rate"] = speaking_rate
        weights = sorted(Path(model_dir).glob("*.safetensors")) or sorted(Path(model_dir).glob("*.bin"))
        stamp = [f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in weights]
        # the config too: a setting such as face_flip_average changes the voices without touching the weights
        stamp.append(hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True, default=str).encode()).hexdigest())
        self.signature = _digest({"model": str(Path(model_dir).resolve()), "weights": stamp, **self.kwargs})

    def _text_inputs(self, texts: Sequence[str], phonemes: Sequence[str] | None) -> dict[str, Any]:
        if phonemes is not None and all(phonemes):
            return {"phonemes": list(phonemes)}
        return {"text": list(texts)}

    def _face_tensors(self, faces: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """The processor's face inputs for dataset crops: pixel values, and face descriptors where the model reads
        them."""
        encoded = self.processor(images=list(faces), return_tensors="pt", do_crop_face=False)
        return {key: value.to(self.device) for key, value in encoded.items()}

    def _embed(self, faces: Sequence[Image.Image]) -> torch.Tensor:
        inputs = self._face_tensors(faces)
        return self.model.get_face_embeddings(inputs["pixel_values"], face_descriptors=inputs.get("face_descriptors"))

    @torch.inference_mode()
    def face_embeddings(self, faces: Sequence[Image.Image]) -> np.ndarray:
        return self._embed(faces).float().cpu().numpy()

    @torch.inference_mode()
    def face_genders(self, faces: Sequence[Image.Image]) -> list[tuple[str, float]] | None:
        """The gender the model's face attribute head reads from each face, with its calibrated probability (None
        without a head): the voice can only follow the face as far as the face encoder gets the gender right."""
        names = self.model.config.attribute_labels.get("gender")
        if self.model.face_attribute_head is None or not names:
            return None
        logits = self.model.calibrated_face_attributes(self._embed(faces)).get("gender")
        if logits is None:
            return None
        confidence, index = logits.float().softmax(-1).max(-1)
        return [(names[int(i)], float(c)) for i, c in zip(index.tolist(), confidence.tolist())]

    @torch.inference_mode()
    def synthesize(
        self,
        texts: Sequence[str],
        phonemes: Sequence[str] | None,
        faces: Sequence[Image.Image] | None = None,
        face_embeddings: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        inputs = self.processor(
            **self._text_inputs(texts, phonemes), images=faces, return_tensors="pt", do_crop_face=False
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        if face_embeddings is not None:
            inputs.pop("pixel_values", None)
            inputs["face_embeddings"] = torch.as_tensor(face_embeddings, dtype=torch.float32, device=self.device)
        out = self.model(**inputs, **self.kwargs)
        waves = out.waveform.float().cpu().numpy()
        lengths = (
            out.sequence_lengths.cpu().tolist() if out.sequence_lengths is not None else [waves.shape[1]] * len(waves)
        )
        return [w[: int(n)] for w, n in zip(waves, lengths)]

    def can_reconstruct(self) -> bool:
        return self.model.posterior_encoder is not None

    @torch.inference_mode()
    def reconstruct(
        self, waves: Sequence[np.ndarray], sample_rate: int, faces: Sequence[Image.Image]
    ) -> list[np.ndarray]:
        """Copy synthesis of recordings at `sample_rate`, returned at the model's rate."""
        from ftv_train.common.audio import resample

        waves = [resample(np.asarray(w, dtype=np.float32), sample_rate, self.sampling_rate) for w in waves]
        lengths = torch.tensor([len(w) for w in waves], device=self.device)
        batch = torch.zeros(len(waves), int(lengths.max()), device=self.device)
        for i, w in enumerate(waves):
            batch[i, : len(w)] = torch.from_numpy(w)
        out = self.model.reconstruct(batch, lengths, **self._face_tensors(faces))
        audio = out.waveform.float().cpu().numpy()
        return [a[: int(n)] for a, n in zip(audio, out.sequence_lengths.cpu().tolist())]


# ---------------------------------------------------------------------------------------------------------------
# Metrics for one batch


class MetricSuite:
    """The metric models, loaded once and shared by every system and split (and by both runs in the tests)."""

    def __init__(
        self,
        device: str = "cpu",
        recognizer: str = "whisper",
        recognizer_path: str | None = None,
        naturalness: str = "auto",
        utmos_path: str | None = None,
    ) -> None:
        device = resolve_device(device)
        self.encoder = SpeakerEncoder(device=device)
        self.recognizer = load_recognizer(recognizer, device=device, model_path=recognizer_path)
        self.naturalness = load_naturalness(naturalness, device=device, utmos_path=utmos_path)

    @classmethod
    def from_config(cls, config: EvalConfig) -> MetricSuite:
        return cls(config.device, config.recognizer, config.recognizer_path, config.naturalness, config.utmos_path)

    @property
    def backends(self) -> dict[str, str]:
        return {"speaker": self.encoder.name, "recognizer": self.recognizer.name, "naturalness": self.naturalness.name}

    def score(self, wavs: Sequence[np.ndarray], utts: Sequence[Utterance], system: str) -> list[dict[str, Any]]:
        """Per-utterance record: embedding, transcript and its character errors, naturalness."""
        embeddings = self.encoder.embed(wavs)
        hypotheses = self.recognizer.transcribe(wavs)
        quality = self.naturalness.score(wavs)
        records = []
        for utt, wav, emb, hyp, nat in zip(utts, wavs, embeddings, hypotheses, quality):
            errors, ref_chars = character_errors(utt.text, hyp)
            records.append(
                {
                    "id": utt.id,
                    "split": utt.split,
                    "speaker": utt.speaker,
                    "system": system,
                    "text": utt.text,
                    "hypothesis": hyp,
                    "cer_errors": errors,
                    "cer_reference_chars": ref_chars,
                    "naturalness": float(nat),
                    "duration_s": round(len(wav) / SAMPLE_RATE, 4),
                    "gender": utt.gender,
                    "race": utt.race,
                    "age": utt.age,
                    "embedding": [round(float(x), 6) for x in emb],
                    **{f"{k}_backend": v for k, v in self.backends.items()},
                }
            )
        return records


# ---------------------------------------------------------------------------------------------------------------
# Cache


def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def safe_name(utterance_id: str) -> str:
    """File-system-safe and collision-free name for an utterance id such as ``trainval/0Fi83BHQsMA/00002``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", utterance_id).strip("._")[:120] or "utt"
    return f"{stem}-{zlib.crc32(utterance_id.encode()):08x}"


class ResultCache:
    """out/cache/<system>/<split>/<id>.json and out/audio/<system>/<split>/<id>.wav, written atomically."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)

    def record_path(self, system: str, utt: Utterance) -> Path:
        return self.out / "cache" / system / utt.split / f"{safe_name(utt.id)}.json"

    def wav_path(self, system: str, utt: Utterance) -> Path:
        return self.out / "audio" / system / utt.split / f"{safe_name(utt.id)}.wav"

    def load(self, path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def save(self, path: Path, record: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)


# ---------------------------------------------------------------------------------------------------------------
# The runner


class Evaluator:
    """Runs one evaluation; each stage skips work whose results are already cached."""

    def __init__(
        self, config: EvalConfig, synthesizer: Synthesizer | None = None, metrics: MetricSuite | None = None
    ) -> None:
        import datasets

        self.config = config
        self.device = resolve_device(config.device)
        self.cache = ResultCache(config.out)
        self.dataset = datasets.load_from_disk(str(config.data))
        missing = [s for s in config.splits if s not in self.dataset]
        if missing:
            raise KeyError(f"{config.data} has no split(s) {missing}; it has {list(self.dataset)}")
        ages = speaker_ages(config.data)
        self.splits = {s: SplitData(self.dataset[s], s, ages) for s in config.splits}
        self.selected = {
            s: select_utterances(d.utterances, config.max_utterances, config.seed) for s, d in self.splits.items()
        }
        self.metrics = metrics or MetricSuite.from_config(config)
        self._synthesizer = synthesizer
        self._baseline_synthesizer: Synthesizer | None = None
        self._average_face: np.ndarray | None = None
        self.stats = {"synthesized": 0, "scored": 0, "reused_audio": 0}

    # -- lazily built pieces

    @property
    def synthesizer(self) -> Synthesizer:
        if self._synthesizer is None:
            if self.config.model is None:
                raise ValueError("The model rows need --model")
            c = self.config
            self._synthesizer = FTVSynthesizer(
                c.model, self.device, c.noise_scale, c.noise_scale_duration, c.seed, c.speaking_rate
            )
        return self._synthesizer

    def synthesizer_for(self, system: str) -> Synthesizer:
        """The model that synthesizes a row: --model for the model rows, --baseline-model for "baseline"."""
        if system != "baseline":
            return self.synthesizer
        if self._baseline_synthesizer is None:
            c = self.config
            if c.baseline_model is None:
                raise ValueError("The baseline row needs --baseline-model")
            self._baseline_synthesizer = FTVSynthesizer(
                c.baseline_model, self.device, c.noise_scale, c.noise_scale_duration, c.seed, c.speaking_rate
            )
        return self._baseline_synthesizer

    def average_face(self) -> np.ndarray:
        """Mean face embedding over every selected utterance's face, computed once and cached on disk."""
        if self._average_face is not None:
            return self._average_face
        keys = sorted(f"{u.split}/{u.id}" for sel in self.selected.values() for u in sel)
        stamp = _digest({"keys": keys, "model": self.synthesizer.signature})
        path = self.config.out / "cache" / "average_face.json"
        saved = self.cache.load(path)
        if saved and saved.get("stamp") == stamp:
            self._average_face = np.asarray(saved["embedding"], dtype=np.float32)
            return self._average_face
        total, count = None, 0
        for split, sel in self.selected.items():
            for start in range(0, len(sel), self.config.batch_size):
                batch = sel[start : start + self.config.batch_size]
                emb = self.synthesizer.face_embeddings(self.splits[split].faces([u.index for u in batch]))
                total = emb.sum(0) if total is None else total + emb.sum(0)
                count += len(batch)
        self._average_face = (total / max(count, 1)).astype(np.float32)
        self.cache.save(path, {"stamp": stamp, "count": count, "embedding": self._average_face.tolist()})
        return self._average_face

    # -- stage 1: real references

    def reference_embeddings(self, split: str) -> tuple[list[Utterance], np.ndarray]:
        data = self.splits[split]
        refs = reference_utterances(data, self.selected[split], self.config.refs_per_speaker)
        paths = [self.config.out / "cache" / "reference" / split / f"{safe_name(u.id)}.json" for u in refs]
        embs: list[np.ndarray | None] = []
        for p in paths:
            rec = self.cache.load(p)
            embs.append(np.asarray(rec["embedding"], dtype=np.float32) if rec else None)
        todo = [i for i, e in enumerate(embs) if e is None]
        bs = max(self.config.batch_size, 16)
        for start in tqdm(range(0, len(todo), bs), desc=f"{split}: real references", unit="batch", disable=not todo):
            chunk = todo[start : start + bs]
            new = self.metrics.encoder.embed(data.audio([refs[i].index for i in chunk]))
            for i, emb in zip(chunk, new):
                embs[i] = emb
                self.cache.save(paths[i], {"id": refs[i].id, "speaker": refs[i].speaker, "embedding": emb.tolist()})
        return refs, np.stack(embs) if embs else np.zeros((0, 256), np.float32)

    # -- stage 2: synthesis + per-utterance scores

    def _is_done(self, system: str, utt: Utterance) -> bool:
        rec = self.cache.load(self.cache.record_path(system, utt))
        if rec is None:
            return False
        if any(rec.get(f"{k}_backend") != v for k, v in self.metrics.backends.items()):
            return False
        if system in FACE_SYSTEMS and "face_gender" not in rec:
            return False  # scored before the face head's reading was recorded
        return system not in SYNTHESIZED_SYSTEMS or rec.get("synthesis") == self.synthesizer_for(system).signature

    def _audio_is_current(self, system: str, utt: Utterance) -> bool:
        """A saved wav is re-scored without synthesis when only the metric backends changed since it was scored
        (its record names the same model and settings); anything else is synthesized again."""
        if not self.cache.wav_path(system, utt).is_file():
            return False
        if system not in SYNTHESIZED_SYSTEMS:
            return True
        rec = self.cache.load(self.cache.record_path(system, utt))
        return rec is not None and rec.get("synthesis") == self.synthesizer_for(system).signature

    def _faces_for(self, system: str, split: SplitData, batch: Sequence[Utterance]) -> list[Image.Image] | None:
        """The faces a system speaks from: each speaker's own, or another speaker's for shuffled faces."""
        if system in ("model", "baseline"):
            return split.faces([u.index for u in batch])
        if system in SHUFFLED_SYSTEMS:
            donors = shuffled_face_donors(split.utterances, self.config.seed, system == "shuffled_within_gender")
            return split.faces([donors.get(u.speaker, u).index for u in batch])
        return None

    def _face_genders(
        self, system: str, split: SplitData, faces: Sequence[Image.Image]
    ) -> list[tuple[int, float | None]] | None:
        """(dataset gender id, calibrated confidence) the model's face head reads from the faces the system used
        (None if it cannot; a synthesizer that reads only names gives no confidence)."""
        predict = getattr(self.synthesizer_for(system), "face_genders", None)
        readings = predict(faces) if predict is not None else None
        if readings is None:
            return None
        known = [n.lower() for n in split.gender_names]
        out = []
        for reading in readings:
            name, confidence = reading if isinstance(reading, tuple) else (reading, None)
            out.append((known.index(name.lower()) if name.lower() in known else -1, confidence))
        return out

    def _synthesize(
        self, system: str, split: SplitData, batch: Sequence[Utterance], faces: Sequence[Image.Image] | None
    ) -> list[np.ndarray]:
        texts = [u.text for u in batch]
        phonemes = [u.phonemes for u in batch]
        if system in FACE_SYSTEMS:
            return self.synthesizer_for(system).synthesize(texts, phonemes, faces=list(faces or []))
        if system == "average_face":
            emb = np.repeat(self.average_face()[None], len(batch), axis=0)
            return self.synthesizer.synthesize(texts, phonemes, face_embeddings=emb)
        if system == "copy_synthesis":
            indices = [u.index for u in batch]
            return self.synthesizer.reconstruct(split.audio(indices), SAMPLE_RATE, split.faces(indices))
        raise ValueError(system)

    def run_system(self, system: str, split: str) -> None:
        data = self.splits[split]
        if system in SHUFFLED_SYSTEMS and not shuffled_face_donors(
            data.utterances, self.config.seed, system == "shuffled_within_gender"
        ):
            logger.warning("%s: too few speakers per group, no %s row", split, system)
            return
        if system == "copy_synthesis" and not self.synthesizer.can_reconstruct():
            logger.warning(
                "%s: the model is an inference-only export (no posterior encoder): no copy-synthesis row", split
            )
            return
        pending = [u for u in self.selected[split] if not self._is_done(system, u)]
        if not pending:
            return
        pending.sort(key=lambda u: len(u.phonemes or u.text))  # similar lengths per batch: less padding
        bar = tqdm(total=len(pending), desc=f"{split}: {system}", unit="utt")
        for start in range(0, len(pending), self.config.batch_size):
            batch = pending[start : start + self.config.batch_size]
            wavs: list[np.ndarray | None] = [None] * len(batch)
            faces = self._faces_for(system, data, batch)  # decoded once: for synthesis and for the face reading
            if system == "ground_truth":
                wavs = list(data.audio([u.index for u in batch]))
            else:
                for i, utt in enumerate(batch):
                    if self._audio_is_current(system, utt):
                        wavs[i] = load_audio(self.cache.wav_path(system, utt))
                        self.stats["reused_audio"] += 1
                todo = [i for i, w in enumerate(wavs) if w is None]
                if todo:
                    todo_faces = None if faces is None else [faces[i] for i in todo]
                    new = self._synthesize(system, data, [batch[i] for i in todo], todo_faces)
                    sr = self.synthesizer_for(system).sampling_rate
                    for i, wav in zip(todo, new):
                        if sr != SAMPLE_RATE:
                            from ftv_train.common.audio import resample

                            wav = resample(np.asarray(wav, dtype=np.float32), sr, SAMPLE_RATE)
                        wavs[i] = np.asarray(wav, dtype=np.float32)
                    self.stats["synthesized"] += len(todo)
            for utt, wav in zip(batch, wavs):
                path = self.cache.wav_path(system, utt)
                if not path.is_file() or system != "ground_truth":
                    save_wav(path, wav)
            records = self.metrics.score(wavs, batch, system)
            face_genders = self._face_genders(system, data, faces) if faces is not None else None
            for i, (utt, rec) in enumerate(zip(batch, records)):
                if system in FACE_SYSTEMS:
                    rec["face_gender"] = None if face_genders is None else face_genders[i][0]
                    rec["face_gender_confidence"] = None if face_genders is None else face_genders[i][1]
                if system in SYNTHESIZED_SYSTEMS:
                    rec["synthesis"] = self.synthesizer_for(system).signature
                self.cache.save(self.cache.record_path(system, utt), rec)
            self.stats["scored"] += len(batch)
            bar.update(len(batch))
        bar.close()

    # -- stage 3: voice-gender classifier

    def gender_classifier(self) -> VoiceGenderClassifier | None:
        """Load the given classifier, or fit one on real labelled speech of the fit split (cached in OUT)."""
        c = self.config
        if c.gender_classifier is not None:
            return VoiceGenderClassifier.load(c.gender_classifier)
        path = c.out / "gender_classifier.json"
        stamp = _digest(
            {"data": str(c.data.resolve()), "split": c.gender_fit_split, "max": c.gender_fit_max, "seed": c.seed}
        )
        if path.is_file():
            clf = VoiceGenderClassifier.load(path)
            if clf.info.get("stamp") == stamp:
                return clf
        if c.gender_fit_split not in self.dataset:
            logger.warning("No %s split to fit the voice-gender classifier on", c.gender_fit_split)
            return None
        data = self.splits.get(c.gender_fit_split) or SplitData(self.dataset[c.gender_fit_split], c.gender_fit_split)
        labelled = [u for u in data.utterances if u.gender >= 0]
        if len({u.gender for u in labelled}) < 2:
            logger.warning("The %s split lacks speech of both genders: no gender agreement", c.gender_fit_split)
            return None
        fit = select_utterances(labelled, c.gender_fit_max, c.seed)
        embs = []
        for start in tqdm(range(0, len(fit), 32), desc="voice-gender classifier: embed", unit="batch"):
            embs.append(self.metrics.encoder.embed(data.audio([u.index for u in fit[start : start + 32]])))
        x = np.concatenate(embs)
        labels = [u.gender for u in fit]
        speakers = [u.speaker for u in fit]
        held_out = held_out_speaker_accuracy(x, labels, speakers, seed=c.seed)
        info = {
            "stamp": stamp,
            "fit_split": c.gender_fit_split,
            "num_speakers": len(set(speakers)),
            "held_out_speaker_accuracy": held_out,
        }
        clf = VoiceGenderClassifier.fit(x, labels, info=info)
        clf.save(path)
        return clf

    # -- stage 4: aggregate

    def run(self) -> dict[str, Any]:
        self.config.out.mkdir(parents=True, exist_ok=True)
        references: dict[str, SpeakerReferences] = {}
        for split in self.config.splits:
            refs, ref_embs = self.reference_embeddings(split)
            references[split] = SpeakerReferences.build(ref_embs, [u.speaker for u in refs], [u.id for u in refs])
            for system in self.config.systems:
                self.run_system(system, split)
        classifier = self.gender_classifier()
        results = self.aggregate(references, classifier)
        write_outputs(self.config, results, self.selected_records())
        return results

    def selected_records(self) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """system -> split -> records of the selected utterances (in selection order)."""
        out: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for system in self.config.systems:
            for split, sel in self.selected.items():
                recs = [self.cache.load(self.cache.record_path(system, u)) for u in sel]
                out.setdefault(system, {})[split] = [r for r in recs if r is not None]
        return out

    def aggregate(
        self, references: dict[str, SpeakerReferences], classifier: VoiceGenderClassifier | None
    ) -> dict[str, Any]:
        c = self.config
        records = self.selected_records()
        first = next(iter(self.splits.values()))
        systems: dict[str, Any] = {}
        for system, by_split in records.items():
            pooled: dict[str, list] = {}  # every per-utterance item of score_records, over the splits
            per_split = {}
            for split, recs in by_split.items():
                if not recs:
                    continue
                scores = score_records(recs, references[split], classifier, c.abx_k, c.seed)
                per_split[split] = scores["summary"]
                for key, values in scores["items"].items():
                    pooled.setdefault(key, []).extend(values)
            if not per_split:
                continue
            all_recs = [r for recs in by_split.values() for r in recs]
            overall = summarize(all_recs, pooled, self.metrics.recognizer.name)
            overall["subgroups"] = subgroup_table(
                pooled["secs"], pooled["gender"], pooled["race"], first.gender_names, first.race_names
            )
            systems[system] = {"title": SYSTEM_TITLES[system], "overall": overall, "splits": per_split}
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(c).items()}
        return {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": config,
            "device": self.device,
            "backends": self.metrics.backends,
            "num_utterances": {s: len(sel) for s, sel in self.selected.items()},
            "num_speakers": {s: len({u.speaker for u in sel}) for s, sel in self.selected.items()},
            "gender_classifier": None if classifier is None else classifier.info,
            "labels": {"gender": first.gender_names, "race": first.race_names},
            "systems": systems,
            "run_stats": dict(self.stats),
        }


def score_records(
    recs: Sequence[dict[str, Any]],
    references: SpeakerReferences,
    classifier: VoiceGenderClassifier | None,
    k: int,
    seed: int,
) -> dict[str, Any]:
    """Scores that need the references or the classifier (SECS, ABX, gender agreement), per utterance + summary."""
    emb = np.asarray([r["embedding"] for r in recs], dtype=np.float32)
    speakers = [r["speaker"] for r in recs]
    ids = [r["id"] for r in recs]
    secs = secs_to_references(emb, speakers, ids, references).tolist()
    if len(references.speakers) >= 2:
        abx = abx_metric.abx_accuracy(emb, speakers, ids, references, k=k, seed=seed)
        correct, chance = [float(x) for x in abx.correct], [abx.chance] * len(recs)
    else:
        correct, chance = [], []
    genders = [int(r.get("gender", -1)) for r in recs]
    # Gender agreement, and its two links: the face head reads the gender from the face (against the label), and
    # the voice follows what it read (the classifier against that reading). None: no face head, or no face.
    readings = [r.get("face_gender") for r in recs]
    read = [f is not None and f >= 0 for f in readings]
    face_correct = [float(f == g) for f, g, ok in zip(readings, genders, read) if ok and g >= 0]
    confidences = [r.get("face_gender_confidence") for r in recs]
    scored = [(c, float(f == g)) for c, f, g, ok in zip(confidences, readings, genders, read) if ok and g >= 0]
    face_confidence = [c for c, _ in scored if c is not None] if all(c is not None for c, _ in scored) else []
    agree: list[float] = []
    agree_speakers: list[str] = []
    follows_face: list[float] = []
    if classifier is not None:
        pred = classifier.predict(emb)
        labelled = [(float(p == g), s) for p, g, s in zip(pred, genders, speakers) if g >= 0]
        agree = [a for a, _ in labelled]
        agree_speakers = [s for _, s in labelled]
        follows_face = [float(p == f) for p, f, ok in zip(pred, readings, read) if ok]
    groups = [age_group(r.get("age")) for r in recs]
    by_age: dict[str, list[float]] = {}
    for group in ("adults", "children"):
        labelled_group = [i for i, (g, a) in enumerate(zip(genders, groups)) if g >= 0 and a == group]
        by_age[f"face_correct_{group}"] = [float(readings[i] == genders[i]) for i in labelled_group if read[i]]
        if classifier is not None:
            by_age[f"agree_{group}"] = [float(pred[i] == genders[i]) for i in labelled_group]
    items = {
        "secs": secs,
        "abx": correct,
        "chance": chance,
        "gender": genders,
        "race": [int(r.get("race", -1)) for r in recs],
        "agree": agree,
        "agree_speakers": agree_speakers,
        "face_correct": face_correct,
        "face_confidence": face_confidence,
        "follows_face": follows_face,
        **by_age,
    }
    recognizer = recs[0].get("recognizer_backend", "unknown")
    return {"items": items, "summary": summarize(recs, items, recognizer)}


def speaker_majority(agree: Sequence[float], speakers: Sequence[str]) -> float | None:
    """Share of speakers whose utterances mostly agree with their gender label (a tie counts one half)."""
    by_speaker: dict[str, list[float]] = {}
    for value, speaker in zip(agree, speakers):
        by_speaker.setdefault(speaker, []).append(value)
    if not by_speaker:
        return None
    votes = [1.0 if np.mean(v) > 0.5 else 0.5 if np.mean(v) == 0.5 else 0.0 for v in by_speaker.values()]
    return float(np.mean(votes))


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _face_calibration(confidences: Sequence[float], correct: Sequence[float]) -> dict[str, Any]:
    """The face head's calibration: its mean confidence against how often it is right, and the ECE (10 bins)."""
    if not confidences or len(confidences) != len(correct):
        return {"face_gender_mean_confidence": None, "face_gender_ece": None}
    return {
        "face_gender_mean_confidence": _mean(confidences),
        "face_gender_ece": expected_calibration_error(confidences, correct),
    }


def summarize(recs: Sequence[dict[str, Any]], items: dict[str, list], recognizer: str) -> dict[str, Any]:
    cer = cer_from_counts([r["cer_errors"] for r in recs], [r["cer_reference_chars"] for r in recs], recognizer)
    secs = items["secs"]
    return {
        "num_utterances": len(recs),
        "num_speakers": len({r["speaker"] for r in recs}),
        "secs": _mean(secs),
        "secs_std": float(np.std(secs)) if secs else None,
        "cer": None if math.isnan(cer.cer) else cer.cer,
        "cer_ci95": ratio_interval([r["cer_errors"] for r in recs], [r["cer_reference_chars"] for r in recs]),
        "cer_errors": cer.errors,
        "cer_reference_chars": cer.reference_chars,
        "naturalness": _mean([r["naturalness"] for r in recs]),
        "abx_accuracy": _mean(items["abx"]),
        "abx_accuracy_ci95": proportion_interval(items["abx"]),
        "abx_chance": _mean(items["chance"]),
        "gender_agreement": _mean(items["agree"]),
        "gender_agreement_ci95": proportion_interval(items["agree"]),
        "gender_labelled": len(items["agree"]),
        "gender_agreement_speakers": speaker_majority(items["agree"], items.get("agree_speakers", [])),
        "face_gender_accuracy": _mean(items.get("face_correct", [])),
        "face_gender_accuracy_ci95": proportion_interval(items.get("face_correct", [])),
        **_face_calibration(items.get("face_confidence", []), items.get("face_correct", [])),
        "gender_follows_face": _mean(items.get("follows_face", [])),
        **{
            f"{name}_{group}{suffix}": value
            for group in ("adults", "children")
            for name, key in (("gender_agreement", "agree"), ("face_gender_accuracy", "face_correct"))
            for suffix, value in (
                ("", _mean(items.get(f"{key}_{group}", []))),
                ("_ci95", proportion_interval(items.get(f"{key}_{group}", []))),
                ("_n", len(items.get(f"{key}_{group}", []))),
            )
        },
        "mean_duration_s": _mean([r["duration_s"] for r in recs]),
        **voice_similarities(
            [r["embedding"] for r in recs], [r["speaker"] for r in recs], [int(r.get("gender", -1)) for r in recs]
        ),
    }


# ---------------------------------------------------------------------------------------------------------------
# Report


def _fmt(value: float | None, spec: str = ".2f", scale: float = 1.0) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value * scale, spec)


def _setting(value: float | None) -> str:
    return "the model's own" if value is None else str(value)


def _fmt_ci(value: float | None, interval: Sequence[float] | None, spec: str = ".1%") -> str:
    """The value and its 95% interval, when there is one: 81.0% (72.2-87.5%)."""
    text = _fmt(value, spec)
    if value is None or not interval:
        return text
    low, high = format(interval[0], spec), format(interval[1], spec)
    return f"{text} ({low.rstrip('%')}-{high})"


def write_outputs(
    config: EvalConfig,
    results: dict[str, Any],
    records: dict[str, dict[str, list[dict[str, Any]]]],
) -> None:
    """metrics.json, plots/ and report.md."""
    out = config.out
    plot_files = make_plots(config, results, records) if config.plots else []
    results["plots"] = [str(p.relative_to(out)) for p in plot_files]
    (out / "metrics.json").write_text(json.dumps(results, indent=1))
    (out / "report.md").write_text(render_report(results, plot_files, out))


def make_plots(
    config: EvalConfig, results: dict[str, Any], records: dict[str, dict[str, list[dict[str, Any]]]]
) -> list[Path]:
    out = config.out / "plots"
    files: list[Path] = []
    systems = results["systems"]
    for system in ("ground_truth", "model"):
        groups = dict(records.get(system, {}))
        if len(groups) > 1:  # pooled over splits too (the paper shows seen and unseen speakers separately)
            groups["all"] = [r for recs in records[system].values() for r in recs]
        for split, recs in groups.items():
            recs = _tsne_subset(recs, config.tsne_max_speakers)
            if len({r["speaker"] for r in recs}) < 2 or len(recs) < 4:
                continue
            emb = np.asarray([r["embedding"] for r in recs])
            title = f"{SYSTEM_TITLES[system]}, {split}: Resemblyzer embeddings (t-SNE)"
            files.append(plots.tsne_plot(emb, [r["speaker"] for r in recs], out / f"tsne_{system}_{split}.png", title))
    names = list(systems)
    files.append(
        plots.bar_chart(
            names, [systems[s]["overall"]["secs"] for s in names], out / "secs_by_system.png", "SECS", "SECS (0-100)"
        )
    )
    abx_vals = [systems[s]["overall"]["abx_accuracy"] for s in names]
    if any(v is not None for v in abx_vals):
        chance = next((systems[s]["overall"]["abx_chance"] for s in names if systems[s]["overall"]["abx_chance"]), None)
        files.append(
            plots.bar_chart(
                names, abx_vals, out / "abx_by_system.png", "Objective ABX (top-1)", "accuracy", reference=chance
            )
        )
    curves = {}
    for system in ("model", "baseline"):
        recs = [r for recs in records.get(system, {}).values() for r in recs]
        scored = [
            (r["face_gender_confidence"], float(r["face_gender"] == r["gender"]))
            for r in recs
            if r.get("face_gender_confidence") is not None and r.get("face_gender", -1) >= 0 and r["gender"] >= 0
        ]
        if scored:
            curves[SYSTEM_TITLES[system]] = ([c for c, _ in scored], [k for _, k in scored])
    if curves:
        files.append(
            plots.reliability_diagram(curves, out / "face_gender_reliability.png", "Face head's gender reading")
        )
    main = "model" if "model" in systems else next(iter(systems))
    for attribute in ("gender", "race"):
        rows = [r for r in systems[main]["overall"]["subgroups"][attribute] if r["count"]]
        if rows:
            files.append(
                plots.bar_chart(
                    [r["category"] for r in rows],
                    [r["mean"] for r in rows],
                    out / f"secs_by_{attribute}.png",
                    f"SECS by {attribute} ({SYSTEM_TITLES[main]})",
                    "SECS (0-100)",
                    counts=[r["count"] for r in rows],
                )
            )
    return files


def _tsne_subset(recs: list[dict[str, Any]], max_speakers: int) -> list[dict[str, Any]]:
    """The speakers with most utterances, so the figure stays readable on large splits."""
    counts: dict[str, int] = {}
    for r in recs:
        counts[r["speaker"]] = counts.get(r["speaker"], 0) + 1
    keep = set(sorted(counts, key=lambda s: (-counts[s], s))[:max_speakers])
    return [r for r in recs if r["speaker"] in keep]


def render_report(results: dict[str, Any], plot_files: Sequence[Path], out: Path) -> str:
    """Markdown with the paper's table layouts (Table 2 columns, Table 7 subgroups)."""
    cfg, systems, backends = results["config"], results["systems"], results["backends"]
    splits = cfg["splits"]
    nat = backends["naturalness"]
    chance = next((s["overall"]["abx_chance"] for s in systems.values() if s["overall"]["abx_chance"]), None)
    lines = [
        "# FTV evaluation report",
        "",
        f"- model: `{cfg['model']}`",
        *([f"- baseline model: `{cfg['baseline_model']}`"] if cfg.get("baseline_model") else []),
        f"- data: `{cfg['data']}`, splits: {', '.join(splits)}",
        "- utterances: "
        + ", ".join(f"{s} {results['num_utterances'][s]} ({results['num_speakers'][s]} speakers)" for s in splits),
        f"- speaker encoder: {backends['speaker']}; recogniser: {backends['recognizer']}; naturalness: {nat}",
        f"- device: {results['device']}; seed {cfg['seed']}; noise_scale {_setting(cfg['noise_scale'])}, "
        f"noise_scale_duration {_setting(cfg['noise_scale_duration'])}; created {results['created']}",
        "",
        "## Objective results (Table 2 layout)",
        "",
    ]
    secs_cols = [SPLIT_TITLES.get(s, f"SECS ({s})") for s in splits]
    header = [
        "System",
        *secs_cols,
        "CER",
        nat,
        f"ABX top-1 (chance {_fmt(chance, '.0%')})",
        "Gender agreement (utterances)",
        "Gender agreement (speakers)",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for sysres in systems.values():
        o = sysres["overall"]
        row = [sysres["title"]]
        row += [_fmt(sysres["splits"].get(s, {}).get("secs")) for s in splits]
        row += [_fmt_ci(o["cer"], o.get("cer_ci95")), _fmt(o["naturalness"], ".3f")]
        row += [_fmt_ci(o["abx_accuracy"], o.get("abx_accuracy_ci95"))]
        row += [_fmt_ci(o["gender_agreement"], o.get("gender_agreement_ci95"))]
        row += [_fmt(o.get("gender_agreement_speakers"), ".1%")]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "SECS: cosine x100 between the utterance's Resemblyzer embedding and the mean embedding of the target "
        "speaker's *other* real recordings in the split (leave-one-out, so the ground-truth row is a true ceiling). "
        f"CER: corpus character error rate of the {backends['recognizer']} transcript after normalisation "
        "(lowercase, numbers as words, punctuation removed). ABX: the target speaker's real voice is the nearest "
        f"(cosine) among it and k={cfg['abx_k']} other speakers' real voices. Gender agreement: a voice-gender "
        "classifier on the audio agrees with the speaker's gender label, per utterance and per speaker (the "
        "majority of a speaker's utterances). In brackets: 95% intervals (Wilson for the proportions, a bootstrap over "
        "utterances for CER), to tell a difference from sampling noise.",
        "",
    ]
    if len(splits) > 1:
        lines += ["## Per split", "", "| System | Split | n | SECS | CER | " + nat + " | ABX | Gender agr. |"]
        lines.append("|---|---|---|---|---|---|---|---|")
        for sysres in systems.values():
            for split, s in sysres["splits"].items():
                lines.append(
                    f"| {sysres['title']} | {split} | {s['num_utterances']} | {_fmt(s['secs'])} | "
                    f"{_fmt(s['cer'], '.4f')} | {_fmt(s['naturalness'], '.3f')} | {_fmt(s['abx_accuracy'], '.1%')} "
                    f"| {_fmt(s['gender_agreement'], '.1%')} |"
                )
        lines.append("")
    lines += [
        "## One voice per person",
        "",
        "| System | Similarity between different speakers of one gender | Same speaker, different photos |",
        "|---|---|---|",
    ]
    for sysres in systems.values():
        o = sysres["overall"]
        lines.append(
            f"| {sysres['title']} | "
            f"{_fmt_ci(o.get('within_gender_similarity'), o.get('within_gender_similarity_ci95'), '.3f')} | "
            f"{_fmt_ci(o.get('same_speaker_similarity'), o.get('same_speaker_similarity_ci95'), '.3f')} |"
        )
    lines += [
        "",
        "Speaker-embedding cosine similarities (evaluation.metrics.diversity). Between different speakers of one "
        "gender "
        "label (each speaker's utterances averaged): near 1 means everyone of a gender gets the same voice; the model "
        "should sit near the ground-truth row. Same speaker: two utterances of one speaker, spoken from different "
        "photos of them. In brackets: 95% bootstrap intervals over speakers.",
        "",
    ]
    read = {k: v for k, v in systems.items() if v["overall"].get("face_gender_accuracy") is not None}
    if read:
        lines += [
            "## Where gender agreement is lost",
            "",
            "| System | Face head reads the label's gender | Its mean confidence | Its ECE | "
            "Voice classed as the gender the face head read | Gender agreement |",
            "|---|---|---|---|---|---|",
        ]
        for sysres in read.values():
            o = sysres["overall"]
            lines.append(
                f"| {sysres['title']} | {_fmt_ci(o['face_gender_accuracy'], o.get('face_gender_accuracy_ci95'))} | "
                f"{_fmt(o.get('face_gender_mean_confidence'), '.3f')} | {_fmt(o.get('face_gender_ece'), '.3f')} | "
                f"{_fmt(o.get('gender_follows_face'), '.1%')} | {_fmt(o['gender_agreement'], '.1%')} |"
            )
        lines += [
            "",
            "The model's face attribute head on the face each system spoke from (for shuffled faces, another "
            "speaker's), against the speaker's label, and the voice-gender classifier against that reading. The "
            "voice can follow the face only as far as the face encoder reads it: when both are high, agreement is "
            "about their product. Its confidence is the probability it gives the gender it read, after the model's "
            "calibration (`face_attribute_temperatures`, fitted on validation_unseen by train/calibrate_face_head.py); "
            "ECE: the gap between confidence and accuracy over 10 equal-width confidence bins (0 is perfect).",
            "",
        ]
    aged = {k: v for k, v in systems.items() if v["overall"].get("gender_agreement_adults_n")}
    if aged:
        lines += [
            "## Adults and children",
            "",
            "| System | Face reading, adults | Gender agreement, adults | Face reading, children | "
            "Gender agreement, children |",
            "|---|---|---|---|---|",
        ]
        for sysres in aged.values():
            o = sysres["overall"]
            cells = [
                f"{_fmt_ci(o.get(f'{name}_{group}'), o.get(f'{name}_{group}_ci95'))} (n={o.get(f'{name}_{group}_n')})"
                for group in ("adults", "children")
                for name in ("face_gender_accuracy", "gender_agreement")
            ]
            lines.append(f"| {sysres['title']} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"By the speakers' age labels (the corpus's report.json; adults: {ADULT_AGE:g} and over). Children's "
            "faces and voices carry less gender, and the corpus gives young children one child voice region.",
            "",
        ]
    lines += ["## Speaker similarity across gender and race (Table 7 layout)", ""]
    shown = [s for s in ("model", "ground_truth") if s in systems] or list(systems)[:1]
    lines.append("| Attribute | Category | n | " + " | ".join(f"SECS, {SYSTEM_TITLES[s]}" for s in shown) + " |")
    lines.append("|---|---|---|" + "---|" * len(shown))
    for attribute in ("gender", "race"):
        base = systems[shown[0]]["overall"]["subgroups"][attribute]
        for i, row in enumerate(base):
            cells = [_fmt(systems[s]["overall"]["subgroups"][attribute][i]["mean"]) for s in shown]
            lines.append(f"| {attribute.title()} | {row['category']} | {row['count']} | " + " | ".join(cells) + " |")
    lines += ["", "Labels are the dataset's pseudo-labels (face attributes); `missing` counts unlabelled items.", ""]
    gc = results.get("gender_classifier")
    lines += ["## Voice-gender classifier", ""]
    if gc:
        lines.append(
            "Logistic regression on Resemblyzer embeddings of real speech"
            + (f" from `{gc['fit_split']}` ({gc['num_speakers']} speakers)" if "fit_split" in gc else "")
            + f"; accuracy on held-out speakers: {_fmt(gc.get('held_out_speaker_accuracy'), '.1%')}. "
            "Its agreement on the ground-truth row is its accuracy on this split's real speech."
        )
    else:
        lines.append("No classifier (no labelled real speech of both genders to fit it on): gender agreement n/a.")
    lines.append("")
    if plot_files:
        lines += ["## Plots", ""]
        for p in plot_files:
            lines.append(f"![{p.stem}]({p.relative_to(out).as_posix()})")
        lines.append("")
    lines += [
        "## Files",
        "",
        "`metrics.json` (everything above, machine-readable), `audio/<system>/<split>/*.wav` (what was scored), "
        "`cache/` (per-utterance scores and transcripts; delete it to recompute everything).",
        "",
    ]
    return "\n".join(lines)


def run_evaluation(
    config: EvalConfig, synthesizer: Synthesizer | None = None, metrics: MetricSuite | None = None
) -> dict[str, Any]:
    """Evaluate, write report.md / metrics.json / audio / plots into config.out, and return the metrics."""
    return Evaluator(config, synthesizer=synthesizer, metrics=metrics).run()
