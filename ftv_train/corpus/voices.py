"""The corpus's voice design: the base voices of the offline engines, the two pools, and each identity's voice.

Voices: one speaker per identity. A base voice from the label's pool is re-synthesised with the WORLD vocoder
(`ftv_train.corpus.world`): the F0 contour is scaled so its median hits the identity's target (intonation kept), the
spectral envelope is warped along frequency (vocal-tract length: > 1 shorter tract, formants up) and the frame rate
is changed (speaking rate). Where in each range an identity lands is its face's position on that axis
(`ftv_train.corpus.voice_mapping`), so the identity part of a voice follows the face:

=========  ==================================================  ============  ===========  ==========
label      base voice pool                                     F0 median Hz  env. warp    rate
=========  ==================================================  ============  ===========  ==========
male       piper:joe, flite:kal16/awb/rms, festival:kal/ked,   95 - 145      0.94 - 1.04  0.92 - 1.08
           espeak-ng:en-us+m3
female     flite:slt, festival:slt-hts, espeak-ng:en-us+f2/f4  175 - 235     1.00 - 1.08  0.92 - 1.08
missing    the pool whose mean face is nearest                 that pool's   that pool's  that pool's
=========  ==================================================  ============  ===========  ==========

The F0 range is narrowed to what the chosen base voice reaches within ``MAX_SHIFT_SEMITONES`` (6) of its own median
F0 (``BaseVoice.f0``; e.g. Piper joe speaks at ~167 Hz, so its speakers get 118-145 Hz): bigger shifts are where
WORLD re-synthesis starts to sound buzzy.

Age shifts (applied to the drawn values): under 13: F0 x2^(4/12), warp +0.05, rate x1.03 (children);
13-17: male F0 x2^(2/12); 60 and over: female F0 x2^(-2/12), male F0 x2^(1/12), rate x0.94. Ages are the numeric
age or the middle of the age group; unknown age shifts nothing.

The engines themselves are `ftv_train.corpus.engines`; `BASE_VOICES` names each voice's engine by its registry name.

A second design, ``kokoro`` (`kokoro_voice_params`), makes every voice from Kokoro-82M's voice packs and leaves
WORLD out, so the corpus sounds as natural as Kokoro (DNSMOS 3.2-3.3 against 2.6-2.8 for the engines above). Its
first form (one blend per voice: the male pack's share for the pitch, the female packs' mixture for the rest) made
voices of one gender nearly alike: mean Resemblyzer similarity between different men 0.94, women 0.85, above that
of two sentences of one speaker (0.86), where the world design gives 0.71 and 0.75. Kokoro has one male pack, and a
blend moves timbre and pitch together. So the second form (`KOKORO_DESIGN_VERSION` 2, five face axes) sets them
apart, each by a face axis:
- ``f0``: the target median F0 in the pool's range (`KOKORO_POOL_RANGES`);
- ``warp``: a formant scale (0.86-1.14: a vocal tract 14% shorter or longer; the engine's ``^scale``), the world
  design's vocal-tract axis without WORLD; the prosody half (the male pack's share against the mean female pack,
  measured median F0 75 / 89 / 118 / 162 / 207 / 260 Hz at shares 1.2 / 1 / 0.75 / 0.5 / 0.25 / 0,
  `KOKORO_SHARE_F0`) is chosen for F0 / scale, so the scaled voice lands on its target;
- ``base`` and ``timbre``: the timbre half, a mixture of the four female packs (the corners of that square are the
  pure packs, pushed 80% beyond them: `KOKORO_TIMBRE`) plus the male pack's share, which falls with the pitch
  position (men 0.9 -> 0.45, women 0.3 -> 0);
- ``rate``: Kokoro's speed.
Measured on the first 40 adult identities of the full build (two sentences each, Resemblyzer, DNSMOS, whisper
tiny.en): similarity between different people of one gender 0.763 with a 0.45-wide square pushed 60% out and scale
0.88-1.12, 0.728 (men 0.747, women 0.708) with the settings above, against 0.893 for the first form (on 103
identities; the world design 0.732 on the same 103); DNSMOS 3.24 both; CER 2.4% and 3.4%. On the first 300
identities of the full build (all ages, four sentences): 0.771 (world 0.719), women 0.740 (0.746), men 0.790
(0.702). Age shifts F0 (children
x2^(4/12), teenage boys x2^(2/12), older women x2^(-2/12), older men x2^(1/12)), the formant scale (children x1.08)
and the speed (children x1.03, 60 and over x0.94).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ftv_train.corpus.engines import ENGINES, EngineUnavailableError, apt_packages, get_engine
from ftv_train.corpus.faces import Identity

__all__ = [
    "BASE_VOICES",
    "KOKORO_AXES",
    "KOKORO_DESIGN_VERSION",
    "KOKORO_POOL_RANGES",
    "KOKORO_PREFIX",
    "KOKORO_VOICES",
    "KOKORO_SHARE_F0",
    "KOKORO_TIMBRE",
    "VOICE_DESIGNS",
    "kokoro_share",
    "kokoro_voice_params",
    "MAX_SHIFT_SEMITONES",
    "POOL_RANGES",
    "BaseVoice",
    "VoiceParams",
    "base_voice",
    "check_engines",
    "synthesize_base",
    "voice_params",
]

MAX_SHIFT_SEMITONES = 6.0


@dataclass(frozen=True)
class BaseVoice:
    """A voice of an offline engine: ``engine`` is its registry name (`ftv_train.corpus.engines.ENGINES`)."""

    name: str
    engine: str
    voice: str
    pool: str  # "male" or "female": the labels it serves
    f0: float  # its own median F0 in Hz (measured with `estimate_f0` on five prompts)


BASE_VOICES: tuple[BaseVoice, ...] = (
    BaseVoice("piper:joe", "piper", "en_US-joe-medium", "male", 167.0),
    BaseVoice("flite:kal16", "flite", "kal16", "male", 89.0),
    BaseVoice("flite:awb", "flite", "awb", "male", 125.0),
    BaseVoice("flite:rms", "flite", "rms", "male", 100.0),
    BaseVoice("festival:kal", "festival", "kal_diphone", "male", 101.0),
    BaseVoice("festival:ked", "festival", "ked_diphone", "male", 101.0),
    BaseVoice("espeak-ng:en-us+m3", "espeak-ng", "en-us+m3", "male", 104.0),
    BaseVoice("flite:slt", "flite", "slt", "female", 169.0),
    BaseVoice("festival:slt-hts", "festival", "cmu_us_slt_arctic_hts", "female", 172.0),
    BaseVoice("espeak-ng:en-us+f2", "espeak-ng", "en-us+f2", "female", 195.0),
    BaseVoice("espeak-ng:en-us+f4", "espeak-ng", "en-us+f4", "female", 179.0),
)


def base_voice(name: str) -> BaseVoice:
    """The base voice called `name` (`BaseVoice.name`, as `VoiceParams.base` stores it)."""
    return next(voice for voice in BASE_VOICES if voice.name == name)


def check_engines(voices: tuple[BaseVoice, ...] = BASE_VOICES) -> None:
    """Fail early, naming the apt/pip package, when an engine or voice the pools use is missing."""
    problems = []
    for engine in ENGINES.values():
        used = [voice.voice for voice in voices if voice.engine == engine.name]
        if used:
            problems += engine.problems(used)
    if problems:
        raise EngineUnavailableError(
            "The offline corpus needs these voice engines: " + "; ".join(problems) + ". All apt packages: "
            f"apt-get install {' '.join(apt_packages())}"
        )


def synthesize_base(voice: BaseVoice, text: str) -> tuple[np.ndarray, int]:
    """Speak `text` with a base voice: (mono float32 samples, their native sample rate)."""
    return get_engine(voice.engine).synthesize(text, voice.voice)


@dataclass(frozen=True)
class VoiceParams:
    """One speaker's voice: base voice name, target median F0 (Hz), envelope warp factor, speaking-rate factor."""

    base: str
    f0: float
    warp: float
    rate: float


