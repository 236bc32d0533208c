"""The decoder's buzz at its frame rate: the loss that trains it away (`ftv_model.losses.frame_comb_loss`), checked
on real speech from the fixtures with a pattern repeated in every 256-sample frame added."""

from __future__ import annotations

import pytest
import soundfile as sf
import torch

from ftv_model.losses import frame_comb_loss, frame_periodicity
from ftv_train.evaluation.metrics.comb import comb_level_db

from .conftest import FIXTURES


def _fixture_names() -> list[str]:
    return [line.split("|")[0] for line in (FIXTURES / "speech" / "transcripts.txt").read_text().splitlines()][:2]


def _fixture_speech(name: str) -> torch.Tensor:
    return torch.tensor(sf.read(FIXTURES / "speech" / name, dtype="float32")[0])


def test_frame_comb_loss_sees_the_decoder_buzz_and_training_on_it_removes_it() -> None:
    """Real speech is not locked to the decoder's 256-sample frames (periodicity near 1); a pattern repeated in every
    frame is (the buzz). Descending the loss removes the repeated pattern and keeps the speech."""
    hop = 256
    speech = torch.cat([_fixture_speech(name)[: 32 * hop * 4] for name in _fixture_names()]).reshape(8, 1, 32 * hop)
    generator = torch.Generator().manual_seed(0)
    frame = torch.randn(hop, generator=generator) * speech.pow(2).mean().sqrt() * 0.2  # 14 dB under the speech
    buzzing = speech + frame.repeat(32)
    clean_periodicity = float(frame_periodicity(speech, hop).mean())
    assert 0.3 < clean_periodicity < 1.6
    assert float(frame_periodicity(buzzing, hop).mean()) > clean_periodicity + 1.0
    assert float(frame_comb_loss(speech, speech, hop)) == 0.0
    assert float(frame_comb_loss(buzzing, speech, hop)) > 0.8

    audio = buzzing.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([audio], lr=1e-3)
    for _ in range(100):
        optimizer.zero_grad()
        frame_comb_loss(audio, speech, hop).backward()
        optimizer.step()
    comb = [comb_level_db(x.detach().numpy().ravel(), 22050, 22050 / hop) for x in (speech, buzzing, audio)]
    assert comb[1] > comb[0] + 1.5 and comb[2] < comb[0] + 0.5, comb  # the buzz is gone
    kept = torch.nn.functional.cosine_similarity(audio.detach().reshape(1, -1), speech.reshape(1, -1))
    assert float(kept) > 0.98
    with pytest.raises(ValueError, match="fewer than two"):
        frame_periodicity(torch.zeros(1, 1, 300), hop)
