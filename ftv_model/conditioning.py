"""SC-CNN style adaptive conditioning of the text-encoder states on the face embedding F.

After Yoon et al. (2023): F is mapped by one linear layer to a gain g, a direction d and a bias b; the per-sample
1-D convolution with weight g * d / ||d|| (weight-normalised, so its scale is learnt by g alone) and bias b is
applied to the phoneme states x. The result is added to x (a residual), and g and b start at zero, so a fresh
conditioning layer is the identity: a backbone initialised from a trained voice speaks exactly as before until
the face path is trained.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class AdaptiveConditioning(nn.Module):
    """Per-sample grouped 1-D conv over (B, C, T) states whose kernel and bias are predicted from (B, E)."""

    def __init__(self, channels: int, embedding_size: int, kernel_size: int = 3, groups: int | None = None) -> None:
        super().__init__()
        groups = channels if groups is None else groups
        if channels % groups:
            raise ValueError(f"channels ({channels}) must be divisible by conditioning groups ({groups}).")
        if kernel_size % 2 == 0:
            raise ValueError(f"conditioning_kernel_size must be odd to keep lengths, got {kernel_size}.")
        self.channels = channels
        self.groups = groups
        self.kernel_size = kernel_size
        self.in_per_group = channels // groups
        self.direction_size = channels * self.in_per_group * kernel_size
        # One linear layer predicts [gain (C), direction (C * C/groups * k), bias (C)].
        self.projection = nn.Linear(embedding_size, channels + self.direction_size + channels)

    def reset_parameters(self) -> None:
        """Identity at start: zero gain and bias rows, a random direction."""
        with torch.no_grad():
            nn.init.normal_(self.projection.weight, std=0.02)
            nn.init.normal_(self.projection.bias, std=0.02)
            self.projection.weight[: self.channels].zero_()
            self.projection.bias[: self.channels].zero_()
            self.projection.weight[-self.channels :].zero_()
            self.projection.bias[-self.channels :].zero_()

    def kernel(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each sample's conv weight (B * C, C / groups, k) and bias (B * C,) from its embedding (B, E)."""
        batch, channels = embedding.shape[0], self.channels
        params = self.projection(embedding)
        gain, direction, bias = torch.split(params, [channels, self.direction_size, channels], dim=-1)
        direction = direction.view(batch, channels, self.in_per_group * self.kernel_size)
        direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        weight = (gain.unsqueeze(-1) * direction).view(batch * channels, self.in_per_group, self.kernel_size)
        return weight, bias.reshape(-1)

    def apply_kernel(
        self, hidden_states: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding_mask: torch.Tensor
    ) -> torch.Tensor:
        """The residual conditioning with a given kernel: one sample's (C, C / groups, k) for the whole batch (a
        fixed voice, as a Piper export folds it), or one per sample (B * C, ...) from `kernel`."""
        batch, channels, length = hidden_states.shape
        masked = hidden_states * padding_mask
        if weight.shape[0] == channels:
            out = F.conv1d(masked, weight, bias, padding=self.kernel_size // 2, groups=self.groups)
        else:  # the batch is folded into groups so every sample gets its own kernel in one conv call
            out = F.conv1d(
                masked.reshape(1, batch * channels, length),
                weight,
                bias,
                padding=self.kernel_size // 2,
                groups=batch * self.groups,
            ).view(batch, channels, length)
        return (hidden_states + out) * padding_mask

    def forward(self, hidden_states: torch.Tensor, embedding: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """hidden_states (B, C, T), embedding (B, E), padding_mask (B, 1, T) -> (B, C, T)."""
        weight, bias = self.kernel(embedding)
        return self.apply_kernel(hidden_states, weight, bias, padding_mask)
