"""`Synthesizer.stream`, the service behind the demo's Synthesize button: the first sentences one by one (so the
player starts at once), then `synthesize`'s own result. Run in-process on the tiny random checkpoint; the app's
/speak endpoint around it is tests/test_app.py's subject.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from benchmarks.app_client import FACE
from ftv_model import synthesis
from ftv_model.face_detection import FaceDetectionError
from ftv_model.synthesis import SynthesisResult, Synthesizer, wav_bytes
from ftv_model.text_frontend import TextFrontendError

TEXT = "Hello there. This is a much longer piece of text, with many more words in it. And a third. A fourth!"


@pytest.fixture(scope="module")
def synthesizer(tiny_checkpoint: Path) -> Synthesizer:
    return Synthesizer(str(tiny_checkpoint), allow_untrained=True)


def streamed(synthesizer: Synthesizer, photos, text: str, **options) -> tuple[list[np.ndarray], SynthesisResult]:
    *chunks, result = synthesizer.stream(photos, text, **options)
    assert all(isinstance(chunk, np.ndarray) for chunk in chunks) and isinstance(result, SynthesisResult)
    return chunks, result


def fake_clock(monkeypatch: pytest.MonkeyPatch, step_s: float) -> None:
    """`time.perf_counter` as `synthesis` reads it, moving `step_s` per call: 0 makes synthesis look instant (the
    batch comes right after the first sentence), 100 makes it look far slower than speech (every sentence alone)."""
    ticks = itertools.count()
    monkeypatch.setattr(synthesis.time, "perf_counter", lambda: next(ticks) * step_s)


@pytest.mark.parametrize(("step_s", "calls"), [(0.0, 2), (100.0, 5)], ids=["batch-after-first", "each-alone"])
def test_the_stream_is_the_batch_but_for_rounding(synthesizer, monkeypatch, step_s: float, calls: int) -> None:
    fake_clock(monkeypatch, step_s)
    texts = []  # what each synthesize call spoke: sentences alone, then the whole text
    synthesize = synthesizer.synthesize
    monkeypatch.setattr(synthesizer, "synthesize", lambda *args, **kw: texts.append(args[1]) or synthesize(*args, **kw))
    chunks, result = streamed(synthesizer, [FACE], TEXT, seed=None, speaking_rate=1.2)
    monkeypatch.undo()
    assert texts == [*result.sentences[: calls - 1], TEXT]
    assert len(chunks) == len(result.sentences) == 4
    expected = synthesizer.synthesize([FACE], TEXT, seed=result.seed, speaking_rate=1.2)  # one random seed for all
    assert wav_bytes(result.waveform, 16000) == wav_bytes(expected.waveform, 16000)
    assert result.voice == expected.voice and result.sentences == expected.sentences
    joined = np.concatenate(chunks)
    assert joined.shape == result.waveform.shape
    np.testing.assert_allclose(joined, result.waveform, atol=1e-4)
    pause = int(round(synthesis.PAUSE_SECONDS * 16000))
    assert [len(chunk) for chunk in chunks] == [n + (pause if i else 0) for i, n in enumerate(result.sentence_lengths)]


def test_a_profile_streams_in_its_voice_and_one_sentence_is_one_chunk(synthesizer) -> None:
    voice = synthesizer.synthesize([FACE], "Hello.", seed=4, noise_scale=0.3).voice
    chunks, result = streamed(synthesizer, None, TEXT, voice=voice)
    expected = synthesizer.synthesize(None, TEXT, voice=voice)
    assert result.seed == 4 and wav_bytes(result.waveform, 16000) == wav_bytes(expected.waveform, 16000)
    np.testing.assert_allclose(np.concatenate(chunks), result.waveform, atol=1e-4)
    (chunk,), single = streamed(synthesizer, [FACE], "Just one sentence.")
    np.testing.assert_array_equal(chunk, single.waveform)


@pytest.mark.parametrize(
    ("photos", "text", "error", "message"),
    [
        ([FACE], "   ", TextFrontendError, "The text is empty"),
        ([FACE], "Fine. " + "word " * 250, TextFrontendError, "too long"),
        ([FACE], "Fine first. Then 你好.", TextFrontendError, "cannot read"),
        ([], "Hello there. Again.", FaceDetectionError, "No photo given"),
    ],
)
def test_bad_requests_fail_before_any_audio(synthesizer, photos, text: str, error: type, message: str) -> None:
    """The messages `synthesize` gives, before the first sentence is spoken (a later bad sentence included)."""
    with pytest.raises(error, match=message):
        next(synthesizer.stream(photos, text))
