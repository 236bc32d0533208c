"""Audio helpers shared by every stage: the training side's sample rate, resampling, reading and writing files.

Datasets store 16 kHz audio and every metric model expects mono float32 at 16 kHz in [-1, 1], so `SAMPLE_RATE` is
defined once, here, and `resample` is the one resampler (torchaudio's windowed sinc) the stages use.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SAMPLE_RATE = 16000  # the prepared datasets' rate and the metric models' input rate


def as_mono_float32(wav: np.ndarray | torch.Tensor) -> np.ndarray:
    """Flatten to mono float32 and clip to [-1, 1]: untrained models emit values far outside that range,
    which would overflow the int16 conversion inside the VAD and make DNSMOS refuse the clip."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().float().cpu().numpy()
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:  # soundfile gives (T, C)
        wav = wav.mean(axis=1) if wav.shape[1] <= 8 else wav.mean(axis=0)
    wav = np.nan_to_num(wav.reshape(-1), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(wav, -1.0, 1.0)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Resample with torchaudio's windowed sinc (no extra dependency; identical on every machine)."""
    if orig_sr == target_sr:
        return wav
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(np.ascontiguousarray(wav)), orig_sr, target_sr)
    return out.numpy().astype(np.float32)


def load_audio(source: str | Path | bytes, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a file path or encoded bytes (wav/flac/ogg) with soundfile, as mono float32 at `target_sr`."""
    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source)
    wav, sr = sf.read(handle, dtype="float32", always_2d=True)
    return resample(as_mono_float32(wav), sr, target_sr)


def save_wav(path: str | Path, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit PCM atomically (temp file + rename) so an interrupted run never leaves a truncated wav
    that a resumed run would mistake for a finished one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sf.write(str(tmp), as_mono_float32(wav), sample_rate, subtype="PCM_16", format="WAV")
    tmp.replace(path)


def prepare_batch(wavs: Sequence[np.ndarray | torch.Tensor], sample_rate: int = SAMPLE_RATE) -> list[np.ndarray]:
    """Bring a batch to the metric models' common format (mono float32, 16 kHz, clipped)."""
    return [resample(as_mono_float32(w), sample_rate, SAMPLE_RATE) for w in wavs]


def add_noise(wav: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise at a given SNR: a controlled degradation for checking that quality metrics react."""
    rng = np.random.default_rng(seed)
    power = float(np.mean(wav**2)) + 1e-12
    noise = rng.standard_normal(len(wav)).astype(np.float32) * np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(wav + noise, -1.0, 1.0).astype(np.float32)
