"""Evaluate a trained FTV model on a prepared dataset split and write a paper-style report.

    python train/evaluate.py --model runs/ftv/final --data data/lrs3 --split test_unseen --out reports/unseen

Writes OUT/report.md, OUT/metrics.json, OUT/audio/ (the synthesized and real wavs) and OUT/plots/. Re-running
with the same OUT resumes: finished utterances are read from OUT/cache. See ftv_train/evaluation/runner.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from the repo root without installing

import argparse  # noqa: E402
import logging  # noqa: E402

from ftv_train.evaluation.runner import SYSTEMS, EvalConfig, run_evaluation  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="save_pretrained directory of FTVModel + FTVProcessor")
    p.add_argument("--baseline-model", type=Path, help="a second model scored as the 'baseline' row (real faces)")
    p.add_argument("--data", type=Path, required=True, help="prepared dataset (datasets.save_to_disk directory)")
    p.add_argument("--split", default="test_unseen", help="split(s), comma separated, e.g. test_seen,test_unseen")
    p.add_argument("--out", type=Path, required=True, help="output directory (reused to resume)")
    p.add_argument(
        "--max-utterances", type=int, help="per split, round-robin over the speakers in a --seed-ed random order"
    )
    p.add_argument("--recognizer", default="whisper", help="whisper (bundled tiny.en) or wav2vec2 (the paper's)")
    p.add_argument("--recognizer-path", help="local model directory for the recogniser (offline wav2vec2)")
    p.add_argument("--naturalness", default="auto", help="auto, dnsmos, utmos, or a UTMOS hub dir / checkpoint")
    p.add_argument("--utmos-path", help="local clone of tarepan/SpeechMOS (hubconf.py, optionally a *.pt)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise-scale", type=float, help="prior sampling noise (default: the model config's own)")
    p.add_argument("--noise-scale-duration", type=float, help="duration noise (default: the model config's own)")
    p.add_argument("--speaking-rate", type=float, help="> 1 speaks faster (default: the model's own)")
    p.add_argument("--abx-k", type=int, default=3, help="other speakers per ABX trial (chance 1/(k+1))")
    p.add_argument("--refs-per-speaker", type=int, default=5, help="real recordings per speaker as its reference")
    p.add_argument("--gender-classifier", type=Path, help="saved voice-gender classifier (JSON); else fitted")
    p.add_argument("--gender-fit-split", default="train", help="split with real labelled speech to fit it on")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="rows to evaluate, comma separated")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = EvalConfig(
        data=args.data,
        out=args.out,
        model=args.model,
        baseline_model=args.baseline_model,
        splits=[s.strip() for s in args.split.split(",") if s.strip()],
        max_utterances=args.max_utterances,
        recognizer=args.recognizer,
        recognizer_path=args.recognizer_path,
        naturalness=args.naturalness,
        utmos_path=args.utmos_path,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
        noise_scale=args.noise_scale,
        noise_scale_duration=args.noise_scale_duration,
        speaking_rate=args.speaking_rate,
        abx_k=args.abx_k,
        refs_per_speaker=args.refs_per_speaker,
        gender_classifier=args.gender_classifier,
        gender_fit_split=args.gender_fit_split,
        systems=[s.strip() for s in args.systems.split(",") if s.strip()],
        plots=not args.no_plots,
    )
    results = run_evaluation(config)
    print((config.out / "report.md").read_text())
    print(f"wrote {config.out / 'report.md'} and {config.out / 'metrics.json'}; run stats {results['run_stats']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
