"""Bilateral attribute heads: gender and race predicted from the face embedding and from synthesized audio.

The face head (two fully connected layers on F) makes F carry the demographic cues that shape a voice; the
audio head (the waveform linearly resampled to a fixed length, then one linear layer) pushes the same cues
into the generated speech. `L_attr = L_face + alpha * L_audio` (paper eq. 4, alpha = 0.3); missing
pseudo-labels use IGNORE_INDEX and are skipped.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .attributes import IGNORE_INDEX


class FaceAttributeHead(nn.Module):
    """F (B, E) -> {attribute: logits (B, classes)} through two fully connected layers."""

    def __init__(self, embedding_size: int, hidden_size: int, num_classes: dict[str, int]) -> None:
        super().__init__()
        self.num_classes = dict(num_classes)
        self.hidden = nn.Linear(embedding_size, hidden_size)
        self.output = nn.Linear(hidden_size, sum(self.num_classes.values()))

    def forward(self, face_embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.output(F.relu(self.hidden(face_embedding)))
        return dict(zip(self.num_classes, torch.split(logits, list(self.num_classes.values()), dim=-1)))


class AudioAttributeHead(nn.Module):
    """Waveform (B, T) of any length -> linear resampling to `length` samples -> one linear layer -> logits."""

    def __init__(self, length: int, num_classes: dict[str, int]) -> None:
        super().__init__()
        self.length = length
        self.num_classes = dict(num_classes)
        self.output = nn.Linear(length, sum(self.num_classes.values()))

    def forward(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        if waveform.dim() == 2:
            waveform = waveform.unsqueeze(1)
        resampled = F.interpolate(waveform, size=self.length, mode="linear", align_corners=False).squeeze(1)
        logits = self.output(resampled)
        return dict(zip(self.num_classes, torch.split(logits, list(self.num_classes.values()), dim=-1)))


def attribute_loss(logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor | None]) -> torch.Tensor:
    """Sum over attributes of the mean cross-entropy over labelled items (0 with a graph when none is)."""
    total = None
    for name, attribute_logits in logits.items():
        target = labels.get(name)
        if target is None:
            continue
        target = target.to(attribute_logits.device).long()
        # Sum / count instead of a mean keeps an all-ignored batch at 0 without a host sync.
        count = (target != IGNORE_INDEX).sum().clamp_min(1)
        loss = F.cross_entropy(attribute_logits.float(), target, ignore_index=IGNORE_INDEX, reduction="sum") / count
        total = loss if total is None else total + loss
    if total is None:
        first = next(iter(logits.values()))
        return first.sum() * 0.0
    return total
