"""What every ftv model card shares, in one home: front matter, what the model is, the licences of its parts, the
sentence on what a checkpoint folder holds, and the Markdown pieces the cards are made of.

Each card is written where its facts are known, from these parts: a training export's card
(`ftv_train.training.model_card`), an inference export's (`export_inference`: the training card, its files sentence
made true), a Piper voice converted into an FTV checkpoint (`piper_import`) and a voice exported for Piper runtimes
(`piper_export`). Light on purpose (no torch), so the training side can write cards without loading a model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

PAPER_TITLE = (
    "Progressive Facial Granularity Aggregation with Bilateral Attribute-based Enhancement for Face-to-Speech Synthesis"
)
PAPER_AUTHORS = "Yejin Jeon, Youngjae Kim, Jihyun Lee, Hyounghun Kim, Gary Geunbae Lee"

# What an ftv model is, in the words every card uses for it.
TITLE = "FTV: face-to-voice speech synthesis"
WHAT_IT_DOES = "speaks typed text in a voice inferred from a photo of a face"
TAGS = ("text-to-speech", "face-to-voice", "vits", "speech-synthesis", "ftv")

# The licences of the parts a card names, so that every card cites them alike.
FTV_CODE_LICENCE = "Apache-2.0"
PIPER_CODE_LICENCE = "MIT"
JOE_VOICE_LICENCE = "CC0"  # the recordings of the Piper joe voice, the bundled checkpoint's backbone
LICENCE_HEADER = ("part", "licence")
FTV_CODE_ROW = ("ftv's code", FTV_CODE_LICENCE)

CONSENT_NOTE = (
    "Only use it with the consent of the person whose face it came from. Audio made with it is synthetic speech: say "
    "so where it matters."
)

# What a checkpoint folder holds: a training export (train.py's final/) or an inference-only one
# (`export_inference`). Each file the inference sentence names is written by `export_inference` (tests check it).
FOLDER_CONTENTS = ("training", "inference")
TRAINING_FILES_SENTENCE = (
    "The files hold the generator (`FTVModel`), its processor (`FTVProcessor`) and, under `discriminator/`, "
    "the GAN discriminator, so training can be continued (`train/train.py --init`)."
)
INFERENCE_FILES_SENTENCE = (
    "The files hold the generator (`FTVModel`: `config.json`, `model.safetensors`) without its training-only modules "
    "and its processor (`FTVProcessor`: `processor_config.json`, `tokenizer_config.json`, `vocab.json`): an "
    "inference-only export, with no posterior encoder and no discriminator, so training cannot be continued from it."
)
# A card's sentence on what the files hold, to the end of its paragraph.
FILES_PARAGRAPH = re.compile(r"The files hold\b.*?(?=\n\s*\n|\Z)", re.DOTALL)


def files_sentence(holds: str = "training") -> str:
    """What the card says the folder holds: `holds` is "training" (model, processor and `discriminator/`) or
    "inference" (no discriminator, no posterior encoder)."""
    if holds == "training":
        return TRAINING_FILES_SENTENCE
    if holds == "inference":
        return INFERENCE_FILES_SENTENCE
    raise ValueError(f"holds must be one of {', '.join(FOLDER_CONTENTS)}, got {holds!r}")


def with_files_sentence(card: str, holds: str) -> str:
    """`card` with its sentence on what the files hold replaced by the one for `holds` (added when it has none)."""
    sentence = files_sentence(holds)
    card, replaced = FILES_PARAGRAPH.subn(lambda _: sentence, card, count=1)
    return card if replaced else f"{card.rstrip()}\n\n{sentence}\n"


def folder_holds(directory: str | Path) -> str:
    """What `directory` holds: "inference" when its config says `inference_only`, else "training"."""
    try:
        config = json.loads((Path(directory) / "config.json").read_text())
    except (OSError, ValueError):
        return "training"
    return "inference" if config.get("inference_only") else "training"


def front_matter(licence: str | None = None, licence_name: str | None = None, extra_tags: Sequence[str] = ()) -> str:
    """The Hub's YAML header: licence (when known), library, pipeline and the ftv tags plus `extra_tags`."""
    lines = ["---"]
    if licence is not None:
        lines.append(f"license: {licence}")
    if licence_name is not None:
        lines.append(f"license_name: {licence_name}")
    lines += ["library_name: transformers", "pipeline_tag: text-to-speech", "tags:"]
    lines += [f"- {tag}" for tag in (*TAGS, *extra_tags)]
    return "\n".join([*lines, "---"])


def format_value(value: Any) -> str:
    """A table cell: floats to 4 significant digits, anything else as is."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(rows: Iterable[tuple[str, Any]], header: tuple[str, str] = ("", "")) -> str:
    """A two-column Markdown table (no header text by default)."""
    lines = ["|" + "|".join(f" {name} " if name else " " for name in header) + "|", "|---|---|"]
    lines += [f"| {name} | {format_value(value)} |" for name, value in rows]
    return "\n".join(lines)


def licences_section(rows: Iterable[tuple[str, str]], note: str = "") -> list[str]:
    """`## Licences`: one row per part of the model and the licence it carries, then `note`; as card lines."""
    lines = ["## Licences", "", table(rows, LICENCE_HEADER), ""]
    return lines + [note, ""] if note else lines


def quoted(text: str) -> list[str]:
    """`text` (another card) as Markdown quote lines."""
    return [f"> {line}" if line else ">" for line in text.splitlines()]


__all__ = [
    "CONSENT_NOTE",
    "FILES_PARAGRAPH",
    "FOLDER_CONTENTS",
    "FTV_CODE_LICENCE",
    "FTV_CODE_ROW",
    "INFERENCE_FILES_SENTENCE",
    "JOE_VOICE_LICENCE",
    "PAPER_AUTHORS",
    "PAPER_TITLE",
    "PIPER_CODE_LICENCE",
    "TAGS",
    "TITLE",
    "TRAINING_FILES_SENTENCE",
    "WHAT_IT_DOES",
    "files_sentence",
    "folder_holds",
    "format_value",
    "front_matter",
    "licences_section",
    "quoted",
    "table",
    "with_files_sentence",
]
