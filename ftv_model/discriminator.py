"""The VITS / HiFi-GAN discriminator: one scale discriminator on the raw waveform plus period discriminators
(2, 3, 5, 7, 11) on the waveform folded into 2-D. transformers has no training parts of VITS, so it is written
here. `discriminator_width` scales every channel count (1.0 = the paper's 46.8M parameters); smaller widths make
CPU fine-tuning affordable.

The discriminator has its own small config (`FTVDiscriminatorConfig`), saved beside its weights: the training
config chooses the settings of a fresh one, and a saved one (an export's `discriminator/`) keeps the settings it
was built with. Discriminators saved before it had its own config carry the whole `FTVConfig` (model type `ftv`);
their `discriminator_*` keys are read and the rest is ignored.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm
from transformers import PretrainedConfig, PreTrainedModel

LEAKY_SLOPE = 0.1
DISCRIMINATOR_SETTINGS = ("discriminator_periods", "discriminator_use_scale", "discriminator_width")
LEGACY_MODEL_TYPE = "ftv"  # a discriminator saved with the generator's whole config


class FTVDiscriminatorConfig(PretrainedConfig):
    """Which sub-discriminators and how wide: `discriminator_periods` (one period discriminator each),
    `discriminator_use_scale` (the scale discriminator), `discriminator_width` (channel multiplier)."""

    model_type = "ftv-discriminator"

    def __init__(
        self,
        discriminator_periods: tuple[int, ...] | list[int] = (2, 3, 5, 7, 11),
        discriminator_use_scale: bool = True,
        discriminator_width: float = 1.0,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("model_type", None)  # a class attribute; never an instance's
        if not discriminator_periods and not discriminator_use_scale:
            raise ValueError("The discriminator needs at least one period or the scale discriminator.")
        self.discriminator_periods = [int(period) for period in discriminator_periods]
        self.discriminator_use_scale = bool(discriminator_use_scale)
        self.discriminator_width = float(discriminator_width)
        super().__init__(**kwargs)

    @classmethod
    def from_settings_of(cls, config: PretrainedConfig | None) -> FTVDiscriminatorConfig:
        """The discriminator settings another config carries (an `FTVConfig` from an older config.json, or built
        with them); the defaults for those it lacks."""
        return cls(**{key: getattr(config, key) for key in DISCRIMINATOR_SETTINGS if hasattr(config, key)})

    @classmethod
    def get_config_dict(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The saved dict; from a legacy whole-model config, only its discriminator settings."""
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        if config_dict.get("model_type") == LEGACY_MODEL_TYPE:
            config_dict = {key: config_dict[key] for key in DISCRIMINATOR_SETTINGS if key in config_dict}
        return config_dict, kwargs


def _scaled(channels: int, width: float, multiple: int = 1) -> int:
    return max(multiple, int(round(channels * width / multiple)) * multiple)


def _score(convs: nn.ModuleList, conv_post: nn.Module, hidden: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Conv stack with leaky ReLUs -> (flattened scores, every layer's output for feature matching)."""
    features = []
    for conv in convs:
        hidden = F.leaky_relu(conv(hidden), LEAKY_SLOPE)
        features.append(hidden)
    hidden = conv_post(hidden)
    features.append(hidden)
    return hidden.flatten(1), features


class PeriodDiscriminator(nn.Module):
    """Folds (B, 1, T) into (B, 1, T/p, p) and runs strided 2-D convs along time."""

    def __init__(self, period: int, width: float = 1.0) -> None:
        super().__init__()
        self.period = period
        channels = [1] + [_scaled(c, width) for c in (32, 128, 512, 1024, 1024)]
        strides = (3, 3, 3, 3, 1)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(cin, cout, (5, 1), (stride, 1), padding=(2, 0)))
            for cin, cout, stride in zip(channels[:-1], channels[1:], strides)
        )
        self.conv_post = weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, channels, length = waveform.shape
        if length % self.period:
            waveform = F.pad(waveform, (0, self.period - length % self.period), mode="reflect")
        hidden = waveform.view(batch, channels, -1, self.period)
        return _score(self.convs, self.conv_post, hidden)


class ScaleDiscriminator(nn.Module):
    """Grouped strided 1-D convs on the raw waveform."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        specs = (  # (out channels, kernel, stride, groups)
            (16, 15, 1, 1),
            (64, 41, 4, 4),
            (256, 41, 4, 16),
            (1024, 41, 4, 64),
            (1024, 41, 4, 256),
            (1024, 5, 1, 1),
        )
        layers = []
        cin = 1
        for cout, kernel, stride, groups in specs:
            cout = _scaled(cout, width, multiple=groups)
            groups = min(groups, cin)
            layers.append(weight_norm(nn.Conv1d(cin, cout, kernel, stride, groups=groups, padding=kernel // 2)))
            cin = cout
        self.convs = nn.ModuleList(layers)
        self.conv_post = weight_norm(nn.Conv1d(cin, 1, 3, 1, padding=1))

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _score(self.convs, self.conv_post, waveform)


class FTVDiscriminator(PreTrainedModel):
    """Multi-period (+ scale) discriminator. forward(waveform (B, 1, T)) -> (scores, feature maps) per sub-disc.

    A PreTrainedModel of its own (with its own config) so the training script can save it beside the generator and
    prepare it with Accelerate as a separate module with its own optimizer.
    """

    config_class = FTVDiscriminatorConfig
    base_model_prefix = "discriminator"
    main_input_name = "waveform"

    def __init__(self, config: FTVDiscriminatorConfig | PretrainedConfig | None = None) -> None:
        if not isinstance(config, FTVDiscriminatorConfig):  # None, or another config: its discriminator_* settings
            config = FTVDiscriminatorConfig.from_settings_of(config)
        super().__init__(config)
        discriminators: list[nn.Module] = []
        if config.discriminator_use_scale:
            discriminators.append(ScaleDiscriminator(config.discriminator_width))
        discriminators.extend(PeriodDiscriminator(p, config.discriminator_width) for p in config.discriminator_periods)
        self.discriminators = nn.ModuleList(discriminators)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # PyTorch's default conv init is what HiFi-GAN's discriminators train from; nothing to override.
        return

    def forward(self, waveform: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        if waveform.dim() == 2:
            waveform = waveform.unsqueeze(1)
        scores, features = [], []
        for discriminator in self.discriminators:
            score, feature_maps = discriminator(waveform)
            scores.append(score)
            features.append(feature_maps)
        return scores, features
