"""One sentence in one speaker's voice: base engine -> 16 kHz -> silence trimmed -> speech level -> WORLD -> level.

The engines' native rates (Piper joe 22.05 kHz, festival slt-hts 32 kHz, espeak-ng 22.05 kHz, flite and the festival
diphone voices 16 kHz) are resampled to the schema's 16 kHz first, and every clip, before and after the voice
transform, is brought to the same speech level (`SPEECH_LEVEL_DBFS`, `ftv_train.data.audio_checks.speech_rms`).
"""

from __future__ import annotations

import numpy as np

from ftv_train.common.audio import SAMPLE_RATE, resample
from ftv_train.corpus.engines import get_engine
from ftv_train.corpus.engines.kokoro import KOKORO_SAMPLE_RATE
from ftv_train.corpus.voices import KOKORO_PREFIX, VoiceParams, base_voice, synthesize_base
from ftv_train.corpus.world import transform_voice
from ftv_train.data.audio_checks import match_speech_level

__all__ = ["SPEECH_LEVEL_DBFS", "base_speech", "speaker_speech", "trim_silence"]

SPEECH_LEVEL_DBFS = -20.0


def trim_silence(wave: np.ndarray, rate: int, threshold_db: float = -45.0, pad_s: float = 0.1) -> np.ndarray:
    """Cut leading/trailing silence to a short pad: engines differ a lot in how much they leave."""
    frame = rate // 100
    energy = np.array([np.sqrt(np.mean(wave[i : i + frame] ** 2) + 1e-12) for i in range(0, len(wave), frame)])
    active = np.flatnonzero(20 * np.log10(energy / (energy.max() + 1e-12)) > threshold_db)
    if active.size == 0:
        return wave
    pad = int(pad_s * rate)
    return wave[max(0, active[0] * frame - pad) : min(len(wave), (active[-1] + 1) * frame + pad)]


def base_speech(voice_name: str, text: str) -> tuple[np.ndarray, int]:
    """A base voice's untransformed speech at 16 kHz, trimmed and level-matched (the DNSMOS "before"), and the
    engine's native sample rate."""
    wave, rate = synthesize_base(base_voice(voice_name), text)
    return _level(wave, rate), rate


def _level(wave: np.ndarray, rate: int) -> np.ndarray:
    speech = trim_silence(resample(np.asarray(wave, dtype=np.float32), rate, SAMPLE_RATE), SAMPLE_RATE)
    return match_speech_level(speech, SPEECH_LEVEL_DBFS, SAMPLE_RATE)


def speaker_speech(params: VoiceParams, text: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(untransformed, transformed) 16 kHz speech of one sentence in one speaker's voice, and the native rate.
    A Kokoro voice (the ``kokoro`` design) is its own blend, not transformed: both are the same clip."""
    if params.base.startswith(KOKORO_PREFIX):
        wave, rate = get_engine("kokoro").synthesize(text, params.base.removeprefix(KOKORO_PREFIX))
        speech = _level(wave, rate)  # a formant-scaled voice comes at scale x 24 kHz: resampling applies the scale
        return speech, speech, KOKORO_SAMPLE_RATE
    before, rate = base_speech(params.base, text)
    return before, match_speech_level(transform_voice(before, params), SPEECH_LEVEL_DBFS, SAMPLE_RATE), rate
