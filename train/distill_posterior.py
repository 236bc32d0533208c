"""Fit the posterior encoder of an imported voice to the voice's own latents (stage 2 of the offline recipe).

    python train/distill_posterior.py --model data/joe-face-init --data data/offline --out data/joe-distilled

See ftv_train/training/posterior_distillation.py for why. Writes the full model and posterior_distillation.json (the
held-out negative log-likelihood before and after).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftv_train.training.posterior_distillation import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
