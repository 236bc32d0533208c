"""`python train/calibrate_face_head.py --help`: see ftv_train/evaluation/calibration.py (also the
`ftv-calibrate-face-head` command)."""

from ftv_train.evaluation.calibration import main

if __name__ == "__main__":
    raise SystemExit(main())
