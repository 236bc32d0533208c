"""The data preparation pipeline (paper Appendix A, Algorithm 1): corpus -> prepared `datasets.DatasetDict`.

Per utterance (in parallel worker processes):

1. transcript: clean it and store its phonemes (`ftv_model.text_frontend.phonemize`), so training never phonemizes;
2. audio: decode (a sibling studio ``.wav`` if the source names one, else the video's track), mono, 16 kHz;
   reject too short / too long / silent; optionally loudness-normalise; never clip;
3. faces: sample frames in random order, detect faces, crop the largest with `crop_face`, keep the first
   ``views`` frames that have a face (frames without one are skipped; fewer views are kept; none -> skipped).

Every finished item (kept or skipped) is cached under ``OUT/.work/items-<config hash>/`` as soon as it is done,
so an interrupted run continues where it stopped and a rerun redoes nothing. Then, in the main process:
speaker-wise pseudo-labels (first usable face of each speaker, inherited by all its utterances; cached too),
the seeded split assignment (`ftv_train.data.splits`), the dataset (schema in `ftv_train.data.dataset_format`) and
``report.json``. One bad item never stops the run: it is skipped with a reason code and listed in the report.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
import traceback
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ftv_model.face_detection import FaceDetectionError, FaceDetector, crop_face, load_image
from ftv_model.text_frontend import TextFrontendError, clean_text, phonemize
from ftv_train.common.atomic import atomic_directory
from ftv_train.common.parallel import map_with_workers, use_one_thread
from ftv_train.data.audio_checks import AudioRejected, check_audio, fit_peak, normalize_loudness
from ftv_train.data.config import FACE_FORMATS, PIPELINE_VERSION, PrepareConfig
from ftv_train.data.dataset_format import REPORT_NAME, SAMPLE_RATE, SPLITS, encode_audio
from ftv_train.data.pseudo_labels import Attributes, Labeler, build_labeler
from ftv_train.data.sources import SourceItem, discover
from ftv_train.data.splits import assign_splits
from ftv_train.data.video import MediaError, probe_video, read_audio_track, read_frames, sample_frame_indices
from ftv_train.data.writer import build_report, write_dataset

__all__ = [
    "PIPELINE_VERSION",
    "REASONS",
    "PrepareConfig",
    "PrepareResult",
    "SkipItem",
    "clean_transcript",
    "prepare",
    "process_item",
]

# The reason codes of skipped items in report.json ("error": an unexpected exception, not cached, retried next run).
REASONS = (
    "bad_transcript",
    "missing_file",
    "no_audio",
    "corrupt_media",
    "too_short",
    "too_long",
    "silent_audio",
    "no_video",
    "no_face",
    "error",
)


class SkipItem(Exception):
    """Raised inside item processing: the item is skipped with this reason code and detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------------------------------------------------
# One item


def clean_transcript(text: str) -> str:
    """Corpus transcript -> the text stored and spoken: markup like ``{LG}``/``<unk>`` dropped, ALL-CAPS (LRS3)
    lowercased, unicode and whitespace normalised by the text front end."""
    text = re.sub(r"\{[^}]*\}|<[^>]*>|\[[^\]]*\]", " ", text)
    letters = [c for c in text if c.isalpha()]
    if letters and all(c.isupper() for c in letters):
        text = text.lower()
    return clean_text(text)


def _text(item: SourceItem, language: str) -> tuple[str, str]:
    if item.text_error or not item.text:
        raise SkipItem("bad_transcript", item.text_error or "empty transcript")
    try:
        text = clean_transcript(item.text)
        phonemes = phonemize([text], language=language)[0]
    except TextFrontendError as error:
        raise SkipItem("bad_transcript", str(error)) from error
    return text, phonemes


def _audio(item: SourceItem, config: PrepareConfig) -> np.ndarray:
    path = item.audio or item.video
    if not path:
        raise SkipItem("no_audio", "the item names no audio or video file")
    try:
        wave = read_audio_track(path, SAMPLE_RATE)
        check_audio(wave, SAMPLE_RATE, config.min_duration, config.max_duration, config.silence_dbfs)
    except (MediaError, AudioRejected) as error:
        raise SkipItem(error.reason, error.detail) from error
    if config.normalize_loudness:
        wave = normalize_loudness(wave, SAMPLE_RATE, config.loudness_target)
    return fit_peak(wave)


