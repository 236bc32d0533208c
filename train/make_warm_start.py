"""A trainable warm start from an inference export (see ftv_train/training/warm_start.py).

python train/make_warm_start.py --init data/joe-init --weights checkpoints/ftv-offline --out data/ftv-warm
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftv_train.training.warm_start import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
