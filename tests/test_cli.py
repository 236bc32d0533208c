"""The CLI (`python -m ftv_model.synthesize`) and the service under it (`ftv_model.synthesis`).

Two subprocess runs check the real command (a WAV on success; one stderr line and exit 2 on bad input); the other
bad inputs run `main()` in-process, which is much faster than starting Python and torch for each.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from benchmarks.app_client import FACE, OTHER_FACE, REPO_ROOT, app_env, wav_info
from ftv_model import loading, synthesis
from ftv_model.synthesis import (
    PAUSE_SECONDS,
    Synthesizer,
    TextFrontendError,
    check_text,
    is_untrained,
    split_sentences,
    wav_bytes,
)
from ftv_model.synthesize import main
from tests.test_app import assert_marked_synthetic


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The in-process model runs share 2 cores with other work: one thread, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def blank_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "blank.png"
    Image.new("RGB", (300, 300), (200, 200, 200)).save(path)
    return path


@pytest.fixture(scope="module")
def synthesizer(tiny_checkpoint: Path) -> Synthesizer:
    return Synthesizer(tiny_checkpoint, allow_untrained=True)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftv_model.synthesize", *args],
        cwd=REPO_ROOT,
        env=app_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


# --------------------------------------------------------------------------------------------------------------------
# The command


def test_cli_writes_a_valid_marked_wav(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "hello.wav"
    done = run_cli("--image", str(FACE), "--text", "Hello there. How are you?", "--out", str(out),
                   "--model", str(tiny_checkpoint), "--allow-untrained")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Wrote" in done.stdout and "2 sentence(s)" in done.stdout
    assert "Traceback" not in done.stderr and "UNTRAINED" in done.stderr
    info = wav_info(out)
    assert (info["rate"], info["channels"], info["width"]) == (16000, 1, 2)
    assert info["frames"] > PAUSE_SECONDS * 16000
    assert "SYNTHETIC" in info["info"]["ICMT"]
    assert np.abs(info["samples"]).max() > 0
    data, rate = soundfile.read(out)
    assert rate == 16000 and len(data) == info["frames"]


def test_cli_bad_input_is_one_line_and_exit_2(tiny_checkpoint: Path, tmp_path: Path) -> None:
    not_an_image = tmp_path / "face.jpg"
    not_an_image.write_text("no pixels here")
    done = run_cli("--image", str(not_an_image), "--text", "Hello.", "--model", str(tiny_checkpoint))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and "not an image" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


BAD_RUNS = {
    "no face": (["--image", "BLANK", "--text", "Hello.", "--model", "TINY", "--allow-untrained"], "No face was found"),
    "missing photo": (["--image", "/nonexistent/face.jpg", "--text", "Hello."], "does not exist"),
    "empty text": (["--image", "FACE", "--text", ""], "The text is empty"),
    "unspeakable text": (["--image", "FACE", "--text", "?!?"], "nothing to speak"),
    "too long": (["--image", "FACE", "--text", "word " * 300], "too long"),
    "chinese text": (
        ["--image", "FACE", "--text", "你好", "--model", "TINY", "--allow-untrained"],
        "Chinese/Japanese letters this voice cannot read: '你', '好'. It speaks English",
    ),
    "bad out": (["--image", "FACE", "--text", "Hello.", "--out", "OUT/hello.mp3"], "must end in .wav"),
    "missing model": (["--image", "FACE", "--text", "Hello.", "--model", "/nonexistent/ftv"], "No model at"),
    "untrained model": (["--image", "FACE", "--text", "Hello.", "--model", "TINY"], "untrained \\(random\\) weights"),
    "no model at all": (["--image", "FACE", "--text", "Hello."], "No trained FTV checkpoint was found"),
    "usage": (["--text", "Hello."], "one of the arguments --image --voice is required"),
    "photo and profile": (["--image", "FACE", "--voice", "PROFILE", "--text", "Hello."], "not allowed with"),
    "missing profile": (["--voice", "OUT/none.json", "--text", "Hello."], "No voice profile at"),
    "damaged profile": (["--voice", "DAMAGED", "--text", "Hello."], "damaged or not an ftv voice profile"),
    "bad profile name": (["--image", "FACE", "--text", "Hello.", "--save-voice", "OUT/voice.txt"], "must end in .json"),
    "bad number": (["--image", "FACE", "--text", "Hello.", "--seed", "x"], "invalid int value"),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_cli_bad_input(case: str, tiny_checkpoint, blank_photo, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("FTV_MODEL", raising=False)
    monkeypatch.delenv("FTV_ALLOW_UNTRAINED", raising=False)
    monkeypatch.setattr(loading, "BUNDLED_CHECKPOINT", tmp_path / "no-checkpoint-here")
    damaged = tmp_path / "damaged.json"
    damaged.write_text('{"format": "ftv-voice-profile", "version": 1, "face_embedding": [0.5], "checksum": "0"}')
    replace = {
        "FACE": str(FACE), "BLANK": str(blank_photo), "TINY": str(tiny_checkpoint), "DAMAGED": str(damaged),
        "PROFILE": str(damaged),
    }  # fmt: skip
    args, message = BAD_RUNS[case]
    args = [replace.get(a, a).replace("OUT", str(tmp_path)) for a in args]
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse's usage errors
        status = exit_.code
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: "), captured.err
    assert re.search(message, captured.err), captured.err
    assert list(tmp_path.glob("*.wav")) == []


def test_cli_directory_out_text_file_and_several_photos(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    text_file = tmp_path / "speech.txt"
    text_file.write_text("First line of text.\nSecond line, after a break.\n", encoding="utf-8")
    model = ["--model", str(tiny_checkpoint), "--allow-untrained"]
    status = main(["--image", str(FACE), "--image", str(OTHER_FACE), "--text-file", str(text_file),
                   "--out", str(tmp_path), *model, "--seed", "3"])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    (written,) = tmp_path.glob("*.wav")
    assert_marked_synthetic(written)
    assert "2 sentence(s)" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------------------------
# The service under it


def test_batched_sentences_equal_one_by_one_with_pauses(synthesizer: Synthesizer) -> None:
    joined = synthesizer.synthesize(FACE, "Good morning. How are you today?", seed=5)
    assert joined.sentences == ["Good morning.", "How are you today?"]
    first = synthesizer.synthesize(FACE, "Good morning.", seed=5).waveform
    second = synthesizer.synthesize(FACE, "How are you today?", seed=5).waveform
    pause = np.zeros(int(PAUSE_SECONDS * 16000), dtype=np.float32)
    np.testing.assert_allclose(joined.waveform, np.concatenate([first, pause, second]), atol=1e-4)
    assert set(joined.timings) == {"detect", "process", "model"}
    assert sum(joined.attributes["gender"].values()) == pytest.approx(1.0, abs=1e-5)


def test_bf16_option_reaches_the_decoder_and_stays_close(tiny_checkpoint: Path, synthesizer, monkeypatch) -> None:
    """--bf16 (the app's and the CLI's) or $FTV_BF16=1 turns the bfloat16 decoder on; `bfloat16` says whether it
    runs (only on a CPU with native bf16). The default stays float32, so a profile's audio is the same on every CPU."""
    from ftv_model.modeling_ftv import cpu_has_native_bfloat16
    from ftv_model.synthesize import build_parser

    assert build_parser().parse_args(["--image", "x.jpg", "--text", "Hi.", "--bf16"]).bf16
    app_help = subprocess.run([sys.executable, "app.py", "--help"], cwd=REPO_ROOT, env=app_env(), capture_output=True,
                              text=True, timeout=300)  # fmt: skip
    assert app_help.returncode == 0 and "--bf16" in app_help.stdout, app_help.stderr
    assert not synthesizer.config.cpu_bfloat16_decoder and not synthesizer.bfloat16
    monkeypatch.setenv("FTV_BF16", "1")
    fast = Synthesizer(tiny_checkpoint, allow_untrained=True)
    assert fast.config.cpu_bfloat16_decoder and fast.bfloat16 == cpu_has_native_bfloat16()
    reference = synthesizer.synthesize(FACE, "Good morning.", seed=3).waveform
    waveform = fast.synthesize(FACE, "Good morning.", seed=3).waveform
    assert waveform.shape == reference.shape
    error = float(np.mean((waveform - reference) ** 2) / np.mean(reference**2))
    assert (0 < error < 1e-2) if fast.bfloat16 else error == 0
    assert ("decoder in bfloat16" in fast.description) == fast.bfloat16
    # where the CPU cannot, the option is ignored and both front ends say so
    monkeypatch.setattr("ftv_model.modeling_ftv.cpu_has_native_bfloat16", lambda: False)
    ignored = Synthesizer(tiny_checkpoint, allow_untrained=True, bfloat16=True)
    assert not ignored.bfloat16 and "needs a CPU that runs bfloat16 natively" in ignored.description