def _faces_from_video(
    path: str, config: PrepareConfig, detector: FaceDetector, rng: random.Random
) -> list[Image.Image]:
    try:
        info = probe_video(path)
        order = sample_frame_indices(info.num_frames, config.num_candidates, rng)
        frames = read_frames(path, order)
    except MediaError as error:
        raise SkipItem(error.reason, error.detail) from error
    order = [index for index in order if index in frames]
    views: list[Image.Image] = []
    # Detect in chunks of `views` frames in the shuffled order and stop once enough faces are found.
    for start in range(0, len(order), config.views):
        chunk = order[start : start + config.views]
        for index, boxes in zip(chunk, detector.detect_batch([frames[i] for i in chunk])):
            if boxes and len(views) < config.views:
                views.append(crop_face(frames[index], boxes[0], margin=config.margin, size=config.face_size))
        if len(views) >= config.views:
            break
    if not views:
        raise SkipItem("no_face", f"no face found in {len(order)} sampled frames of {Path(path).name}")
    return views


def _faces_from_images(
    paths: Sequence[str], config: PrepareConfig, detector: FaceDetector, rng: random.Random
) -> list[Image.Image]:
    paths = list(paths)
    rng.shuffle(paths)
    views, problems = [], []
    for path in paths:
        if len(views) >= config.views:
            break
        try:
            image = load_image(path)
        except FaceDetectionError as error:
            problems.append(str(error))
            continue
        boxes = detector.detect(image)
        if boxes:
            views.append(crop_face(image, boxes[0], margin=config.margin, size=config.face_size))
        else:
            problems.append(f"no face in {Path(path).name}")
    if not views:
        if problems and all("No such image file" in p for p in problems):
            raise SkipItem("missing_file", "; ".join(problems))
        raise SkipItem("no_face", "; ".join(problems) or "no images")
    return views


def process_item(item: SourceItem, config: PrepareConfig, detector: FaceDetector) -> dict[str, Any]:
    """Prepare one utterance: returns ``{"meta": {...}, "audio": bytes, "faces": [PIL...]}``, or raises SkipItem.

    The random choices depend only on the seed and the item id, so results do not depend on worker scheduling.
    """
    rng = random.Random(f"{config.seed}:{item.id}")
    text, phonemes = _text(item, config.language)
    for path in (item.video, item.audio):
        if path and not Path(path).is_file():
            raise SkipItem("missing_file", f"no such file: {path}")
    wave = _audio(item, config)
    if item.images:
        faces = _faces_from_images(item.images, config, detector, rng)
    elif item.video:
        faces = _faces_from_video(item.video, config, detector, rng)
    else:
        raise SkipItem("no_video", "the item names neither a video nor face images")
    meta = {
        "id": item.id,
        "speaker": item.speaker,
        "text": text,
        "phonemes": phonemes,
        "duration": round(len(wave) / SAMPLE_RATE, 4),
        "num_views": len(faces),
    }
    return {"meta": meta, "audio": encode_audio(wave, SAMPLE_RATE), "faces": faces}


# --------------------------------------------------------------------------------------------------------------------
# The per-item cache


def _item_dir(work: Path, item_id: str) -> Path:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", item_id)[-60:]
    return work / f"{readable}-{hashlib.sha1(item_id.encode()).hexdigest()[:10]}"


def _read_cached(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _write_result(
    folder: Path, item: SourceItem, result: dict[str, Any] | None, skip: SkipItem | None, face_format: str
) -> dict:
    """Write one item's result atomically (temp folder, then rename), so a crash never leaves half an item."""
    base = {"id": item.id, "speaker": item.speaker, "path": item.path}
    if skip is not None:
        meta = {**base, "status": "skipped", "reason": skip.reason, "detail": skip.detail}
    else:
        assert result is not None
        meta = {**base, **result["meta"], "status": "ok", "unseen": item.unseen}
    if skip is not None and skip.reason == "error":
        return meta  # unexpected errors are not cached: a rerun tries again
    with atomic_directory(folder) as temp:
        if result is not None:
            (temp / "audio.flac").write_bytes(result["audio"])
            image_format, options = FACE_FORMATS[face_format]
            meta["face_files"] = []
            for index, face in enumerate(result["faces"]):
                name = f"face_{index}.{face_format}"
                face.save(temp / name, format=image_format, **options)
                meta["face_files"].append(name)
        (temp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False))
    return meta


# --------------------------------------------------------------------------------------------------------------------
# Workers

_WORKER: dict[str, Any] = {}


def _make_detector(config: PrepareConfig) -> FaceDetector:
    # no CNN fallback for small faces: video frames with no face are common, and min_face_size drops small ones anyway
    return FaceDetector(
        config.detector,
        weights_path=config.detector_weights,
        device=config.device,
        min_size=config.min_face_size,
        small_face_fallback=False,
    )


def _init_worker(config: PrepareConfig, work: str) -> None:
    use_one_thread(opencv=True)
    _WORKER.update(config=config, work=Path(work), detector=_make_detector(config))


