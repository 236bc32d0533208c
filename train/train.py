"""Train the face-to-voice model (GAN training as VITS) on a dataset written by train/prepare_data.py.

    accelerate launch train/train.py --config train/configs/paper.yaml --data data/lrs3 --output runs/ftv
    accelerate launch --multi_gpu --num_processes 8 train/train.py --config train/configs/paper.yaml --data ...
    accelerate launch train/train.py --config train/configs/paper.yaml --data ... --output runs/ftv --resume latest
    python train/train.py --config train/configs/tiny.yaml --data DIR --output runs/tiny --max_steps 20  # CPU smoke

Any setting of ftv_train/training/config.py can be overridden (`--batch_size 8`, `--no-multiview`,
`--discriminator_width 0.5`, `--set model.segment_size=4096`); `--init DIR_OR_HUB_ID` warm-starts, `--push_to_hub
org/name` publishes OUTPUT/final with a model card. SIGTERM/SIGINT save a checkpoint and exit with 128 + signal;
SIGUSR1 refreshes OUTPUT/final without stopping. The same as the console command `ftv-train`.
"""

from ftv_train.training.trainer import main

if __name__ == "__main__":
    raise SystemExit(main())
