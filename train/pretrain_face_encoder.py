"""Train the face encoder and face attribute head on the dataset's face labels (L_face only), before train.py.

    python train/pretrain_face_encoder.py --init data/joe-init --data data/offline --out data/joe-face-init

On a GPU machine without the dataset: pack the faces here, train the face branch there, merge it back here:

    python train/pretrain_face_encoder.py --data data/offline --write-pack faces.npz
    python train/pretrain_face_encoder.py --model-config data/joe-init/config.json --data faces.npz \
        --out face-run --device cuda --batch-size 256 --learning-rate 5e-4 --weight-decay 0.1 \
        --warmup-steps 300 --steps 3000 --face-drop-path-rate 0.3 --face-dropout 0.1   # on the GPU machine
    python train/pretrain_face_encoder.py --init data/joe-init --data data/offline --out data/joe-face-init \
        --load-face-branch face-run/face_branch.safetensors --steps 0            # merge + held-out accuracy

See ftv_train/training/face_pretraining.py for why this stage exists. Writes face_branch.safetensors,
face_pretraining.json (the held-out accuracy curve) and, with --init, the whole checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftv_train.training.face_pretraining import FacePretrainConfig, pretrain_face_encoder, write_face_pack  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="prepared dataset with face labels, or a face pack (.npz)")
    parser.add_argument("--out", help="output directory")
    parser.add_argument("--init", help="FTV checkpoint directory (e.g. a converted Piper voice)")
    parser.add_argument("--model-config", help="config.json to build a fresh model from (instead of --init)")
    parser.add_argument("--load-face-branch", help="face_branch.safetensors to start from")
    parser.add_argument("--write-pack", help="only write the faces and labels of --data to this .npz and stop")
    defaults = FacePretrainConfig(data="", out="")
    for name in ("steps", "batch_size", "learning_rate", "weight_decay", "warmup_steps", "eval_every", "seed"):
        value = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--max-minutes", type=float, help="fit the step count to this time budget")
    parser.add_argument("--face-drop-path-rate", type=float, help="NesT stochastic depth for this stage")
    parser.add_argument("--face-dropout", type=float, help="NesT dropout for this stage")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--train-split", default=defaults.train_split)
    parser.add_argument("--eval-split", default=defaults.eval_split, help="held-out identities for the accuracy")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if args.write_pack:
        path = write_face_pack(args.data, args.write_pack, (args.train_split, args.eval_split))
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
        return 0
    if not args.out:
        parser.error("--out is required")
    options = {k: v for k, v in vars(args).items() if k != "write_pack"}
    config = FacePretrainConfig(**options)
    report = pretrain_face_encoder(config)
    print(json.dumps(report["curve"][-1]))
    print(f"wrote {config.out} ({report['seconds']:.0f} s, {report['steps']} steps on {report['device']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
