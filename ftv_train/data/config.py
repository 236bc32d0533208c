"""The settings of data preparation: what `ftv_train.data.preparation.prepare` writes depends on these alone.

One owner per setting: the command line (`ftv_train.data.cli`) and the offline corpus (split fractions, report)
take their defaults from `PrepareConfig`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ftv_train.common.audio import SAMPLE_RATE

__all__ = ["FACE_FORMATS", "PIPELINE_VERSION", "PrepareConfig"]

# Bump when a change makes cached items stale (new crop, new audio processing...).
PIPELINE_VERSION = 1

FACE_FORMATS = {"png": ("PNG", {}), "jpeg": ("JPEG", {"quality": 95})}


@dataclass
class PrepareConfig:
    """Everything that decides what `prepare` writes (the flags of `ftv-prepare-data`, `ftv_train.data.cli`)."""

    source: str
    root: str
    out: str
    detector: str = "s3fd"
    detector_weights: str | None = None
    device: str = "cpu"
    labeler: str = "deepface"
    labeler_weights: str | None = None
    views: int = 5
    face_size: int = 128
    margin: float = 0.25
    face_format: str = "png"  # png: lossless, as the app feeds the model; jpeg (quality 95): ~4x smaller
    candidate_frames: int = 0  # frames searched for faces per video; 0 = 3 x views (at least 15)
    min_face_size: float = 32.0
    seed: int = 0
    workers: int = 1
    normalize_loudness: bool = False
    loudness_target: float = -23.0
    min_duration: float = 0.5
    max_duration: float | None = 20.0
    silence_dbfs: float = -50.0
    language: str = "en-us"
    validation_fraction: float = 0.1
    test_seen_fraction: float = 0.05
    unseen_speaker_fraction: float = 0.1  # speakers held out from training (validation_unseen + test_unseen)
    validation_unseen_share: float = 0.5  # of the held-out speakers: validation_unseen (ftv_train.data.splits)
    lrs3_subsets: tuple[str, ...] = ("trainval", "test")
    limit: int | None = None
    retry_skipped: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.views < 1:
            raise ValueError(f"--views must be >= 1, got {self.views}")
        if self.face_size < 16:
            raise ValueError(f"--face-size must be >= 16, got {self.face_size}")
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {self.workers}")
        if self.face_format not in FACE_FORMATS:
            raise ValueError(f"--face-format must be one of {', '.join(FACE_FORMATS)}, got {self.face_format!r}")
        self.lrs3_subsets = tuple(self.lrs3_subsets)

    @property
    def num_candidates(self) -> int:
        return self.candidate_frames or max(3 * self.views, 15)

    def item_fingerprint(self) -> str:
        """Hash of the settings that change a processed item: cached items are reused only when it matches."""
        relevant = {
            "version": PIPELINE_VERSION,
            "sample_rate": SAMPLE_RATE,
            "detector": self.detector,
            "detector_weights": Path(self.detector_weights).name if self.detector_weights else None,
            **{
                name: getattr(self, name)
                for name in (
                    "views",
                    "face_size",
                    "margin",
                    "face_format",
                    "num_candidates",
                    "min_face_size",
                    "seed",
                    "normalize_loudness",
                    "loudness_target",
                    "min_duration",
                    "max_duration",
                    "silence_dbfs",
                    "language",
                )
            },
        }
        return hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]
