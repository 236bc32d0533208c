"""Do bf16 and float32 training follow the same loss curves? Compares two runs' TensorBoard scalars side by side.

Make the two runs (same config, data, seed and steps; only the precision differs), then compare them:

    for p in no bf16; do
      python train/train.py --config train/configs/offline-cpu-gta.yaml --data data/offline --init data/joe-init \
          --output runs/cmp-$p --max_steps 200 --mixed_precision $p --log_every 10 --eval_every 100 \
          --media_every 100000 --checkpoint_every 100000 --no-progress_bar
    done
    python benchmarks/bench_precision_curves.py runs/cmp-no runs/cmp-bf16

For each training loss: the mean of the first and of the second half of the logged values in each run, the
largest difference between the runs at the same step, and the step-to-step noise of the first run (standard
deviation of consecutive differences), which the difference should stay well under; then the last validation
values and the speed (steps per second) of each run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def scalars(run: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(run.rglob("events.out.tfevents*"))
    if not files:
        raise SystemExit(f"No TensorBoard events under {run}: is it a train.py output folder?")
    out: dict[str, dict[int, float]] = {}
    for file in files:
        events = EventAccumulator(str(file))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            out.setdefault(tag, {}).update({e.step: e.value for e in events.Scalars(tag)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path, help="the float32 run's output folder")
    parser.add_argument("candidate", type=Path, help="the bf16 run's output folder")
    args = parser.parse_args(argv)
    a, b = scalars(args.reference), scalars(args.candidate)
    print(
        f"{'loss':28s} {'ref first/second half':>24s} {'cand first/second half':>24s} {'max |diff|':>11s} {'noise':>9s}"
    )
    for tag in sorted(t for t in set(a) & set(b) if t.startswith("train/loss/")):
        steps = sorted(set(a[tag]) & set(b[tag]))
        if len(steps) < 4:
            continue
        x, y = np.array([a[tag][s] for s in steps]), np.array([b[tag][s] for s in steps])
        half = len(steps) // 2
        noise = float(np.std(np.diff(x)))
        print(
            f"{tag.removeprefix('train/loss/'):28s} {x[:half].mean():11.4g} / {x[half:].mean():<10.4g} "
            f"{y[:half].mean():11.4g} / {y[half:].mean():<10.4g} {np.abs(x - y).max():11.3g} {noise:9.3g}"
        )
    for tag in sorted(t for t in set(a) & set(b) if t.startswith("val/")):
        last = max(set(a[tag]) & set(b[tag]), default=None)
        if last is not None:
            print(f"{tag:45s} step {last}: {a[tag][last]:.4g} vs {b[tag][last]:.4g}")
    for tag in ("speed/steps_per_second",):
        if tag in a and tag in b:
            ra, rb = np.median(list(a[tag].values())), np.median(list(b[tag].values()))
            print(f"steps per second (median): {ra:.3f} vs {rb:.3f} ({rb / ra:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
