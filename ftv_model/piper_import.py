"""Import a Piper ONNX voice (VITS trained by Piper, exported for inference) as FTVModel's backbone.

Piper's exporter keeps most tensor names of the original VITS modules (`enc_p`, `dp`, `flow`, `dec`) but not all:
weight-normed convolutions are folded into anonymous tensors (`onnx::Conv_*`), the first duration-flow's
`exp(-logs)` is constant-folded, and some tensors are renamed (the joe voice calls its phoneme embedding `sid`).
Names are therefore never trusted on their own: every initializer's module is read from the graph node that
consumes it (`/flow/flows.6/enc/in_layers.0/Conv` -> `flow.flows.6.enc.in_layers.0`) and its role from that
node's op and input slot. `PIPER_TO_FTV` then maps the original VITS names onto FTV's (transformers') names, in
one table. Sizes (sample rate, widths, depths, upsampling, residual block type) are read from the tensor shapes,
node attributes and the voice's `.onnx.json`; anything FTV's modules cannot express is a `PiperImportError`.

An inference export lacks the posterior encoder, the duration predictor's posterior flows and its first conv flow;
FTV's face parts and the discriminator never existed in Piper. Those start fresh, and every face-conditioning
layer starts at zero, so an imported model speaks exactly like the source voice whatever the face.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .configuration_ftv import FTVConfig
from .vits_import import load_vits_backbone

if TYPE_CHECKING:
    from .modeling_ftv import FTVModel
    from .processing_ftv import FTVProcessor
    from .tokenization_ftv import FTVTokenizer

PathLike = str | Path

# Piper's id scheme: `^ _ p1 _ p2 _ ... pn _ $`.
PIPER_PAD, PIPER_BOS, PIPER_EOS = "_", "^", "$"


class PiperImportError(ValueError):
    """A file that is not a usable Piper voice, or a voice variant FTV cannot express; the message says which."""


# ---------------------------------------------------------------------------------------------------------------------
# Reading the ONNX graph: initializer -> (VITS module, role) through the node that consumes it
# ---------------------------------------------------------------------------------------------------------------------

# (op, input slot) -> parameter role, for tensors whose own name says nothing (folded weight norm, renames).
_ROLE_BY_SLOT = {
    ("Conv", 1): "weight",
    ("Conv", 2): "bias",
    ("ConvTranspose", 1): "weight",
    ("ConvTranspose", 2): "bias",
    ("Gather", 0): "weight",  # an embedding table
}
# Constant-folded expressions: (consuming op, name suffix) -> (role, inverse of the fold).
# The elementwise-affine flow's reverse pass multiplies by exp(-logs); the exporter stored that product.
_FOLDED: dict[tuple[str, str], tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    ("Mul", "Exp_output_0"): ("logs", lambda value: -np.log(value)),
}
_VITS_MODULES = ("enc_p", "dp", "flow", "dec")


@dataclass
class PiperGraph:
    """The voice's weights under their original VITS names, plus what config inference needs from the graph."""

    tensors: dict[str, np.ndarray]  # VITS name -> array (folds undone)
    sources: dict[str, str]  # VITS name -> ONNX initializer name
    nodes: dict[str, Any]  # VITS name -> the onnx NodeProto that consumes it (for attributes)
    unresolved: list[str]  # weight-like initializers whose module or role could not be read from the graph
    graph: Any  # the onnx GraphProto
    constants: dict[str, Any]  # every initializer by ONNX name (TensorProto)

    def attribute(self, vits_name: str, attribute: str, default: Any = None) -> Any:
        """An attribute (`dilations`, `strides`, `pads`, ...) of the node that consumes `vits_name`."""
        from onnx import helper

        node = self.nodes.get(vits_name)
        if node is None:
            return default
        for item in node.attribute:
            if item.name == attribute:
                return helper.get_attribute_value(item)
        return default


def _module_of(node_name: str) -> str | None:
    """`/flow/flows.6/enc/in_layers.0/Conv` -> `flow.flows.6.enc.in_layers.0` (None outside a VITS module)."""
    parts = node_name.strip("/").split("/")
    if len(parts) < 2 or parts[0] not in _VITS_MODULES:
        return None
    return ".".join(parts[:-1])


