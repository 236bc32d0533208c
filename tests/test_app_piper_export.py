"""The demo's Piper export (issue 22): the voice just made in the app, exported as a Piper voice through the API its
button uses (`/export_piper`), with the bundled checkpoint (the tiny test model has no Piper phonemes; test_app.py
checks that it is refused with a message). onnxruntime must load and run the exported graph; Piper's own runtime
is tests/test_piper_export.py's subject.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.app_client import FACE, predict, running_app, wav_info
from ftv_model import BUNDLED_CHECKPOINT, FTVConfig, FTVProcessor


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from gradio_client import Client

    folder = tmp_path_factory.mktemp("app")
    with running_app(["--model", str(BUNDLED_CHECKPOINT)], folder / "app.log") as url:
        yield Client(url, verbose=False, download_files=str(folder / "downloads"))


def test_the_voice_just_made_exports_as_a_piper_voice(client) -> None:
    import onnxruntime
    from gradio_client import handle_file

    audio, *_, profile = predict(client, FACE, "Good morning.", seed=5, settings=(1.25, 0.5, 0.6))
    files = [Path(path) for path in client.predict(handle_file(profile), api_name="/export_piper")]
    name = Path(profile).stem
    assert name.startswith("ftv-voice-")
    by_name = {path.name: path for path in files}
    assert sorted(by_name) == [f"{name}.README.md", f"{name}.onnx", f"{name}.onnx.json"]
    onnx_path, config_path, card_path = (by_name[name + suffix] for suffix in (".onnx", ".onnx.json", ".README.md"))

    config = json.loads(config_path.read_text(encoding="utf-8"))
    assert config["espeak"]["voice"] == "en-us"
    assert config["audio"]["sample_rate"] == FTVConfig.from_pretrained(BUNDLED_CHECKPOINT).sampling_rate
    assert config["inference"] == pytest.approx({"noise_scale": 0.5, "length_scale": 1 / 1.25, "noise_w": 0.6})
    assert config["dataset"] == name and config["num_speakers"] == 1
    assert "guessed from a photo of a face" in card_path.read_text(encoding="utf-8")

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ids = FTVProcessor.from_pretrained(BUNDLED_CHECKPOINT).tokenizer("Good morning.")["input_ids"]
    assert all([index] in config["phoneme_id_map"].values() for index in ids)
    inputs = {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([0.5, 0.8, 0.6], dtype=np.float32),
    }
    (speech,) = session.run(None, inputs)
    assert speech.shape[:3] == (1, 1, 1) and speech.shape[3] > 0.3 * config["audio"]["sample_rate"]
    assert np.isfinite(speech).all()

    # The export shares the served model: it must leave it speaking exactly as before.
    again = predict(client, FACE, "Good morning.", seed=5, settings=(1.25, 0.5, 0.6))[0]
    np.testing.assert_array_equal(wav_info(again)["samples"], wav_info(audio)["samples"])
