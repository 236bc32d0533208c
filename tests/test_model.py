"""FTVModel: shapes, gradients, overfitting, save/load, batching, VITS import, duration-flow inversion, errors."""

from __future__ import annotations

import functools
import math

import pytest
import soundfile as sf
import torch
from transformers import AutoConfig, AutoModel, VitsConfig, VitsModel

from ftv_model import FTVConfig, FTVDiscriminator, FTVModel, FTVProcessor
from ftv_model.alignment import AlignmentError
from ftv_model.discriminator import FTVDiscriminatorConfig
from ftv_model.losses import discriminator_loss, feature_matching_loss, generator_adversarial_loss
from ftv_model.text_frontend import phonemize

from .conftest import FIXTURES
from .model_fixtures import tiny_config, tiny_discriminator_config

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def speech_batch() -> dict[str, torch.Tensor]:
    """Two real VCTK utterances (F, M) with their phonemes and two London faces (F, M): a real training batch."""
    processor = FTVProcessor()
    rows = [line.strip().split("|") for line in (FIXTURES / "speech" / "transcripts.txt").read_text().splitlines()]
    waves = [torch.tensor(sf.read(FIXTURES / "speech" / name, dtype="float32")[0]) for name, _, _ in rows]
    # 2.5 s of each keeps the test fast; the transcript is cut to match roughly.
    waves = [w[:40000] for w in waves]
    texts = [" ".join(text.split()[:7]) for _, _, text in rows]
    faces = [FIXTURES / "faces" / "london_001.jpg", FIXTURES / "faces" / "london_005.jpg"]
    inputs = processor(phonemes=phonemize(texts), images=faces)
    lengths = torch.tensor([len(w) for w in waves])
    waveform = torch.zeros(len(waves), int(lengths.max()))
    for i, wave in enumerate(waves):
        waveform[i, : len(wave)] = wave
    return {
        **inputs,
        "waveform": waveform,
        "waveform_lengths": lengths,
        "gender_labels": torch.tensor([1, 0]),
        "race_labels": torch.tensor([3, -100]),
    }


def test_default_config_is_the_papers_size_and_runs():
    """The paper's configuration: ~43.6M parameters, and one inference pass works end to end."""
    torch.manual_seed(0)
    model = FTVModel(FTVConfig()).eval()
    parts = model.num_parameters_by_part()
    assert 41e6 < parts["total"] < 45e6, parts
    assert 2e6 < parts["face_encoder"] < 3.5e6
    discriminator = FTVDiscriminator(FTVDiscriminatorConfig())  # the paper's (training's defaults)
    assert 45e6 < sum(p.numel() for p in discriminator.parameters()) < 48e6
    ids = torch.randint(1, 100, (1, 25))
    with torch.inference_mode():
        out = model(ids, pixel_values=torch.randn(1, 3, 128, 128), seed=0)
    assert out.waveform.shape[0] == 1
    assert int(out.sequence_lengths[0]) == out.waveform.shape[1]
    assert out.waveform.shape[1] % model.config.hop_length == 0
    assert out.face_embedding.shape == (1, 128)
    assert out.attribute_logits["gender"].shape == (1, 2) and out.attribute_logits["race"].shape == (1, 6)


def test_inference_shapes_lengths_and_controls():
    torch.manual_seed(0)
    model = FTVModel(tiny_config()).eval()
    ids = torch.randint(1, 100, (3, 20))
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    faces = torch.randn(3, 3, 128, 128)
    with torch.inference_mode():
        out = model(ids, mask, faces, seed=0)
        slow = model(ids, mask, faces, seed=0, speaking_rate=0.5)
        again = model(ids, mask, faces, seed=0)
        other = model(ids, mask, faces, seed=1)
    assert out.waveform.shape == (3, int(out.sequence_lengths.max()))
    assert out.durations.shape == (3, 20) and float(out.durations[1, 12:].sum()) == 0
    assert torch.all(out.sequence_lengths == out.durations.sum(-1).long() * model.config.hop_length)
    assert torch.all(slow.sequence_lengths > out.sequence_lengths)
    assert torch.equal(out.waveform, again.waveform)
    assert not torch.equal(out.waveform, other.waveform)
    for i, length in enumerate(out.sequence_lengths.tolist()):
        assert float(out.waveform[i, length:].abs().sum()) == 0.0


