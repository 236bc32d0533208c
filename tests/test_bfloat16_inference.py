"""The bfloat16 CPU decoder (`FTVConfig.cpu_bfloat16_decoder`, the app's and the CLI's --bf16): close to float32,
in bfloat16 end to end, and padded to shared kernel shapes without changing the audio. Its speed is a benchmark's
(benchmarks/bench_inference.py), never a test's."""

from __future__ import annotations

import pytest
import torch

from ftv_model import FTVModel

from .model_fixtures import tiny_config


def test_bfloat16_cpu_decoder_is_close_to_float32():
    from ftv_model.modeling_ftv import cpu_has_native_bfloat16

    if not cpu_has_native_bfloat16():
        pytest.skip("this CPU has no native bfloat16 (AVX512-BF16 / AMX)")
    torch.manual_seed(0)
    model = FTVModel(tiny_config()).eval()
    ids = torch.randint(1, 100, (2, 20))
    faces = torch.randn(2, 3, 128, 128)
    reference = model(ids, pixel_values=faces, seed=0)
    assert not model.runs_bfloat16_decoder  # off unless asked for
    model.config.cpu_bfloat16_decoder = True
    assert model.runs_bfloat16_decoder
    fast = model(ids, pixel_values=faces, seed=0)
    assert fast.waveform.dtype == torch.float32 and torch.equal(fast.sequence_lengths, reference.sequence_lengths)
    error = (fast.waveform - reference.waveform).pow(2).mean() / reference.waveform.pow(2).mean()
    assert 0 < float(error) < 1e-2  # bf16 really ran, and stayed within -20 dB
    assert fast.waveform.shape == reference.waveform.shape  # the bucket padding is cut off again


def test_bfloat16_decoder_stays_in_bfloat16_through_its_masks():
    """The bf16 decoder's latents and padding mask enter in bfloat16: a float32 mask promoted every masked
    activation to float32 and autocast cast it back before the next conv (a fifth of its time). Autocast runs
    (emulated) on any CPU, so this holds everywhere; the speed itself is benchmarks/bench_inference.py's."""
    torch.manual_seed(0)
    model = FTVModel(tiny_config()).eval()
    frames = 21
    latents = torch.randn(1, model.config.flow_size, frames)
    conditioning = torch.randn(1, model.config.global_conditioning_size, 1)
    with torch.inference_mode():
        waveform = model._decode_bfloat16(latents, conditioning, torch.ones(1, 1, frames))
        reference = model.decoder(latents, conditioning, None)
    assert waveform.dtype == torch.bfloat16
    assert waveform.shape == reference.shape
    error = (waveform.float() - reference).pow(2).mean() / reference.pow(2).mean()
    assert float(error) < 1e-2


def test_bucket_padding_of_the_decoder_input_does_not_change_the_audio():
    """The bf16 decoder pads its input to a multiple of BFLOAT16_FRAME_BUCKET frames (one oneDNN kernel per bucket,
    not per length); with the padding mask the audio is the unpadded run's (float32 here, to compare exactly)."""
    from ftv_model.modeling_ftv import BFLOAT16_FRAME_BUCKET

    torch.manual_seed(0)
    model = FTVModel(tiny_config()).eval()
    frames = 3 * BFLOAT16_FRAME_BUCKET + 5
    latents = torch.randn(1, model.config.flow_size, frames)
    conditioning = torch.randn(1, model.config.global_conditioning_size, 1)
    with torch.inference_mode():
        plain = model.decoder(latents, conditioning, None)
        padded = model.decode_padded(latents, conditioning, torch.ones(1, 1, frames), BFLOAT16_FRAME_BUCKET)
    assert padded.shape == plain.shape == (1, 1, frames * model.config.hop_length)
    torch.testing.assert_close(padded, plain, atol=1e-5, rtol=1e-4)
