"""The mapping table from a Piper voice's original VITS tensor names to FTV's (transformers') parameter names.

`PIPER_TO_FTV` holds it in one table of regexes; `ftv_name` applies it to one name, `piper_state_dict` to a whole
voice read by `piper_onnx_graph.read_piper_graph`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import torch

from .piper_onnx_graph import PiperGraph, PiperImportError


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


__all__ = [
    "PIPER_TO_FTV",
    "ftv_name",
    "piper_state_dict",
]