def test_several_photos_are_averaged(synthesizer: Synthesizer) -> None:
    both = synthesizer.synthesize([FACE, OTHER_FACE], "Hello.", seed=1)
    alone = synthesizer.synthesize([FACE], "Hello.", seed=1)
    assert len(both.face_crops) == 2 and both.face_crops[0].size == (128, 128)
    assert both.attributes != alone.attributes  # the averaged embedding differs from the first photo's


def test_split_sentences() -> None:
    assert split_sentences("Hello there. How are you? Fine!") == ["Hello there.", "How are you?", "Fine!"]
    assert split_sentences('Dr. Smith met J. R. Tolkien. He said "stop." Then left.') == [
        "Dr. Smith met J. R. Tolkien.",
        'He said "stop."',
        "Then left.",
    ]
    assert split_sentences("... Hello. ... World.\nNew line") == ["... Hello. ...", "World.", "New line"]
    pieces = split_sentences("one, two, three, " * 40)
    assert len(pieces) > 1 and all(len(p) <= synthesis.MAX_SENTENCE_CHARS for p in pieces)


def test_check_text_limits() -> None:
    assert check_text("Hi.  There\n") == ["Hi.", "There"]
    with pytest.raises(TextFrontendError, match="Cyrillic letters"):
        check_text("Привет.", language="en-us")
    assert check_text("Привет.", language="ru") == ["Привет."]
    with pytest.raises(TextFrontendError, match="too long"):
        check_text("a" * (synthesis.MAX_TEXT_CHARS + 1))
    for text in ("", "   ", None):
        with pytest.raises(TextFrontendError, match="empty"):
            check_text(text)