POOL_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "male": {"f0": (95.0, 145.0), "warp": (0.94, 1.04), "rate": (0.92, 1.08)},
    "female": {"f0": (175.0, 235.0), "warp": (1.00, 1.08), "rate": (0.92, 1.08)},
}


def voice_params(identity: Identity, position: dict[str, float], pool: str) -> VoiceParams:
    """The identity's voice: its gender ``pool`` (the label, or the nearest pool for unlabelled faces) picks the base
    voices and ranges, its face's ``position`` on each axis (`ftv_train.corpus.voice_mapping`, in (0, 1)) the base voice
    and the point in each range, and its age label the child/teen/senior shifts."""
    voices = [v for v in BASE_VOICES if v.pool == pool]
    base = voices[min(int(position["base"] * len(voices)), len(voices) - 1)]
    ranges = POOL_RANGES[pool]
    # the pool's F0 range, narrowed to what this base voice reaches within MAX_SHIFT_SEMITONES (speech stays clean)
    low = max(ranges["f0"][0], base.f0 * 2 ** (-MAX_SHIFT_SEMITONES / 12))
    high = min(ranges["f0"][1], base.f0 * 2 ** (MAX_SHIFT_SEMITONES / 12))
    f0 = low + position["f0"] * (high - low) if low < high else min(max(base.f0, ranges["f0"][0]), ranges["f0"][1])

    def along(axis: str) -> float:
        start, stop = ranges[axis]
        return start + position[axis] * (stop - start)

    warp, rate = along("warp"), along("rate")
    age = identity.age
    if age is not None and age < 13:
        f0, warp, rate = f0 * 2 ** (4 / 12), warp + 0.05, rate * 1.03
    elif age is not None and age < 18 and pool == "male":
        f0 *= 2 ** (2 / 12)
    elif age is not None and age >= 60:
        f0 *= 2 ** (-2 / 12) if pool == "female" else 2 ** (1 / 12)
        rate *= 0.94
    return VoiceParams(base=base.name, f0=round(f0, 2), warp=round(warp, 4), rate=round(rate, 4))


