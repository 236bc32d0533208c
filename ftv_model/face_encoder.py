"""Face encoder: a face crop -> the 128-d face embedding F, trained from scratch.

The paper's encoder is NesT (Zhang et al. 2022): transformer blocks inside non-overlapping image blocks, and
"facial granularity aggregation" (conv3x3 -> LayerNorm -> maxpool 3x3/2) merging 16 -> 4 -> 1 blocks. timm's
`Nest` is exactly that (its `ConvPool` is the aggregation), so it is reused rather than rewritten. The "without
FGA" ablation is a vanilla ViT over the whole image (no hierarchy, no aggregation).

Encoders are chosen by name, as timm's `create_model` chooses models: `FACE_ENCODERS` maps each name
(`config.face_encoder_type`) to a builder that reads its keyword arguments from the config, and
`create_face_encoder(name, config)` builds one. FTVConfig accepts exactly the names registered here. timm is
imported by the builders, so that reading a config does not import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # an FTVConfig; configuration_ftv imports this module (the registry's names), not the reverse
    from transformers import PretrainedConfig as FTVConfig


def build_nest(config: FTVConfig) -> nn.Module:
    """The paper's NesT with facial granularity aggregation (`face_num_levels`, `face_embed_dims`, ...)."""
    from timm.models.nest import Nest

    blocks_per_side = 2 ** (config.face_num_levels - 1)
    if config.image_size % (config.patch_size * blocks_per_side):
        raise ValueError(
            f"image_size {config.image_size} must be divisible by patch_size * {blocks_per_side} "
            f"({config.patch_size * blocks_per_side}) for {config.face_num_levels} NesT levels."
        )
    return Nest(
        img_size=config.image_size,
        patch_size=config.patch_size,
        num_levels=config.face_num_levels,
        embed_dims=tuple(config.face_embed_dims),
        num_heads=tuple(config.face_num_heads),
        depths=tuple(config.face_depths),
        num_classes=config.face_embedding_size,
        drop_rate=config.face_dropout,
        drop_path_rate=config.face_drop_path_rate,
    )


def build_vit(config: FTVConfig) -> nn.Module:
    """The "without FGA" ablation: a vanilla ViT over the whole face (`face_vit_*`), average-pooled."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        img_size=config.image_size,
        patch_size=config.face_vit_patch_size,
        embed_dim=config.face_vit_embed_dim,
        depth=config.face_vit_depth,
        num_heads=config.face_vit_num_heads,
        num_classes=config.face_embedding_size,
        global_pool="avg",
        class_token=False,
        drop_rate=config.face_dropout,
        drop_path_rate=config.face_drop_path_rate,
    )


# face_encoder_type -> builder; an encoder registered here is one FTVConfig accepts.
FACE_ENCODERS: dict[str, Callable[[FTVConfig], nn.Module]] = {"nest": build_nest, "vit": build_vit}


def check_face_encoder_name(name: str) -> None:
    """ValueError naming the registered encoders when `name` is not one of them."""
    if name not in FACE_ENCODERS:
        choices = " or ".join(repr(choice) for choice in FACE_ENCODERS)
        raise ValueError(f"face_encoder_type must be {choices}, got {name!r}.")


def create_face_encoder(name: str, config: FTVConfig) -> nn.Module:
    """The backbone registered as `name`, with its keyword arguments read from `config`."""
    check_face_encoder_name(name)
    return FACE_ENCODERS[name](config)


class FaceEncoder(nn.Module):
    """Wraps the chosen backbone; `forward(pixel_values (B, 3, H, W)) -> F (B, face_embedding_size)`.

    The backbone sits under `backbone.` whatever its type, so checkpoints keep their parameter names."""

    def __init__(self, config: FTVConfig) -> None:
        super().__init__()
        self.encoder_type = config.face_encoder_type
        self.backbone = create_face_encoder(config.face_encoder_type, config)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.backbone(pixel_values)


__all__ = ["FACE_ENCODERS", "FaceEncoder", "build_nest", "build_vit", "check_face_encoder_name", "create_face_encoder"]
