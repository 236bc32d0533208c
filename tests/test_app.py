"""The Gradio demo, end to end: `python app.py` in a subprocess on a free port, driven with gradio_client.

Runs the tiny random checkpoint (`--allow-untrained`), so the audio is noise, but everything around the model is
real: upload, face detection, text checks, batching, streaming (the button's /speak), WAV marking, errors, the
queue. The app is started and called through `benchmarks.app_client` (as the app benchmarks do);
`assert_marked_synthetic` here is shared with test_cli.py and test_browser.py.
"""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from benchmarks.app_client import (
    EXAMPLE_FACES,
    FACE,
    OTHER_FACE,
    REPO_ROOT,
    app_env,
    predict,
    predict_args,
    running_app,
    speak,
    wav_info,
)

# --------------------------------------------------------------------------------------------------------------------
# Shared helpers (starting and calling the app: benchmarks.app_client)


def assert_marked_synthetic(path: str | Path) -> dict[str, Any]:
    """A valid 16 kHz mono 16-bit WAV, named and tagged as ftv synthetic speech."""
    assert Path(path).name.startswith("ftv-synthetic-") and Path(path).suffix == ".wav", Path(path).name
    info = wav_info(path)
    assert (info["rate"], info["channels"], info["width"]) == (16000, 1, 2)
    assert info["frames"] > 0
    assert "SYNTHETIC" in info["info"]["ICMT"] and "ftv" in info["info"]["ICMT"]
    assert "ftv" in info["info"]["ISFT"]
    return info


