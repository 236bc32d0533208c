"""VITS's training losses: KL between posterior and prior, least-squares adversarial losses and feature matching,
the frame-comb loss against the decoder's buzz, and how the generator's terms are weighted. The mel reconstruction
and duration losses are computed inside `FTVModel`'s training forward; the attribute loss lives with the attribute
heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def kl_loss(
    posterior_latents: torch.Tensor,
    posterior_log_stddev: torch.Tensor,
    prior_means: torch.Tensor,
    prior_log_stddev: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """KL(q(z|x) || p(z|c)) estimated at the flowed posterior sample, averaged over valid frames. fp32."""
    z_p, logs_q = posterior_latents.float(), posterior_log_stddev.float()
    m_p, logs_p = prior_means.float(), prior_log_stddev.float()
    kl = logs_p - logs_q - 0.5 + 0.5 * (z_p - m_p).pow(2) * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * mask) / torch.sum(mask).clamp_min(1)


def discriminator_loss(real_scores: list[torch.Tensor], fake_scores: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: real -> 1, generated -> 0, summed over sub-discriminators."""
    loss = 0.0
    for real, fake in zip(real_scores, fake_scores):
        loss = loss + torch.mean((1 - real.float()) ** 2) + torch.mean(fake.float() ** 2)
    return loss


def generator_adversarial_loss(fake_scores: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: generated -> 1, summed over sub-discriminators."""
    loss = 0.0
    for fake in fake_scores:
        loss = loss + torch.mean((1 - fake.float()) ** 2)
    return loss


def feature_matching_loss(
    real_features: list[list[torch.Tensor]], fake_features: list[list[torch.Tensor]]
) -> torch.Tensor:
    """L1 between discriminator feature maps of real and generated audio (x2, as VITS)."""
    loss = 0.0
    for real_maps, fake_maps in zip(real_features, fake_features):
        for real, fake in zip(real_maps, fake_maps):
            loss = loss + torch.mean(torch.abs(real.detach().float() - fake.float()))
    return loss * 2


def frame_periodicity(waveform: torch.Tensor, hop_length: int) -> torch.Tensor:
    """Per item of a (B, 1, T) or (B, T) segment: the energy of its mean frame (the part that repeats every
    `hop_length` samples, in phase with the decoder's frames) over the segment's energy, times the number of frames.

    A decoder turns each latent frame into `hop_length` samples through strided transposed convolutions; what they
    add in the same place of every frame repeats at the frame rate, and a listener hears it as a buzz at
    sampling_rate / hop_length and its multiples (`ftv_train.evaluation.metrics.comb`). Speech is not locked to
    the decoder's frames, so its mean frame is near chance: about 1 on this scale (measured on the offline corpus:
    0.89 for real speech, 0.99 for Piper joe, 1.32 for the first bundled checkpoint, 2.45 after stage 4).
    """
    samples = waveform.reshape(waveform.shape[0], -1).float()
    frames = samples.shape[-1] // hop_length
    if frames < 2:
        raise ValueError(f"A segment of {samples.shape[-1]} samples holds fewer than two {hop_length}-sample frames.")
    framed = samples[:, : frames * hop_length].reshape(samples.shape[0], frames, hop_length)
    periodic = framed.mean(dim=1).pow(2).mean(dim=-1)
    return frames * periodic / framed.pow(2).mean(dim=(1, 2)).clamp_min(1e-8)


def frame_comb_loss(predicted: torch.Tensor, target: torch.Tensor, hop_length: int) -> torch.Tensor:
    """How far the generated segment's frame periodicity exceeds the real segment's (zero where it does not)."""
    excess = frame_periodicity(predicted, hop_length) - frame_periodicity(target.detach(), hop_length)
    return torch.relu(excess).mean()


@dataclass(frozen=True)
class LossWeights:
    """How the generator's loss terms are summed. A training run's weights are its training config's
    (`TrainConfig.loss_weights()`); the defaults are VITS's and the paper's, which `FTVModel`'s own `loss` output
    uses (`PAPER_LOSS_WEIGHTS`) so that a plain loop has one number to minimise."""

    mel_loss_weight: float = 45.0
    kl_loss_weight: float = 1.0
    duration_loss_weight: float = 1.0
    attribute_loss_weight: float = 1.0
    audio_attribute_loss_weight: float = 0.3  # L_attr = L_face + this x L_audio (the paper's bilateral loss)
    feature_matching_loss_weight: float = 1.0
    adversarial_loss_weight: float = 1.0
    frame_comb_loss_weight: float = 0.0  # `frame_comb_loss` on the decoder segment (training only; 0 in VITS)

    def combined_attribute_loss(self, face_attribute: torch.Tensor, audio_attribute: torch.Tensor) -> torch.Tensor:
        """L_attr: the face head's attribute loss plus the weighted audio head's."""
        return face_attribute + self.audio_attribute_loss_weight * audio_attribute

    def reconstruction_loss(
        self,
        mel: torch.Tensor,
        kl: torch.Tensor,
        duration: torch.Tensor,
        face_attribute: torch.Tensor,
        audio_attribute: torch.Tensor,
    ) -> torch.Tensor:
        """The generator's loss without the discriminator's terms (the adversarial and feature-matching terms are
        added to it with `adversarial_loss_weight` and `feature_matching_loss_weight`)."""
        return (
            self.mel_loss_weight * mel
            + self.kl_loss_weight * kl
            + self.duration_loss_weight * duration
            + self.attribute_loss_weight * self.combined_attribute_loss(face_attribute, audio_attribute)
        )


PAPER_LOSS_WEIGHTS = LossWeights()