def _resolve(name: str, uses: list[tuple[Any, int]]) -> tuple[str, Callable[[np.ndarray], np.ndarray] | None] | None:
    """The VITS name of initializer `name` from its consumers, and the inverse of any constant fold."""
    modules = {_module_of(node.name) for node, _ in uses}
    if len(modules) != 1 or None in modules:
        return None
    module = modules.pop()
    own = name[len(module) + 1 :] if name.startswith(module + ".") else ""
    if own and "." not in own:
        return f"{module}.{own}", None  # the exporter kept the original name, and the graph agrees with it
    if len(uses) != 1:
        return None
    node, slot = uses[0]
    role = _ROLE_BY_SLOT.get((node.op_type, slot))
    if role is not None:
        return f"{module}.{role}", None
    for (op, suffix), (folded_role, inverse) in _FOLDED.items():
        if node.op_type == op and name.endswith(suffix):
            return f"{module}.{folded_role}", inverse
    return None


def _load_onnx(source: PathLike | Any) -> Any:
    import onnx

    if isinstance(source, onnx.ModelProto):
        return source
    path = Path(source)
    if not path.is_file():
        raise PiperImportError(f"{path} does not exist: give the path of a Piper voice's .onnx file.")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf raises several unrelated types for non-ONNX bytes
        raise PiperImportError(f"{path} is not an ONNX file ({type(error).__name__}: {error}).") from error
    if model.ir_version <= 0 or not model.graph.node:
        raise PiperImportError(f"{path} is not an ONNX model (no graph could be read from it).")
    return model


def read_piper_graph(source: PathLike | Any) -> PiperGraph:
    """Read a Piper ONNX file (or an `onnx.ModelProto`) into VITS-named arrays, resolving names through the graph."""
    from onnx import numpy_helper

    model = _load_onnx(source)
    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    uses: dict[str, list[tuple[Any, int]]] = {name: [] for name in initializers}
    for node in graph.node:
        for slot, name in enumerate(node.input):
            if name in uses:
                uses[name].append((node, slot))

    tensors: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    nodes: dict[str, Any] = {}
    unresolved: list[str] = []
    for name, proto in initializers.items():
        array = numpy_helper.to_array(proto)
        weight_like = array.dtype.kind == "f" and array.size > 1
        resolved = _resolve(name, uses[name]) if uses[name] else None
        if resolved is None:
            if weight_like:
                unresolved.append(name)  # a graph constant would be an int or a scalar: this looks like a weight
            continue
        vits_name, inverse = resolved
        if vits_name in tensors:
            raise PiperImportError(
                f"Two initializers ({sources[vits_name]!r} and {name!r}) resolve to {vits_name}: the graph is not "
                "a Piper VITS export this importer understands."
            )
        tensors[vits_name] = (inverse(array) if inverse else array).astype(np.float32, copy=False)
        sources[vits_name] = name
        nodes[vits_name] = uses[name][0][0]
    found = {name.split(".")[0] for name in tensors}
    missing = [module for module in _VITS_MODULES if module not in found]
    if missing:
        raise PiperImportError(
            "This ONNX model is not a Piper VITS voice: no weights are consumed by the VITS module(s) "
            f"{', '.join(missing)} (a Piper voice has text encoder `enc_p`, duration predictor `dp`, flow `flow` "
            "and decoder `dec`)."
        )
    return PiperGraph(tensors, sources, nodes, sorted(unresolved), graph, initializers)


# ---------------------------------------------------------------------------------------------------------------------
# The mapping table: original VITS names (as Piper trains them) -> FTV parameter names
# ---------------------------------------------------------------------------------------------------------------------


def _coupling_index(index: int) -> int:
    """VITS's flow alternates coupling layers and parameter-free flips; FTV (transformers) stores only the former."""
    if index % 2:
        raise PiperImportError(f"flow.flows.{index} has weights, but odd flow entries are flips in VITS.")
    return index // 2


def _duration_flow_index(index: int) -> int:
    """SDP flows in VITS: 0 elementwise affine, then (conv flow, flip) pairs; FTV has [affine, conv flows...]."""
    if index == 0:
        return 0
    if index % 2 == 0:
        raise PiperImportError(f"dp flows entry {index} has weights, but even entries after 0 are flips in VITS.")
    return (index + 1) // 2