def test_wav_is_marked_and_readable_by_other_readers(tmp_path: Path) -> None:
    tone = 0.5 * np.sin(np.linspace(0, 200 * np.pi, 16001)).astype(np.float32)  # odd length: RIFF padding
    path = tmp_path / synthesis.synthetic_wav_name()
    path.write_bytes(wav_bytes(tone, 16000))
    info = assert_marked_synthetic(path)
    assert info["frames"] == len(tone)
    data, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000 and np.abs(data - tone).max() < 1e-4


def test_untrained_weights_are_detected(synthesizer: Synthesizer) -> None:
    from tests.model_fixtures import tiny_config

    model = synthesis.FTVModel(tiny_config())
    assert is_untrained(model)
    with torch.no_grad():
        next(m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)).weight.add_(1e-3)
    assert not is_untrained(model)
    assert synthesizer.untrained and "UNTRAINED" in synthesizer.description


def test_huge_and_absurd_images(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    Image.open(FACE).resize((5000, 5000)).save(big, quality=70)
    image, notes = synthesis.read_photo(big)
    assert max(image.size) == synthesis.MAX_IMAGE_SIDE and "scaled down" in notes[0]
    absurd = tmp_path / "absurd.png"
    Image.new("1", (12000, 10000)).save(absurd)  # 120 megapixels, a few kB on disk
    with pytest.raises(synthesis.FaceDetectionError, match="too large"):
        synthesis.read_photo(absurd)


@pytest.mark.shared_data
def test_cli_speaks_for_a_small_face_in_a_street_photo(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    """FairFace 0014: a clear frontal face about 40 px wide that the app and the CLI used to answer with "No face was
    found"; the CNN fallback finds it (with the bundled checkpoint, the default model)."""
    monkeypatch.delenv("FTV_MODEL", raising=False)
    out = tmp_path / "small.wav"
    assert (
        main(["--image", str(shared_data / "faces/fairface/fairface_0014.jpg"), "--text", "Hello.", "--out", str(out)])
        == 0
    )
    assert wav_info(out)["frames"] > 0