def test_batched_equals_one_by_one():
    """Each item's audio is the same in a batch as alone (no noise or conv leakage from padding)."""
    torch.manual_seed(0)
    model = FTVModel(tiny_config()).eval()
    with torch.no_grad():
        model.face_conditioning.projection.weight.normal_(0, 0.1)  # make the face path matter
    ids = torch.randint(1, 100, (2, 30))
    mask = torch.ones_like(ids)
    mask[1, 18:] = 0
    faces = torch.randn(2, 3, 128, 128)
    with torch.inference_mode():
        batched = model(ids, mask, faces, seed=7)
        for i, length in enumerate([30, 18]):
            alone = model(ids[i : i + 1, :length], pixel_values=faces[i : i + 1], seed=7)
            n = int(alone.sequence_lengths[0])
            assert int(batched.sequence_lengths[i]) == n
            torch.testing.assert_close(batched.waveform[i, :n], alone.waveform[0], atol=1e-5, rtol=0)


def test_several_photos_average_their_embeddings():
    torch.manual_seed(0)
    model = FTVModel(tiny_config()).eval()
    photos = torch.randn(2, 3, 128, 128)
    with torch.inference_mode():
        single = model.get_face_embeddings(photos)
        averaged = model.get_face_embeddings(photos.unsqueeze(0))
        masked = model.get_face_embeddings(photos.unsqueeze(0), pixel_mask=torch.tensor([[1, 0]]))
    torch.testing.assert_close(averaged[0], single.mean(0))
    torch.testing.assert_close(masked[0], single[0])