def _run_one(item: SourceItem) -> dict[str, Any]:
    config: PrepareConfig = _WORKER["config"]
    result, skip = None, None
    try:
        result = process_item(item, config, _WORKER["detector"])
    except SkipItem as caught:
        skip = caught
    except Exception as caught:  # never stop the run on one item; report it instead
        summary = "".join(traceback.format_exception_only(type(caught), caught)).strip()
        skip = SkipItem("error", summary)
    return _write_result(_item_dir(_WORKER["work"], item.id), item, result, skip, config.face_format)


def _process_all(items: list[SourceItem], config: PrepareConfig, work: Path, detector: FaceDetector) -> list[dict]:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), desc="preparing", unit="clip", disable=not config.progress or not items)
    try:
        return map_with_workers(
            _run_one,
            items,
            config.workers,
            _init_worker,
            (config, str(work)),
            __name__,
            bar,
            local_setup=lambda: _WORKER.update(config=config, work=work, detector=detector),
        )
    finally:
        bar.close()


# --------------------------------------------------------------------------------------------------------------------
# Labels, splits, assembly, report


def _cached_faces(folder: Path, names: list[str]) -> Iterator[Image.Image]:
    for name in names:
        with Image.open(folder / name) as face:
            yield face.convert("RGB")


def _label_speakers(
    kept: list[dict], labeler: Labeler, work: Path, fingerprint: str, folders: dict[str, Path]
) -> dict[str, Attributes]:
    """Algorithm 1 step 2, speaker-wise, with the labels cached so reruns and resumes label nobody twice."""
    cache_path = work / f"labels-{hashlib.sha1(f'{fingerprint}:{labeler.fingerprint}'.encode()).hexdigest()[:12]}.json"
    cached = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    by_speaker: dict[str, list[dict]] = defaultdict(list)
    for meta in sorted(kept, key=lambda m: m["id"]):
        by_speaker[meta["speaker"]].append(meta)
    labels = {}
    for speaker, metas in sorted(by_speaker.items()):
        if speaker not in cached:

            def faces(metas: list[dict] = metas) -> Iterator[Image.Image]:
                for meta in metas:
                    yield from _cached_faces(folders[meta["id"]], meta["face_files"])

            attributes = labeler.label_speaker(speaker, faces())
            cached[speaker] = [attributes.gender, attributes.race]
        labels[speaker] = Attributes(*cached[speaker])
    cache_path.write_text(json.dumps(cached, ensure_ascii=False, indent=0))
    return labels


@dataclass
class PrepareResult:
    """What `prepare` did: where the dataset is and its report."""

    out: Path
    report: dict[str, Any] = field(default_factory=dict)


def prepare(config: PrepareConfig) -> PrepareResult:
    """Run the whole pipeline (resumable); writes ``config.out`` and ``report.json`` and returns the report."""
    start = time.monotonic()
    out = Path(config.out)
    work_root = out / ".work"
    fingerprint = config.item_fingerprint()
    work = work_root / f"items-{fingerprint}"
    work.mkdir(parents=True, exist_ok=True)

    items = discover(config.source, config.root, config.lrs3_subsets)
    if config.limit is not None:
        items = items[: config.limit]
    # Build the detector and the labeller up front: a missing model must fail now, not after hours of work.
    detector = _make_detector(config)
    labeler = build_labeler(config.labeler, config.labeler_weights)

    folders = {item.id: _item_dir(work, item.id) for item in items}
    metas: dict[str, dict] = {}
    todo = []
    for item in items:
        cached = _read_cached(folders[item.id])
        if cached is not None and not (config.retry_skipped and cached.get("status") == "skipped"):
            metas[item.id] = cached
        else:
            todo.append(item)
    process_start = time.monotonic()
    for meta in _process_all(todo, config, work, detector):
        metas[meta["id"]] = meta
    processing_seconds = time.monotonic() - process_start
    processed_now = len(todo)

    kept = [metas[item.id] for item in items if metas[item.id]["status"] == "ok"]
    skipped = [metas[item.id] for item in items if metas[item.id]["status"] != "ok"]
    labels = _label_speakers(kept, labeler, work_root, fingerprint, folders)
    for meta in kept:
        attributes = labels[meta["speaker"]]
        meta["gender"], meta["race"] = attributes.gender, attributes.race

    assignment = assign_splits(
        [(m["id"], m["speaker"], bool(m.get("unseen"))) for m in kept],
        seed=config.seed,
        validation_fraction=config.validation_fraction,
        test_seen_fraction=config.test_seen_fraction,
        unseen_speaker_fraction=config.unseen_speaker_fraction,
        validation_unseen_share=config.validation_unseen_share,
    )
    by_split: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for meta in kept:  # kept is in id order, so every split is too
        by_split[assignment[meta["id"]]].append(meta)

    if not config.progress:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    write_dataset(by_split, folders, out, work)
    report = build_report(
        config, by_split, skipped, len(items), processed_now, processing_seconds, time.monotonic() - start
    )
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return PrepareResult(out=out, report=report)
