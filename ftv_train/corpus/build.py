"""The offline face-to-voice corpus: real labelled faces, each given one synthetic voice that follows its face.

Why: the paper trains on LRS3 talking faces, which cannot be downloaded here. This builds a corpus from data and
voice engines that work fully offline, in the exact `ftv_train.data.dataset_format` schema, so ``train/train.py`` and
``train/evaluate.py`` read it unchanged. Part of each voice is predictable from the face (gender and age set the
pitch and vocal-tract ranges, the face descriptor the point in them) and part is not, like real voices.

The parts, one module each: the faces and their five views (`ftv_train.corpus.faces`), the voice engines
(`ftv_train.corpus.engines`, one file per engine, one registry), the voice design (`ftv_train.corpus.voices`), the
rule from face to voice (`ftv_train.corpus.voice_mapping`), the WORLD transform (`ftv_train.corpus.world`), one
sentence's audio (`ftv_train.corpus.speech`) and the sentences (`ftv_train.corpus.prompts`: Harvard sentences and
CMU ARCTIC prompts, ``sentences`` different ones per speaker). This module runs them: three resumable passes (faces
and descriptors, the voice mapping, speech), then the splits, writer and report of `ftv_train.data` (``report.json``
gets an extra ``offline`` section: identities per source, base voices, F0 per gender, face fall-backs, DNSMOS of a
sample before and after the voice transform). The command line is `ftv_train.corpus.cli`.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ftv_model.attributes import GENDER_LABELS, MISSING_LABEL
from ftv_model.face_detection import FaceDetector
from ftv_model.text_frontend import phonemize
from ftv_train.common.atomic import atomic_directory
from ftv_train.common.parallel import map_with_workers, use_one_thread
from ftv_train.corpus.engines.float_conv import FLOAT_CONV_VERSION
from ftv_train.corpus.faces import (
    LICENCES,
    MIN_VIEWS,
    SOURCES,
    VIEWS,
    Identity,
    discover_identities,
    identity_views,
    small_selection,
)
from ftv_train.corpus.prompts import PROMPTS
from ftv_train.corpus.speech import speaker_speech
from ftv_train.corpus.voice_mapping import AXES, MAPPING_NAME, VoiceMapping
from ftv_train.corpus.voices import (
    BASE_VOICES,
    KOKORO_AXES,
    KOKORO_DESIGN_VERSION,
    KOKORO_POOL_RANGES,
    KOKORO_PREFIX,
    KOKORO_SHARE_F0,
    KOKORO_TIMBRE,
    KOKORO_VOICES,
    VOICE_DESIGNS,
    check_engines,
    kokoro_voice_params,
    voice_params,
)
from ftv_train.data.config import PrepareConfig
from ftv_train.data.dataset_format import REPORT_NAME, SAMPLE_RATE, SPLITS, decode_audio, encode_audio
from ftv_train.data.face_dedup import (
    PHASH_MAX_DISTANCE,
    THUMBNAIL_MIN_CORRELATION,
    find_duplicate_groups,
    resolve_duplicates,
)
from ftv_train.data.splits import HELD_OUT_SPLITS, assign_splits
from ftv_train.data.writer import build_report, write_dataset

__all__ = [
    "CORPUS_VERSION",
    "DESCRIPTORS_FILE",
    "OfflineCorpusConfig",
    "SplitPlan",
    "build_faces",
    "build_offline_corpus",
    "build_speaker",
    "discover_identities",  # from `ftv_train.corpus.faces`: what `plan_splits` is given
    "fit_voice_mapping",
    "plan_splits",
    "prepare_config",
    "write_descriptor_cache",
]

CORPUS_VERSION = 2  # 2: the identity part of each voice follows the face descriptor (1: a seeded random draw)


@dataclass
class OfflineCorpusConfig:
    """Everything that decides what the build writes (the flags of `ftv-make-offline-corpus`, `corpus.cli`)."""

    faces: str
    out: str
    small: bool = False
    seed: int = 0
    workers: int = 1
    sentences: int = 4  # per speaker (3 with --small)
    identities: int | None = None  # None: all (12 with --small)
    face_size: int = 128
    margin: float = 0.25
    dnsmos_sample: int = 24  # speakers whose first sentence is scored before/after the transform; 0: none
    sources: tuple[str, ...] = SOURCES  # london,fairface only: a corpus that may be published (CC BY 4.0)
    voice_design: str = "world"  # "kokoro": natural blended voices (`ftv_train.corpus.voices.kokoro_voice_params`)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.small:
            self.sentences = min(self.sentences, 3)
            self.identities = self.identities or 12
        self.sources = tuple(self.sources)
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {self.workers}")
        if not 1 <= self.sentences <= len(PROMPTS):
            raise ValueError(f"--sentences must be in 1..{len(PROMPTS)}, got {self.sentences}")
        if self.voice_design not in VOICE_DESIGNS:
            raise ValueError(f"--voices must be one of {list(VOICE_DESIGNS)}, got {self.voice_design!r}")

    def fingerprint(self) -> str:
        """Hash of what changes one speaker's files: cached speakers are reused only when it matches."""
        keys = {"version": CORPUS_VERSION, "seed": self.seed, "sentences": self.sentences}
        keys.update(face_size=self.face_size, margin=self.margin, voices=[asdict(v) for v in BASE_VOICES])
        if self.voice_design != "world":  # the world design's fingerprint is the one its caches were written with
            keys.update(design=self.voice_design, ranges=KOKORO_POOL_RANGES, share_f0=KOKORO_SHARE_F0)
            keys.update(kokoro_design=KOKORO_DESIGN_VERSION, axes=KOKORO_AXES, timbre=KOKORO_TIMBRE)
            keys.update(kokoro_graph=f"float-conv{FLOAT_CONV_VERSION}")
        return hashlib.sha1(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:12]


