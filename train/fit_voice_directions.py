"""Find a checkpoint's named voice directions (pitch, age, masculinity) from its training corpus (see
ftv_train/training/voice_directions.py).

    python train/fit_voice_directions.py --model checkpoints/ftv-offline --data data/offline --write

The same as the console command `ftv-fit-voice-directions`.
"""

from ftv_train.training.voice_directions import main

if __name__ == "__main__":
    raise SystemExit(main())
