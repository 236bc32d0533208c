"""Audio quality gates and level handling for data preparation.

A TTS model learns whatever the data holds: near-silent clips teach it silence for text, clips shorter than a
word teach nothing, and very long ones blow up training memory. These checks decide which utterances are skipped
(with a reason for the report); loudness normalisation is optional because LRS3's levels vary with the recording.
The speech level (`speech_rms`) is also what the offline corpus brings every voice to (`match_speech_level`).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "AudioRejected",
    "check_audio",
    "fit_peak",
    "match_speech_level",
    "normalize_loudness",
    "peak_dbfs",
    "speech_level",
    "speech_rms",
]


class AudioRejected(ValueError):
    """An utterance whose audio is unusable; `reason` is the report code (too_short, too_long, silent_audio)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def peak_dbfs(wave: np.ndarray) -> float:
    """Peak level in dB relative to full scale (-inf for digital silence)."""
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


def speech_rms(wave: np.ndarray, sample_rate: int) -> float:
    """RMS of the loudest 10% of 20 ms frames: speech level, not diluted by the pauses around it (a clip shorter
    than one frame is one frame)."""
    frame = max(1, sample_rate // 50)
    usable = wave[: len(wave) // frame * frame]
    if usable.size == 0:
        usable = wave
        frame = max(1, wave.size)
    energies = np.mean(usable.reshape(-1, frame).astype(np.float64) ** 2, axis=1)
    top = np.sort(energies)[-max(1, len(energies) // 10) :]
    return float(np.sqrt(np.mean(top)))


def speech_level(wave: np.ndarray, sample_rate: int) -> float:
    """`speech_rms` in dB relative to full scale (-inf for digital silence)."""
    rms = speech_rms(wave, sample_rate)
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def check_audio(
    wave: np.ndarray,
    sample_rate: int,
    min_duration: float = 0.5,
    max_duration: float | None = 20.0,
    silence_dbfs: float = -50.0,
) -> None:
    """Raise `AudioRejected` for audio that is too short, too long, or silent (speech level below `silence_dbfs`)."""
    duration = len(wave) / sample_rate
    if duration < min_duration:
        raise AudioRejected("too_short", f"audio is {duration:.2f} s, shorter than {min_duration:g} s")
    if max_duration is not None and duration > max_duration:
        raise AudioRejected("too_long", f"audio is {duration:.1f} s, longer than {max_duration:g} s")
    level = speech_level(wave, sample_rate)
    if level < silence_dbfs:
        raise AudioRejected("silent_audio", f"audio is silent (speech level {level:.1f} dBFS < {silence_dbfs:g})")


def fit_peak(wave: np.ndarray, ceiling: float = 0.999) -> np.ndarray:
    """Scale down audio whose peak exceeds `ceiling` (lossy codecs overshoot 1.0) so 16-bit storage never clips."""
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    return (wave * (ceiling / peak)).astype(np.float32) if peak > ceiling else wave


def match_speech_level(wave: np.ndarray, target_dbfs: float, sample_rate: int) -> np.ndarray:
    """Scale to the speech level `target_dbfs` (`speech_rms`), never clipping (`fit_peak`); silence is unchanged."""
    rms = speech_rms(wave, sample_rate)
    if rms <= 0:
        return wave.astype(np.float32)
    return fit_peak((wave * (10 ** (target_dbfs / 20) / rms)).astype(np.float32))


def normalize_loudness(wave: np.ndarray, sample_rate: int, target_lufs: float = -23.0) -> np.ndarray:
    """Bring integrated loudness (ITU-R BS.1770, via pyloudnorm) to `target_lufs`, then keep the peak below 0 dBFS.

    Clips too short for a BS.1770 measurement (< 0.4 s) are returned unchanged.
    """
    try:
        import pyloudnorm
    except ImportError as error:
        raise ImportError("--normalize-loudness needs pyloudnorm: `pip install pyloudnorm`.") from error
    if len(wave) < int(0.4 * sample_rate):
        return wave
    loudness = pyloudnorm.Meter(sample_rate).integrated_loudness(wave.astype(np.float64))
    if not np.isfinite(loudness):
        return wave
    gain = 10.0 ** ((target_lufs - loudness) / 20.0)
    return fit_peak((wave * gain).astype(np.float32))
