"""Voice profiles (`ftv_model.voice_profile`): one voice kept as a file and spoken again without the photo, through
the API, the service, the CLI and the app; the same audio every time; clear errors for damaged or foreign files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.app_client import FACE, OTHER_FACE, REPO_ROOT, app_env, predict, wav_info
from ftv_model import FTVModel, FTVProcessor, VoiceProfile, VoiceProfileError
from ftv_model.synthesis import SynthesisError, Synthesizer
from ftv_model.synthesize import main
from tests.model_fixtures import save_tiny_checkpoint

TEXT = "Keep this voice. Use it again."


@pytest.fixture(scope="module")
def synthesizer(tiny_checkpoint: Path) -> Synthesizer:
    torch.set_num_threads(1)
    return Synthesizer(tiny_checkpoint, allow_untrained=True)


def test_model_api_profile_speaks_exactly_like_the_photo(tiny_checkpoint: Path, tmp_path: Path) -> None:
    model = FTVModel.from_pretrained(tiny_checkpoint).eval()
    processor = FTVProcessor.from_pretrained(tiny_checkpoint)
    inputs = processor(text=["Hello there."], images=[FACE])
    profile = model.voice_profile(**inputs, seed=3, speaking_rate=1.1)
    assert len(profile.face_embedding) == model.config.face_embedding_size
    assert set(profile.attributes) == {"gender", "race"} and profile.settings["seed"] == 3
    assert profile.model["fingerprint"] and profile.photos == 1
    text = "\n".join(profile.to_json().splitlines())
    assert "pixel" not in text  # no face pixels, only F

    from_photo = model(**inputs, seed=3, speaking_rate=1.1).waveform
    loaded = VoiceProfile.load(profile.save(tmp_path / "voice.json"))
    assert loaded == profile  # F survives the JSON round trip bit for bit
    from_profile = model(**processor(text=["Hello there."]), voice=loaded).waveform
    torch.testing.assert_close(from_profile, from_photo, rtol=0, atol=0)
    # explicit settings override the profile's
    faster = model(**processor(text=["Hello there."]), voice=loaded, speaking_rate=1.6).waveform
    assert faster.shape[-1] < from_profile.shape[-1]
    with pytest.raises(ValueError, match="not both"):
        model(**inputs, voice=loaded)


def test_several_photos_make_one_profile_and_a_batch_of_people_is_refused(tiny_checkpoint: Path) -> None:
    model = FTVModel.from_pretrained(tiny_checkpoint).eval()
    processor = FTVProcessor.from_pretrained(tiny_checkpoint)
    both = model.voice_profile(**processor(images=[[FACE, OTHER_FACE]]))
    assert both.photos == 2
    one = model.voice_profile(**processor(images=[FACE]))
    assert both.face_embedding != one.face_embedding
    with pytest.raises(VoiceProfileError, match="one person"):
        model.voice_profile(**processor(images=[FACE, OTHER_FACE]))


def test_damaged_and_foreign_profiles_are_refused_clearly(tiny_checkpoint: Path, tmp_path: Path) -> None:
    model = FTVModel.from_pretrained(tiny_checkpoint).eval()
    processor = FTVProcessor.from_pretrained(tiny_checkpoint)
    profile = model.voice_profile(**processor(images=[FACE]))
    path = profile.save(tmp_path)  # a directory gets ftv-voice.json
    assert path.name == "ftv-voice.json"

    data = json.loads(path.read_text())
    data["face_embedding"][0] += 0.5  # edited by hand: the checksum no longer matches
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    for bad, message in (
        (tampered, "checksum does not match"),
        (tmp_path / "absent.json", "No voice profile at"),
        (REPO_ROOT / "README.md", "not JSON"),
    ):
        with pytest.raises(VoiceProfileError, match=message):
            VoiceProfile.load(bad)
    newer = {**json.loads(path.read_text()), "version": 99}
    with pytest.raises(VoiceProfileError, match="version 99"):
        VoiceProfile.from_json(json.dumps(newer))

    other = FTVModel.from_pretrained(save_tiny_checkpoint(tmp_path / "other", seed=1)).eval()
    with pytest.raises(VoiceProfileError, match="made with another model"):
        other(**processor(text=["Hello."]), voice=profile)


def test_the_fingerprint_survives_folding_weight_norm(tiny_checkpoint: Path) -> None:
    """The app serves a folded model; a profile made on an unfolded one (a script) must still be accepted."""
    processor = FTVProcessor.from_pretrained(tiny_checkpoint)
    scripted = FTVModel.from_pretrained(tiny_checkpoint).eval()
    profile = scripted.voice_profile(**processor(images=[FACE]))
    served = FTVModel.from_pretrained(tiny_checkpoint).eval().fold_weight_norm()
    profile.check_model(served)  # no error


def test_service_profile_gives_the_same_audio_without_the_photo(synthesizer: Synthesizer, tmp_path: Path) -> None:
    from_photo = synthesizer.synthesize(FACE, TEXT, seed=4, speaking_rate=1.2, noise_scale=0.5)
    path = from_photo.voice.save(tmp_path / "voice.json")
    duration_noise = synthesizer.config.noise_scale_duration
    assert from_photo.voice.settings == {
        "seed": 4, "speaking_rate": 1.2, "noise_scale": 0.5, "noise_scale_duration": duration_noise
    }  # fmt: skip
    again = synthesizer.synthesize(voice=path, text=TEXT)  # the profile's seed and settings
    np.testing.assert_array_equal(again.waveform, from_photo.waveform)
    assert again.face_crops == [] and again.attributes == from_photo.attributes
    other_seed = synthesizer.synthesize(voice=path, text=TEXT, seed=5)
    assert not np.array_equal(other_seed.waveform, from_photo.waveform)
    with pytest.raises(SynthesisError, match="not both"):
        synthesizer.synthesize(FACE, TEXT, voice=path)


def test_cli_saves_and_speaks_a_profile(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    model = ["--model", str(tiny_checkpoint), "--allow-untrained"]
    first, second, profile = tmp_path / "first.wav", tmp_path / "second.wav", tmp_path / "me.json"
    status = main(["--image", str(FACE), "--text", TEXT, "--out", str(first), "--save-voice", str(profile),
                   "--seed", "9", *model])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert f"--voice {profile}" in capsys.readouterr().out
    assert main(["--voice", str(profile), "--text", TEXT, "--out", str(second), *model]) == 0
    np.testing.assert_array_equal(wav_info(second)["samples"], wav_info(first)["samples"])


def test_a_profile_saved_in_the_app_speaks_the_same_in_the_app_and_the_cli(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """The demo's download, uploaded back to the demo and given to the CLI (its own process): the same samples."""
    from gradio_client import Client

    from benchmarks.app_client import running_app

    with running_app(["--model", str(tiny_checkpoint), "--allow-untrained"], tmp_path / "app.log") as url:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        audio, *_, details, profile = predict(client, FACE, TEXT, seed=11, settings=(0.9, 0.5, 0.6))
        assert Path(profile).suffix == ".json" and "1 photo(s)" in details
        settings = client.predict(_upload(profile), api_name="/load_voice_settings")
        assert [round(float(x), 3) for x in settings] == [0.9, 0.5, 0.6, 11]
        again, *_, details, _ = predict(client, None, TEXT, voice=Path(profile), seed=11, settings=(0.9, 0.5, 0.6))
        assert "a saved voice profile" in details
    app_samples = wav_info(audio)["samples"]
    np.testing.assert_array_equal(wav_info(again)["samples"], app_samples)
    out = tmp_path / "cli.wav"
    done = subprocess.run(
        [sys.executable, "-m", "ftv_model.synthesize", "--voice", profile, "--text", TEXT, "--out", str(out),
         "--model", str(tiny_checkpoint), "--allow-untrained"],
        cwd=REPO_ROOT, env=app_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(wav_info(out)["samples"], app_samples)


def _upload(path: str):
    from gradio_client import handle_file

    return handle_file(path)


# --------------------------------------------------------------------------------------------------------------------
# Adjusting a voice along named directions


def test_a_planted_direction_is_recovered_and_steps_are_one_standard_deviation() -> None:
    from ftv_model.voice_directions import fit_direction, mean_difference_direction

    rng = np.random.default_rng(0)
    faces = rng.normal(size=(600, 16))
    planted = np.zeros(16)
    planted[3] = 1.0
    groups = np.repeat([0, 1], 300)
    faces[groups == 1] += 2.0  # group offsets must not leak into a within-group direction
    target = faces[:, 3] * 0.5 + rng.normal(scale=0.05, size=600) + groups * 10
    vector, step, fit = fit_direction(faces, target, groups)
    assert abs(vector @ planted) > 0.98 and fit > 0.95
    assert step == pytest.approx(1.0, abs=0.1)  # the within-group spread along it
    vector, step, separation = mean_difference_direction(faces, groups, 1, 0)
    assert vector @ np.ones(16) / 4 > 0.98 and separation > 5


def test_adjustments_move_F_record_themselves_and_speak_the_same_everywhere(tmp_path: Path, capsys) -> None:
    directory = save_tiny_checkpoint(tmp_path / "tiny-directions")
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    size = config["face_embedding_size"]
    unit = [1.0] + [0.0] * (size - 1)
    config["voice_directions"] = {"pitch": {"vector": unit, "step": 0.5, "low": "lower", "high": "higher"}}
    config_path.write_text(json.dumps(config))
    model = FTVModel.from_pretrained(directory).eval()
    processor = FTVProcessor.from_pretrained(directory)
    profile = model.voice_profile(**processor(images=[FACE]))
    higher = profile.adjusted(model, {"pitch": 2.0})
    assert higher.face_embedding[0] == pytest.approx(profile.face_embedding[0] + 1.0, abs=1e-6)
    assert higher.face_embedding[1:] == profile.face_embedding[1:]
    assert higher.adjustments == {"pitch": 2.0}
    assert higher.adjusted(model, {"pitch": -2.0}).adjustments == {}  # back where it started
    for bad, message in (({"accent": 1.0}, "Unknown voice adjustment"), ({"pitch": 9.0}, "at most 3")):
        with pytest.raises(ValueError, match=message):
            profile.adjusted(model, bad)

    service = Synthesizer(directory, allow_untrained=True)
    from_photo = service.synthesize(FACE, TEXT, adjustments={"pitch": 2.0})
    assert from_photo.voice.adjustments == {"pitch": 2.0}
    from_profile = service.synthesize(voice=profile, text=TEXT, adjustments={"pitch": 2.0})
    np.testing.assert_array_equal(from_profile.waveform, from_photo.waveform)
    plain = service.synthesize(FACE, TEXT)
    assert not np.array_equal(plain.waveform, from_photo.waveform)
    with pytest.raises(SynthesisError, match="Unknown voice adjustment"):
        service.synthesize(FACE, TEXT, adjustments={"accent": 1.0})

    out = tmp_path / "cli.wav"
    model_args = ["--model", str(directory), "--allow-untrained"]
    assert main(["--image", str(FACE), "--text", TEXT, "--adjust", "pitch=2", "--out", str(out), *model_args]) == 0
    np.testing.assert_allclose(wav_info(out)["samples"] / 32767, from_photo.waveform, atol=1 / 16000)
    capsys.readouterr()
    assert main(["--image", str(FACE), "--text", TEXT, "--adjust", "pitch=4", *model_args]) == 2
    assert "at most 3" in capsys.readouterr().err
