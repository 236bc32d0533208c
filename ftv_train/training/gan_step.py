"""One optimizer step of VITS-style GAN training: a discriminator update on (real, generated.detach()), then a
generator update through the freshly updated discriminator (as VITS), for modules prepared by Accelerate.

Choices made for speed and robustness:

- No host-device synchronisation: losses and gradient norms stay on the device; a step whose gradient norm is not
  finite is skipped inside the fused AdamW kernel (its `found_inf` input, the mechanism GradScaler uses), so
  skipping needs no `.item()` either. The norm is taken after DDP's all-reduce, so every process makes the same
  decision.
- During the generator update the discriminator's parameters stop requiring gradients and the *unwrapped*
  discriminator is called: no wasted weight gradients, no DDP hooks, and no generator-loss gradients leaking into
  the discriminator's accumulated gradients under gradient accumulation.
- The model returns its loss terms separately; the weights that sum them are the training config's
  (`LossWeights`), the only place they are set.
"""

from __future__ import annotations

from typing import Any

import torch
from accelerate import Accelerator
from torch.nn.utils import parametrize

from ftv_model.losses import (
    LossWeights,
    discriminator_loss,
    feature_matching_loss,
    frame_comb_loss,
    generator_adversarial_loss,
)

# Names of the per-step values, in the order of the device tensor the loop accumulates.
TRAIN_VALUES = (
    "loss/generator",
    "loss/discriminator",
    "loss/mel",
    "loss/kl",
    "loss/duration",
    "loss/face_attribute",
    "loss/audio_attribute",
    "loss/adversarial",
    "loss/feature_matching",
    "discriminator/real_score",
    "discriminator/fake_score",
    "loss/frame_comb",
)
NORM_VALUES = ("grad_norm/generator", "grad_norm/discriminator")
MODEL_INPUTS = (
    "input_ids",
    "attention_mask",
    "pixel_values",
    "face_descriptors",
    "waveform",
    "waveform_lengths",
    "gender_labels",
    "race_labels",
)


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keyword arguments of FTVModel's training forward, out of a collated batch."""
    return {key: batch[key] for key in MODEL_INPUTS if key in batch}