# --------------------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def app_url(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("app") / "app.log"
    with running_app(["--model", str(tiny_checkpoint), "--allow-untrained"], log) as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url: str, tmp_path_factory: pytest.TempPathFactory):
    from gradio_client import Client

    return Client(app_url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Good and bad uploads, made from the example faces."""
    folder = tmp_path_factory.mktemp("uploads")
    paths = {name: folder / name for name in ("blank.png", "text.jpg", "truncated.jpg", "two_faces.jpg", "huge.jpg")}
    Image.new("RGB", (320, 320), (190, 190, 190)).save(paths["blank.png"])
    paths["text.jpg"].write_text("this is not an image\n")
    paths["truncated.jpg"].write_bytes(FACE.read_bytes()[:1500])
    canvas = Image.new("RGB", (900, 480), (200, 200, 200))
    canvas.paste(Image.open(FACE), (20, 20))  # 384 px: the larger face
    canvas.paste(Image.open(OTHER_FACE).resize((230, 230)), (600, 120))
    canvas.save(paths["two_faces.jpg"], quality=92)
    Image.open(FACE).resize((3000, 3000), Image.Resampling.BICUBIC).save(paths["huge.jpg"], quality=80)
    return paths


# --------------------------------------------------------------------------------------------------------------------
# Tests


def test_audio_is_16k_marked_synthetic_and_grows_with_text(client) -> None:
    short = predict(client, FACE, "Hello.")
    long = predict(client, FACE, "Hello. This is a much longer piece of text, with many more words in it. And a third.")
    short_info, long_info = assert_marked_synthetic(short[0]), assert_marked_synthetic(long[0])
    assert long_info["frames"] > short_info["frames"] + 16000 * 0.5  # two pauses of 0.25 s alone add 0.5 s
    audio, crops, gender, race, details, profile = long
    assert Path(profile).name.startswith("ftv-voice-") and Path(profile).suffix == ".json"
    assert len(crops) == 1 and Image.open(crops[0]["image"]).size == (128, 128)
    assert {c["label"] for c in gender["confidences"]} == {"male", "female"}
    assert len(race["confidences"]) == 6
    assert sum(c["confidence"] for c in race["confidences"]) == pytest.approx(1.0, abs=1e-4)
    assert "3 sentence(s)" in details and "Untrained model" in details and "Timing:" in details


def test_same_seed_same_audio_and_several_photos(client) -> None:
    first = wav_info(predict(client, FACE, "Same seed, same voice.", seed=7)[0])["samples"]
    again = wav_info(predict(client, FACE, "Same seed, same voice.", seed=7)[0])["samples"]
    np.testing.assert_array_equal(first, again)
    audio, crops, _, _, details, _ = predict(client, FACE, "Two photos.", extra=[OTHER_FACE])
    assert_marked_synthetic(audio)
    assert len(crops) == 2 and "2 photo(s)" in details


BAD_INPUTS = [
    ("blank.png", "Hello there.", True, "No face was found"),
    ("text.jpg", "Hello there.", True, "could not be opened as an image"),
    ("truncated.jpg", "Hello there.", True, "corrupt or truncated .*save or export the photo again"),
    ("FACE", "", True, "The text is empty"),
    ("FACE", "   ", True, "The text is empty"),
    ("FACE", "?! ... !!", True, "nothing to speak"),
    ("FACE", "Hello 🙂", True, "cannot be spoken"),
    ("FACE", "word " * 250, True, "too long"),
    ("FACE", "你好，世界", True, "Chinese/Japanese letters this voice cannot read"),
    ("FACE", "Привет, мир", True, "Cyrillic letters this voice cannot read"),
    ("FACE", "Hello there.", False, "permission"),
    (None, "Hello there.", True, "Add a photo"),
]


@pytest.mark.parametrize("api_name", ["/synthesize", "/speak"])
@pytest.mark.parametrize(("photo", "text", "consent", "message"), BAD_INPUTS, ids=[m for *_, m in BAD_INPUTS])
def test_bad_input_is_a_clear_error(
    client, images, photo: str | None, text: str, consent: bool, message: str, api_name: str
) -> None:
    """The same messages from the API and from the button (which streams)."""
    from gradio_client.exceptions import AppError

    path = FACE if photo == "FACE" else (images[photo] if photo else None)
    with pytest.raises(AppError, match=message):
        client.predict(*predict_args(path, text, consent=consent), api_name=api_name)


def test_the_button_streams_each_sentence_then_gives_the_api_outputs(client) -> None:
    """/speak, the Synthesize button's event: each sentence as a synthetic-marked WAV as soon as it is spoken, then
    exactly what /synthesize returns (the WAV to download and the profile); the stream, joined, is that audio but
    for float rounding in the sentences synthesized alone (at most 1 in 16-bit samples)."""
    text = "Hello there. This is a much longer piece of text, with many more words in it. And a third."
    chunks, (_, *outputs) = speak(client, FACE, text, seed=3)
    expected = predict(client, FACE, text, seed=3)
    audio, crops, gender, race, details, profile = outputs
    full = wav_info(audio)["samples"]
    np.testing.assert_array_equal(full, wav_info(expected[0])["samples"])
    assert Path(profile).read_text() == Path(expected[5]).read_text()
    assert (gender, race) == (expected[2], expected[3]) and "3 sentence(s)" in details and len(crops) == 1
    assert len(chunks) == 3 and [seconds for seconds, _ in chunks] == sorted(seconds for seconds, _ in chunks)
    streamed = [wav_info(wav) for _, wav in chunks]
    assert all((info["rate"], info["channels"], info["width"]) == (16000, 1, 2) for info in streamed)
    assert all("SYNTHETIC" in info["info"]["ICMT"] for info in streamed)
    joined = np.concatenate([info["samples"] for info in streamed]).astype(np.int32)
    assert len(joined) == len(full) and np.abs(joined - full).max() <= 1


def test_the_api_keeps_its_endpoints_and_input_names(client) -> None:
    """/synthesize takes what it took (keyword calls name these), and the button's /speak takes the same."""
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    names = ["photo", "extra_photos", "voice_file", "text", "consent"]
    names += ["speaking_rate", "noise_scale", "noise_scale_duration", "seed"]
    for api_name in ("/synthesize", "/speak"):
        assert [p["parameter_name"] for p in endpoints[api_name]["parameters"]] == names
    assert len(endpoints["/synthesize"]["returns"]) == 6 and len(endpoints["/speak"]["returns"]) == 7
    assert {"/load_voice_settings", "/export_piper"} <= set(endpoints)


def test_piper_export_needs_a_voice_and_a_piper_model(client) -> None:
    """Export before any synthesis: a clear message; a model without Piper's phonemes (the tiny one): why not."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Synthesize first"):
        client.predict(None, api_name="/export_piper")
    profile = predict(client, FACE, "Hello.")[5]
    with pytest.raises(AppError, match="Cannot export: .*Piper's phoneme scheme"):
        client.predict(handle_file(profile), api_name="/export_piper")


def test_bad_extra_photo_names_the_photo(client, images) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Photo 2 .*not an image"):
        predict(client, FACE, "Hello there.", extra=[images["text.jpg"]])


def test_several_faces_use_the_largest_and_say_so(client, images) -> None:
    audio, crops, _, _, details, _ = predict(client, images["two_faces.jpg"], "Which face?")
    assert_marked_synthetic(audio)
    assert "2 faces; the largest one was used" in details
    from ftv_model.face_detection import FaceDetector, crop_face, load_image

    composite = load_image(images["two_faces.jpg"])
    boxes = FaceDetector().detect(composite)
    assert len(boxes) == 2 and boxes[0].area > 2 * boxes[1].area
    big, small = (np.asarray(crop_face(composite, box), dtype=np.float32) for box in boxes)
    used = np.asarray(Image.open(crops[0]["image"]).convert("RGB"), dtype=np.float32)
    assert np.abs(used - big).mean() < 5 < np.abs(used - small).mean()  # the big face's crop (webp-compressed)


def test_huge_image_is_downscaled(client, images) -> None:
    audio, crops, _, _, details, _ = predict(client, images["huge.jpg"], "A big photo.")
    assert_marked_synthetic(audio)
    assert "scaled down to 2048x2048" in details


def test_concurrent_requests_all_complete(client) -> None:
    jobs = [
        client.submit(*predict_args(FACE, text), api_name="/synthesize")
        for text in ("One at a time.", "Two of us wait.", "Three in the queue.", "One at a time.")
    ]
    results = [job.result(timeout=240) for job in jobs]
    infos = [assert_marked_synthetic(result[0]) for result in results]
    np.testing.assert_array_equal(infos[0]["samples"], infos[3]["samples"])  # no cross-talk between requests


def test_without_a_usable_model_the_app_starts_and_says_how_to_get_one(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """No --allow-untrained: the random tiny checkpoint is refused, the app still serves a banner and clear errors."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    env = app_env(FTV_MODEL=str(tiny_checkpoint))
    with running_app([], tmp_path / "app.log", env=env) as url:
        with urllib.request.urlopen(url + "config", timeout=10) as response:
            config = response.read().decode("utf-8")
        assert "No model loaded" in config and "untrained (random) weights" in config
        assert "--allow-untrained" in config and "checkpoints/ftv-offline" in config
        client = Client(url, verbose=False, download_files=str(tmp_path))
        with pytest.raises(AppError, match="untrained"):
            predict(client, FACE, "Hello there.")
    assert "untrained" in (tmp_path / "app.log").read_text()


def test_example_faces_are_credited() -> None:
    attribution = (EXAMPLE_FACES / "ATTRIBUTION.md").read_text()
    assert "10.6084/m9.figshare.5047666" in attribution and "CC BY 4.0" in attribution
    app_source = (REPO_ROOT / "app.py").read_text()
    assert "London Set" in app_source and "CC BY 4.0" in app_source
    for face in EXAMPLE_FACES.glob("*.jpg"):
        assert face.name in attribution
        Image.open(io.BytesIO(face.read_bytes())).verify()
