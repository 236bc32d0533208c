"""Monotonic alignment search (MAS): the hard text-to-frame alignment VITS trains its durations from.

The search itself is the maintained `monotonic-alignment-search` package (Cython, on the CPU); this module builds
the log-likelihood matrix on the model's device and checks the one input that has no monotonic path: more
tokens than frames.
"""

from __future__ import annotations

import math

import torch
from monotonic_alignment_search import maximum_path


class AlignmentError(ValueError):
    """An utterance cannot be aligned (its audio is shorter than its token sequence)."""


def alignment_log_likelihood(
    latents: torch.Tensor, prior_means: torch.Tensor, prior_log_stddevs: torch.Tensor
) -> torch.Tensor:
    """log N(z_t | mu_s, sigma_s) summed over channels, for every token s and frame t: (B, T_text, T_frames).

    latents (B, C, T_frames); prior_means, prior_log_stddevs (B, C, T_text). Expanded as four matmuls instead of
    a (B, C, T_text, T_frames) tensor.
    """
    latents = latents.float()
    means = prior_means.float()
    log_stddevs = prior_log_stddevs.float()
    inv_var = torch.exp(-2.0 * log_stddevs)  # (B, C, S)
    term_const = torch.sum(-0.5 * math.log(2 * math.pi) - log_stddevs, dim=1).unsqueeze(-1)  # (B, S, 1)
    term_zz = torch.matmul(inv_var.transpose(1, 2), -0.5 * latents.pow(2))  # (B, S, T)
    term_zm = torch.matmul((means * inv_var).transpose(1, 2), latents)  # (B, S, T)
    term_mm = torch.sum(-0.5 * means.pow(2) * inv_var, dim=1).unsqueeze(-1)  # (B, S, 1)
    return term_const + term_zz + term_zm + term_mm


def check_alignable(token_lengths: torch.Tensor, frame_lengths: torch.Tensor) -> None:
    """Raise AlignmentError naming the items whose token count exceeds their frame count."""
    bad = (token_lengths > frame_lengths).nonzero().flatten().tolist()
    if bad:
        details = ", ".join(f"item {i}: {int(token_lengths[i])} tokens > {int(frame_lengths[i])} frames" for i in bad)
        raise AlignmentError(
            f"Cannot align text to audio ({details}). Every token needs at least one spectrogram frame: the audio is "
            "too short for its text or the transcript is wrong. Drop such utterances in data preparation."
        )


@torch.no_grad()
def monotonic_alignment(
    log_likelihood: torch.Tensor, token_mask: torch.Tensor, frame_mask: torch.Tensor
) -> torch.Tensor:
    """Most likely monotonic path: (B, T_text, T_frames) 0/1 float on the input's device.

    token_mask (B, T_text) and frame_mask (B, T_frames) are 0/1. The masks cross to the CPU in one copy (the
    training step's only host synchronisation), where the lengths are checked and the Cython search runs.
    """
    num_tokens = token_mask.shape[1]
    masks = torch.cat([token_mask.float(), frame_mask.float()], dim=1).cpu()
    tokens, frames = masks[:, :num_tokens], masks[:, num_tokens:]
    check_alignable(tokens.sum(1).long(), frames.sum(1).long())
    path = maximum_path(log_likelihood.detach().float().cpu(), tokens.unsqueeze(2) * frames.unsqueeze(1))
    return path.to(device=log_likelihood.device, dtype=log_likelihood.dtype)
