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
face_pretraining.json (the held-out accuracy curve) and, with --init, the whole checkpoint. The same as the console
command `ftv-pretrain-face-encoder`.
"""

from ftv_train.training.face_pretraining import main

if __name__ == "__main__":
    raise SystemExit(main())
