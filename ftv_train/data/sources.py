"""Corpus layouts -> a flat list of `SourceItem`s (one utterance each) for the data preparation pipeline.

Discovery only lists files and reads transcripts; it never decodes media, so it is fast and a bad file is found
(and reported) when its item is processed. An unreadable transcript is kept as ``text_error`` for the same reason.

- ``lrs3``: ``ROOT/{pretrain,trainval,test}/SPEAKER/NNNNN.mp4`` with ``NNNNN.txt`` whose first line is
  ``Text:  WORDS``. Speakers under ``test/`` are LRS3's held-out speakers and become ``test_unseen``.
- ``grid``: ``ROOT/sN/*.mpg|*.mp4`` (any depth). Transcripts come from a ``transcripts.tsv`` beside the videos
  (``file<TAB>sentence``), else an ``.align`` file (beside the video, in ``align/``, or ``ROOT/alignments/sN/``),
  else the GRID file-name code (``bbaf2a`` = "bin blue at f two again"). A ``.wav`` with the same name beside the
  video (GRID's studio audio) is used instead of the video's compressed track.
- ``manifest``: a CSV with a header and columns ``text,speaker`` plus either ``video`` or ``audio`` and
  ``image``/``images`` (several paths separated by ``;`` or ``|``); optional ``id``. Relative paths are relative
  to the CSV's folder.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SOURCES",
    "SourceItem",
    "decode_grid_code",
    "discover",
    "discover_grid",
    "discover_lrs3",
    "discover_manifest",
]

SOURCES = ("lrs3", "grid", "manifest")
LRS3_SUBSETS = ("pretrain", "trainval", "test")
VIDEO_SUFFIXES = (".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".mkv", ".webm")


@dataclass(frozen=True)
class SourceItem:
    """One utterance to prepare: where its media are, its transcript, and whose voice it is."""

    id: str
    speaker: str
    text: str | None
    video: str | None = None
    audio: str | None = None
    images: tuple[str, ...] = ()
    text_error: str | None = None
    unseen: bool = False  # the corpus itself holds this speaker out (LRS3 test/)

    @property
    def path(self) -> str:
        """The main file, for reports."""
        return self.video or self.audio or (self.images[0] if self.images else "")


# --------------------------------------------------------------------------------------------------------------------
# LRS3


def _read_lrs3_text(path: Path) -> tuple[str | None, str | None]:
    try:
        with path.open(encoding="utf-8") as handle:
            first = handle.readline()
    except FileNotFoundError:
        return None, f"no transcript file {path.name}"
    except (OSError, UnicodeDecodeError) as error:
        return None, f"cannot read {path.name}: {error}"
    match = re.match(r"\s*Text:\s*(.*)", first)
    if not match or not match.group(1).strip():
        return None, f"{path.name} has no 'Text:' first line"
    return match.group(1).strip(), None


def discover_lrs3(root: str | os.PathLike[str], subsets: Iterable[str] = ("trainval", "test")) -> list[SourceItem]:
    """LRS3 items of the given subsets (``test`` speakers marked unseen); ROOT may also be one subset folder."""
    root = Path(root)
    subset_dirs = [(name, root / name) for name in subsets if (root / name).is_dir()]
    if not subset_dirs:
        if any(p.suffix == ".mp4" for p in root.glob("*/*.mp4")):
            subset_dirs = [(root.name, root)]
        else:
            raise FileNotFoundError(f"{root} has none of the LRS3 subsets {list(subsets)} (ROOT/SUBSET/SPEAKER/*.mp4).")
    items = []
    for subset, folder in subset_dirs:
        for video in sorted(folder.glob("*/*.mp4")):
            text, error = _read_lrs3_text(video.with_suffix(".txt"))
            speaker = video.parent.name
            items.append(
                SourceItem(
                    id=f"{subset}/{speaker}/{video.stem}",
                    speaker=speaker,
                    text=text,
                    text_error=error,
                    video=str(video),
                    unseen=subset == "test",
                )
            )
    return items


# --------------------------------------------------------------------------------------------------------------------
# GRID

_GRID_WORDS = (
    {"b": "bin", "l": "lay", "p": "place", "s": "set"},
    {"b": "blue", "g": "green", "r": "red", "w": "white"},
    {"a": "at", "b": "by", "i": "in", "w": "with"},
    {c: c for c in "abcdefghijklmnopqrstuvxyz"},  # GRID has no letter w
    {
        "z": "zero",
        "0": "zero",
        "1": "one",
        "2": "two",
        "3": "three",
        "4": "four",
        "5": "five",
        "6": "six",
        "7": "seven",
        "8": "eight",
        "9": "nine",
    },
    {"a": "again", "n": "now", "p": "please", "s": "soon"},
)


def decode_grid_code(stem: str) -> str | None:
    """GRID's file-name code -> its sentence (``bbaf2a`` -> "bin blue at f two again"); None if it is not one."""
    code = stem.lower()
    if len(code) != 6:
        return None
    words = [table.get(char) for table, char in zip(_GRID_WORDS, code)]
    return None if None in words else " ".join(words)  # type: ignore[arg-type]


