"""Calibration of the face attribute head: ECE, the temperature fit, the model applying it, and the fitting run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from ftv_model import FTVConfig, FTVModel
from ftv_train.evaluation.calibration import CalibrationConfig, calibrate_face_head, fit_temperature
from ftv_train.evaluation.metrics.calibration import expected_calibration_error, reliability_bins
from tests.model_fixtures import save_tiny_checkpoint

FIXTURE_FACES = Path(__file__).resolve().parent / "fixtures" / "faces"


def test_ece_is_the_weighted_gap_between_confidence_and_accuracy() -> None:
    # bin (0.9, 1]: confidence 0.95, 2 of 4 right -> gap 0.45; bin (0.6, 0.7]: 0.65, 1 of 2 right -> gap 0.15
    confidences = [0.95, 0.95, 0.95, 0.95, 0.65, 0.65]
    correct = [1, 1, 0, 0, 1, 0]
    assert expected_calibration_error(confidences, correct) == pytest.approx(4 / 6 * 0.45 + 2 / 6 * 0.15)
    bins = reliability_bins(confidences, correct)
    assert sum(b["count"] for b in bins) == 6 and bins[-1]["accuracy"] == 0.5
    assert expected_calibration_error([0.8] * 10, [1] * 8 + [0] * 2) == pytest.approx(0.0)


def test_temperature_fit_recovers_an_overconfident_head_and_lowers_its_ece() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0.0, 1.5, size=(4000, 2))
    probabilities = np.exp(true_logits) / np.exp(true_logits).sum(-1, keepdims=True)
    labels = np.array([rng.choice(2, p=p) for p in probabilities])
    overconfident = 3.0 * true_logits  # what a head trained to saturation reports
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)

    def ece(logits: np.ndarray) -> float:
        p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        return expected_calibration_error(p.max(-1), (p.argmax(-1) == labels).astype(float))

    assert ece(overconfident) > 0.1 and ece(overconfident / temperature) < 0.03


def test_the_model_returns_calibrated_readings_at_inference_and_raw_logits_to_the_loss(tmp_path: Path) -> None:
    directory = save_tiny_checkpoint(tmp_path / "tiny", face_attribute_temperatures={"gender": 2.5})
    model = FTVModel.from_pretrained(directory).eval()
    assert model.config.face_attribute_temperatures == {"gender": 2.5}
    face = model.get_face_embeddings(torch.rand(3, 3, 128, 128))
    raw, calibrated = model.face_attributes(face), model.calibrated_face_attributes(face)
    torch.testing.assert_close(calibrated["gender"], raw["gender"] / 2.5)
    torch.testing.assert_close(calibrated["race"], raw["race"])  # no temperature: unchanged
    assert torch.equal(calibrated["gender"].argmax(-1), raw["gender"].argmax(-1))  # the reading, so the voice, stays
    with pytest.raises(ValueError, match="positive"):
        FTVConfig(face_attribute_temperatures={"gender": 0.0})


def _held_out_dataset(root: Path) -> Path:
    """validation_unseen: three identities, four views of each real photo (mirrored, cropped, darkened)."""
    from datasets import Dataset, DatasetDict

    from ftv_train.data.dataset_format import FEATURES, REQUIRED_SPLITS, encode_audio

    photos = {"london_001": 1, "london_005": 1, "fairface_0101": 0}  # gender ids: 0 male, 1 female
    rows = []
    for name, gender in photos.items():
        image = Image.open(FIXTURE_FACES / f"{name}.jpg").convert("RGB").resize((128, 128))
        darker = image.point(lambda v: int(v * 0.7))
        views = [image, ImageOps.mirror(image), image.crop((8, 8, 120, 120)).resize((128, 128)), darker]
        for k, view in enumerate(views):
            buffer = __import__("io").BytesIO()
            view.save(buffer, format="PNG")
            rows.append(
                {
                    "id": f"{name}/{k}",
                    "speaker": name,
                    "text": "a",
                    "phonemes": "ɐ",
                    "audio": {"bytes": encode_audio(np.zeros(1600, np.float32)), "path": None},
                    "duration": 0.1,
                    "faces": [{"bytes": buffer.getvalue(), "path": None}],
                    "num_views": 1,
                    "gender": gender,
                    "race": -1,
                }
            )
    splits = {split: Dataset.from_list(rows[:1], features=FEATURES) for split in REQUIRED_SPLITS}
    splits["validation_unseen"] = Dataset.from_list(rows, features=FEATURES)
    DatasetDict(splits).save_to_disk(str(root))
    return root


def test_calibration_run_fits_on_held_out_identities_and_writes_the_model(tmp_path: Path) -> None:
    data = _held_out_dataset(tmp_path / "data")
    model_dir = save_tiny_checkpoint(tmp_path / "model")
    with pytest.raises(ValueError, match="validation_unseen"):  # training identities are refused
        calibrate_face_head(CalibrationConfig(model=str(model_dir), data=str(data), split="validation"))
    report = calibrate_face_head(
        CalibrationConfig(
            model=str(model_dir), data=str(data), write=True, check_splits=["test_unseen"], plot=str(tmp_path / "r.png")
        )
    )
    assert (tmp_path / "r.png").stat().st_size > 5_000  # the reliability diagram, before and after
    gender = report["attributes"]["gender"]
    assert report["identities"] == 3 and gender["before"]["readings"] == 12
    assert gender["after"]["nll"] <= gender["before"]["nll"] + 1e-9  # the fit minimises held-out NLL
    assert gender["before"]["accuracy"] == gender["after"]["accuracy"]  # the reading itself never changes
    check = report["checks"]["test_unseen"]["attributes"]["gender"]  # scored with the fitted T, not fitted on
    assert check["after"]["temperature"] == gender["after"]["temperature"] and check["after"]["readings"] == 1
    assert "race" in report["attributes"] and "skipped" in report["attributes"]["race"]  # race unlabelled here
    stored = json.loads((model_dir / "config.json").read_text())
    assert stored["face_attribute_temperatures"] == {"gender": gender["after"]["temperature"]}
    assert json.loads((model_dir / "face_calibration.json").read_text())["split"] == "validation_unseen"
    reloaded = FTVModel.from_pretrained(model_dir)
    assert reloaded.config.face_attribute_temperatures["gender"] == pytest.approx(gender["after"]["temperature"])


def test_the_demo_service_shows_the_calibrated_probabilities(tmp_path: Path) -> None:
    from ftv_model.synthesis import Synthesizer

    calibrated_dir = save_tiny_checkpoint(tmp_path / "calibrated", face_attribute_temperatures={"gender": 4.0})
    plain_dir = save_tiny_checkpoint(tmp_path / "plain")
    photo = Image.open(FIXTURE_FACES / "london_001.jpg")
    readings = {}
    for name, directory in (("calibrated", calibrated_dir), ("plain", plain_dir)):
        service = Synthesizer(directory, allow_untrained=True)
        readings[name] = service.synthesize(photo, "Hello.").attributes["gender"]
    plain = np.array(list(readings["plain"].values()))
    logits = np.log(plain)
    expected = np.exp(logits / 4.0) / np.exp(logits / 4.0).sum()
    np.testing.assert_allclose(list(readings["calibrated"].values()), expected, atol=1e-5)
