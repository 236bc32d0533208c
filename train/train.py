"""Train the face-to-voice model (GAN training as VITS) on a dataset written by train/prepare_data.py.

    accelerate launch train/train.py --config train/configs/paper.yaml --data data/lrs3 --output runs/ftv
    accelerate launch --multi_gpu --num_processes 8 train/train.py --config train/configs/paper.yaml --data ...
    accelerate launch train/train.py --config train/configs/paper.yaml --data ... --output runs/ftv --resume latest
    python train/train.py --config train/configs/tiny.yaml --data DIR --output runs/tiny --max_steps 20  # CPU smoke

Any setting of ftv_train/training/config.py can be overridden (`--batch_size 8`, `--no-multiview`,
`--set model.discriminator_width=0.5`); `--init DIR_OR_HUB_ID` warm-starts, `--push_to_hub org/name` publishes
OUTPUT/final with a model card. SIGTERM/SIGINT save a checkpoint and exit with 128 + signal; SIGUSR1 refreshes
OUTPUT/final without stopping.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from the repo root without installing

from ftv_train.training.trainer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
