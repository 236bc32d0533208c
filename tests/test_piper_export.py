"""A voice exported as a Piper voice (`ftv_model.piper_export`) runs in Piper's own runtime and says what ftv says.

Piper's runtime (`piper-tts`, GPL-3.0) is a test dependency only: these tests import it, the project never does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.app_client import FACE
from ftv_model import BUNDLED_CHECKPOINT, FTVModel, FTVProcessor
from ftv_model.piper_export import PiperExportError, export_piper_voice
from ftv_model.piper_export_cli import main as export_main

SENTENCE = "The birch canoe slid on the smooth planks."


@pytest.fixture(scope="module")
def bundled() -> tuple[FTVModel, FTVProcessor]:
    torch.set_num_threads(2)
    model = FTVModel.from_pretrained(BUNDLED_CHECKPOINT, dtype=torch.float32).eval()
    return model, FTVProcessor.from_pretrained(BUNDLED_CHECKPOINT)


@pytest.fixture(scope="module")
def exported(bundled, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    model, processor = bundled
    profile = model.voice_profile(**processor(images=[FACE]), noise_scale=0.0, noise_scale_duration=0.0)
    paths = export_piper_voice(model, processor.tokenizer, profile, tmp_path_factory.mktemp("piper") / "my-voice")
    return paths[0], profile


def test_the_export_runs_in_piper_and_matches_ftv(bundled, exported) -> None:
    piper = pytest.importorskip("piper", reason="piper-tts (a test dependency) is not installed")
    model, _ = bundled
    onnx_path, profile = exported
    assert {p.name for p in onnx_path.parent.iterdir()} == {"my-voice.onnx", "my-voice.onnx.json", "my-voice.README.md"}
    config = json.loads(onnx_path.with_suffix(".onnx.json").read_text())
    assert config["audio"]["sample_rate"] == model.config.sampling_rate and config["num_speakers"] == 1
    assert config["inference"] == {"noise_scale": 0.0, "length_scale": 1.0, "noise_w": 0.0}
    card = onnx_path.with_name("my-voice.README.md").read_text()
    assert "guessed from a photo of a face" in card and "Licence" in card

    voice = piper.PiperVoice.load(onnx_path)  # its .onnx.json beside it, as Piper finds it
    ids = voice.phonemes_to_ids(voice.phonemize(SENTENCE)[0])
    quiet = piper.SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=1.0, normalize_audio=False)
    piper_audio = np.asarray(voice.phoneme_ids_to_audio(ids, quiet), dtype=np.float32).reshape(-1)
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids]), voice=profile)
    ftv_audio = out.waveform[0, : out.sequence_lengths[0]].numpy()
    assert len(piper_audio) == len(ftv_audio) > model.config.sampling_rate  # same durations: over a second
    assert np.corrcoef(piper_audio, ftv_audio)[0, 1] > 0.99


def test_batches_and_any_length_run_in_the_exported_graph(exported) -> None:
    import onnxruntime

    onnx_path, _ = exported
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for length in (5, 40, 301):
        ids = np.random.default_rng(length).integers(3, 100, (2, length)).astype(np.int64)
        (audio,) = session.run(
            None,
            {
                "input": ids,
                "input_lengths": np.array([length, length], dtype=np.int64),
                "scales": np.array([0.667, 1.0, 0.8], dtype=np.float32),
            },
        )
        assert audio.shape[:3] == (2, 1, 1) and audio.shape[3] > length * 64 and np.isfinite(audio).all()


def test_models_without_piper_phonemes_and_bad_profiles_are_refused(
    tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    model = FTVModel.from_pretrained(tiny_checkpoint).eval()
    processor = FTVProcessor.from_pretrained(tiny_checkpoint)
    profile = model.voice_profile(**processor(images=[FACE]))
    with pytest.raises(PiperExportError, match="Piper's phoneme scheme"):
        export_piper_voice(model, processor.tokenizer, profile, tmp_path / "voice")
    damaged = tmp_path / "damaged.json"
    damaged.write_text("{}")
    assert export_main(["--voice", str(damaged), "--out", str(tmp_path / "x"), "--model", str(tiny_checkpoint)]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: ")
    assert not list(tmp_path.glob("x*"))


def test_help_answers_without_loading_torch(tmp_path: Path) -> None:
    """`ftv-export-piper --help` parses with the light CLI module: neither torch nor transformers is imported."""
    code = (
        "import sys, contextlib, io\n"
        "from ftv_model.piper_export_cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "assert '--voice' in out.getvalue(), out.getvalue()\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