def test_flip_average_reads_a_face_and_its_mirror_alike_outside_training():
    torch.manual_seed(0)
    model = FTVModel(tiny_config(face_flip_average=True)).eval()
    photos = torch.randn(2, 3, 128, 128)
    mirrored = photos.flip(-1)
    with torch.inference_mode():
        averaged = model.get_face_embeddings(photos)
        plain = model.face_encoder(photos)
        several = model.get_face_embeddings(photos.unsqueeze(0))
    torch.testing.assert_close(averaged, model.get_face_embeddings(mirrored), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(averaged, (plain + model.face_encoder(mirrored)) / 2, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(averaged, plain, atol=1e-3)  # the encoder alone is not mirror-symmetric
    torch.testing.assert_close(several[0], averaged.mean(0), atol=1e-5, rtol=1e-4)
    model.train()  # training sees mirrored faces through augmentation, one reading each
    with torch.no_grad():
        torch.manual_seed(1)
        trained = model.get_face_embeddings(photos)
        torch.manual_seed(1)
        torch.testing.assert_close(trained, model.face_encoder(photos))


def test_training_forward_losses_and_gradients_reach_face_encoder(speech_batch):
    torch.manual_seed(0)
    model = FTVModel(tiny_config()).train()
    out = model(**speech_batch)
    for name in ("loss", "mel_loss", "kl_loss", "duration_loss", "face_attribute_loss", "audio_attribute_loss"):
        value = getattr(out, name)
        assert value.dim() == 0 and torch.isfinite(value), name
    segment = model.config.segment_size
    assert out.predicted_waveform.shape == out.target_waveform.shape == (2, 1, segment)
    assert out.alignment.shape[0] == 2
    # MAS gives every real token >= 1 frame and no frame to padding.
    durations = out.alignment.sum(-1)
    tokens = speech_batch["attention_mask"].sum(-1)
    for i in range(2):
        assert torch.all(durations[i, : tokens[i]] >= 1) and float(durations[i, tokens[i] :].sum()) == 0

    face_params = [p for p in model.face_encoder.parameters() if p.requires_grad]
    for name in ("mel_loss", "face_attribute_loss", "audio_attribute_loss"):
        grads = torch.autograd.grad(getattr(out, name), face_params, retain_graph=True, allow_unused=True)
        total = sum(float(g.abs().sum()) for g in grads if g is not None)
        assert total > 0, f"{name} does not reach the face encoder"


def test_decoder_can_learn_from_the_aligned_prior_latents(speech_batch):
    """decoder_latents="prior": the decoder's segment is the prior's synthesis latents for the recording's timing;
    its mel loss trains the decoder and the flow it passes through, never the text encoder or the posterior."""
    torch.manual_seed(0)
    model = FTVModel(tiny_config(decoder_latents="prior", decoder_prior_noise_scale=0.0)).eval()  # no dropout
    seen = {}
    original = model.decoder.forward

    def recording_decoder(latents, *args, **kwargs):
        seen["latents"] = latents.detach().clone()
        return original(latents, *args, **kwargs)

    model.decoder.forward = recording_decoder
    torch.manual_seed(1)
    out = model(**speech_batch)
    # With no noise the latents are the inverse flow of the alignment-expanded prior means, as in synthesis.
    with torch.no_grad():
        _, means, _ = model.encode_text(
            speech_batch["input_ids"],
            speech_batch["attention_mask"].unsqueeze(1).float(),
            model.get_face_embeddings(speech_batch["pixel_values"]),
        )
        hop = model.config.hop_length
        frames = int(speech_batch["waveform_lengths"][0]) // hop
        mask = torch.ones(1, 1, frames)
        expanded = torch.bmm(means[:1], out.alignment[:1, :, :frames].to(means.dtype))
        full_global = model.face_projection(model.get_face_embeddings(speech_batch["pixel_values"][:1]))
        expected = model.flow(expanded * mask, mask, full_global.unsqueeze(-1), reverse=True)
    segment = seen["latents"][0]
    windows = expected[0].unfold(-1, segment.shape[-1], 1)  # (C, starts, segment_frames)
    distance = (windows - segment[:, None, :]).abs().amax(dim=(0, 2))
    assert float(distance.min()) < 1e-4

    def gradient(module: torch.nn.Module) -> float:
        grads = torch.autograd.grad(out.mel_loss, list(module.parameters()), retain_graph=True, allow_unused=True)
        return sum(float(g.abs().sum()) for g in grads if g is not None)

    assert gradient(model.decoder) > 0 and gradient(model.flow) > 0
    assert gradient(model.text_encoder) == 0 and gradient(model.posterior_encoder) == 0
    with pytest.raises(ValueError, match="decoder_latents"):
        tiny_config(decoder_latents="posteriors")


def test_aligned_prior_window_gives_the_whole_utterance_latents():
    """The inverse flow runs on the segment plus its receptive field only: the segment's latents equal those of the
    whole utterance, at either end and in the middle, and differ when the window is cut tighter."""
    torch.manual_seed(0)
    model = FTVModel(tiny_config(decoder_latents="prior", decoder_prior_noise_scale=0.0, wavenet_dilation_rate=2))
    model.eval()
    with torch.no_grad():  # a trained-looking flow: a fresh one is the identity (zero-initialised output convs)
        for parameter in model.flow.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.3)
    channels, frames, segment = model.config.flow_size, 120, 8
    means, log_stddevs = torch.randn(3, channels, frames), torch.randn(3, channels, frames) * 0.1
    mask = torch.ones(3, 1, frames)
    mask[2, :, 90:] = 0  # a shorter item of the batch
    conditioning = torch.randn(3, model.config.global_conditioning_channels, 1)
    starts = torch.tensor([0, 50, 82])
    context = model._flow_context_frames()
    assert context == 2 * (2 * (1 + 2))  # two couplings of two WaveNet layers, kernel 5, dilations 1 and 2
    with torch.no_grad():
        whole = model.flow(means * mask, mask, conditioning, reverse=True) * mask
        expected = torch.stack([whole[i, :, s : s + segment] for i, s in enumerate(starts.tolist())])
        got = model._aligned_prior_latents(means, log_stddevs, mask, conditioning, starts, segment)
        assert got.shape == (3, channels, segment)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        model._flow_context_frames = lambda: context // 2
        tight = model._aligned_prior_latents(means, log_stddevs, mask, conditioning, starts, segment)
        assert (tight[1] - expected[1]).abs().max() > 1e-3


def test_missing_labels_are_ignored(speech_batch):
    torch.manual_seed(0)
    model = FTVModel(tiny_config()).train()
    batch = {**speech_batch, "gender_labels": torch.tensor([-100, -100]), "race_labels": torch.tensor([-100, -100])}
    out = model(**batch)
    assert out.face_attribute_loss.item() == 0.0 and out.audio_attribute_loss.item() == 0.0


def test_ablation_switches_remove_their_parts(speech_batch):
    torch.manual_seed(0)
    config = tiny_config(
        use_face_attribute_head=False,
        use_audio_attribute_head=False,
        face_encoder_type="vit",
        face_vit_embed_dim=32,
        face_vit_depth=1,
        face_vit_num_heads=2,
    )
    model = FTVModel(config)
    assert model.face_attribute_head is None and model.audio_attribute_head is None
    assert type(model.face_encoder.backbone).__name__ == "VisionTransformer"
    out = model(**speech_batch)
    assert float(out.attribute_loss) == 0.0 and torch.isfinite(out.loss)
    with torch.inference_mode():
        assert model.eval()(speech_batch["input_ids"], pixel_values=speech_batch["pixel_values"]).attribute_logits == {}


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_tiny_model_overfits_one_batch(speech_batch, precision):
    """50 generator+discriminator steps on one fixed batch: the reconstruction and KL losses fall clearly; also in
    bfloat16 autocast on a CPU that runs it natively (what training's `mixed_precision: auto` picks there)."""
    from ftv_model.modeling_ftv import cpu_has_native_bfloat16

    bfloat16 = precision == "bfloat16"
    if bfloat16 and not cpu_has_native_bfloat16():
        pytest.skip("this CPU has no native bfloat16 (AVX512-BF16 / AMX): training stays in float32 there")
    torch.manual_seed(0)
    config = tiny_config(segment_size=4096)
    model = FTVModel(config).train()
    discriminator = FTVDiscriminator(tiny_discriminator_config()).train()
    opt_g = torch.optim.AdamW(model.parameters(), 2e-3, betas=(0.8, 0.99))
    opt_d = torch.optim.AdamW(discriminator.parameters(), 2e-3, betas=(0.8, 0.99))
    history = []
    autocast = functools.partial(torch.autocast, "cpu", dtype=torch.bfloat16, enabled=bfloat16)
    for _ in range(50):
        with autocast():
            out = model(**speech_batch)
            real, _ = discriminator(out.target_waveform)
            fake, _ = discriminator(out.predicted_waveform.detach())
        opt_d.zero_grad()
        discriminator_loss(real, fake).backward()
        opt_d.step()
        with autocast():
            fake_scores, fake_features = discriminator(out.predicted_waveform)
            _, real_features = discriminator(out.target_waveform)
        loss = out.loss + generator_adversarial_loss(fake_scores) + feature_matching_loss(real_features, fake_features)
        opt_g.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        opt_g.step()
        history.append((out.mel_loss.item(), out.kl_loss.item(), out.face_attribute_loss.item()))
    first = [sum(h[k] for h in history[:5]) / 5 for k in range(3)]
    last = [sum(h[k] for h in history[-5:]) / 5 for k in range(3)]
    assert last[0] < 0.85 * first[0], (first, last)  # mel L1 (the segment moves every step, so it falls slowest)
    assert last[1] < 0.5 * first[1], (first, last)  # KL
    assert last[2] < 0.5 * first[2], (first, last)  # face attribute CE on the two labelled faces


def test_stochastic_duration_flows_invert():
    """Training-order flows followed by the inference branch give the log-duration back (with zero extra noise).

    transformers' stock training branch flips after the affine flow too, and fails this round trip."""
    torch.manual_seed(0)
    # eval: no dropout, so both directions see the same conditioning; float64: the spline inverse is exact there
    model = FTVModel(tiny_config()).eval().double()
    predictor = model.duration_predictor
    with torch.no_grad():
        for param in predictor.parameters():
            param.add_(torch.randn_like(param) * 0.05)  # away from the identity init
    hidden = torch.randn(2, model.config.hidden_size, 9, dtype=torch.float64)
    mask = torch.ones(2, 1, 9, dtype=torch.float64)
    log_duration = torch.randn(2, 1, 9, dtype=torch.float64)
    other = torch.randn(2, 1, 9, dtype=torch.float64)
    with torch.no_grad():
        conditioning = predictor._condition(hidden, mask, None)
        latents, _ = predictor._run_flows(predictor.flows, torch.cat([log_duration, other], 1), mask, conditioning)
        recovered = predictor(hidden, mask, reverse=True, noise=latents, noise_scale=1.0)
        stock = torch.cat([log_duration, other], 1)
        for flow in predictor.flows:  # the stock order: flip after every flow
            stock, _ = flow(stock, mask, global_conditioning=conditioning)
            stock = torch.flip(stock, [1])
        recovered_stock = predictor(hidden, mask, reverse=True, noise=stock, noise_scale=1.0)
    torch.testing.assert_close(recovered, log_duration, atol=1e-9, rtol=1e-9)
    assert float((recovered_stock - log_duration).abs().max()) > 1e-2


def test_save_load_round_trip_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    model = FTVModel(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob("*.pt"))
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, FTVModel)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "ftv"
    ids = torch.randint(1, 100, (2, 25))
    faces = torch.randn(2, 3, 128, 128)
    with torch.inference_mode():
        a = model(ids, pixel_values=faces, seed=3)
        b = loaded(ids, pixel_values=faces, seed=3)
    assert torch.equal(a.waveform, b.waveform)
    assert torch.equal(a.attribute_logits["race"], b.attribute_logits["race"])


