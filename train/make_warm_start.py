"""A trainable warm start from an inference export (see ftv_train/training/warm_start.py).

    python train/make_warm_start.py --init data/joe-init --weights checkpoints/ftv-offline --out data/ftv-warm

The same as the console command `ftv-make-warm-start`.
"""

from ftv_train.training.warm_start import main

if __name__ == "__main__":
    raise SystemExit(main())