VOICE_DESIGNS = ("world", "kokoro")  # `voice_params` / `kokoro_voice_params`
# what the kokoro design needs installed, for `check_engines` (its voices are blends, one per identity)
KOKORO_VOICES = (BaseVoice("kokoro", "kokoro", "jm_kumo*0.5+female*0.5", "male", 162.2),)
KOKORO_PREFIX = "kokoro:"  # `VoiceParams.base` of a Kokoro voice: this prefix, then the engine's voice string
# (male share, median F0 in Hz) of Kokoro blends of jm_kumo with the mean female pack, six Harvard sentences each
KOKORO_SHARE_F0 = ((1.2, 75.1), (1.0, 89.3), (0.75, 117.8), (0.5, 162.2), (0.25, 206.6), (0.0, 259.8))
KOKORO_DESIGN_VERSION = 2  # part of the build's fingerprint
KOKORO_AXES = ("base", "f0", "warp", "rate", "timbre")  # the face axes the design reads (`VoiceMapping` axes)
KOKORO_POOL_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "male": {"f0": (88.0, 135.0), "scale": (0.86, 1.14), "rate": (0.92, 1.08), "male_timbre": (0.9, 0.45)},
    "female": {"f0": (170.0, 250.0), "scale": (0.86, 1.14), "rate": (0.92, 1.08), "male_timbre": (0.3, 0.0)},
}
KOKORO_SHARE_LIMITS = (-0.1, 1.2)  # little beyond the measured blends: further out Kokoro is untested
_PACK_CORNERS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0))  # (base, timbre) where each female pack is pure
# the timbre square: each pack's weight falls with the distance to its corner over this width, and the mixture is
# pushed this far beyond the corners (the weights still sum to one); both, with the scale range, from the measurement
# in the module docstring
KOKORO_TIMBRE = {"width": 0.3, "sharpen": 0.8}


