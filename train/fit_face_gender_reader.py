"""Fit a checkpoint's face gender reader, which anchors F's gender where the model's own reading disagrees (see
ftv_train/training/face_gender_reader.py).

    python train/fit_face_gender_reader.py --model checkpoints/ftv-offline --data data/offline --write

The same as the console command `ftv-fit-face-gender-reader`.
"""

from ftv_train.training.face_gender_reader import main

if __name__ == "__main__":
    raise SystemExit(main())
