"""Replace a model's decoder by a mel adapter + HiFi-GAN V1's universal generator, trained on the old decoder's speech.

    python train/distill_mel_adapter.py --model checkpoints/ftv-offline --data data/offline --out data/ftv-universal

See ftv_train/training/mel_adapter_distillation.py for why. Writes the model and mel_adapter_distillation.json (the
held-out L1 before and after). The same as the console command `ftv-distill-mel-adapter`.
"""

from ftv_train.training.mel_adapter_distillation import main

if __name__ == "__main__":
    raise SystemExit(main())
