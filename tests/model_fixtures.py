"""A tiny FTV configuration and checkpoint for fast CPU tests (registered as a pytest plugin in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ftv_model import FTVConfig, FTVModel, FTVProcessor
from ftv_model.discriminator import FTVDiscriminatorConfig

TINY_OVERRIDES = dict(
    hidden_size=32,
    ffn_dim=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    flow_size=16,
    prior_encoder_num_flows=2,
    prior_encoder_num_wavenet_layers=2,
    posterior_encoder_num_wavenet_layers=2,
    duration_predictor_filter_channels=32,
    duration_predictor_num_flows=2,
    upsample_initial_channel=32,
    resblock_kernel_sizes=(3,),
    resblock_dilation_sizes=((1, 3),),
    face_embed_dims=(16, 32, 64),
    face_num_heads=(1, 2, 2),
    face_depths=(1, 1, 1),
    face_embedding_size=32,
    global_conditioning_size=32,
    attribute_hidden_size=16,
    audio_attribute_length=256,
)
TINY_DISCRIMINATOR = dict(discriminator_width=0.125, discriminator_periods=(2, 3))


def tiny_config(**overrides) -> FTVConfig:
    """The paper's architecture at toy widths: every module present, a forward pass in milliseconds."""
    return FTVConfig(**{**TINY_OVERRIDES, **overrides})


def tiny_discriminator_config(**overrides) -> FTVDiscriminatorConfig:
    """The discriminator at toy width, with two periods: its settings are training's, not the model config's."""
    return FTVDiscriminatorConfig(**{**TINY_DISCRIMINATOR, **overrides})


def save_tiny_checkpoint(directory: Path, seed: int = 0, **overrides) -> Path:
    """A randomly initialised tiny model + processor, saved as a normal `save_pretrained` directory."""
    torch.manual_seed(seed)
    FTVModel(tiny_config(**overrides)).save_pretrained(directory)
    FTVProcessor().save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny FTV checkpoint directory (model + processor), built once per test session."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-ftv"))