_WORKER: dict[str, Any] = {}
DESCRIPTORS_FILE = "descriptors.npy"  # per identity: one 128-d dlib descriptor per view, real photos first


def _faces_folder(work: Path, speaker: str) -> Path:
    return work / "faces" / speaker


def _speaker_folder(work: Path, speaker: str) -> Path:
    return work / "speech" / speaker


def build_faces(identity: Identity, config: OfflineCorpusConfig, detector: FaceDetector, work: Path) -> dict:
    """Pass 1: write one identity's `VIEWS` crops and their face descriptors under ``work/faces/SPEAKER/``
    (atomically, reused when present); returns {speaker, fallbacks, real}."""
    folder = _faces_folder(work, identity.speaker)
    cached = folder / "faces.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    from ftv_model.face_descriptor import shared_face_descriptor

    rng = random.Random(f"ftv-offline:{config.seed}:{identity.speaker}")
    views, fallbacks = identity_views(identity, detector, rng, config.margin, config.face_size)
    descriptors = shared_face_descriptor(config.margin)(views)
    meta = {"speaker": identity.speaker, "fallbacks": fallbacks, "real": min(len(identity.images), VIEWS)}
    with atomic_directory(folder) as temp:
        for index, view in enumerate(views):
            view.save(temp / f"face_{index}.png", format="PNG")
        np.save(temp / DESCRIPTORS_FILE, descriptors)
        (temp / "faces.json").write_text(json.dumps(meta))
    return meta


def write_descriptor_cache(face_folders: list[Path], out: Path) -> int:
    """``out/face_descriptors.npz``: every view's descriptor by `pixels_key`, so training with
    ``face_descriptor`` looks them up instead of running dlib on each step; returns how many."""
    from ftv_model.face_descriptor import DESCRIPTOR_CACHE_NAME, pixels_key, save_cache

    known = {}
    for folder in face_folders:
        descriptors = np.load(folder / DESCRIPTORS_FILE)
        for index, row in enumerate(descriptors):
            with Image.open(folder / f"face_{index}.png") as view:
                known[pixels_key(view)] = row
    save_cache(out / DESCRIPTOR_CACHE_NAME, known)
    return len(known)


