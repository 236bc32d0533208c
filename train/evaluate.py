"""`python train/evaluate.py --help`: see ftv_train/evaluation/cli.py (also the `ftv-evaluate` command)."""

from ftv_train.evaluation.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
