"""The offline corpus's faces: real labelled photos read from three face sets, cropped into five views each.

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
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

from ftv_model.attributes import GENDER_LABELS, MISSING_LABEL, RACE_LABELS
from ftv_model.face_detection import FaceBox, FaceDetector, crop_face, load_image
from ftv_train.data.dataset_format import label_id

__all__ = [
    "LICENCES",
    "MIN_VIEWS",
    "SOURCES",
    "VIEWS",
    "Identity",
    "discover_identities",
    "identity_views",
    "small_selection",
]

VIEWS = 5
MIN_VIEWS = 2

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


@dataclass(frozen=True)
class Identity:
    """One real person: the speaker id, their photos and their labels (ids of GENDER_LABELS/RACE_LABELS or -1)."""

    speaker: str
    source: str
    images: tuple[str, ...]
    gender: int
    race: int
    age: float | None


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
                    gender=label_id(row["face_gender"].strip().lower(), GENDER_LABELS),
                    race=label_id(LONDON_RACES.get(row["face_eth"].strip().lower()), RACE_LABELS),
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
                    gender=label_id(str(entry.get("gender", "")).lower(), GENDER_LABELS),
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
                race=label_id(UTK_RACES.get(race), RACE_LABELS),
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


def _spread_order(identity: Identity) -> str:
    """A fixed pseudo-random order: UTKFace ids sort by age, so taking the first N would take the toddlers."""
    return hashlib.sha1(f"ftv-subset:{identity.speaker}".encode()).hexdigest()


def small_selection(identities: list[Identity], count: int, spread: bool = False) -> list[Identity]:
    """A balanced few: round-robin over (source, gender) groups, so a tiny corpus still has both genders.

    ``spread``: take each group in a fixed hashed order, so a subset spans the group's ages rather than its first file
    names (``--identities``); without it, the first names (``--small``: the dozen the tests are written against)."""
    groups: dict[tuple[str, int], list[Identity]] = defaultdict(list)
    for identity in identities:
        groups[(identity.source, identity.gender)].append(identity)
    ordered = [sorted(groups[key], key=_spread_order) if spread else groups[key] for key in sorted(groups)]
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