def _linear(array: np.ndarray) -> np.ndarray:
    """A 1x1 Conv1d weight (out, in, 1) as the nn.Linear weight (out, in) transformers' attention uses."""
    return array[..., 0] if array.ndim == 3 else array


_INDEX_GROUPS: dict[str, Callable[[int], int]] = {"coupling": _coupling_index, "dpflow": _duration_flow_index}
_WB = r"(?P<p>weight|bias)"
_DDS = r"convs\.(?:convs_sep\.(?P<sep>\d+)|convs_1x1\.(?P<pw>\d+)|norms_(?P<norm>[12])\.(?P<nl>\d+))"

# (VITS name regex, FTV name template, transform). Templates use the regex's named groups; groups named in
# _INDEX_GROUPS are renumbered first. `{dds}` is filled by `_dds_name` for the dilated depth-separable convs.
PIPER_TO_FTV: tuple[tuple[str, str, Callable[[np.ndarray], np.ndarray] | None], ...] = (
    # --- text encoder (attentions.Encoder -> VitsEncoder; attention 1x1 convs -> Linear) ---
    (r"enc_p\.emb\.weight", "text_encoder.embed_tokens.weight", None),
    (
        rf"enc_p\.encoder\.attn_layers\.(?P<i>\d+)\.conv_(?P<x>[qkv])\.{_WB}",
        "text_encoder.encoder.layers.{i}.attention.{x}_proj.{p}",
        _linear,
    ),
    (
        rf"enc_p\.encoder\.attn_layers\.(?P<i>\d+)\.conv_o\.{_WB}",
        "text_encoder.encoder.layers.{i}.attention.out_proj.{p}",
        _linear,
    ),
    (
        r"enc_p\.encoder\.attn_layers\.(?P<i>\d+)\.(?P<e>emb_rel_[kv])",
        "text_encoder.encoder.layers.{i}.attention.{e}",
        None,
    ),
    (r"enc_p\.encoder\.norm_layers_1\.(?P<i>\d+)\.gamma", "text_encoder.encoder.layers.{i}.layer_norm.weight", None),
    (r"enc_p\.encoder\.norm_layers_1\.(?P<i>\d+)\.beta", "text_encoder.encoder.layers.{i}.layer_norm.bias", None),
    (
        r"enc_p\.encoder\.norm_layers_2\.(?P<i>\d+)\.gamma",
        "text_encoder.encoder.layers.{i}.final_layer_norm.weight",
        None,
    ),
    (r"enc_p\.encoder\.norm_layers_2\.(?P<i>\d+)\.beta", "text_encoder.encoder.layers.{i}.final_layer_norm.bias", None),
    (
        rf"enc_p\.encoder\.ffn_layers\.(?P<i>\d+)\.(?P<c>conv_[12])\.{_WB}",
        "text_encoder.encoder.layers.{i}.feed_forward.{c}.{p}",
        None,
    ),
    (rf"enc_p\.proj\.{_WB}", "text_encoder.project.{p}", None),
    # --- stochastic duration predictor ---
    (rf"dp\.pre\.{_WB}", "duration_predictor.conv_pre.{p}", None),
    (rf"dp\.proj\.{_WB}", "duration_predictor.conv_proj.{p}", None),
    (rf"dp\.{_DDS}\.(?P<q>weight|bias|gamma|beta)", "duration_predictor.conv_dds.{dds}", None),
    (r"dp\.flows\.0\.m", "duration_predictor.flows.0.translate", None),
    (r"dp\.flows\.0\.logs", "duration_predictor.flows.0.log_scale", None),
    (rf"dp\.flows\.(?P<dpflow>\d+)\.pre\.{_WB}", "duration_predictor.flows.{dpflow}.conv_pre.{p}", None),
    (rf"dp\.flows\.(?P<dpflow>\d+)\.proj\.{_WB}", "duration_predictor.flows.{dpflow}.conv_proj.{p}", None),
    (
        rf"dp\.flows\.(?P<dpflow>\d+)\.{_DDS}\.(?P<q>weight|bias|gamma|beta)",
        "duration_predictor.flows.{dpflow}.conv_dds.{dds}",
        None,
    ),
    # (posterior parts: absent from inference exports, mapped when a voice has them)
    (rf"dp\.post_pre\.{_WB}", "duration_predictor.post_conv_pre.{p}", None),
    (rf"dp\.post_proj\.{_WB}", "duration_predictor.post_conv_proj.{p}", None),
    (rf"dp\.post_{_DDS}\.(?P<q>weight|bias|gamma|beta)", "duration_predictor.post_conv_dds.{dds}", None),
    (r"dp\.post_flows\.0\.m", "duration_predictor.post_flows.0.translate", None),
    (r"dp\.post_flows\.0\.logs", "duration_predictor.post_flows.0.log_scale", None),
    (rf"dp\.post_flows\.(?P<dpflow>\d+)\.pre\.{_WB}", "duration_predictor.post_flows.{dpflow}.conv_pre.{p}", None),
    (rf"dp\.post_flows\.(?P<dpflow>\d+)\.proj\.{_WB}", "duration_predictor.post_flows.{dpflow}.conv_proj.{p}", None),
    (
        rf"dp\.post_flows\.(?P<dpflow>\d+)\.{_DDS}\.(?P<q>weight|bias|gamma|beta)",
        "duration_predictor.post_flows.{dpflow}.conv_dds.{dds}",
        None,
    ),
    # --- flow (residual coupling layers; WN -> VitsWaveNet) ---
    (rf"flow\.flows\.(?P<coupling>\d+)\.pre\.{_WB}", "flow.flows.{coupling}.conv_pre.{p}", None),
    (rf"flow\.flows\.(?P<coupling>\d+)\.post\.{_WB}", "flow.flows.{coupling}.conv_post.{p}", None),
    (
        rf"flow\.flows\.(?P<coupling>\d+)\.enc\.(?P<l>in_layers|res_skip_layers)\.(?P<i>\d+)\.{_WB}",
        "flow.flows.{coupling}.wavenet.{l}.{i}.{p}",
        None,
    ),
    # --- HiFi-GAN decoder ---
    (rf"dec\.conv_pre\.{_WB}", "decoder.conv_pre.{p}", None),
    (rf"dec\.ups\.(?P<i>\d+)\.{_WB}", "decoder.upsampler.{i}.{p}", None),
    (
        rf"dec\.resblocks\.(?P<j>\d+)\.(?P<c>convs|convs1|convs2)\.(?P<i>\d+)\.{_WB}",
        "decoder.resblocks.{j}.{c}.{i}.{p}",
        None,
    ),
    (r"dec\.conv_post\.weight", "decoder.conv_post.weight", None),
)
_COMPILED = tuple((re.compile(pattern), template, transform) for pattern, template, transform in PIPER_TO_FTV)


