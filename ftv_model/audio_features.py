"""Audio features with torchaudio: the linear spectrogram the posterior encoder reads and the mel spectrogram of
the reconstruction loss. One module, used by training and evaluation alike, always computed in float32 (autocast
off), because STFT magnitudes and log-mels lose too much in half precision.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn
from torch.nn import functional as F


class AudioFeatures(nn.Module):
    """VITS-style features: reflect-pad by (n_fft - hop) / 2, uncentred STFT, magnitude, slaney mel, log."""

    def __init__(
        self,
        sampling_rate: int,
        n_fft: int,
        hop_length: int,
        win_length: int,
        num_mel_bins: int,
        mel_fmin: float = 0.0,
        mel_fmax: float | None = None,
    ) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.spectrogram = torchaudio.transforms.Spectrogram(
            n_fft=n_fft, win_length=win_length, hop_length=hop_length, power=None, center=False
        )
        mel_basis = torchaudio.functional.melscale_fbanks(
            n_freqs=n_fft // 2 + 1,
            f_min=mel_fmin,
            f_max=mel_fmax if mel_fmax is not None else sampling_rate / 2,
            n_mels=num_mel_bins,
            sample_rate=sampling_rate,
            norm="slaney",
            mel_scale="slaney",
        )
        self.register_buffer("mel_basis", mel_basis.T.contiguous(), persistent=False)  # (n_mels, n_freqs)

    def num_frames(self, num_samples: torch.Tensor | int) -> torch.Tensor | int:
        """Frames produced for a waveform of `num_samples` (one per hop)."""
        return num_samples // self.hop_length

    def linear_spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, T) -> magnitude (B, n_fft/2+1, T // hop) in float32."""
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            padding = (self.n_fft - self.hop_length) // 2
            padded = F.pad(waveform.float().unsqueeze(1), (padding, padding), mode="reflect").squeeze(1)
            complex_spec = self.spectrogram(padded)
            return torch.sqrt(complex_spec.real.pow(2) + complex_spec.imag.pow(2) + 1e-6)

    def mel_from_linear(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Magnitude (B, F, N) -> log mel (B, n_mels, N) in float32."""
        with torch.autocast(device_type=magnitude.device.type, enabled=False):
            mel = torch.matmul(self.mel_basis, magnitude.float())
            return torch.log(torch.clamp(mel, min=1e-5))

    def mel_spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, T) -> log mel (B, n_mels, T // hop) in float32."""
        return self.mel_from_linear(self.linear_spectrogram(waveform))
