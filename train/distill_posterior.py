"""Fit the posterior encoder of an imported voice to the voice's own latents (stage 2 of the offline recipe).

    python train/distill_posterior.py --model data/joe-face-init --data data/offline --out data/joe-distilled

See ftv_train/training/posterior_distillation.py for why. Writes the full model and posterior_distillation.json (the
held-out negative log-likelihood before and after). The same as the console command `ftv-distill-posterior`.
"""

from ftv_train.training.posterior_distillation import main

if __name__ == "__main__":
    raise SystemExit(main())