def _dds_name(groups: dict[str, str]) -> str:
    """VITS DDSConv (convs_sep, convs_1x1, norms_1/2 with gamma/beta) -> transformers' VitsDilatedDepthSeparableConv."""
    role = groups["q"]
    if groups["sep"] is not None:
        return f"convs_dilated.{groups['sep']}.{role}"
    if groups["pw"] is not None:
        return f"convs_pointwise.{groups['pw']}.{role}"
    return f"norms_{groups['norm']}.{groups['nl']}.{ {'gamma': 'weight', 'beta': 'bias'}.get(role, role) }"


def ftv_name(vits_name: str) -> tuple[str, Callable[[np.ndarray], np.ndarray] | None] | None:
    """FTV parameter name (and value transform) of an original VITS tensor name; None when the table has no row."""
    for pattern, template, transform in _COMPILED:
        match = pattern.fullmatch(vits_name)
        if match is None:
            continue
        groups = dict(match.groupdict())
        for group, renumber in _INDEX_GROUPS.items():
            if groups.get(group) is not None:
                groups[group] = str(renumber(int(groups[group])))
        if "q" in groups:
            groups["dds"] = _dds_name(groups)
        return template.format(**groups), transform
    return None


# ---------------------------------------------------------------------------------------------------------------------
# The voice's JSON and the FTV config
# ---------------------------------------------------------------------------------------------------------------------


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
        if node.op_type == "LessOrEqual" and (_module_of(node.name) or "").startswith("dp.flows."):
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
        if node.op_type == "LeakyRelu" and _module_of(node.name) == "dec"
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