def test_backbone_initialises_from_a_transformers_vits_checkpoint(tmp_path):
    """A tiny VitsModel saved with save_pretrained loads into FTV's backbone: same text encoder, flow, decoder."""
    config = tiny_config()
    vits_config = config.vits_config()
    vits_config.speaker_embedding_size = 0  # single-speaker checkpoint: FTV's conditioning layers stay fresh
    torch.manual_seed(1)
    vits = VitsModel(vits_config).eval()
    vits.save_pretrained(tmp_path)
    torch.manual_seed(2)
    model = FTVModel(config).eval()
    missing = model.init_backbone_from_vits(tmp_path)
    assert all(".cond" in name for name in missing), missing  # only global-conditioning layers are new
    state = model.state_dict()
    for name, tensor in VitsModel.from_pretrained(tmp_path).state_dict().items():
        if name in state:
            assert torch.equal(state[name], tensor), name
    # Weight-normed FTV decoder layers reproduce VITS's plain weights.
    torch.testing.assert_close(model.decoder.upsampler[0].weight, vits.decoder.upsampler[0].weight)
    hidden_vits = vits.text_encoder(torch.tensor([[3, 4, 5]]), torch.ones(1, 3, 1)).last_hidden_state
    model.face_conditioning = None  # compare the text encoders alone
    hidden_ftv, _, _ = model.encode_text(torch.tensor([[3, 4, 5]]), torch.ones(1, 1, 3), None)
    torch.testing.assert_close(hidden_ftv.transpose(1, 2), hidden_vits)