def identity_descriptor(work: Path, speaker: str, real: int) -> np.ndarray:
    """The identity's face descriptor: the mean over its real photos' crops (augmented views left out)."""
    return np.load(_faces_folder(work, speaker) / DESCRIPTORS_FILE)[: max(real, 1)].mean(axis=0)


def identity_pool(identity: Identity, descriptor: np.ndarray, mapping: VoiceMapping) -> str:
    """The gender label's pool, or for an unlabelled face the pool whose mean face is nearest."""
    return GENDER_LABELS[identity.gender] if identity.gender != MISSING_LABEL else mapping.nearest_pool(descriptor)


def fit_voice_mapping(
    identities: list[Identity], faces: dict[str, dict], work: Path, axes: tuple[str, ...] = AXES
) -> VoiceMapping:
    """Pass 2: the face-to-voice rule fitted on the labelled identities' descriptors (`corpus.voice_mapping`)."""
    labelled = [identity for identity in identities if identity.gender != MISSING_LABEL]
    descriptors = np.stack([identity_descriptor(work, i.speaker, faces[i.speaker]["real"]) for i in labelled])
    return VoiceMapping.fit(descriptors, [GENDER_LABELS[i.gender] for i in labelled], axes)


def build_speaker(
    identity: Identity, config: OfflineCorpusConfig, work: Path, mapping: VoiceMapping, faces: dict
) -> dict:
    """Pass 3: write one identity's utterances under ``work/speech/SPEAKER/`` (atomically), in the voice the mapping
    gives its face; returns its meta (face files are shared with pass 1's folder)."""
    folder = _speaker_folder(work, identity.speaker)
    cached = folder / "speaker.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    rng = random.Random(f"ftv-offline-speech:{config.seed}:{identity.speaker}")
    descriptor = identity_descriptor(work, identity.speaker, faces["real"])
    pool = identity_pool(identity, descriptor, mapping)
    position = mapping.position(descriptor, pool)
    params = (kokoro_voice_params if config.voice_design == "kokoro" else voice_params)(identity, position, pool)
    sentences = rng.sample(range(len(PROMPTS)), config.sentences)
    with atomic_directory(folder) as temp:
        utterances = []
        for number, sentence in enumerate(sentences):
            text = PROMPTS[sentence]
            before, after, native_rate = speaker_speech(params, text)
            item = temp / f"{number:02d}"
            item.mkdir()
            (item / "audio.flac").write_bytes(encode_audio(after))
            if number == 0:
                (item / "base.flac").write_bytes(encode_audio(before))
            count = rng.randint(MIN_VIEWS, VIEWS)
            chosen = rng.sample(range(VIEWS), count)
            utterances.append(
                {
                    "id": f"{identity.speaker}/{number:02d}",
                    "speaker": identity.speaker,
                    "text": text,
                    "phonemes": phonemize([text])[0],
                    "duration": round(len(after) / SAMPLE_RATE, 4),
                    "num_views": count,
                    "face_files": [f"../../../faces/{identity.speaker}/face_{i}.png" for i in chosen],
                    "gender": identity.gender,
                    "race": identity.race,
                    "folder": f"{number:02d}",
                }
            )
        meta = {
            "identity": asdict(identity),
            "voice": asdict(params),
            "voice_position": {axis: round(value, 4) for axis, value in position.items()},
            "voice_pool": pool,
            "face_fallbacks": faces["fallbacks"],
            "native_rate": native_rate,
            "utterances": utterances,
        }
        (temp / "speaker.json").write_text(json.dumps(meta, ensure_ascii=False))
    return meta