# ---------------------------------------------------------------------------------------------------------------------
# Building the model
# ---------------------------------------------------------------------------------------------------------------------

# Backbone parameters an inference export cannot provide (they start fresh), as name patterns.
FRESH_BACKBONE = {
    r"posterior_encoder\..*": "posterior encoder (training only; an inference export drops it)",
    r"duration_predictor\.post_.*": "duration predictor's posterior flows (training only)",
    r"duration_predictor\.flows\.1\..*": "duration predictor's first conv flow (unused at inference, dropped)",
    r".*\.(cond|cond_layer)\..*": "face (global) conditioning layers of flow, decoder and duration predictor (zero)",
}
FRESH_PARTS = {
    "face_encoder": "NesT face encoder",
    "face_conditioning": "SC-CNN face conditioning (identity at start)",
    "face_projection": "face embedding -> global conditioning projection",
    "face_attribute_head": "face attribute head",
    "audio_attribute_head": "audio attribute head",
}


@dataclass
class PiperImport:
    """What an import did: every ONNX tensor's FTV name, what was left unmapped, and what starts fresh."""

    onnx_path: str
    json_path: str
    settings: dict[str, Any]
    mapped: dict[str, str] = field(default_factory=dict)  # ONNX initializer -> FTV parameter
    unmapped: dict[str, str] = field(default_factory=dict)  # ONNX initializer -> why
    fresh: dict[str, str] = field(default_factory=dict)  # FTV part -> what it is

    def to_dict(self) -> dict[str, Any]:
        return {
            "onnx": self.onnx_path,
            "json": self.json_path,
            "mapped": self.mapped,
            "unmapped": self.unmapped,
            "fresh": self.fresh,
        }


