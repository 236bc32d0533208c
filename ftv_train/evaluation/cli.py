"""Evaluate a trained FTV model on a prepared dataset split and write a paper-style report.

    python train/evaluate.py --model runs/ftv/final --data data/lrs3 --split test_unseen --out reports/unseen

Writes OUT/report.md, OUT/metrics.json, OUT/audio/ (the synthesized and real wavs) and OUT/plots/. Re-running
with the same OUT resumes: finished utterances are read from OUT/cache. Lists (--split, --systems) are comma
separated. See ftv_train/evaluation/runner.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ftv_train.evaluation.arguments import argument_parser, parse_settings
from ftv_train.evaluation.config import EvalConfig
from ftv_train.evaluation.runner import run_evaluation


@dataclass
class CommandArguments:
    """Settings of the command, not of the evaluation (so not saved into metrics.json)."""

    threads: int | None = field(default=None, metadata={"help": "torch CPU threads"})


def parse_args(argv: list[str] | None = None) -> tuple[EvalConfig, CommandArguments]:
    config, command = parse_settings(argument_parser((EvalConfig, CommandArguments), __doc__), argv)
    return config, command


def main(argv: list[str] | None = None) -> int:
    config, command = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if command.threads:
        import torch

        torch.set_num_threads(command.threads)
    results = run_evaluation(config)
    print((config.out / "report.md").read_text())
    print(f"wrote {config.out / 'report.md'} and {config.out / 'metrics.json'}; run stats {results['run_stats']}")
    return 0