def _init_worker(config: OfflineCorpusConfig, work: str, mapping_path: str | None = None) -> None:
    use_one_thread(opencv=False)
    # HOG only, as the corpus was built (the CNN fallback for small faces would change some crops of a cached build)
    _WORKER.update(config=config, work=Path(work), detector=FaceDetector(backend="dlib", small_face_fallback=False))
    if mapping_path is not None:
        _WORKER["mapping"] = VoiceMapping.load(mapping_path)


def _faces_one(identity: Identity) -> dict:
    return build_faces(identity, _WORKER["config"], _WORKER["detector"], _WORKER["work"])


def _speech_one(job: tuple[Identity, dict]) -> dict:
    identity, faces = job
    return build_speaker(identity, _WORKER["config"], _WORKER["work"], _WORKER["mapping"], faces)


def _build_all(identities: list[Identity], config: OfflineCorpusConfig, work: Path) -> tuple[list[dict], VoiceMapping]:
    """The three passes (faces and descriptors, the voice mapping, speech), each resumable per identity."""
    from tqdm.auto import tqdm

    def run(function: Any, jobs: list[Any], desc: str, mapping_path: str | None = None) -> list[Any]:
        bar = tqdm(total=len(jobs), desc=desc, unit="speaker", disable=not config.progress)
        try:
            initargs = (config, str(work), mapping_path)
            return map_with_workers(function, jobs, config.workers, _init_worker, initargs, __name__, bar)
        finally:
            bar.close()

    faces = {meta["speaker"]: meta for meta in run(_faces_one, identities, "faces")}
    mapping_path = work / MAPPING_NAME
    if not mapping_path.is_file():  # fitted once per build folder: a resumed build keeps the voices it started with
        axes = KOKORO_AXES if config.voice_design == "kokoro" else AXES
        fit_voice_mapping(identities, faces, work, axes).save(mapping_path)
    jobs = [(identity, faces[identity.speaker]) for identity in identities]
    metas = run(_speech_one, jobs, "speech", str(mapping_path))
    return sorted(metas, key=lambda m: m["identity"]["speaker"]), VoiceMapping.load(mapping_path)


def _dnsmos(metas: list[dict], work: Path, config: OfflineCorpusConfig) -> dict[str, Any] | None:
    """DNSMOS OVRL of each sampled speaker's first sentence, untransformed base voice vs. its transformed voice."""
    if config.dnsmos_sample <= 0 or not metas:
        return None
    from ftv_train.evaluation.metrics.naturalness import DnsmosScorer

    sample = random.Random(f"ftv-offline-dnsmos:{config.seed}").sample(metas, min(config.dnsmos_sample, len(metas)))
    scorer = DnsmosScorer()
    pairs = []
    for meta in sample:
        item = _speaker_folder(work, meta["identity"]["speaker"]) / meta["utterances"][0]["folder"]
        pairs.append((decode_audio(str(item / "base.flac")), decode_audio(str(item / "audio.flac"))))
    before = scorer.score([p[0] for p in pairs])
    after = scorer.score([p[1] for p in pairs])
    by_base: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for meta, b, a in zip(sample, before, after):
        by_base[meta["voice"]["base"]].append((b, a))
    return {
        "scorer": scorer.name,
        "clips": len(pairs),
        "before": round(float(np.mean(before)), 3),
        "after": round(float(np.mean(after)), 3),
        "by_base_voice": {
            name: {
                "clips": len(v),
                "before": round(float(np.mean([x[0] for x in v])), 3),
                "after": round(float(np.mean([x[1] for x in v])), 3),
            }
            for name, v in sorted(by_base.items())
        },
    }


def prepare_config(config: OfflineCorpusConfig) -> PrepareConfig:
    """The data-preparation settings the corpus shares (split fractions, writer, report)."""
    return PrepareConfig(
        source="offline",
        root=str(config.faces),
        out=str(config.out),
        detector="dlib",
        labeler="none",
        views=VIEWS,
        face_size=config.face_size,
        margin=config.margin,
        seed=config.seed,
        workers=config.workers,
        progress=config.progress,
    )