class _TensorSource(nn.Module):
    """Hands a plain name -> tensor dict to `load_vits_backbone`, which converts weight-normed layers."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self._tensors = tensors

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return dict(self._tensors)


def piper_state_dict(voice: PiperGraph) -> tuple[dict[str, torch.Tensor], dict[str, str], dict[str, str]]:
    """FTV-named tensors of a voice (decoder and WaveNet weights still plain), ONNX -> FTV names, and unmapped."""
    state: dict[str, torch.Tensor] = {}
    mapped: dict[str, str] = {}
    unmapped = {name: "its module or role could not be read from the graph" for name in voice.unresolved}
    for vits_name, array in voice.tensors.items():
        target = ftv_name(vits_name)
        source = voice.sources[vits_name]
        if target is None:
            unmapped[source] = f"resolved to {vits_name}, which the mapping table has no row for"
            continue
        name, transform = target
        state[name] = torch.from_numpy(np.array(transform(array) if transform else array, dtype=np.float32))
        mapped[source] = name
    return state, mapped, unmapped


def zero_face_conditioning(model: nn.Module) -> None:
    """Make every face path a no-op: global-conditioning `cond` layers output 0, SC-CNN is the identity.

    Weight-normed `cond_layer`s get a zero gain (the direction stays, so training can grow them); plain ones a zero
    weight. Biases are zeroed. The face encoder, projection and heads are untouched: nothing reads them yet.
    """
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.split(".")[-1] not in ("cond", "cond_layer"):
                continue
            parametrizations = getattr(module, "parametrizations", None)
            if parametrizations is not None and "weight" in parametrizations:
                parametrizations.weight.original0.zero_()
            else:
                module.weight.zero_()
            if module.bias is not None:
                module.bias.zero_()
        conditioning = getattr(model, "face_conditioning", None)
        if conditioning is not None:
            channels = conditioning.channels
            conditioning.projection.weight[:channels].zero_()
            conditioning.projection.bias[:channels].zero_()
            conditioning.projection.weight[-channels:].zero_()
            conditioning.projection.bias[-channels:].zero_()


# Inference controls: overriding them is a choice, not a contradiction of the voice.
_SOFT = {"noise_scale", "noise_scale_duration", "speaking_rate", "segment_size"}


def model_from_piper(
    onnx_path: PathLike, json_path: PathLike | None = None, **config_overrides: Any
) -> tuple[FTVModel, PiperImport]:
    """An FTVModel with a Piper voice as its backbone, and the import report.

    config_overrides may set FTVConfig fields the voice does not determine (face encoder, heads, losses); a
    backbone field that contradicts the voice is an error.
    """
    from .modeling_ftv import FTVModel

    voice = read_piper_graph(onnx_path)  # first: a file that is not ONNX should say so, not ask for a JSON
    settings, settings_path = read_piper_settings(onnx_path, json_path)
    inferred = infer_config_kwargs(voice, settings)
    if max(piper_vocabulary(settings).values()) >= inferred["vocab_size"]:
        raise PiperImportError(
            f"phoneme_id_map uses ids up to {max(piper_vocabulary(settings).values())} but the embedding has "
            f"{inferred['vocab_size']} rows: the .onnx.json does not belong to this .onnx."
        )
    clashes = {k: v for k, v in config_overrides.items() if k in inferred and v != inferred[k] and k not in _SOFT}
    if clashes:
        raise PiperImportError(f"{clashes} contradict the voice's own sizes ({ {k: inferred[k] for k in clashes} }).")
    config = FTVConfig(**{**inferred, **config_overrides})

    state, mapped, unmapped = piper_state_dict(voice)
    model = FTVModel(config)
    untouched = load_vits_backbone(model, _TensorSource(state))
    missing = [name for name in untouched if not any(re.fullmatch(p, name) for p in FRESH_BACKBONE)]
    if missing:
        raise PiperImportError(
            f"The voice did not provide {len(missing)} backbone tensors an inference export has, e.g. {missing[:5]}."
        )
    zero_face_conditioning(model)
    model.eval()

    report = PiperImport(str(onnx_path), str(settings_path), settings, mapped, unmapped)
    for pattern, description in FRESH_BACKBONE.items():
        matching = [name for name in untouched if re.fullmatch(pattern, name)]
        if matching:
            report.fresh[pattern] = f"{description}: {len(matching)} tensors"
    for attribute, description in FRESH_PARTS.items():
        if getattr(model, attribute, None) is not None:
            report.fresh[attribute] = description
    report.fresh["discriminator"] = "multi-period / multi-scale discriminator (train.py builds it)"
    if unmapped:
        listed = "; ".join(f"{name}: {why}" for name, why in sorted(unmapped.items()))
        warnings.warn(f"{len(unmapped)} tensors of {onnx_path} were left unmapped: {listed}", stacklevel=2)
    return model, report


def tokenizer_from_piper(onnx_path: PathLike, json_path: PathLike | None = None) -> FTVTokenizer:
    """FTVTokenizer reproducing Piper's ids: its `phoneme_id_map`, `^ _ p1 _ ... pn _ $`, its espeak-ng voice."""
    from .tokenization_ftv import FTVTokenizer

    settings, _ = read_piper_settings(onnx_path, json_path)
    vocabulary = piper_vocabulary(settings)
    language = settings.get("espeak", {}).get("voice")
    if not language:
        raise PiperImportError("The voice settings name no espeak-ng voice (`espeak.voice`).")
    with tempfile.TemporaryDirectory() as directory:
        vocab_file = Path(directory) / "vocab.json"
        vocab_file.write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
        return FTVTokenizer(
            vocab_file=str(vocab_file),
            language=language,
            add_blank=True,
            bos_symbol=PIPER_BOS,
            eos_symbol=PIPER_EOS,
            pad_token=PIPER_PAD,
            unk_token=PIPER_PAD,
        )


