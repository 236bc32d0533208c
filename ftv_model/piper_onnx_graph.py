"""Reading a Piper ONNX voice: every weight under its original VITS name, found through the graph.

Piper's exporter keeps most tensor names of the original VITS modules (`enc_p`, `dp`, `flow`, `dec`) but not all:
weight-normed convolutions are folded into anonymous tensors (`onnx::Conv_*`), the first duration-flow's
`exp(-logs)` is constant-folded, and some tensors are renamed (the joe voice calls its phoneme embedding `sid`).
Names are therefore never trusted on their own: every initializer's module is read from the graph node that
consumes it (`/flow/flows.6/enc/in_layers.0/Conv` -> `flow.flows.6.enc.in_layers.0`) and its role from that
node's op and input slot. `piper_weight_map` then renames them to FTV's parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PathLike = str | Path


class PiperImportError(ValueError):
    """A file that is not a usable Piper voice, or a voice variant FTV cannot express; the message says which."""


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
VITS_MODULES = ("enc_p", "dp", "flow", "dec")


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


def vits_module_of(node_name: str) -> str | None:
    """`/flow/flows.6/enc/in_layers.0/Conv` -> `flow.flows.6.enc.in_layers.0` (None outside a VITS module)."""
    parts = node_name.strip("/").split("/")
    if len(parts) < 2 or parts[0] not in VITS_MODULES:
        return None
    return ".".join(parts[:-1])


def _resolve(name: str, uses: list[tuple[Any, int]]) -> tuple[str, Callable[[np.ndarray], np.ndarray] | None] | None:
    """The VITS name of initializer `name` from its consumers, and the inverse of any constant fold."""
    modules = {vits_module_of(node.name) for node, _ in uses}
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
    missing = [module for module in VITS_MODULES if module not in found]
    if missing:
        raise PiperImportError(
            "This ONNX model is not a Piper VITS voice: no weights are consumed by the VITS module(s) "
            f"{', '.join(missing)} (a Piper voice has text encoder `enc_p`, duration predictor `dp`, flow `flow` "
            "and decoder `dec`)."
        )
    return PiperGraph(tensors, sources, nodes, sorted(unresolved), graph, initializers)


__all__ = [
    "VITS_MODULES",
    "PathLike",
    "PiperGraph",
    "PiperImportError",
    "read_piper_graph",
    "vits_module_of",
]