@dataclass
class SplitPlan:
    """Which utterance goes to which split, and which identities are dropped as duplicates of another's photo."""

    assignment: dict[str, str]  # utterance id -> split, for every discovered identity
    speaker_split: dict[str, str]  # speaker -> "training" or the held-out split it is in
    removed: set[str]
    duplicate_groups: list[dict]
    photos: dict[str, int]  # speaker -> number of source photos

    def restricted_to(self, speakers: set[str]) -> SplitPlan:
        """The plan of a subset: each kept identity stays on the side the full draw put it."""
        assignment = {item: split for item, split in self.assignment.items() if item.split("/")[0] in speakers}
        speaker_split = {speaker: side for speaker, side in self.speaker_split.items() if speaker in speakers}
        groups = [row for row in self.duplicate_groups if speakers & set(row["speakers"])]
        photos = {speaker: count for speaker, count in self.photos.items() if speaker in speakers}
        return SplitPlan(assignment, speaker_split, self.removed & speakers, groups, photos)

    def report(self) -> dict[str, Any]:
        removed_by_split = Counter(self.speaker_split[s] for s in self.removed)
        sides: dict[str, dict[str, int]] = {}
        for speaker, side in sorted(self.speaker_split.items()):
            if speaker not in self.removed:
                row = sides.setdefault(side, {"identities": 0, "photos": 0})
                row["identities"] += 1
                row["photos"] += self.photos[speaker]
        return {
            "identities_and_photos": sides,  # training = train + validation + test_seen
            "method": (
                f"SHA-256, or phash within {PHASH_MAX_DISTANCE} bits and 32x32 grey correlation >= "
                f"{THUMBNAIL_MIN_CORRELATION} (ftv_train.data.face_dedup)"
            ),
            "groups": len(self.duplicate_groups),
            "removed_identities": len(self.removed),
            "removed_by_split": dict(sorted(removed_by_split.items())),
            "conflicting_label_groups": sum(g["conflicting_labels"] for g in self.duplicate_groups),
            "details": self.duplicate_groups,
        }


def plan_splits(identities: list[Identity], config: OfflineCorpusConfig) -> SplitPlan:
    """Split every discovered identity, then drop duplicate photos' identities (`ftv_train.data.face_dedup`).

    The held-out draw is made over the discovered identities, so a corpus built before deduplication existed keeps
    its held-out identities (a model trained on it stays scorable); every duplicate group is then resolved before
    any split is written, keeping its one identity in training when one of its copies is there, so no photo of a
    held-out identity is also a training photo."""
    shared = prepare_config(config)
    items = [(f"{i.speaker}/{n:02d}", i.speaker, False) for i in identities for n in range(config.sentences)]
    assignment = assign_splits(
        items,
        seed=config.seed,
        validation_fraction=shared.validation_fraction,
        test_seen_fraction=shared.test_seen_fraction,
        unseen_speaker_fraction=shared.unseen_speaker_fraction,
        validation_unseen_share=shared.validation_unseen_share,
    )
    speaker_split: dict[str, str] = {}
    for item_id, speaker, _ in items:
        split = assignment[item_id]
        speaker_split[speaker] = split if split in HELD_OUT_SPLITS else "training"
    groups = find_duplicate_groups((i.speaker, path) for i in identities for path in i.images)
    by_speaker = {i.speaker: i for i in identities}
    removed, rows = resolve_duplicates(
        groups,
        labels=lambda s: (by_speaker[s].gender, by_speaker[s].race),
        in_training=lambda s: speaker_split[s] == "training",
    )
    for row in rows:
        row["splits"] = [speaker_split[s] for s in row["speakers"]]
    return SplitPlan(assignment, speaker_split, removed, rows, {i.speaker: len(i.images) for i in identities})


def _voice_family(base: str) -> str:
    """A base voice's name, or "kokoro" for every blend of the kokoro design (each identity has its own)."""
    return "kokoro" if base.startswith(KOKORO_PREFIX) else base


