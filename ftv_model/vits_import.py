"""Initialise FTVModel's backbone from a transformers VITS checkpoint (e.g. an MMS-TTS voice or one you trained).

FTV keeps transformers' VITS attribute names, so most tensors copy by name. Two differences are bridged here:
FTV trains its decoder with weight norm (`...parametrizations.weight.original0/1`) where `VitsModel` stores plain
decoder weights, and a VITS checkpoint has no face parts (face encoder, conditioning, heads), which keep their init.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

BACKBONE_PREFIXES = ("text_encoder.", "flow.", "decoder.", "duration_predictor.", "posterior_encoder.")


def _weight_norm_pair(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain weight -> (gain, direction) of torch's weight_norm with dim=0."""
    dims = tuple(range(1, weight.dim()))
    return weight.norm(dim=dims, keepdim=True), weight


def load_vits_backbone(
    model: nn.Module, source: str | Path | nn.Module, strict_shapes: bool = True, **kwargs
) -> list[str]:
    """Copy matching backbone tensors from `source` into `model`; return the backbone names left untouched.

    source: a `transformers.VitsModel`, or a Hub id / local directory loadable by `VitsModel.from_pretrained`
    (extra kwargs go to it, e.g. `local_files_only=True`). Shape mismatches raise (they mean another architecture:
    build FTVConfig with the checkpoint's sizes) unless strict_shapes is False.
    """
    if isinstance(source, nn.Module):
        state = source.state_dict()
    else:
        from transformers import VitsModel

        path = Path(source)
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is a file; give the checkpoint directory (config.json + model.safetensors).")
        try:
            state = VitsModel.from_pretrained(str(source), **kwargs).state_dict()
        except OSError as error:
            raise OSError(
                f"Could not load a transformers VITS checkpoint from {source!r}: {error}. Give a Hub id that is "
                "available (or cached, when offline) or a local directory with config.json and model.safetensors."
            ) from error

    own = model.state_dict()
    updates: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if not name.startswith(BACKBONE_PREFIXES):
            continue
        if name in own:
            updates[name] = tensor
            continue
        stem = name[: -len(".weight")] if name.endswith(".weight") else None
        gain_name, direction_name = (
            f"{stem}.parametrizations.weight.original0",
            f"{stem}.parametrizations.weight.original1",
        )
        if stem is not None and gain_name in own:
            updates[gain_name], updates[direction_name] = _weight_norm_pair(tensor)
    for name, tensor in updates.items():
        if own[name].shape != tensor.shape:
            if strict_shapes:
                raise ValueError(
                    f"Shape mismatch for {name}: checkpoint {tuple(tensor.shape)} vs FTV {tuple(own[name].shape)}. "
                    "Build FTVConfig with the checkpoint's sizes (vocab_size, hidden_size, upsample rates, ...)."
                )
            continue
        own[name] = tensor.to(own[name].dtype)
    model.load_state_dict(own)
    return sorted(n for n in own if n.startswith(BACKBONE_PREFIXES) and n not in updates)
