"""Audio features with torchaudio: the linear spectrogram the posterior encoder reads and the mel spectrogram of
the reconstruction loss. One class, used by training and evaluation alike, always computed in float32 (autocast
off), because STFT magnitudes and log-mels lose too much in half precision.

It holds no parameters: the window and mel filterbank are derived from the config and cached per device, so they
never enter checkpoints and survive transformers' meta-device loading.
"""

from __future__ import annotations

import torch
import torchaudio
from torch.nn import functional as F


class AudioFeatures:
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
        self.sampling_rate = sampling_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.num_mel_bins = num_mel_bins
        self.mel_fmin = mel_fmin
        self.mel_fmax = mel_fmax if mel_fmax is not None else sampling_rate / 2
        self._windows: dict[torch.device, torch.Tensor] = {}
        self._mel_bases: dict[torch.device, torch.Tensor] = {}

    def _window(self, device: torch.device) -> torch.Tensor:
        if device not in self._windows:
            self._windows[device] = torch.hann_window(self.win_length, device=device)
        return self._windows[device]

    def _mel_basis(self, device: torch.device) -> torch.Tensor:
        if device not in self._mel_bases:
            basis = torchaudio.functional.melscale_fbanks(
                n_freqs=self.n_fft // 2 + 1,
                f_min=self.mel_fmin,
                f_max=self.mel_fmax,
                n_mels=self.num_mel_bins,
                sample_rate=self.sampling_rate,
                norm="slaney",
                mel_scale="slaney",
            )
            self._mel_bases[device] = basis.T.contiguous().to(device)  # (n_mels, n_freqs)
        return self._mel_bases[device]

    def linear_spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, T) -> magnitude (B, n_fft/2+1, T // hop) in float32."""
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            padding = (self.n_fft - self.hop_length) // 2
            padded = F.pad(waveform.float().unsqueeze(1), (padding, padding), mode="reflect").squeeze(1)
            complex_spec = torchaudio.functional.spectrogram(
                padded,
                pad=0,
                window=self._window(waveform.device),
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                power=None,
                normalized=False,
                center=False,
            )
            return torch.sqrt(complex_spec.real.pow(2) + complex_spec.imag.pow(2) + 1e-6)

    def mel_from_linear(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Magnitude (B, F, N) -> log mel (B, n_mels, N) in float32."""
        with torch.autocast(device_type=magnitude.device.type, enabled=False):
            mel = torch.matmul(self._mel_basis(magnitude.device), magnitude.float())
            return torch.log(torch.clamp(mel, min=1e-5))

    def mel_spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, T) -> log mel (B, n_mels, T // hop) in float32."""
        return self.mel_from_linear(self.linear_spectrogram(waveform))

    @classmethod
    def from_config(cls, config) -> AudioFeatures:
        return cls(
            config.sampling_rate,
            config.n_fft,
            config.hop_length,
            config.win_length,
            config.num_mel_bins,
            config.mel_fmin,
            config.mel_fmax,
        )
