"""A Piper voice's settings (`VOICE.onnx.json`) and the FTVConfig fields its tensors, graph and settings determine.

Sizes (sample rate, widths, depths, upsampling, residual block type) are read from the tensor shapes, node
attributes and the voice's `.onnx.json`; anything FTV's modules cannot express is a `PiperImportError`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from .piper_onnx_graph import PathLike, PiperGraph, PiperImportError, vits_module_of

# Piper's id scheme: `^ _ p1 _ p2 _ ... pn _ $`.
PIPER_PAD, PIPER_BOS, PIPER_EOS = "_", "^", "$"


def find_piper_json(onnx_path: PathLike, json_path: PathLike | None = None) -> Path:
    """The voice's settings file: `json_path`, else `VOICE.onnx.json` (Piper's convention) or `VOICE.json` beside it."""
    if json_path is not None:
        path = Path(json_path)
        if not path.is_file():
            raise PiperImportError(f"The voice settings file {path} does not exist.")
        return path
    onnx_path = Path(onnx_path)
    candidates = list(dict.fromkeys([onnx_path.with_name(onnx_path.name + ".json"), onnx_path.with_suffix(".json")]))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise PiperImportError(
        f"No Piper voice settings found for {onnx_path}: looked for {' and '.join(str(c) for c in candidates)}. "
        "Every Piper voice ships its .onnx with a .onnx.json (sample rate, phoneme ids, espeak voice): put it "
        "beside the .onnx or pass it (--json / json_path=)."
    )


def read_piper_settings(onnx_path: PathLike, json_path: PathLike | None = None) -> tuple[dict[str, Any], Path]:
    """The voice's `.onnx.json`, checked for what FTV needs and supports."""
    path = find_piper_json(onnx_path, json_path)
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PiperImportError(f"{path} is not a Piper voice settings file (not JSON: {error}).") from error
    if not isinstance(settings, dict) or "phoneme_id_map" not in settings:
        raise PiperImportError(f"{path} is not a Piper voice settings file: it has no `phoneme_id_map`.")
    rate = settings.get("audio", {}).get("sample_rate")
    if not isinstance(rate, int) or rate <= 0:
        raise PiperImportError(f"{path} has no valid `audio.sample_rate` (got {rate!r}).")
    speakers = int(settings.get("num_speakers", 1))
    if speakers != 1:
        raise PiperImportError(
            f"Unsupported Piper voice variant: num_speakers is {speakers} in {path}. FTV imports single-speaker "
            "voices (its speaker conditioning comes from the face); pick a single-speaker voice."
        )
    phoneme_type = settings.get("phoneme_type", "espeak")
    if phoneme_type != "espeak":
        raise PiperImportError(
            f"Unsupported Piper voice variant: phoneme_type is {phoneme_type!r} in {path}; FTV's front end "
            "phonemizes with espeak-ng, so only `espeak` voices can be imported."
        )
    if settings.get("phoneme_map"):
        raise PiperImportError(
            f"Unsupported Piper voice variant: {path} has a non-empty `phoneme_map` (phoneme rewriting before ids), "
            "which FTV's tokenizer does not apply."
        )
    return settings, path


def piper_vocabulary(settings: dict[str, Any]) -> dict[str, int]:
    """`phoneme_id_map` (symbol -> [id]) as a symbol -> id vocabulary, checked for Piper's special symbols."""
    vocabulary: dict[str, int] = {}
    for symbol, ids in settings["phoneme_id_map"].items():
        if not isinstance(ids, list) or len(ids) != 1 or not isinstance(ids[0], int):
            raise PiperImportError(
                f"Unsupported Piper voice variant: phoneme_id_map maps {symbol!r} to {ids!r}; FTV's tokenizer needs "
                "exactly one id per symbol."
            )
        if len(symbol) != 1:
            raise PiperImportError(
                f"Unsupported Piper voice variant: phoneme_id_map has the multi-character symbol {symbol!r}."
            )
        vocabulary[symbol] = ids[0]
    missing = [s for s in (PIPER_PAD, PIPER_BOS, PIPER_EOS) if s not in vocabulary]
    if missing:
        raise PiperImportError(f"phoneme_id_map lacks Piper's special symbols {missing} (pad `_`, start `^`, end `$`).")
    if vocabulary[PIPER_PAD] != 0:
        raise PiperImportError(
            f"Unsupported Piper voice variant: the pad symbol `_` has id {vocabulary[PIPER_PAD]}, FTV needs id 0."
        )
    return vocabulary