def test_backbone_import_rejects_other_sizes(tmp_path):
    VitsModel(VitsConfig(hidden_size=48, ffn_dim=64, num_hidden_layers=1, flow_size=16)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="Shape mismatch"):
        FTVModel(tiny_config()).init_backbone_from_vits(tmp_path)


def test_alignment_error_for_more_tokens_than_frames():
    torch.manual_seed(0)
    model = FTVModel(tiny_config()).train()
    ids = torch.randint(1, 100, (1, 80))
    with pytest.raises(AlignmentError, match="80 tokens > 15 frames"):
        model(ids, pixel_values=torch.randn(1, 3, 128, 128), waveform=torch.randn(1, 4000))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pixel_values": torch.randn(1, 3, 64, 64)}, r"pixel_values must have shape \(batch, 3, 128, 128\)"),
        ({"pixel_values": torch.randn(1, 128, 128)}, "pixel_values must have shape"),
        ({}, "A face is needed"),
        ({"face_embeddings": torch.randn(1, 7)}, "face_embeddings must have shape"),
        ({"pixel_values": torch.randn(3, 3, 128, 128)}, "Got 3 faces for 1 texts"),
        ({"pixel_values": torch.randn(1, 3, 128, 128), "speaking_rate": 0.0}, "speaking_rate must be positive"),
    ],
)
def test_clear_errors_for_bad_model_inputs(kwargs, message):
    model = FTVModel(tiny_config()).eval()
    with pytest.raises(ValueError, match=message), torch.inference_mode():
        model(torch.randint(1, 100, (1, 10)), **kwargs)