def kokoro_f0(share: float) -> float:
    """The median F0 (Hz) a male share gives, interpolated in `KOKORO_SHARE_F0`."""
    shares, f0s = zip(*sorted(KOKORO_SHARE_F0))
    return float(np.interp(share, shares, f0s))


def kokoro_share(f0: float) -> float:
    """The male share whose median F0 is `f0` (Hz): `kokoro_f0` inverted, within `KOKORO_SHARE_LIMITS`."""
    f0s, shares = zip(*sorted((f, s) for s, f in KOKORO_SHARE_F0))
    share = float(np.interp(f0, f0s, shares))
    return min(max(share, KOKORO_SHARE_LIMITS[0]), KOKORO_SHARE_LIMITS[1])


def kokoro_voice_params(identity: Identity, position: dict[str, float], pool: str) -> VoiceParams:
    """The identity's Kokoro voice (the ``kokoro`` design): `VoiceParams.base` is
    ``kokoro:<timbre blend>|<prosody blend>@<speed>^<formant scale>``, ``f0`` the median F0 it is measured to give
    after scaling, ``warp`` the formant scale, ``rate`` Kokoro's speed."""
    from ftv_train.corpus.engines.kokoro import (
        FEMALE_PACKS,
        FORMANT_SCALE_LIMITS,
        FORMANT_SCALE_STEP_HZ,
        KOKORO_SAMPLE_RATE,
        MALE_PACK,
    )

    ranges = KOKORO_POOL_RANGES[pool]

    def along(axis: str, key: str) -> float:
        start, stop = ranges[key]
        return start + position[axis] * (stop - start)

    f0, scale, rate = along("f0", "f0"), along("warp", "scale"), along("rate", "rate")
    male_timbre = along("f0", "male_timbre")  # a lower voice, a more masculine timbre
    age = identity.age
    if age is not None and age < 13:
        f0, scale, rate = f0 * 2 ** (4 / 12), scale * 1.08, rate * 1.03
    elif age is not None and age < 18 and pool == "male":
        f0 *= 2 ** (2 / 12)
    elif age is not None and age >= 60:
        f0 *= 2 ** (-2 / 12) if pool == "female" else 2 ** (1 / 12)
        rate *= 0.94
    scale = min(max(scale, FORMANT_SCALE_LIMITS[0]), FORMANT_SCALE_LIMITS[1])
    scale = round(scale * KOKORO_SAMPLE_RATE / FORMANT_SCALE_STEP_HZ) * FORMANT_SCALE_STEP_HZ / KOKORO_SAMPLE_RATE
    share = kokoro_share(f0 / scale)
    point = np.asarray([position["base"], position["timbre"]])
    closeness = np.asarray([np.exp(-np.sum((point - c) ** 2) / KOKORO_TIMBRE["width"] ** 2) for c in _PACK_CORNERS])
    sharpen = KOKORO_TIMBRE["sharpen"]
    mixture = (1 + sharpen) * closeness / closeness.sum() - sharpen / len(_PACK_CORNERS)
    timbre = [f"{MALE_PACK}*{male_timbre:.4f}"] + [
        f"{pack}*{(1.0 - male_timbre) * weight:.4f}" for pack, weight in zip(FEMALE_PACKS, mixture)
    ]
    prosody = f"{MALE_PACK}*{share:.4f}+female*{1.0 - share:.4f}"
    return VoiceParams(
        base=f"{KOKORO_PREFIX}{'+'.join(timbre)}|{prosody}@{rate:.4f}^{scale:.4f}",
        f0=round(kokoro_f0(share) * scale, 2),
        warp=round(scale, 4),
        rate=round(rate, 4),
    )
