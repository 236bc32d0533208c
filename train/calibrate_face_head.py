"""Fit the face attribute head's temperatures on held-out identities (validation_unseen) and report its ECE.

    python train/calibrate_face_head.py --model checkpoints/ftv-offline --data data/offline --write

See ftv_train/evaluation/calibration.py. With --write the temperatures go into the model's config.json (the demo,
the CLI and the API then show calibrated readings) and the report into face_calibration.json beside it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftv_train.evaluation.calibration import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
