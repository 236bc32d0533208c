"""Face encoder: a face crop -> the 128-d face embedding F, trained from scratch.

The paper's encoder is NesT (Zhang et al. 2022): transformer blocks inside non-overlapping image blocks, and
"facial granularity aggregation" (conv3x3 -> LayerNorm -> maxpool 3x3/2) merging 16 -> 4 -> 1 blocks. timm's
`Nest` is exactly that (its `ConvPool` is the aggregation), so it is reused rather than rewritten. The "without
FGA" ablation is a vanilla ViT over the whole image (no hierarchy, no aggregation).
"""

from __future__ import annotations

import torch
from timm.models.nest import Nest
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .configuration_ftv import FTVConfig


class FaceEncoder(nn.Module):
    """Wraps the chosen backbone; `forward(pixel_values (B, 3, H, W)) -> F (B, face_embedding_size)`."""

    def __init__(self, config: FTVConfig) -> None:
        super().__init__()
        self.encoder_type = config.face_encoder_type
        if config.face_encoder_type == "nest":
            blocks_per_side = 2 ** (config.face_num_levels - 1)
            if config.image_size % (config.patch_size * blocks_per_side):
                raise ValueError(
                    f"image_size {config.image_size} must be divisible by patch_size * {blocks_per_side} "
                    f"({config.patch_size * blocks_per_side}) for {config.face_num_levels} NesT levels."
                )
            self.backbone = Nest(
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
        else:
            self.backbone = VisionTransformer(
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

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.backbone(pixel_values)
