"""The run's cache: per-utterance scores and wavs under OUT, so an interrupted run resumes where it stopped.

The record format is part of the contract: caches written by earlier versions stay valid.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from pathlib import Path
from typing import Any

from ftv_train.evaluation.data import Utterance


def digest(obj: Any) -> str:
    """A short stable hash of JSON-able settings: the stamp that says whether cached work is still current."""
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

    def reference_path(self, utt: Utterance) -> Path:
        """The speaker embedding of a real recording that stands for its speaker's voice."""
        return self.out / "cache" / "reference" / utt.split / f"{safe_name(utt.id)}.json"

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