def _read_align(path: Path) -> str | None:
    try:
        words = [line.split()[2] for line in path.read_text(encoding="utf-8").splitlines() if len(line.split()) >= 3]
    except (OSError, UnicodeDecodeError):
        return None
    words = [word for word in words if word not in ("sil", "sp")]
    return " ".join(words) or None


def _grid_speaker(video: Path, root: Path) -> str:
    for parent in video.relative_to(root).parents:
        if re.fullmatch(r"s\d+", parent.name):
            return parent.name
    return video.parent.name if video.parent != root else root.name


def _grid_transcript(video: Path, root: Path, speaker: str, tsv_cache: dict[Path, dict[str, str]]) -> str | None:
    folder = video.parent
    if folder not in tsv_cache:
        table: dict[str, str] = {}
        tsv = folder / "transcripts.tsv"
        if tsv.is_file():
            for line in tsv.read_text(encoding="utf-8").splitlines():
                parts = line.split("\t")
                if len(parts) >= 2 and parts[1].strip():
                    table[parts[0].strip()] = parts[1].strip()
                    table[Path(parts[0].strip()).stem] = parts[1].strip()
        tsv_cache[folder] = table
    table = tsv_cache[folder]
    if video.name in table or video.stem in table:
        return table.get(video.name) or table[video.stem]
    for align in (
        folder / f"{video.stem}.align",
        folder / "align" / f"{video.stem}.align",
        root / "alignments" / speaker / f"{video.stem}.align",
        root / "align" / speaker / f"{video.stem}.align",
    ):
        if align.is_file():
            text = _read_align(align)
            if text:
                return text
    return decode_grid_code(video.stem)


def discover_grid(root: str | os.PathLike[str]) -> list[SourceItem]:
    """GRID items under ROOT (speakers ``sN`` from the folder names; a flat folder is one speaker)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"GRID root {root} is not a folder.")
    videos = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".mpg", ".mpeg", ".mp4") and p.is_file())
    if not videos:
        raise FileNotFoundError(f"No GRID videos (*.mpg, *.mp4) under {root}.")
    tsv_cache: dict[Path, dict[str, str]] = {}
    items = []
    for video in videos:
        speaker = _grid_speaker(video, root)
        text = _grid_transcript(video, root, speaker, tsv_cache)
        wav = video.with_suffix(".wav")
        items.append(
            SourceItem(
                id=f"{speaker}/{video.stem}",
                speaker=speaker,
                text=text,
                text_error=None if text else f"no transcript for {video.name} (no tsv, .align, or GRID file-name code)",
                video=str(video),
                audio=str(wav) if wav.is_file() else None,
            )
        )
    return items


# --------------------------------------------------------------------------------------------------------------------
# Manifest


def discover_manifest(path: str | os.PathLike[str]) -> list[SourceItem]:
    """Items from a CSV manifest (see the module docstring); PATH may be the CSV or a folder with manifest.csv."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"No manifest CSV at {path}.")
    base = path.parent
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {name.strip().lower() for name in reader.fieldnames or []}
        rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]
    has_images = bool(columns & {"image", "images"})
    if not {"text", "speaker"} <= columns or not ("video" in columns or ("audio" in columns and has_images)):
        raise ValueError(
            f"{path} needs the columns text,speaker and either video or audio,image(s); it has {sorted(columns)}."
        )

    def resolve(value: str) -> str:
        return str((base / value).resolve()) if value and not Path(value).is_absolute() else value

    items = []
    for number, row in enumerate(rows):
        video = resolve(row.get("video", ""))
        images = tuple(
            resolve(p.strip()) for p in re.split(r"[;|]", row.get("images") or row.get("image") or "") if p.strip()
        )
        main = video or row.get("audio", "") or (images[0] if images else f"row{number}")
        item_id = row.get("id") or f"{row['speaker']}/{Path(main).stem}"
        text = row.get("text") or None
        items.append(
            SourceItem(
                id=item_id,
                speaker=row["speaker"] or "unknown",
                text=text,
                text_error=None if text else f"row {number + 2} of {path.name} has an empty text",
                video=video or None,
                audio=resolve(row.get("audio", "")) or None,
                images=images,
            )
        )
    return items


def discover(
    source: str, root: str | os.PathLike[str], lrs3_subsets: Iterable[str] = ("trainval", "test")
) -> list[SourceItem]:
    """Items of a corpus, sorted by id; raises ValueError on duplicate ids (they would overwrite each other)."""
    if source == "lrs3":
        items = discover_lrs3(root, lrs3_subsets)
    elif source == "grid":
        items = discover_grid(root)
    elif source == "manifest":
        items = discover_manifest(root)
    else:
        raise ValueError(f"Unknown source {source!r}; choose one of {', '.join(SOURCES)}.")
    items.sort(key=lambda item: item.id)
    duplicates = sorted(name for name, count in Counter(item.id for item in items).items() if count > 1)
    if duplicates:
        raise ValueError(f"Duplicate item ids {duplicates[:5]}: give the manifest an id column with unique values.")
    return items