def test_too_long_input_is_an_error():
    model = FTVModel(tiny_config(max_input_length=50)).eval()
    with pytest.raises(ValueError, match="more than max_input_length"):
        model(torch.randint(1, 100, (1, 51)), pixel_values=torch.randn(1, 3, 128, 128))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="Could not load the FTV model: there is no directory"):
        FTVModel.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(OSError, match="has no loadable model files"):
        FTVModel.from_pretrained(tmp_path)
    with pytest.raises(OSError, match="Hub repo 'org/not-cached'"):
        FTVModel.from_pretrained("org/not-cached")  # tests run with HF_HUB_OFFLINE=1


def test_discriminator_shapes_and_losses():
    config = tiny_discriminator_config()
    discriminator = FTVDiscriminator(config)
    scores, features = discriminator(torch.randn(2, 1, 4096))
    assert len(scores) == 1 + len(config.discriminator_periods)
    assert all(s.shape[0] == 2 for s in scores)
    assert [len(f) for f in features] == [7] + [6] * len(config.discriminator_periods)  # convs + output layer
    real = [torch.ones(2, 5)]
    assert float(discriminator_loss(real, [torch.zeros(2, 5)])) == 0.0
    assert float(generator_adversarial_loss([torch.zeros(2, 5)])) == 1.0
    assert math.isclose(float(feature_matching_loss([[torch.ones(3)]], [[torch.zeros(3)]])), 2.0)


def test_inference_only_export_is_smaller_and_speaks_the_same(tmp_path) -> None:
    """float32 export: identical audio without the training-only modules; float16: half the bytes, loaded back
    in float32, close audio; neither can compute training losses."""
    from ftv_model.export_inference import export_inference
    from ftv_model.modeling_ftv import InferenceOnlyModelError
    from tests.model_fixtures import save_tiny_checkpoint

    source = save_tiny_checkpoint(tmp_path / "full", seed=3)
    full = FTVModel.from_pretrained(source).eval()
    with torch.no_grad():  # move the LayerNorms etc. off their init so this is a "trained" model
        for parameter in full.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    full.save_pretrained(source)
    exact = export_inference(source, tmp_path / "fp32", dtype=torch.float32)
    half = export_inference(source, tmp_path / "fp16")

    slim = FTVModel.from_pretrained(exact).eval()
    small = FTVModel.from_pretrained(half).eval()
    assert slim.config.inference_only and slim.posterior_encoder is None
    assert slim.duration_predictor.post_flows is None
    assert small.dtype == torch.float32  # stored as float16, computed in float32
    assert (half / "model.safetensors").stat().st_size < 0.6 * (exact / "model.safetensors").stat().st_size
    assert slim.num_parameters() < full.num_parameters()

    inputs = {"input_ids": torch.randint(1, 30, (1, 20)), "face_embeddings": torch.randn(1, 32)}
    inputs.update(noise_scale=0.0, noise_scale_duration=0.0)  # the float16 comparison without noise
    with torch.no_grad():
        reference = full(**inputs, seed=0).waveform
        assert torch.equal(slim(**inputs, seed=0).waveform, reference)
        approx = small(**inputs, seed=0).waveform
        other_face = full(**{**inputs, "face_embeddings": torch.randn(1, 32)}, seed=0).waveform
    assert abs(approx.shape[-1] - reference.shape[-1]) <= full.config.hop_length * 2

    def log_mel_distance(a: torch.Tensor, b: torch.Tensor) -> float:
        import torchaudio

        mel = torchaudio.transforms.MelSpectrogram(full.config.sampling_rate, n_fft=1024, hop_length=256, n_mels=64)
        length = min(a.shape[-1], b.shape[-1])
        log_a, log_b = (mel(x[..., :length]).clamp_min(1e-5).log() for x in (a, b))
        return float((log_a - log_b).abs().mean())

    # float16 rounding changes the audio far less than another face does.
    assert log_mel_distance(approx, reference) < 0.25 * log_mel_distance(other_face, reference)

    with pytest.raises(InferenceOnlyModelError, match="inference-only"):
        slim(
            input_ids=inputs["input_ids"],
            face_embeddings=inputs["face_embeddings"],
            waveform=torch.randn(1, 8192),
            waveform_lengths=torch.tensor([8192]),
        )
    card = (half / "README.md").read_text()
    assert "Inference export" in card and "float16" in card


