"""Posterior distillation: exact (waveform, latents) pairs from the model itself, and a posterior that learns them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from ftv_model import FTVModel, FTVProcessor
from ftv_model.text_frontend import phonemize
from ftv_train.corpus.prompts import HARVARD
from ftv_train.training.posterior_distillation import (
    DistillationConfig,
    distill_posterior,
    posterior_nll,
    run_distillation,
    synthesize_pairs,
)

from .conftest import FIXTURES
from .model_fixtures import tiny_config

SENTENCES = HARVARD[:6]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    faces = [Image.open(FIXTURES / "faces" / name) for name in ("london_001.jpg", "london_005.jpg")]
    return [{"phonemes": ipa, "faces": [faces[i % 2]]} for i, ipa in enumerate(phonemize(SENTENCES))]


def test_pairs_are_what_the_decoder_rendered_and_the_posterior_learns_them(rows) -> None:
    torch.manual_seed(0)
    model = FTVModel(tiny_config(cpu_bfloat16_decoder=False)).eval()
    config = DistillationConfig(Path(), Path(), Path(), steps=60, batch_size=4, synthesis_batch_size=3)
    pairs = synthesize_pairs(model, FTVProcessor(), rows, config)
    assert len(pairs) == len(rows)
    hop = model.config.hop_length
    for pair in pairs:
        assert pair.waveform.shape[-1] == pair.latents.shape[-1] * hop
    with torch.no_grad():  # batching padded nothing into the pairs: the decoder gives the waveform back from z
        first = pairs[0]
        again = model.decoder(first.latents[None], model.face_projection(first.face[None]).unsqueeze(-1))
    assert torch.allclose(again[0, 0], first.waveform, atol=1e-4)

    train, held_out = pairs[:4], pairs[4:]
    with torch.no_grad():
        before = float(posterior_nll(model, held_out))
    decoder_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    losses = distill_posterior(model, train, config)
    with torch.no_grad():
        after = float(posterior_nll(model, held_out))
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    assert after < before - 1.0, (before, after)
    # only the posterior encoder trained, and every parameter is trainable again for later stages
    assert all(torch.equal(v, model.decoder.state_dict()[k]) for k, v in decoder_before.items())
    assert all(p.requires_grad for p in model.parameters())


def test_an_inference_only_export_is_refused_with_what_to_do(tmp_path) -> None:
    model = FTVModel(tiny_config()).to_inference_only()
    model.save_pretrained(tmp_path / "slim")
    FTVProcessor().save_pretrained(tmp_path / "slim")
    with pytest.raises(ValueError, match="inference-only export"):
        run_distillation(DistillationConfig(tmp_path / "slim", tmp_path / "data", tmp_path / "out"))
