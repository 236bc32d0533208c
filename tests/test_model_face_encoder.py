"""The face encoder chosen by name (`ftv_model.face_encoder.FACE_ENCODERS`), as timm's `create_model` chooses models."""

from __future__ import annotations

import pytest

from ftv_model import FTVConfig, FTVModel
from ftv_model.face_encoder import FACE_ENCODERS, create_face_encoder

from .model_fixtures import tiny_config


def test_face_encoders_are_chosen_by_name_from_one_registry():
    """`face_encoder_type` names a builder in `face_encoder.FACE_ENCODERS`; the config accepts exactly those names,
    and every encoder sits under `face_encoder.backbone.` (checkpoints keep their weight names)."""
    assert list(FACE_ENCODERS) == ["nest", "vit"]
    with pytest.raises(ValueError, match="face_encoder_type must be 'nest' or 'vit', got 'resnet'"):
        FTVConfig(face_encoder_type="resnet")
    with pytest.raises(ValueError, match="got 'resnet'"):
        create_face_encoder("resnet", tiny_config())
    assert type(create_face_encoder("nest", tiny_config())).__name__ == "Nest"
    names = FTVModel(tiny_config()).face_encoder.state_dict()
    assert names and all(name.startswith("backbone.") for name in names)