def test_copy_synthesis_batches_like_single_items_and_needs_the_posterior(speech_batch) -> None:
    """reconstruct(): real speech through the posterior encoder and decoder; padding does not leak into the
    shorter item, lengths are whole hops, and an inference-only model says why it cannot."""
    from ftv_model.modeling_ftv import InferenceOnlyModelError

    torch.manual_seed(0)
    model = FTVModel(tiny_config()).eval()
    hop = model.config.hop_length
    waveform = speech_batch["waveform"][:, :24000].clone()
    lengths = torch.tensor([24000, 15000])
    waveform[1, 15000:] = 0
    pixels = speech_batch["pixel_values"]
    out = model.reconstruct(waveform, lengths, pixel_values=pixels)
    assert out.sequence_lengths.tolist() == [24000 // hop * hop, 15000 // hop * hop]
    assert out.waveform.shape == (2, 24000 // hop * hop) and not out.waveform.requires_grad
    alone = model.reconstruct(waveform[1:, :15000], pixel_values=pixels[1:]).waveform[0]
    batched = out.waveform[1, : alone.shape[-1]]
    assert torch.allclose(batched, alone, atol=1e-4), (batched - alone).abs().max()
    with pytest.raises(InferenceOnlyModelError, match="posterior encoder"):
        model.to_inference_only().reconstruct(waveform, lengths, pixel_values=pixels)


def test_face_descriptor_branch_starts_silent_learns_and_round_trips(speech_batch, tmp_path):
    """The pretrained-descriptor branch added to a model leaves its voice unchanged until trained, receives the
    training losses' gradients, makes different descriptors give different F, survives save/load, and a missing
    descriptor is a clear error."""
    torch.manual_seed(0)
    model = FTVModel(tiny_config()).eval()
    ids = torch.randint(1, 100, (2, 25))
    faces = torch.randn(2, 3, 128, 128)
    descriptors = torch.randn(2, 128) * 0.05
    with torch.inference_mode():
        before = model(ids, pixel_values=faces, seed=3).waveform
    model.add_face_descriptor_fusion("dlib-resnet-v1")
    with torch.inference_mode():
        after = model(ids, pixel_values=faces, face_descriptors=descriptors, seed=3).waveform
    assert torch.equal(before, after)
    with pytest.raises(ValueError, match="FTVProcessor"):
        model(ids, pixel_values=faces)
    with pytest.raises(ValueError, match="face_descriptors must have shape"):
        model(ids, pixel_values=faces, face_descriptors=descriptors[:, :64])

    model.train()
    batch = {**speech_batch, "face_descriptors": torch.randn(2, 128) * 0.05}
    out = model(**batch)
    fusion = list(model.face_descriptor_fusion.parameters())
    grads = torch.autograd.grad(out.mel_loss + out.face_attribute_loss, fusion, allow_unused=True)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0
    with torch.no_grad():
        model.face_descriptor_fusion.out.weight.normal_(0.0, 0.1)
    model.eval()
    with torch.inference_mode():
        one = model.get_face_embeddings(faces[:1].expand(2, -1, -1, -1), face_descriptors=descriptors)
    assert not torch.allclose(one[0], one[1])  # one photo, two descriptors: two different faces to the model

    model.save_pretrained(tmp_path)
    loaded = FTVModel.from_pretrained(tmp_path).eval()
    assert loaded.config.face_descriptor == "dlib-resnet-v1"
    with torch.inference_mode():
        a = model(ids, pixel_values=faces, face_descriptors=descriptors, seed=3).waveform
        b = loaded(ids, pixel_values=faces, face_descriptors=descriptors, seed=3).waveform
    assert torch.equal(a, b)
    fresh = FTVModel(tiny_config(face_descriptor="dlib-resnet-v1"))
    # a new model's branch starts silent too
    assert float(fresh.face_descriptor_fusion.out.weight.detach().abs().sum()) == 0.0
