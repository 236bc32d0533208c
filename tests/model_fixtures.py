"""A tiny FTV configuration and checkpoint for fast CPU tests (registered as a pytest plugin in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks.tiny_model import TINY_MODEL
from ftv_model import FTVConfig, FTVModel, FTVProcessor
from ftv_model.discriminator import FTVDiscriminatorConfig

TINY_OVERRIDES = TINY_MODEL
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