def _indices(tensors: dict[str, np.ndarray], pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for name in tensors if (m := regex.fullmatch(name))})


def _require(tensors: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in tensors:
        raise PiperImportError(f"The voice has no {name}: the graph is not a Piper VITS export this importer knows.")
    return tensors[name]


def _unsupported(what: str, got: Any, supported: Any) -> PiperImportError:
    return PiperImportError(f"Unsupported Piper voice variant: {what} is {got}, FTV supports {supported}.")


def _tail_bound(voice: PiperGraph) -> float:
    """The spline tail bound: the constant the duration flows compare their input with (LessOrEqual)."""
    from onnx import numpy_helper

    for node in voice.graph.node:
        if node.op_type == "LessOrEqual" and (vits_module_of(node.name) or "").startswith("dp.flows."):
            for name in node.input:
                if name in voice.constants:
                    return float(numpy_helper.to_array(voice.constants[name]))
    return 5.0


def infer_config_kwargs(voice: PiperGraph, settings: dict[str, Any]) -> dict[str, Any]:
    """FTVConfig backbone and audio fields of a Piper voice, read from its tensor shapes, graph and JSON."""
    t = voice.tensors
    if "emb_g.weight" in t or any(name.endswith(".cond.weight") or ".cond_layer." in name for name in t):
        raise _unsupported("speaker conditioning (emb_g / cond layers)", "present", "single-speaker voices")

    embedding = _require(t, "enc_p.emb.weight")
    vocab_size, hidden = embedding.shape
    layers = _indices(t, r"enc_p\.encoder\.attn_layers\.(\d+)\.conv_q\.weight")
    if layers != list(range(len(layers))) or not layers:
        raise PiperImportError(f"Text encoder layers are numbered {layers}: expected 0..n-1.")
    rel_k = t.get("enc_p.encoder.attn_layers.0.emb_rel_k")
    if rel_k is None or "enc_p.encoder.attn_layers.0.emb_rel_v" not in t:
        raise _unsupported("relative position attention", "absent", "VITS's windowed relative attention")
    head_dim = rel_k.shape[-1]
    ffn = _require(t, "enc_p.encoder.ffn_layers.0.conv_1.weight")
    projection = _require(t, "enc_p.proj.weight")
    flow_size = projection.shape[0] // 2

    couplings = _indices(t, r"flow\.flows\.(\d+)\.pre\.weight")
    if couplings != list(range(0, 2 * len(couplings), 2)) or not couplings:
        raise PiperImportError(f"Flow coupling layers sit at {couplings}: expected 0, 2, 4, ... (flips between).")
    wavenet_layers = _indices(t, r"flow\.flows\.0\.enc\.in_layers\.(\d+)\.weight")
    in_layer = _require(t, "flow.flows.0.enc.in_layers.0.weight")
    pre = t["flow.flows.0.pre.weight"]
    post = _require(t, "flow.flows.0.post.weight")
    if pre.shape[0] != hidden or in_layer.shape[:2] != (2 * hidden, hidden):
        raise _unsupported("the flow's WaveNet width", pre.shape[0], f"the text encoder's width ({hidden})")
    if post.shape[0] != flow_size // 2:
        raise _unsupported("flow coupling output channels", post.shape[0], f"mean-only coupling ({flow_size // 2})")
    dilation_rate = 1
    if len(wavenet_layers) > 1:
        dilation_rate = int(voice.attribute("flow.flows.0.enc.in_layers.1.weight", "dilations", [1])[0])
    for i in wavenet_layers:
        got = int(voice.attribute(f"flow.flows.0.enc.in_layers.{i}.weight", "dilations", [1])[0])
        if got != dilation_rate**i:
            raise _unsupported(f"WaveNet layer {i}'s dilation", got, f"dilation_rate ** layer ({dilation_rate**i})")

    if "dp.conv_1.weight" in t:
        raise _unsupported("the duration predictor", "deterministic (dp.conv_1)", "VITS's stochastic one")
    duration_pre = _require(t, "dp.pre.weight")
    if duration_pre.shape[:2] != (hidden, hidden):
        raise _unsupported("the duration predictor's width", duration_pre.shape[0], f"the text width ({hidden})")
    dds_layers = _indices(t, r"dp\.convs\.convs_sep\.(\d+)\.weight")
    dds_kernel = int(_require(t, "dp.convs.convs_sep.0.weight").shape[-1])
    for i in dds_layers:
        got = int(voice.attribute(f"dp.convs.convs_sep.{i}.weight", "dilations", [1])[0])
        if got != dds_kernel**i:
            raise _unsupported(f"duration conv {i}'s dilation", got, f"kernel ** layer ({dds_kernel**i})")
    conv_flows = _indices(t, r"dp\.flows\.(\d+)\.pre\.weight")
    if not conv_flows or conv_flows[-1] % 2 == 0:
        raise PiperImportError(f"Duration flows with weights sit at {conv_flows}: expected odd indices 1..2n-1.")
    num_flows = (conv_flows[-1] + 1) // 2
    expected = list(range(3, 2 * num_flows, 2))
    if [i for i in conv_flows if i != 1] != expected:
        raise PiperImportError(f"Duration conv flows sit at {conv_flows}: expected {expected} (and 1 before export).")
    if t.get("dp.flows.0.m", np.zeros((2, 1))).shape != (2, 1):
        raise _unsupported("the duration flows' channels", t["dp.flows.0.m"].shape[0], 2)
    flow_pre = t[f"dp.flows.{conv_flows[-1]}.pre.weight"]
    if flow_pre.shape[0] != hidden:
        raise _unsupported("the duration conv flows' width", flow_pre.shape[0], f"the text width ({hidden})")
    bins = (t[f"dp.flows.{conv_flows[-1]}.proj.weight"].shape[0] + 1) // 3

    conv_pre = _require(t, "dec.conv_pre.weight")
    initial_channel = int(conv_pre.shape[0])
    if conv_pre.shape[1:] != (flow_size, 7):
        raise _unsupported("the decoder's input conv (in channels, kernel)", conv_pre.shape[1:], (flow_size, 7))
    ups = _indices(t, r"dec\.ups\.(\d+)\.weight")
    rates, up_kernels = [], []
    for i in ups:
        weight = t[f"dec.ups.{i}.weight"]
        if weight.shape[:2] != (initial_channel // 2**i, initial_channel // 2 ** (i + 1)):
            raise _unsupported(f"decoder upsampler {i}'s channels", weight.shape[:2], "halving at every upsampling")
        rate = int(voice.attribute(f"dec.ups.{i}.weight", "strides", [0])[0])
        pads = voice.attribute(f"dec.ups.{i}.weight", "pads", [0, 0])
        if list(pads) != [(weight.shape[-1] - rate) // 2] * 2:
            raise _unsupported(f"decoder upsampler {i}'s padding", list(pads), "(kernel - stride) // 2")
        rates.append(rate)
        up_kernels.append(int(weight.shape[-1]))
    blocks = _indices(t, r"dec\.resblocks\.(\d+)\.\w+\.0\.weight")
    if not ups or len(blocks) % len(ups):
        raise PiperImportError(f"{len(blocks)} decoder residual blocks for {len(ups)} upsamplers: not HiFi-GAN.")
    per_stage = len(blocks) // len(ups)
    resblock_type = "2" if "dec.resblocks.0.convs.0.weight" in t else "1"
    if resblock_type == "1" and "dec.resblocks.0.convs1.0.weight" not in t:
        raise _unsupported("the decoder's residual blocks", "neither convs nor convs1/convs2", "HiFi-GAN types 1, 2")
    first = "convs" if resblock_type == "2" else "convs1"
    layouts = []
    for j in blocks:
        convs = _indices(t, rf"dec\.resblocks\.{j}\.{first}\.(\d+)\.weight")
        kernel = int(t[f"dec.resblocks.{j}.{first}.0.weight"].shape[-1])
        dilations = [int(voice.attribute(f"dec.resblocks.{j}.{first}.{i}.weight", "dilations", [1])[0]) for i in convs]
        for i, dilation in zip(convs, dilations):
            pads = list(voice.attribute(f"dec.resblocks.{j}.{first}.{i}.weight", "pads", [0, 0]))
            if pads != [(kernel * dilation - dilation) // 2] * 2:
                raise _unsupported(f"residual block {j} conv {i}'s padding", pads, "'same' padding")
        layouts.append((kernel, dilations))
    if any(layouts[j] != layouts[j % per_stage] for j in range(len(layouts))):
        raise _unsupported("residual blocks per upsampling stage", layouts, "the same kernels and dilations per stage")
    conv_post = _require(t, "dec.conv_post.weight")
    if conv_post.shape[-1] != 7 or "dec.conv_post.bias" in t:
        raise _unsupported("the decoder's output conv", f"kernel {conv_post.shape[-1]}", "kernel 7 without bias")
    slopes = [
        next((float(a.f) for a in node.attribute if a.name == "alpha"), 0.01)
        for node in voice.graph.node
        if node.op_type == "LeakyRelu" and vits_module_of(node.name) == "dec"
    ]  # the decoder's first one is before upsampler 0 (its last, before conv_post, is F.leaky_relu's 0.01)

    hop = math.prod(rates)
    n_fft = 1024 if hop == 256 else 4 * hop
    inference = settings.get("inference", {})
    length_scale = float(inference.get("length_scale", 1.0))
    return dict(
        sampling_rate=int(settings["audio"]["sample_rate"]),
        hop_length=hop,
        n_fft=n_fft,
        win_length=n_fft,
        segment_size=32 * hop,
        vocab_size=int(vocab_size),
        hidden_size=int(hidden),
        num_hidden_layers=len(layers),
        num_attention_heads=int(hidden // head_dim),
        window_size=int((rel_k.shape[1] - 1) // 2),
        use_bias="enc_p.encoder.attn_layers.0.conv_q.bias" in t,
        ffn_dim=int(ffn.shape[0]),
        ffn_kernel_size=int(ffn.shape[-1]),
        flow_size=int(flow_size),
        prior_encoder_num_flows=len(couplings),
        prior_encoder_num_wavenet_layers=len(wavenet_layers),
        wavenet_kernel_size=int(in_layer.shape[-1]),
        wavenet_dilation_rate=dilation_rate,
        use_stochastic_duration_prediction=True,
        depth_separable_channels=2,
        depth_separable_num_layers=len(dds_layers),
        duration_predictor_kernel_size=dds_kernel,
        duration_predictor_num_flows=num_flows,
        duration_predictor_flow_bins=int(bins),
        duration_predictor_tail_bound=_tail_bound(voice),
        upsample_initial_channel=initial_channel,
        upsample_rates=rates,
        upsample_kernel_sizes=up_kernels,
        resblock_type=resblock_type,
        resblock_kernel_sizes=[kernel for kernel, _ in layouts[:per_stage]],
        resblock_dilation_sizes=[dilations for _, dilations in layouts[:per_stage]],
        leaky_relu_slope=round(slopes[0], 6) if slopes else 0.1,  # ONNX stores float32: 0.1 -> 0.10000000149
        noise_scale=float(inference.get("noise_scale", 0.667)),
        noise_scale_duration=float(inference.get("noise_w", 0.8)),
        speaking_rate=1.0 / length_scale,
    )


def piper_scales(noise_scale: float, length_scale: float, noise_w: float) -> dict[str, float]:
    """Piper's `scales` input ([noise_scale, length_scale, noise_w]) as FTVModel keyword arguments."""
    if length_scale <= 0:
        raise ValueError(f"length_scale must be positive, got {length_scale}.")
    return {"noise_scale": noise_scale, "speaking_rate": 1.0 / length_scale, "noise_scale_duration": noise_w}


__all__ = [
    "PIPER_BOS",
    "PIPER_EOS",
    "PIPER_PAD",
    "find_piper_json",
    "infer_config_kwargs",
    "piper_scales",
    "piper_vocabulary",
    "read_piper_settings",
]