def processor_from_piper(onnx_path: PathLike, json_path: PathLike | None = None, **kwargs: Any) -> FTVProcessor:
    """FTVProcessor with the voice's tokenizer and the default face image processor."""
    from .processing_ftv import FTVProcessor

    return FTVProcessor(tokenizer=tokenizer_from_piper(onnx_path, json_path), **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Conversion to a save_pretrained directory, with a model card
# ---------------------------------------------------------------------------------------------------------------------


def model_card(report: PiperImport, config: FTVConfig) -> str:
    """README.md of a converted voice: source, licences, what was imported and what starts fresh."""
    settings = report.settings
    name = Path(report.onnx_path).name
    dataset = settings.get("dataset", "unknown")
    language = settings.get("language", {}).get("code", settings.get("espeak", {}).get("voice", "unknown"))
    quality = settings.get("audio", {}).get("quality", "unknown")
    source_card = Path(report.onnx_path).with_name("MODEL_CARD")
    source_text = source_card.read_text(encoding="utf-8").strip() if source_card.is_file() else ""
    parts: dict[str, int] = {}
    for target in report.mapped.values():
        parts[target.split(".")[0]] = parts.get(target.split(".")[0], 0) + 1
    lines = [
        "---",
        "library_name: transformers",
        "tags: [text-to-speech, face-to-voice, vits, piper]",
        "---",
        "",
        f"# FTV initialised from the Piper voice `{name}`",
        "",
        f"A face-to-voice (FTV) model whose VITS backbone is the Piper voice `{name}` (dataset `{dataset}`, "
        f"language `{language}`, quality `{quality}`, {config.sampling_rate} Hz), converted by "
        "`python -m ftv_model.convert_piper`. Until it is trained it speaks exactly like that voice, whatever the "
        "face: every face-conditioning layer starts at zero.",
        "",
        "## Licences",
        "",
        "Piper's code is MIT-licensed; the voice's licence is that of its recordings, given in the source model "
        "card below (check it before you publish anything trained from this model). FTV's own code is Apache-2.0.",
        "",
        "## Imported from the voice",
        "",
        *(f"- `{part}`: {count} tensors" for part, count in sorted(parts.items())),
        "",
        f"Architecture read from the voice: hidden {config.hidden_size}, {config.num_hidden_layers} text-encoder "
        f"layers, {config.prior_encoder_num_flows} flows x {config.prior_encoder_num_wavenet_layers} WaveNet layers, "
        f"decoder width {config.upsample_initial_channel}, upsampling {config.upsample_rates} "
        f"(hop {config.hop_length}), residual blocks type {config.resblock_type} with kernels "
        f"{config.resblock_kernel_sizes}, vocabulary {config.vocab_size}.",
        "",
        "## Initialised fresh (an inference export lacks them, or Piper never had them)",
        "",
        *(f"- {description}" for description in report.fresh.values()),
        "",
        "## Inference defaults (Piper's `scales`)",
        "",
        f"noise_scale {config.noise_scale} (Piper noise_scale), noise_scale_duration {config.noise_scale_duration} "
        f"(noise_w), speaking_rate {config.speaking_rate:g} (1 / length_scale).",
        "",
    ]
    if report.unmapped:
        lines += ["## ONNX tensors left unmapped", ""]
        lines += [f"- `{name}`: {why}" for name, why in sorted(report.unmapped.items())] + [""]
    lines += [
        "## Use",
        "",
        "```",
        "python train/train.py --config train/configs/paper.yaml --data DATA --output runs/ftv --init THIS_DIR",
        "```",
        "",
    ]
    if source_text:
        lines += ["## Source model card", "", *(f"> {line}" if line else ">" for line in source_text.splitlines())]
    return "\n".join(lines) + "\n"


def convert_piper(
    onnx_path: PathLike, output_dir: PathLike, json_path: PathLike | None = None, **config_overrides: Any
) -> PiperImport:
    """Convert a Piper voice into a `save_pretrained` FTV directory (model, processor, README.md, import report)."""
    model, report = model_from_piper(onnx_path, json_path, **config_overrides)
    processor = processor_from_piper(onnx_path, json_path, max_input_length=model.config.max_input_length)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    processor.save_pretrained(output)
    (output / "README.md").write_text(model_card(report, model.config), encoding="utf-8")
    (output / "piper_import.json").write_text(json.dumps(report.to_dict(), indent=1, ensure_ascii=False) + "\n")
    return report


__all__ = [
    "PIPER_TO_FTV",
    "PiperGraph",
    "PiperImport",
    "PiperImportError",
    "convert_piper",
    "find_piper_json",
    "ftv_name",
    "infer_config_kwargs",
    "model_card",
    "model_from_piper",
    "piper_scales",
    "piper_state_dict",
    "processor_from_piper",
    "read_piper_graph",
    "read_piper_settings",
    "tokenizer_from_piper",
    "zero_face_conditioning",
]