class GANStep:
    """The VITS GAN update of one micro-batch, for modules prepared by Accelerate (shared with the benchmark).

    After each optimizer update `norm_g`/`norm_d` hold the gradient norms (after DDP's all-reduce, so equal on
    every process) and `finite_g`/`finite_d` whether the update was applied; all stay on the device.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        generator: torch.nn.Module,
        discriminator: torch.nn.Module,
        optimizer_g: Any,
        optimizer_d: Any,
        loss_weights: LossWeights,
        max_grad_norm: float | None = None,
        sync_free_skip: bool = True,
        adversarial: bool = True,
    ) -> None:
        self.accelerator = accelerator
        self.adversarial = adversarial
        self.generator = generator
        self.disc = discriminator
        self.optimizer_g = optimizer_g
        self.optimizer_d = optimizer_d
        self.loss_weights = loss_weights
        self.max_grad_norm = max_grad_norm
        self.sync_free_skip = sync_free_skip
        self.fp16 = accelerator.mixed_precision == "fp16"
        self.generator_parameters = [p for p in generator.parameters() if p.requires_grad]
        self.discriminator_parameters = [p for p in discriminator.parameters() if p.requires_grad]
        device = accelerator.device
        self.norm_g = self.norm_d = torch.zeros((), device=device)
        self.finite_g = self.finite_d = torch.ones((), device=device, dtype=torch.bool)
        self.last_mels: tuple[torch.Tensor, torch.Tensor] | None = None
        self.hop_length = int(accelerator.unwrap_model(generator).config.hop_length)

    def _optimizer_step(self, optimizer: Any, parameters: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Unscale (fp16), norm / clip, step unless the norm is not finite, zero grads. Returns (norm, finite)."""
        self.accelerator.unscale_gradients(optimizer=optimizer)
        grads = [p.grad for p in parameters if p.grad is not None]
        if self.max_grad_norm is None:
            norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=self.accelerator.device)
        else:
            norm = torch.nn.utils.clip_grad_norm_(parameters, self.max_grad_norm)
        finite = torch.isfinite(norm)
        if self.sync_free_skip:
            optimizer.optimizer.found_inf = (~finite).float()  # fused AdamW skips the update on the device
            optimizer.step()
        elif self.fp16 or bool(finite):  # the GradScaler skips overflowed steps itself
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm.detach(), finite

    def _frame_comb_loss(self, out: Any) -> torch.Tensor:
        """`frame_comb_loss` of the decoder's segment (zero, and not computed, when its weight is 0)."""
        if self.loss_weights.frame_comb_loss_weight == 0:
            return out.mel_loss.new_zeros(())
        return frame_comb_loss(out.predicted_waveform, out.target_waveform, self.hop_length)

    def _reconstruction_loss(self, out: Any, loss_comb: torch.Tensor) -> torch.Tensor:
        """The generator's loss terms other than the discriminator's, summed with the run's weights."""
        return (
            self.loss_weights.reconstruction_loss(
                out.mel_loss, out.kl_loss, out.duration_loss, out.face_attribute_loss, out.audio_attribute_loss
            )
            + self.loss_weights.frame_comb_loss_weight * loss_comb
        )

    def __call__(self, batch: dict[str, torch.Tensor], keep_mels: bool = False) -> torch.Tensor:
        """One micro-batch; returns the per-step values (TRAIN_VALUES order) as one device tensor."""
        accelerator = self.accelerator
        out = self.generator(**model_inputs(batch))
        loss_comb = self._frame_comb_loss(out)

        if self.adversarial:
            loss_g, loss_d, loss_adv, loss_fm, real_score, fake_score = self._adversarial(out, loss_comb)
        else:  # mel / KL / duration / attribute / frame-comb losses only: no discriminator forward or update at all
            loss_g = self._reconstruction_loss(out, loss_comb)
            loss_d = loss_adv = loss_fm = real_score = fake_score = torch.zeros((), device=loss_g.device)
        accelerator.backward(loss_g)
        if accelerator.sync_gradients:
            self.norm_g, self.finite_g = self._optimizer_step(self.optimizer_g, self.generator_parameters)
        if keep_mels:
            self.last_mels = (out.predicted_mel[0].detach().float(), out.target_mel[0].detach().float())
        with torch.no_grad():
            return torch.stack(
                [
                    loss_g.detach().float(),
                    loss_d.detach().float(),
                    out.mel_loss.detach().float(),
                    out.kl_loss.detach().float(),
                    out.duration_loss.detach().float(),
                    out.face_attribute_loss.detach().float(),
                    out.audio_attribute_loss.detach().float(),
                    loss_adv.detach().float(),
                    loss_fm.detach().float(),
                    real_score,
                    fake_score,
                    loss_comb.detach().float(),
                ]
            )

    def _adversarial(self, out: Any, loss_comb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Update the discriminator, then the generator's loss with the adversarial and feature-matching terms."""
        accelerator = self.accelerator
        weights = self.loss_weights
        real, fake = out.target_waveform, out.predicted_waveform
        batch_size = real.shape[0]
        # Discriminator: real and generated audio in one forward.
        scores, _ = self.disc(torch.cat([real, fake.detach()], dim=0))
        real_scores = [score[:batch_size] for score in scores]
        fake_scores = [score[batch_size:] for score in scores]
        loss_d = discriminator_loss(real_scores, fake_scores)
        accelerator.backward(loss_d)
        if accelerator.sync_gradients:
            self.norm_d, self.finite_d = self._optimizer_step(self.optimizer_d, self.discriminator_parameters)

        # Generator: through the updated discriminator, whose weights get no gradients here.
        discriminator = accelerator.unwrap_model(self.disc)
        discriminator.requires_grad_(False)
        try:
            with parametrize.cached():  # weight norm computed once for both forwards
                with torch.no_grad():
                    _, real_features = discriminator(real)
                fake_scores_g, fake_features = discriminator(fake)
        finally:
            for parameter in self.discriminator_parameters:
                parameter.requires_grad_(True)
        loss_adv = generator_adversarial_loss(fake_scores_g)
        loss_fm = feature_matching_loss(real_features, fake_features)
        loss_g = (
            self._reconstruction_loss(out, loss_comb)
            + weights.adversarial_loss_weight * loss_adv
            + weights.feature_matching_loss_weight * loss_fm
        )
        with torch.no_grad():
            real_score = torch.stack([s.float().mean() for s in real_scores]).mean()
            fake_score = torch.stack([s.float().mean() for s in fake_scores]).mean()
        return loss_g, loss_d, loss_adv, loss_fm, real_score, fake_score