def build_offline_corpus(config: OfflineCorpusConfig) -> dict[str, Any]:
    """Build the corpus (resumable per speaker) and write ``config.out`` + ``report.json``; returns the report."""
    start = time.monotonic()
    check_engines(KOKORO_VOICES if config.voice_design == "kokoro" else BASE_VOICES)
    discovered = discover_identities(config.faces, config.sources)
    identities = (
        discovered
        if config.identities is None
        else small_selection(discovered, config.identities, spread=not config.small)
    )
    out = Path(config.out)
    work = out / ".work" / f"offline-{config.fingerprint()}"
    work.mkdir(parents=True, exist_ok=True)
    build_start = time.monotonic()
    metas, mapping = _build_all(identities, config, work)
    build_seconds = time.monotonic() - build_start

    shared = prepare_config(config)
    if config.small:  # a dozen identities: split among themselves, so every split has someone
        plan = plan_splits(identities, config)
    else:  # a subset keeps the full corpus's held-out identities: a model trained on it stays scorable on the full one
        plan = plan_splits(discovered, config).restricted_to({identity.speaker for identity in identities})
    metas = [meta for meta in metas if meta["identity"]["speaker"] not in plan.removed]
    kept, folders = [], {}
    for meta in metas:
        for utterance in meta["utterances"]:
            kept.append(utterance)
            folders[utterance["id"]] = _speaker_folder(work, meta["identity"]["speaker"]) / utterance["folder"]
    kept.sort(key=lambda m: m["id"])
    assignment = plan.assignment
    by_split: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for meta in kept:
        by_split[assignment[meta["id"]]].append(meta)
    if not config.progress:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    write_dataset(by_split, folders, out, out / ".work")
    report = build_report(shared, by_split, [], len(kept), len(kept), build_seconds, time.monotonic() - start)
    report["config"] = {**asdict(config), "views": VIEWS}
    f0_by_gender: dict[str, list[float]] = defaultdict(list)
    for meta in metas:
        gender = meta["identity"]["gender"]
        f0_by_gender[GENDER_LABELS[gender] if gender != MISSING_LABEL else "missing"].append(meta["voice"]["f0"])
    report["offline"] = {
        "identities": dict(sorted(Counter(m["identity"]["source"] for m in metas).items())),
        "held_out_protocol": plan.report(),
        "licences": {source: LICENCES[source] for source in sorted({m["identity"]["source"] for m in metas})},
        "sentences_per_speaker": config.sentences,
        "voice_design": config.voice_design,
        "base_voices": dict(sorted(Counter(_voice_family(m["voice"]["base"]) for m in metas).items())),
        "target_f0_median_hz": {k: round(float(np.median(v)), 1) for k, v in sorted(f0_by_gender.items())},
        "face_photos": sum(len(m["identity"]["images"]) for m in metas),
        "face_center_crop_fallbacks": sum(m["face_fallbacks"] for m in metas),
        "sample_rate": SAMPLE_RATE,
        "engine_sample_rates": dict(
            sorted({_voice_family(m["voice"]["base"]): m["native_rate"] for m in metas}.items())
        ),
        "dnsmos": _dnsmos(metas, work, config),
        "voices": {m["identity"]["speaker"]: m["voice"] for m in metas},
        "ages": {m["identity"]["speaker"]: m["identity"]["age"] for m in metas},
        "voice_rule": {
            "what": "identity part of each voice: a fixed function of the face descriptor (ftv_train.corpus.voice_mapping)",  # noqa: E501
            "axes": list(mapping.axes),
            "axis_spreads": [round(float(x), 4) for x in mapping.scales],
            "file": MAPPING_NAME,
        },
    }
    mapping.save(out / MAPPING_NAME)
    write_descriptor_cache([_faces_folder(work, m["identity"]["speaker"]) for m in metas], out)
    report["processing"]["seconds"] = round(time.monotonic() - start, 2)
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return report
