"""FTVModel: VITS conditioned on a face, with bilateral attribute heads.

Inference (`model(input_ids, attention_mask, pixel_values)`) follows `transformers.VitsModel` and returns a
waveform per item; training (`model(..., waveform=..., waveform_lengths=...)`) adds what transformers lacks:
the posterior encoder on the linear spectrogram, monotonic alignment search, the duration, KL, mel and attribute
losses, and a random decoder segment for the discriminator (see `discriminator.py` and `losses.py`).

The backbone is built from transformers' VITS modules under their own attribute names (`text_encoder`, `flow`,
`decoder`, `duration_predictor`, `posterior_encoder`), so VITS checkpoints load into it (`init_backbone_from_vits`).
Two modules are subclassed to fix what training needs: the stochastic duration predictor (its stock training
branch is not the inverse of its inference branch) and the HiFi-GAN decoder (weight norm, and padding masks so a
batch gives the same audio per item as one-by-one synthesis).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm
from transformers import PreTrainedModel, VitsConfig
from transformers.modeling_outputs import ModelOutput
from transformers.models.vits.modeling_vits import (
    VitsAttention,
    VitsConvFlow,
    VitsDurationPredictor,
    VitsElementwiseAffine,
    VitsHifiGan,
    VitsPosteriorEncoder,
    VitsResidualCouplingBlock,
    VitsResidualCouplingLayer,
    VitsStochasticDurationPredictor,
    VitsTextEncoder,
)

from .alignment import alignment_log_likelihood, monotonic_alignment
from .attribute_heads import AudioAttributeHead, FaceAttributeHead, attribute_loss
from .audio_features import AudioFeatures
from .conditioning import AdaptiveConditioning
from .configuration_ftv import FTVConfig
from .face_descriptor import DescriptorFusion
from .face_encoder import FaceEncoder
from .face_gender_reader import anchor_embeddings, check_reader, reader_logits
from .loading import raise_checkpoint_error
from .losses import PAPER_LOSS_WEIGHTS, kl_loss
from .voice_profile import VoiceProfile, VoiceProfileError, model_fingerprint

# ---------------------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class FTVModelOutput(ModelOutput):
    """Inference output.

    waveform: (B, T) audio at `config.sampling_rate`, zero past each item's length.
    sequence_lengths: (B,) valid samples per item.
    spectrogram: (B, flow_size, frames) decoder input latents.
    face_embedding: (B, face_embedding_size) F (averaged over photos when several are given).
    attribute_logits: {"gender": (B, 2), "race": (B, 6)} from the face attribute head (empty when switched off),
        divided by the calibration temperatures (`config.face_attribute_temperatures`): their softmax is calibrated.
    attributes: the same readings with their labels, one dict per item: {"gender": {"male": p, "female": p}, ...}.
    durations: (B, T_text) frames per input token.
    """

    waveform: torch.Tensor | None = None
    sequence_lengths: torch.Tensor | None = None
    spectrogram: torch.Tensor | None = None
    face_embedding: torch.Tensor | None = None
    attribute_logits: dict[str, torch.Tensor] | None = None
    attributes: list[dict[str, dict[str, float]]] | None = None
    durations: torch.Tensor | None = None


@dataclass
class FTVTrainingOutput(ModelOutput):
    """Training output: the generator's non-adversarial loss and the segments the discriminator scores.

    loss = 45 * mel + kl + duration + (face_attribute + 0.3 * audio_attribute): the terms summed with the paper's
    weights (`losses.PAPER_LOSS_WEIGHTS`). A training run sums the separate terms with its own weights (its
    training config's `LossWeights`), so no weight is read from the model config.
    """

    loss: torch.Tensor | None = None
    mel_loss: torch.Tensor | None = None
    kl_loss: torch.Tensor | None = None
    duration_loss: torch.Tensor | None = None
    face_attribute_loss: torch.Tensor | None = None
    audio_attribute_loss: torch.Tensor | None = None
    attribute_loss: torch.Tensor | None = None
    predicted_waveform: torch.Tensor | None = None
    target_waveform: torch.Tensor | None = None
    predicted_mel: torch.Tensor | None = None
    target_mel: torch.Tensor | None = None
    face_embedding: torch.Tensor | None = None
    attribute_logits: dict[str, torch.Tensor] | None = None
    alignment: torch.Tensor | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Backbone modules adapted from transformers' VITS
# ---------------------------------------------------------------------------------------------------------------------


class InferenceOnlyModelError(ValueError):
    """Training was asked of a checkpoint exported for inference only; the message says what to use instead."""


class FTVStochasticDurationPredictor(VitsStochasticDurationPredictor):
    """transformers' SDP with a training branch that inverts its inference branch.

    The stock training branch flips channels after every flow, the elementwise-affine one included; its inference
    branch (like the original VITS) flips only around the conv flows. Here the training branch follows the original
    order, and the inference branch takes its noise from the caller, so batched and per-item synthesis can share
    the same per-item noise.
    """

    def _condition(self, inputs: torch.Tensor, padding_mask: torch.Tensor, global_conditioning: torch.Tensor | None):
        inputs = self.conv_pre(torch.detach(inputs))
        if global_conditioning is not None:
            inputs = inputs + self.cond(torch.detach(global_conditioning))
        inputs = self.conv_dds(inputs, padding_mask)
        return self.conv_proj(inputs) * padding_mask

    @staticmethod
    def _run_flows(flows: nn.ModuleList, latents, padding_mask, conditioning):
        log_determinant_sum = 0.0
        for index, flow in enumerate(flows):
            latents, log_determinant = flow(latents, padding_mask, global_conditioning=conditioning)
            log_determinant_sum = log_determinant_sum + log_determinant
            if index > 0:  # flip after each conv flow, never after the elementwise affine one
                latents = torch.flip(latents, [1])
        return latents, log_determinant_sum

    def forward(  # type: ignore[override]
        self,
        inputs: torch.Tensor,
        padding_mask: torch.Tensor,
        global_conditioning: torch.Tensor | None = None,
        durations: torch.Tensor | None = None,
        reverse: bool = False,
        noise_scale: float = 1.0,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        conditioning = self._condition(inputs, padding_mask, global_conditioning)
        if reverse:
            if noise is None:
                noise = torch.randn(inputs.size(0), 2, inputs.size(2), device=inputs.device, dtype=inputs.dtype)
            latents = noise.to(inputs.dtype) * noise_scale * padding_mask
            flows = list(reversed(self.flows))
            flows = flows[:-2] + [flows[-1]]  # the first conv flow only shapes the unused noise channel
            for flow in flows:
                latents = torch.flip(latents, [1])
                latents, _ = flow(latents, padding_mask, global_conditioning=conditioning, reverse=True)
            log_duration, _ = torch.split(latents, [1, 1], dim=1)
            return log_duration

        # Variational dequantisation of the integer durations (posterior flows), then the prior flows' likelihood.
        hidden = self.post_conv_pre(durations)
        hidden = self.post_conv_dds(hidden, padding_mask)
        hidden = self.post_conv_proj(hidden) * padding_mask
        posterior_noise = (
            torch.randn(durations.size(0), 2, durations.size(2), device=inputs.device, dtype=inputs.dtype)
            * padding_mask
        )
        latents_posterior, log_det_posterior = self._run_flows(
            self.post_flows, posterior_noise, padding_mask, conditioning + hidden
        )
        first_half, second_half = torch.split(latents_posterior, [1, 1], dim=1)
        log_det_posterior = log_det_posterior + torch.sum(
            (F.logsigmoid(first_half) + F.logsigmoid(-first_half)) * padding_mask, [1, 2]
        )
        log_q = (
            torch.sum(-0.5 * (math.log(2 * math.pi) + posterior_noise**2) * padding_mask, [1, 2]) - log_det_posterior
        )
        dequantised = (durations - torch.sigmoid(first_half)) * padding_mask
        dequantised = torch.log(torch.clamp_min(dequantised, 1e-5)) * padding_mask
        log_det = torch.sum(-dequantised, [1, 2])
        latents = torch.cat([dequantised, second_half], dim=1)
        latents, log_det_flows = self._run_flows(self.flows, latents, padding_mask, conditioning)
        nll = torch.sum(0.5 * (math.log(2 * math.pi) + latents**2) * padding_mask, [1, 2]) - (log_det + log_det_flows)
        return nll + log_q


class FTVResidualBlock2(nn.Module):
    """HiFi-GAN's second residual block type: one dilated conv per dilation, each wrapped in its own residual.

    Lighter than type 1 (half the convs); Piper's medium and low voices use it. Parameters are `convs.{i}`.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: list[int], leaky_relu_slope: float) -> None:
        super().__init__()
        self.leaky_relu_slope = leaky_relu_slope
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=(kernel_size * d - d) // 2) for d in dilation
        )


class FTVDecoder(VitsHifiGan):
    """transformers' HiFi-GAN with weight norm (as the original trains it) and optional padding masks.

    With a mask, every conv input is zeroed past each item's end, which is exactly the zero padding an item sees
    when synthesized alone, so batched audio equals per-item audio. `config.resblock_type == "2"` swaps the
    residual blocks for `FTVResidualBlock2` (type 1 keeps transformers' blocks and parameter names).
    """

    def __init__(self, config) -> None:
        super().__init__(config)
        self.resblock_type = str(getattr(config, "resblock_type", "1"))
        if self.resblock_type == "2":
            self.resblocks = nn.ModuleList(
                FTVResidualBlock2(
                    config.upsample_initial_channel // (2 ** (i + 1)), kernel_size, dilation, config.leaky_relu_slope
                )
                for i in range(self.num_upsamples)
                for kernel_size, dilation in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes)
            )
        self.apply_weight_norm()

    def apply_weight_norm(self) -> None:
        for layer in self.upsampler:
            weight_norm(layer)
        for block in self.resblocks:
            convs = block.convs if self.resblock_type == "2" else list(block.convs1) + list(block.convs2)
            for layer in convs:
                weight_norm(layer)

    def remove_weight_norm(self) -> None:
        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight")

    def _resblock(self, block: nn.Module, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        slope = block.leaky_relu_slope
        if self.resblock_type == "2":
            for conv in block.convs:
                states = F.leaky_relu(hidden, slope)
                hidden = hidden + conv(states if mask is None else states * mask)
            return hidden
        for conv1, conv2 in zip(block.convs1, block.convs2):
            residual = hidden
            hidden = F.leaky_relu(hidden, slope)
            hidden = conv1(hidden if mask is None else hidden * mask)
            hidden = F.leaky_relu(hidden, slope)
            hidden = conv2(hidden if mask is None else hidden * mask)
            hidden = hidden + residual
        return hidden

    def forward(  # type: ignore[override]
        self,
        spectrogram: torch.Tensor,
        global_conditioning: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if spectrogram.device.type == "cpu" and not torch.is_grad_enabled():
            return self._synthesize_channels_last(spectrogram, global_conditioning, padding_mask)
        hidden = self.conv_pre(spectrogram)
        if global_conditioning is not None:
            hidden = hidden + self.cond(global_conditioning)
        mask = padding_mask
        for i in range(self.num_upsamples):
            hidden = F.leaky_relu(hidden, self.config.leaky_relu_slope)
            if mask is not None:
                hidden = hidden * mask
                mask = torch.repeat_interleave(mask, self.config.upsample_rates[i], dim=-1)
            hidden = self.upsampler[i](hidden)
            states = self._resblock(self.resblocks[i * self.num_kernels], hidden, mask)
            for j in range(1, self.num_kernels):
                states = states + self._resblock(self.resblocks[i * self.num_kernels + j], hidden, mask)
            hidden = states / self.num_kernels
        hidden = F.leaky_relu(hidden)
        if mask is not None:
            hidden = hidden * mask
        waveform = torch.tanh(self.conv_post(hidden))
        return waveform if mask is None else waveform * mask

    # CPU synthesis ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _conv_channels_last(layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """A Conv1d / ConvTranspose1d layer applied to (B, C, 1, T) channels-last states."""
        weight = layer.weight.unsqueeze(2)
        stride, padding, dilation = (1, layer.stride[0]), (0, layer.padding[0]), (1, layer.dilation[0])
        if isinstance(layer, nn.ConvTranspose1d):
            output_padding = (0, layer.output_padding[0])
            return F.conv_transpose2d(
                hidden, weight, layer.bias, stride, padding, output_padding, layer.groups, dilation
            )
        return F.conv2d(hidden, weight, layer.bias, stride, padding, dilation, layer.groups)

    def _resblock_channels_last(
        self, block: nn.Module, hidden: torch.Tensor, activated: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """`_resblock` on channels-last states; `activated` is the (masked) leaky ReLU of `hidden`, shared by the
        first conv of every block of a stage."""
        slope = block.leaky_relu_slope

        def act(states: torch.Tensor) -> torch.Tensor:
            states = F.leaky_relu(states, slope)
            return states if mask is None else states * mask

        if self.resblock_type == "2":
            for index, conv in enumerate(block.convs):
                inputs = activated if index == 0 else act(hidden)
                hidden = self._conv_channels_last(conv, inputs).add_(hidden)
            return hidden
        for index, (conv1, conv2) in enumerate(zip(block.convs1, block.convs2)):
            inputs = activated if index == 0 else act(hidden)
            states = act(self._conv_channels_last(conv1, inputs))
            hidden = self._conv_channels_last(conv2, states).add_(hidden)
        return hidden

    def _synthesize_channels_last(
        self, spectrogram: torch.Tensor, global_conditioning: torch.Tensor | None, padding_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """`forward` for CPU inference: the same network on (B, C, 1, T) channels-last states.

        oneDNN convolves channels-last tensors without reordering every input and output to and from its blocked
        layout, which takes ~20% off the decoder's CPU time at Piper's sizes (benchmarks/bench_piper.py); residual
        sums run in place. The audio matches the training path to float rounding (~1e-7).
        """
        slope = self.config.leaky_relu_slope
        hidden = spectrogram.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        hidden = self._conv_channels_last(self.conv_pre, hidden)
        if global_conditioning is not None:
            hidden = hidden + self.cond(global_conditioning).unsqueeze(2)
        mask = None if padding_mask is None else padding_mask.unsqueeze(2)
        for i in range(self.num_upsamples):
            hidden = F.leaky_relu(hidden, slope)
            if mask is not None:
                hidden = hidden * mask
                mask = torch.repeat_interleave(mask, self.config.upsample_rates[i], dim=-1)
            hidden = self._conv_channels_last(self.upsampler[i], hidden)
            activated = F.leaky_relu(hidden, slope)
            activated = activated if mask is None else activated * mask
            states = self._resblock_channels_last(self.resblocks[i * self.num_kernels], hidden, activated, mask)
            for j in range(1, self.num_kernels):
                block = self.resblocks[i * self.num_kernels + j]
                states = states.add_(self._resblock_channels_last(block, hidden, activated, mask))
            hidden = states.div_(self.num_kernels)
        hidden = F.leaky_relu(hidden)
        if mask is not None:
            hidden = hidden * mask
        waveform = torch.tanh(self._conv_channels_last(self.conv_post, hidden))
        if mask is not None:
            waveform = waveform * mask
        return waveform.squeeze(2).contiguous()


# ---------------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------------


class MelAdapter(nn.Module):
    """Latents (and the face's global conditioning) -> the 80-band log-mel the universal vocoder renders.

    Dilated residual convolutions (receptive field about 1.4 s at the defaults) so a frame's mel can depend on its
    neighbours. The output is offset to about -5, the level of speech in that log-mel, so a fresh adapter starts
    near a quiet spectrum instead of full scale."""

    MEL_BINS = 80

    def __init__(
        self, latent_size: int, conditioning_size: int, hidden_size: int, kernel_size: int, dilations: list[int]
    ) -> None:
        super().__init__()
        self.pre = nn.Conv1d(latent_size, hidden_size, 1)
        self.cond = nn.Conv1d(conditioning_size, hidden_size, 1) if conditioning_size else None
        self.convs = nn.ModuleList(
            nn.Conv1d(hidden_size, hidden_size, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2)
            for d in dilations
        )
        self.norms = nn.ModuleList(nn.GroupNorm(1, hidden_size) for _ in dilations)
        self.post = nn.Conv1d(hidden_size, self.MEL_BINS, 1)

    def forward(
        self, latents: torch.Tensor, global_conditioning: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        hidden = self.pre(latents)
        if self.cond is not None and global_conditioning is not None:
            hidden = hidden + self.cond(global_conditioning)
        for conv, norm in zip(self.convs, self.norms):
            states = conv(hidden if mask is None else hidden * mask)
            hidden = hidden + F.gelu(norm(states) if mask is None else self._masked_norm(norm, states, mask))
        return self.post(hidden) - 5.0

    @staticmethod
    def _masked_norm(norm: nn.GroupNorm, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`norm` (one group) with its statistics over each item's own frames only, so a padded item in a batch is
        normalised exactly as it is alone (padding frames would otherwise shift the mean and variance)."""
        count = mask.sum(dim=(1, 2), keepdim=True) * states.shape[1]
        mean = (states * mask).sum(dim=(1, 2), keepdim=True) / count
        variance = (((states - mean) * mask) ** 2).sum(dim=(1, 2), keepdim=True) / count
        normed = (states - mean) * torch.rsqrt(variance + norm.eps)
        return normed * norm.weight[None, :, None] + norm.bias[None, :, None]


class MelVocoderDecoder(nn.Module):
    """The decoder as `MelAdapter` + HiFi-GAN V1 with 80 mel bins in (`config.mel_adapter`): same call as
    `FTVDecoder` (latents, global conditioning, padding mask -> waveform). The vocoder takes the universal
    generator's weights (`ftv_model.universal_vocoder.with_universal_vocoder`); the face reaches it only through
    the adapter's mel.

    With a padding mask the adapter's convolutions see zeros past each item's end and its normalisation counts each
    item's own frames, and the vocoder masks as `FTVDecoder` does, so batched audio equals per-item audio."""

    def __init__(self, config: FTVConfig) -> None:
        super().__init__()
        settings = config.mel_adapter
        self.adapter = MelAdapter(
            config.flow_size,
            config.global_conditioning_channels,
            settings["hidden_size"],
            settings["kernel_size"],
            list(settings["dilations"]),
        )
        self.vocoder = FTVDecoder(self.vocoder_config())

    @staticmethod
    def vocoder_config() -> VitsConfig:
        """HiFi-GAN V1 (jik876's config_v1): 80 mel bins in, 22,050 Hz, hop 256, no speaker conditioning."""
        return VitsConfig(
            flow_size=MelAdapter.MEL_BINS,
            speaker_embedding_size=0,
            upsample_initial_channel=512,
            upsample_rates=[8, 8, 2, 2],
            upsample_kernel_sizes=[16, 16, 4, 4],
            resblock_kernel_sizes=[3, 7, 11],
            resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
            leaky_relu_slope=0.1,
            sampling_rate=22050,
        )

    def forward(
        self,
        spectrogram: torch.Tensor,
        global_conditioning: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        mel = self.adapter(spectrogram, global_conditioning, padding_mask)
        if padding_mask is not None:  # the vocoder's first conv reads past an item's end: zeros, as when it is alone
            mel = mel * padding_mask
        return self.vocoder(mel, None, padding_mask)


BFLOAT16_FRAME_BUCKET = 32  # bf16 decoder inputs are padded to a multiple of this many frames (see _decode_bfloat16)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bfloat16() -> bool:
    """Whether oneDNN runs bfloat16 natively here (AVX512-BF16 / AMX; else bf16 is emulated and slower)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _init_weight_normed(module: nn.Module, std: float) -> None:
    """N(0, std) init of a weight-normed conv: set the direction, then the gain to its norm."""
    original = module.parametrizations.weight
    nn.init.normal_(original.original1, 0.0, std)
    dims = tuple(range(1, original.original1.dim()))
    with torch.no_grad():
        if not getattr(original.original0, "_is_hf_initialized", False):
            original.original0.copy_(original.original1.norm(dim=dims, keepdim=True))


class FTVPreTrainedModel(PreTrainedModel):
    config_class = FTVConfig
    base_model_prefix = "ftv"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, then re-allocate tensors that safetensors left unaligned.

        Tensors viewed straight out of the file can sit at addresses that push oneDNN/BLAS onto other SIMD paths,
        so a loaded model's audio differed from the saved one's in the last bits; aligned copies make a save/load
        round trip bit-identical.
        """
        # Checkpoints may be stored in float16 to stay small; synthesis (and its CPU kernels) wants float32 unless
        # the caller asks for another dtype.
        kwargs.setdefault("dtype", torch.float32)
        try:
            model = super().from_pretrained(*args, **kwargs)
        except (OSError, ValueError) as error:
            name = args[0] if args else kwargs.get("pretrained_model_name_or_path", "")
            raise_checkpoint_error(name, "model", error)
        with torch.no_grad():
            for tensor in list(model.parameters()) + list(model.buffers()):
                if tensor.data_ptr() % 64:
                    tensor.data = tensor.data.clone()
        return model

    def _initialize_weights(self, module: nn.Module, is_custom_code: bool = False) -> None:
        # transformers treats models outside its package as "custom code" and then skips every module without
        # parameters of its own (the coupling layers, the decoder, the conditioning), which are exactly the ones
        # whose children this init sets. `_init_weights` only uses guarded init functions, so it is safe to run.
        super()._initialize_weights(module, is_custom_code=False)

    def _init_weights(self, module: nn.Module) -> None:
        """VITS's inits: flows start as the identity, decoder convs N(0, 0.01); the face encoder keeps timm's."""
        if getattr(module, "_ftv_keep_init", False):
            return
        if isinstance(module, AdaptiveConditioning):
            if not getattr(module.projection.weight, "_is_hf_initialized", False):
                module.reset_parameters()
        elif isinstance(module, VitsResidualCouplingLayer):
            nn.init.zeros_(module.conv_post.weight)
            nn.init.zeros_(module.conv_post.bias)
        elif isinstance(module, VitsConvFlow):
            nn.init.zeros_(module.conv_proj.weight)
            nn.init.zeros_(module.conv_proj.bias)
        elif isinstance(module, VitsElementwiseAffine):
            nn.init.zeros_(module.translate)
            nn.init.zeros_(module.log_scale)
        elif isinstance(module, VitsAttention):
            head_dim = self.config.hidden_size // self.config.num_attention_heads
            if module.window_size:
                nn.init.normal_(module.emb_rel_k, std=head_dim**-0.5)
                nn.init.normal_(module.emb_rel_v, std=head_dim**-0.5)
        elif isinstance(module, FTVDecoder):
            for layer in module.modules():
                if parametrize.is_parametrized(layer, "weight"):
                    _init_weight_normed(layer, 0.01)
        elif isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)) and not parametrize.is_parametrized(module):
            nn.init.kaiming_normal_(module.weight)
            if module.bias is not None:
                bound = math.sqrt(module.groups / (module.in_channels * module.kernel_size[0]))
                nn.init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, self.config.hidden_size**-0.5)
        elif isinstance(module, nn.Linear) and getattr(module, "_ftv_zero_init", False):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class FTVModel(FTVPreTrainedModel):
    """Face-to-voice VITS. See the module docstring; `FTVProcessor` makes its inputs."""

    def __init__(self, config: FTVConfig) -> None:
        super().__init__(config)
        vits_config = config.vits_config()
        self.vits_config = vits_config
        self.text_encoder = VitsTextEncoder(vits_config)
        for name, param in self.text_encoder.named_parameters():
            if name.endswith(("emb_rel_k", "emb_rel_v")):
                # Their gradients come out strided; DDP's buckets want them contiguous (else a warning and a copy).
                param.register_hook(lambda grad: grad.contiguous())
        self.face_encoder = FaceEncoder(config)
        for module in self.face_encoder.modules():
            module._ftv_keep_init = True  # timm's own init is the right one for NesT / ViT
        self.face_conditioning = (
            AdaptiveConditioning(
                config.hidden_size,
                config.face_embedding_size,
                config.conditioning_kernel_size,
                config.conditioning_groups,
            )
            if config.use_adaptive_conditioning
            else None
        )
        self.face_descriptor_fusion = (
            DescriptorFusion(
                config.face_descriptor_size, config.face_descriptor_hidden_size, config.face_embedding_size
            )
            if config.face_descriptor
            else None
        )
        self.face_projection = (
            nn.Linear(config.face_embedding_size, config.global_conditioning_size)
            if config.use_global_conditioning
            else None
        )
        self.flow = VitsResidualCouplingBlock(vits_config)
        self.decoder = MelVocoderDecoder(config) if config.mel_adapter else FTVDecoder(vits_config)
        if config.use_stochastic_duration_prediction:
            self.duration_predictor = FTVStochasticDurationPredictor(vits_config)
        else:
            self.duration_predictor = VitsDurationPredictor(vits_config)
        self.posterior_encoder = VitsPosteriorEncoder(vits_config)
        num_classes = {name: len(labels) for name, labels in config.attribute_labels.items()}
        self.face_attribute_head = (
            FaceAttributeHead(config.face_embedding_size, config.attribute_hidden_size, num_classes)
            if config.use_face_attribute_head
            else None
        )
        self.audio_attribute_head = (
            AudioAttributeHead(config.audio_attribute_length, num_classes) if config.use_audio_attribute_head else None
        )
        self.audio_features = AudioFeatures.from_config(config)
        if config.inference_only:
            self._drop_training_parts()
        self.post_init()

    # Modules only the training forward uses: the posterior encoder and the duration predictor's posterior flows.
    TRAINING_ONLY_PARTS = (
        "posterior_encoder",
        "duration_predictor.post_conv_pre",
        "duration_predictor.post_conv_proj",
        "duration_predictor.post_conv_dds",
        "duration_predictor.post_flows",
    )

    def _drop_training_parts(self) -> None:
        """Remove what only training needs (`config.inference_only`): smaller checkpoints, same audio."""
        for path in self.TRAINING_ONLY_PARTS:
            parent_path, _, name = path.rpartition(".")
            parent = self.get_submodule(parent_path) if parent_path else self
            if hasattr(parent, name):
                setattr(parent, name, None)

    def to_inference_only(self) -> FTVModel:
        """Drop the training-only modules in place and mark the config, for an inference export."""
        self.config.inference_only = True
        self._drop_training_parts()
        return self

    # ------------------------------------------------------------------ face

    def get_face_embeddings(
        self,
        pixel_values: torch.Tensor,
        pixel_mask: torch.Tensor | None = None,
        face_descriptors: torch.Tensor | None = None,
        face_gender_scores: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """F for (B, 3, H, W) faces, or the mean F over the photos of (B, N, 3, H, W) (pixel_mask (B, N) marks real
        photos when people have different numbers of them). With `config.face_descriptor`, each photo's F also
        gets its pretrained face descriptor, (B, D) or (B, N, D), which FTVProcessor computes. With
        `config.face_gender_reader` and the gender network's scores (B,) or (B, N) from FTVProcessor, F is anchored
        to the reader's gender where the model's own reading disagrees and the reader is the surer
        (`ftv_model.face_gender_reader`)."""
        self._check_pixel_values(pixel_values)
        descriptors = self._check_face_descriptors(face_descriptors, pixel_values)
        if pixel_values.dim() == 4:
            embeddings = self._encode_faces(pixel_values)
            if self.face_descriptor_fusion is not None:
                embeddings = embeddings + self._descriptor_part(descriptors)
            return self._anchor_gender(embeddings, descriptors, face_gender_scores, None)
        batch, views = pixel_values.shape[:2]
        embeddings = self._encode_faces(pixel_values.flatten(0, 1)).view(batch, views, -1)
        if self.face_descriptor_fusion is not None:
            embeddings = embeddings + self._descriptor_part(descriptors)
        if pixel_mask is None:
            return self._anchor_gender(embeddings.mean(dim=1), descriptors, face_gender_scores, None)
        weights = pixel_mask.to(embeddings.dtype).unsqueeze(-1)
        mean = (embeddings * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        return self._anchor_gender(mean, descriptors, face_gender_scores, pixel_mask)

    def _descriptor_part(self, descriptors: torch.Tensor) -> torch.Tensor:
        """The descriptor branch's share of F; scaled by `config.face_descriptor_scale` outside training."""
        part = self.face_descriptor_fusion(descriptors)
        scale = getattr(self.config, "face_descriptor_scale", 1.0)
        return part if self.training or scale == 1.0 else part * scale

    def _anchor_gender(
        self,
        embeddings: torch.Tensor,
        descriptors: torch.Tensor | None,
        scores: torch.Tensor | None,
        pixel_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """F (B, E) anchored to `config.face_gender_reader`'s reading (the mean over each person's photos) where
        the face head disagrees and the reader is the surer; F unchanged without a reader or without scores
        (training never passes them; the model's FTVProcessor always computes them for a model with a reader)."""
        reader = self.config.face_gender_reader
        if not reader or scores is None or self.face_attribute_head is None or descriptors is None:
            return embeddings  # the model's own reading: training, and inputs made without the model's processor
        check_reader(reader)
        if tuple(scores.shape) != tuple(descriptors.shape[:-1]):
            raise ValueError(
                f"face_gender_scores must have shape {tuple(descriptors.shape[:-1])} (one per photo), got "
                f"{tuple(scores.shape)}: prepare the faces with the model's FTVProcessor."
            )
        reading = reader_logits(reader, descriptors, scores.to(descriptors.device))
        if reading.dim() == 2:
            weights = torch.ones_like(reading) if pixel_mask is None else pixel_mask.to(reading.dtype)
            reading = (reading * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        male, female = (self.config.attribute_labels["gender"].index(name) for name in ("male", "female"))
        logits = self.face_attribute_head(embeddings)["gender"]
        return anchor_embeddings(reader, embeddings, logits[:, female] - logits[:, male], reading.to(embeddings.dtype))

    def _encode_faces(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """F of (N, 3, H, W) faces; outside training with `config.face_flip_average`, the mean over each face and its
        mirror image (one encoder pass over both)."""
        if self.training or not self.config.face_flip_average:
            return self.face_encoder(pixel_values)
        both = self.face_encoder(torch.cat([pixel_values, pixel_values.flip(-1)]))
        return both.view(2, pixel_values.shape[0], -1).mean(dim=0)

    def add_face_descriptor_fusion(self, name: str = "dlib-resnet-v1") -> None:
        """Give a model without it the pretrained face descriptor branch (`config.face_descriptor`); its output
        starts at zero, so the model speaks exactly as before until it is trained (a warm start)."""
        self.config.face_descriptor = FTVConfig(face_descriptor=name).face_descriptor  # validated there
        reference = self.face_projection.weight if self.face_projection is not None else next(self.parameters())
        self.face_descriptor_fusion = DescriptorFusion(
            self.config.face_descriptor_size, self.config.face_descriptor_hidden_size, self.config.face_embedding_size
        ).to(device=reference.device, dtype=reference.dtype)
        # Where __init__ registers it, so the parameter order (which optimizer state follows) is that of a model
        # built with the branch, as a resumed run builds it.
        order = list(self._modules)
        order.remove("face_descriptor_fusion")
        follower = next(name for name in ("face_projection", "flow") if name in order)
        order.insert(order.index(follower), "face_descriptor_fusion")
        self._modules = {name: self._modules[name] for name in order}

    def _check_face_descriptors(
        self, face_descriptors: torch.Tensor | None, pixel_values: torch.Tensor
    ) -> torch.Tensor | None:
        """The descriptors in the model's dtype, or a clear error when the model needs them and they are wrong.
        A model that fuses them needs them; one that only reads them for its gender reader takes them when given."""
        if self.face_descriptor_fusion is None and not self.config.face_gender_reader:
            return None
        expected = (*pixel_values.shape[:-3], self.config.face_descriptor_size)
        if face_descriptors is None:
            if self.face_descriptor_fusion is None:
                return None  # the gender reader then stays off: the model's own reading
            raise ValueError(
                f"This model adds pretrained face descriptors ({self.config.face_descriptor}) to its face embedding: "
                "prepare the faces with its FTVProcessor, which computes `face_descriptors`, and pass them on."
            )
        if tuple(face_descriptors.shape) != expected:
            raise ValueError(f"face_descriptors must have shape {expected}, got {tuple(face_descriptors.shape)}.")
        return face_descriptors.to(device=pixel_values.device, dtype=self._face_input_like().dtype)

    def _check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        size = self.config.image_size
        if (
            not isinstance(pixel_values, torch.Tensor)
            or pixel_values.dim() not in (4, 5)
            or tuple(pixel_values.shape[-3:]) != (3, size, size)
        ):
            shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values)
            raise ValueError(
                f"pixel_values must have shape (batch, 3, {size}, {size}) or (batch, photos, 3, {size}, {size}), got "
                f"{shape}. Prepare face images with FTVProcessor (it converts, resizes and normalises them)."
            )

    def _face_inputs(
        self,
        pixel_values: torch.Tensor | None,
        pixel_mask: torch.Tensor | None,
        face_embeddings: torch.Tensor | None,
        batch_size: int,
        face_descriptors: torch.Tensor | None = None,
        face_gender_scores: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """F (B, E) and the VITS global conditioning (B, G, 1) or None."""
        if face_embeddings is None:
            if pixel_values is None:
                raise ValueError("A face is needed: pass pixel_values (from FTVProcessor) or face_embeddings.")
            face_embeddings = self.get_face_embeddings(pixel_values, pixel_mask, face_descriptors, face_gender_scores)
        if face_embeddings.dim() != 2 or face_embeddings.shape[-1] != self.config.face_embedding_size:
            raise ValueError(
                f"face_embeddings must have shape (batch, {self.config.face_embedding_size}), "
                f"got {tuple(face_embeddings.shape)}."
            )
        if face_embeddings.shape[0] == 1 and batch_size > 1:
            face_embeddings = face_embeddings.expand(batch_size, -1)
        if face_embeddings.shape[0] != batch_size:
            raise ValueError(f"Got {face_embeddings.shape[0]} faces for {batch_size} texts: give one face per text.")
        global_conditioning = None
        if self.face_projection is not None:
            global_conditioning = self.face_projection(face_embeddings).unsqueeze(-1)
        return face_embeddings, global_conditioning

    def face_attributes(self, face_embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        """Face attribute head logits ({} when the head is switched off): raw, as the attribute loss trains them."""
        return {} if self.face_attribute_head is None else self.face_attribute_head(face_embeddings)

    def label_attributes(self, logits: dict[str, torch.Tensor]) -> list[dict[str, dict[str, float]]]:
        """Attribute logits (B, classes) -> per item {attribute: {label: probability}}, labels from the config."""
        names = self.config.attribute_labels
        probabilities = {name: value.float().softmax(-1).tolist() for name, value in logits.items()}
        batch = len(next(iter(probabilities.values()), []))
        return [
            {name: dict(zip(names[name], rows[i])) for name, rows in probabilities.items() if name in names}
            for i in range(batch)
        ]

    def calibrated_face_attributes(self, face_embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        """Face attribute logits divided by `config.face_attribute_temperatures` (fitted on held-out identities), so
        their softmax is a calibrated probability; what inference returns and the demo shows."""
        temperatures = self.config.face_attribute_temperatures
        return {
            name: logits / float(temperatures.get(name, 1.0))
            for name, logits in self.face_attributes(face_embeddings).items()
        }

    # ------------------------------------------------------------------ text

    def encode_text(
        self,
        input_ids: torch.Tensor,
        token_mask: torch.Tensor,
        face_embeddings: torch.Tensor,
        conditioning_kernel: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Text encoder + SC-CNN face conditioning -> hidden (B, C, S), prior means and log-stddevs (B, D, S).

        token_mask is (B, 1, S). conditioning_kernel: a fixed voice's SC-CNN kernel (`AdaptiveConditioning.kernel`
        of one F) used for every item instead of one per item from face_embeddings (the Piper export)."""
        encoder = self.text_encoder
        hidden = encoder.embed_tokens(input_ids) * math.sqrt(self.config.hidden_size)
        hidden = encoder.encoder(
            hidden_states=hidden,
            padding_mask=token_mask.transpose(1, 2),
            attention_mask=token_mask.squeeze(1).long(),
            return_dict=True,
        ).last_hidden_state.transpose(1, 2)
        if self.face_conditioning is not None and conditioning_kernel is not None:
            hidden = self.face_conditioning.apply_kernel(hidden, *conditioning_kernel, token_mask)
        elif self.face_conditioning is not None:
            hidden = self.face_conditioning(hidden, face_embeddings, token_mask)
        stats = encoder.project(hidden) * token_mask
        means, log_stddevs = torch.split(stats, self.config.flow_size, dim=1)
        return hidden, means, log_stddevs

    def _check_text(self, input_ids: torch.Tensor) -> None:
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.shape[1] == 0:
            raise ValueError("input_ids must be a non-empty (batch, length) tensor: make it with FTVProcessor.")
        if input_ids.shape[1] > self.config.max_input_length:
            raise ValueError(
                f"The input has {input_ids.shape[1]} tokens, more than max_input_length "
                f"({self.config.max_input_length}). Split the text into sentences and synthesize them in a batch."
            )

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        pixel_mask: torch.Tensor | None = None,
        face_embeddings: torch.Tensor | None = None,
        face_descriptors: torch.Tensor | None = None,
        face_gender_scores: torch.Tensor | None = None,
        waveform: torch.Tensor | None = None,
        waveform_lengths: torch.Tensor | None = None,
        gender_labels: torch.Tensor | None = None,
        race_labels: torch.Tensor | None = None,
        noise_scale: float | None = None,
        noise_scale_duration: float | None = None,
        speaking_rate: float | None = None,
        seed: int | None = None,
        voice: VoiceProfile | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> FTVModelOutput | FTVTrainingOutput:
        """Synthesize speech, or (with `waveform`) compute the training losses.

        input_ids, attention_mask: (B, S) phoneme ids from FTVProcessor. pixel_values: (B, 3, H, W) faces, or
        (B, N, 3, H, W) several photos per person (their embeddings are averaged); or face_embeddings (B, E).
        Training: waveform (B, T) float target audio at config.sampling_rate, waveform_lengths (B,), and optional
        gender_labels / race_labels (B,) with -100 for missing pseudo-labels.
        Inference controls: noise_scale (prior noise), noise_scale_duration (duration noise), speaking_rate
        (> 1 is faster), seed (each item's noise depends only on the seed and the item, so batching does not
        change anyone's audio). Synthesis runs without gradients.
        voice: a `VoiceProfile` instead of a face: its F, and its settings and seed where none are passed.
        """
        self._check_text(input_ids)
        if voice is not None:
            if pixel_values is not None or face_embeddings is not None:
                raise ValueError("Give either a face (pixel_values or face_embeddings) or a voice profile, not both.")
            voice.check_model(self)
            face_embeddings = voice.embedding(like=self._face_input_like())
            noise_scale = voice.settings.get("noise_scale") if noise_scale is None else noise_scale
            noise_scale_duration = (
                voice.settings.get("noise_scale_duration") if noise_scale_duration is None else noise_scale_duration
            )
            speaking_rate = voice.settings.get("speaking_rate") if speaking_rate is None else speaking_rate
            seed = voice.settings.get("seed") if seed is None else seed
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        token_mask = attention_mask.unsqueeze(1).to(self.dtype)
        face, global_conditioning = self._face_inputs(
            pixel_values, pixel_mask, face_embeddings, input_ids.shape[0], face_descriptors, face_gender_scores
        )
        if waveform is not None:
            if waveform_lengths is None:
                waveform_lengths = torch.full((waveform.shape[0],), waveform.shape[-1], device=waveform.device)
            labels = {"gender": gender_labels, "race": race_labels}
            return self._training_forward(
                input_ids, token_mask, face, global_conditioning, waveform, waveform_lengths, labels
            )
        # Synthesis never needs gradients; weight norm is computed once per call, not per use.
        with torch.no_grad(), parametrize.cached():
            return self._synthesize(
                input_ids,
                token_mask,
                face,
                global_conditioning,
                self.config.noise_scale if noise_scale is None else noise_scale,
                self.config.noise_scale_duration if noise_scale_duration is None else noise_scale_duration,
                self.config.speaking_rate if speaking_rate is None else speaking_rate,
                seed,
            )

    # ------------------------------------------------------------------ inference

    @staticmethod
    def _item_noise(lengths: list[int], channels: int, max_length: int, seed: int, like: torch.Tensor) -> torch.Tensor:
        """(B, channels, max_length) standard normal noise, item i drawn from `seed` for its own length only."""
        noise = torch.zeros(len(lengths), channels, max_length)
        for i, length in enumerate(lengths):
            generator = torch.Generator().manual_seed(seed)
            noise[i, :, :length] = torch.randn(channels, length, generator=generator)
        return noise.to(device=like.device, dtype=like.dtype)

    def _synthesize(
        self,
        input_ids: torch.Tensor,
        token_mask: torch.Tensor,
        face: torch.Tensor,
        global_conditioning: torch.Tensor | None,
        noise_scale: float,
        noise_scale_duration: float,
        speaking_rate: float,
        seed: int | None,
    ) -> FTVModelOutput:
        if speaking_rate <= 0:
            raise ValueError(f"speaking_rate must be positive, got {speaking_rate}.")
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        hidden, prior_means, prior_log_stddevs = self.encode_text(input_ids, token_mask, face)
        token_lengths = token_mask.sum(dim=(1, 2)).long().tolist()
        if self.config.use_stochastic_duration_prediction:
            noise = self._item_noise(token_lengths, 2, input_ids.shape[1], seed, hidden)
            log_duration = self.duration_predictor(
                hidden, token_mask, global_conditioning, reverse=True, noise_scale=noise_scale_duration, noise=noise
            )
        else:
            log_duration = self.duration_predictor(hidden, token_mask, global_conditioning)
        durations = torch.ceil(torch.exp(log_duration) * token_mask / speaking_rate)  # (B, 1, S)
        frame_lengths, frame_mask, means, log_stddevs = self.expand_to_frames(
            durations, token_mask, prior_means, prior_log_stddevs
        )
        max_frames = frame_mask.shape[-1]

        noise = self._item_noise(frame_lengths.tolist(), self.config.flow_size, max_frames, seed + 1, hidden)
        prior_latents = (means + noise * torch.exp(log_stddevs) * noise_scale) * frame_mask
        latents = self.flow(prior_latents, frame_mask, global_conditioning, reverse=True) * frame_mask
        if self.runs_bfloat16_decoder:
            waveform = self._decode_bfloat16(latents, global_conditioning, frame_mask)
        else:
            waveform = self.decoder(latents, global_conditioning, frame_mask if input_ids.shape[0] > 1 else None)
        waveform = waveform.squeeze(1).to(latents.dtype)
        return FTVModelOutput(
            waveform=waveform,
            sequence_lengths=frame_lengths * self.config.hop_length,
            spectrogram=latents,
            face_embedding=face,
            attribute_logits=(readings := self.calibrated_face_attributes(face)),
            attributes=self.label_attributes(readings) if readings else None,
            durations=durations.squeeze(1),
        )

    @staticmethod
    def expand_to_frames(
        durations: torch.Tensor, token_mask: torch.Tensor, prior_means: torch.Tensor, prior_log_stddevs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hard alignment from integer durations (B, 1, S): token s covers frames [cum[s-1], cum[s]). Returns the
        frame lengths (B,), frame mask (B, 1, T) and the prior statistics repeated over frames (B, D, T). Only
        tensor ops, so a traced export (`piper_export`) keeps every length dynamic."""
        frame_lengths = torch.clamp_min(durations.sum(dim=(1, 2)), 1).long()
        cumulative = torch.cumsum(durations.squeeze(1), dim=-1)  # (B, S)
        frames = torch.arange(frame_lengths.max(), device=durations.device).to(cumulative.dtype)
        frame_mask = (frames[None, :] < frame_lengths[:, None]).unsqueeze(1).to(prior_means.dtype)
        ends = frames[None, None, :] < cumulative[:, :, None]
        starts = frames[None, None, :] < (cumulative - durations.squeeze(1))[:, :, None]
        path = (ends & ~starts).to(prior_means.dtype) * token_mask.transpose(1, 2) * frame_mask  # (B, S, T)
        return frame_lengths, frame_mask, torch.bmm(prior_means, path), torch.bmm(prior_log_stddevs, path)

    def _decode_bfloat16(
        self, latents: torch.Tensor, global_conditioning: torch.Tensor | None, frame_mask: torch.Tensor
    ) -> torch.Tensor:
        """The decoder in bfloat16 autocast on a CPU with native bf16, on latents zero-padded to a multiple of
        `BFLOAT16_FRAME_BUCKET` frames (with the padding mask, so the audio is what the unpadded run gives).

        Why the padding: oneDNN builds a bf16 convolution kernel for each new input length, about 0.4 s for the
        bundled decoder, then reuses it (24 ms for 4.6 s of audio against 75 ms in float32). Every sentence has its
        own length, so without buckets every request paid the build and bf16 looked three times slower than
        float32; with them, lengths share a few kernels.

        The latents and the mask enter in bfloat16: a float32 mask promoted every masked activation back to float32,
        and autocast cast it down again before the next conv (a fifth of the decoder's time on an AVX512-BF16 CPU,
        benchmarks/bench_inference.py)."""
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.decode_padded(
                latents.to(torch.bfloat16), global_conditioning, frame_mask.to(torch.bfloat16), BFLOAT16_FRAME_BUCKET
            )

    def decode_padded(
        self, latents: torch.Tensor, global_conditioning: torch.Tensor | None, frame_mask: torch.Tensor, bucket: int
    ) -> torch.Tensor:
        """The decoder on latents zero-padded to a multiple of `bucket` frames, its output cut back to their length:
        the padding mask zeroes every conv input past each item's end, so the audio is the unpadded run's."""
        frames = latents.shape[-1]
        padded = -(-frames // bucket) * bucket
        if padded != frames:
            latents = F.pad(latents, (0, padded - frames))
            frame_mask = F.pad(frame_mask, (0, padded - frames))
        return self.decoder(latents, global_conditioning, frame_mask)[..., : frames * self.config.hop_length]

    # ------------------------------------------------------------------ posterior side

    def _spectrogram_frames(
        self, waveform: torch.Tensor, waveform_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The posterior encoder's input: linear spectrogram (B, F, N) in fp32 of the whole hops of `waveform`,
        valid frames per item (B,) and their mask (B, 1, N) in the model's dtype."""
        hop = self.config.hop_length
        spectrogram = self.audio_features.linear_spectrogram(waveform[..., : waveform.shape[-1] // hop * hop])
        num_frames = spectrogram.shape[-1]
        frame_lengths = torch.clamp(waveform_lengths // hop, 1, num_frames)
        frames = torch.arange(num_frames, device=waveform.device)
        frame_mask = (frames[None, :] < frame_lengths[:, None]).unsqueeze(1).to(self.dtype)
        return spectrogram, frame_lengths, frame_mask

    def reconstruct(
        self,
        waveform: torch.Tensor,
        waveform_lengths: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        pixel_mask: torch.Tensor | None = None,
        face_embeddings: torch.Tensor | None = None,
        face_descriptors: torch.Tensor | None = None,
        face_gender_scores: torch.Tensor | None = None,
    ) -> FTVModelOutput:
        """Copy synthesis: a recording's posterior latents (their means) rendered by the decoder, given a face.

        No text and no prior: what the decoder can render when the latents are right. It is the ceiling of every
        synthesis from text, so it tells a decoder that cannot render a corpus's voices (e.g. an imported
        single-speaker one kept frozen) from a prior that has not learnt them. waveform (B, T) at
        config.sampling_rate, waveform_lengths (B,) in samples. Needs the posterior encoder (not in an
        inference-only export)."""
        if self.posterior_encoder is None:
            raise InferenceOnlyModelError(
                "Copy synthesis needs the posterior encoder, which this inference-only export dropped: use the full "
                "model a training run writes (OUTPUT/final)."
            )
        if waveform.dim() != 2 or waveform.shape[-1] < self.config.hop_length:
            raise ValueError("waveform must be a (batch, samples) tensor at least one hop long.")
        face, global_conditioning = self._face_inputs(
            pixel_values, pixel_mask, face_embeddings, waveform.shape[0], face_descriptors, face_gender_scores
        )
        hop = self.config.hop_length
        if waveform_lengths is None:
            waveform_lengths = torch.full((waveform.shape[0],), waveform.shape[-1], device=waveform.device)
        with torch.no_grad(), parametrize.cached():
            spectrogram, frame_lengths, frame_mask = self._spectrogram_frames(waveform.float(), waveform_lengths)
            _, means, _ = self.posterior_encoder(spectrogram.to(self.dtype), frame_mask, global_conditioning)
            batched = waveform.shape[0] > 1
            audio = self.decoder(means * frame_mask, global_conditioning, frame_mask if batched else None)
        return FTVModelOutput(
            waveform=audio.squeeze(1).to(means.dtype),
            sequence_lengths=frame_lengths * hop,
            spectrogram=means,
            face_embedding=face,
            attribute_logits=self.calibrated_face_attributes(face),
        )

    # ------------------------------------------------------------------ training

    def _flow_context_frames(self) -> int:
        """How far (frames, each side) a frame of the flow's output can see: every coupling's WaveNet adds
        (kernel - 1) / 2 x dilation per layer. Latents farther than this from a window's edges are exact."""
        c = self.config
        per_wavenet = sum(
            (c.wavenet_kernel_size - 1) // 2 * c.wavenet_dilation_rate**i
            for i in range(c.prior_encoder_num_wavenet_layers)
        )
        return c.prior_encoder_num_flows * per_wavenet

    def _aligned_prior_latents(
        self,
        expanded_means: torch.Tensor,
        expanded_log_stddevs: torch.Tensor,
        frame_mask: torch.Tensor,
        global_conditioning: torch.Tensor | None,
        starts: torch.Tensor,
        segment_frames: int,
    ) -> torch.Tensor:
        """The decoder's segment (B, C, segment_frames) of the latents synthesis would give it for this recording's
        text and timing (the MAS alignment): prior samples at `decoder_prior_noise_scale` through the inverse flow
        (`decoder_latents="prior"`).

        The inverse flow runs on a window of the segment plus the flow's receptive field on each side, not on the
        whole utterance: the same latents from 96 frames instead of ~215 (at the Piper shape; the whole step gets
        only ~3% faster on CPU, where the decoder and discriminator dominate). The prior's statistics are detached
        (the text encoder learns from the KL term only), the flow is not: what of it is trainable (e.g. its face
        conditioning) also learns to make latents the decoder renders as the voice."""
        num_frames = expanded_means.shape[-1]
        context = self._flow_context_frames()
        width = min(num_frames, segment_frames + 2 * context)
        window_starts = torch.clamp(starts - context, min=0, max=num_frames - width)
        index = window_starts[:, None] + torch.arange(width, device=starts.device)[None, :]

        def window(tensor: torch.Tensor) -> torch.Tensor:
            return torch.gather(tensor, 2, index[:, None, :].expand(-1, tensor.shape[1], -1))

        means, log_stddevs, mask = (
            window(expanded_means.detach()),
            window(expanded_log_stddevs.detach()),
            window(frame_mask),
        )
        noise = torch.randn_like(means) * torch.exp(log_stddevs) * self.config.decoder_prior_noise_scale
        latents = self.flow((means + noise) * mask, mask, global_conditioning, reverse=True) * mask
        offsets = (starts - window_starts)[:, None] + torch.arange(segment_frames, device=starts.device)[None, :]
        return torch.gather(latents, 2, offsets[:, None, :].expand(-1, latents.shape[1], -1))

    def _training_forward(
        self,
        input_ids: torch.Tensor,
        token_mask: torch.Tensor,
        face: torch.Tensor,
        global_conditioning: torch.Tensor | None,
        waveform: torch.Tensor,
        waveform_lengths: torch.Tensor,
        labels: dict[str, torch.Tensor | None],
    ) -> FTVTrainingOutput:
        config = self.config
        if config.inference_only or self.posterior_encoder is None:
            raise InferenceOnlyModelError(
                "This is an inference-only export (config.inference_only: no posterior encoder, no duration "
                "posterior flows, no discriminator), so it can synthesize but not train. Warm-start training from "
                "the full export a training run writes (OUTPUT/final), or from a converted voice "
                "(python -m ftv_model.convert_piper)."
            )
        hop = config.hop_length
        segment_frames = config.segment_size // hop
        # Room for at least one decoder segment, so short utterances still train.
        if waveform.shape[-1] < config.segment_size:
            waveform = F.pad(waveform, (0, config.segment_size - waveform.shape[-1]))
        waveform = waveform[..., : waveform.shape[-1] // hop * hop]
        spectrogram, frame_lengths, frame_mask = self._spectrogram_frames(waveform, waveform_lengths)

        posterior_latents, _, posterior_log_stddev = self.posterior_encoder(
            spectrogram.to(self.dtype), frame_mask, global_conditioning
        )
        prior_latents = self.flow(posterior_latents, frame_mask, global_conditioning)
        hidden, prior_means, prior_log_stddevs = self.encode_text(input_ids, token_mask, face)

        with torch.no_grad():
            log_likelihood = alignment_log_likelihood(prior_latents, prior_means, prior_log_stddevs)
            path = monotonic_alignment(log_likelihood, token_mask.squeeze(1), frame_mask.squeeze(1))  # (B, S, T)
        durations = path.sum(dim=2).unsqueeze(1)  # (B, 1, S)
        if config.use_stochastic_duration_prediction:
            nll = self.duration_predictor(hidden, token_mask, global_conditioning, durations=durations)
            duration_loss = torch.sum(nll.float()) / torch.sum(token_mask)
        else:
            target = torch.log(durations + 1e-6) * token_mask
            predicted = self.duration_predictor(hidden, token_mask, global_conditioning)
            duration_loss = torch.sum((predicted.float() - target.float()) ** 2) / torch.sum(token_mask)

        expanded_means = torch.bmm(prior_means, path.to(prior_means.dtype))
        expanded_log_stddevs = torch.bmm(prior_log_stddevs, path.to(prior_log_stddevs.dtype))
        kl = kl_loss(prior_latents, posterior_log_stddev, expanded_means, expanded_log_stddevs, frame_mask)

        # A random decoder segment per item (inside its valid frames when it is long enough).
        max_start = torch.clamp_min(frame_lengths - segment_frames, 0)
        starts = (torch.rand(max_start.shape, device=waveform.device) * (max_start + 1).float()).long()
        frame_index = starts[:, None] + torch.arange(segment_frames, device=waveform.device)[None, :]
        if config.decoder_latents == "prior":
            latent_segment = self._aligned_prior_latents(
                expanded_means, expanded_log_stddevs, frame_mask, global_conditioning, starts, segment_frames
            )
        else:
            latent_segment = torch.gather(
                posterior_latents, 2, frame_index[:, None, :].expand(-1, posterior_latents.shape[1], -1)
            )
        sample_index = (starts * hop)[:, None] + torch.arange(config.segment_size, device=waveform.device)[None, :]
        target_waveform = torch.gather(waveform, 1, sample_index).unsqueeze(1)
        predicted_waveform = self.decoder(latent_segment, global_conditioning)

        target_mel = torch.gather(
            self.audio_features.mel_from_linear(spectrogram),
            2,
            frame_index[:, None, :].expand(-1, config.num_mel_bins, -1),
        )
        predicted_mel = self.audio_features.mel_spectrogram(predicted_waveform.squeeze(1))
        mel_loss = F.l1_loss(predicted_mel, target_mel)

        zero = mel_loss.new_zeros(())
        face_logits = self.face_attributes(face)
        face_attribute_loss = attribute_loss(face_logits, labels) if face_logits else zero
        if self.audio_attribute_head is not None:
            audio_attribute_loss = attribute_loss(self.audio_attribute_head(predicted_waveform.squeeze(1)), labels)
        else:
            audio_attribute_loss = zero
        weights = PAPER_LOSS_WEIGHTS
        total_attribute_loss = weights.combined_attribute_loss(face_attribute_loss, audio_attribute_loss)
        loss = weights.reconstruction_loss(mel_loss, kl, duration_loss, face_attribute_loss, audio_attribute_loss)
        return FTVTrainingOutput(
            loss=loss,
            mel_loss=mel_loss,
            kl_loss=kl,
            duration_loss=duration_loss,
            face_attribute_loss=face_attribute_loss,
            audio_attribute_loss=audio_attribute_loss,
            attribute_loss=total_attribute_loss,
            predicted_waveform=predicted_waveform,
            target_waveform=target_waveform,
            predicted_mel=predicted_mel,
            target_mel=target_mel,
            face_embedding=face,
            attribute_logits=face_logits,
            alignment=path,
        )

    # ------------------------------------------------------------------ voice profiles

    def _face_input_like(self) -> torch.Tensor:
        """A parameter whose device and dtype face inputs must match."""
        return next(self.parameters())

    @torch.no_grad()
    def voice_profile(
        self,
        pixel_values: torch.Tensor | None = None,
        pixel_mask: torch.Tensor | None = None,
        face_descriptors: torch.Tensor | None = None,
        face_gender_scores: torch.Tensor | None = None,
        face_embeddings: torch.Tensor | None = None,
        *,
        seed: int = 0,
        speaking_rate: float | None = None,
        noise_scale: float | None = None,
        noise_scale_duration: float | None = None,
        **unused: object,
    ) -> VoiceProfile:
        """The voice of one person as a `VoiceProfile` (save it, then speak with `model(..., voice=profile)`).

        The face comes as FTVProcessor gives it (one photo (1, 3, H, W), or several photos of one person
        (1, N, 3, H, W), averaged) or as F (1, E). Extra processor outputs (input_ids, ...) are ignored."""
        if face_embeddings is None:
            if pixel_values is None:
                raise ValueError("A face is needed: pass pixel_values (from FTVProcessor) or face_embeddings.")
            face_embeddings = self.get_face_embeddings(pixel_values, pixel_mask, face_descriptors, face_gender_scores)
        if face_embeddings.dim() != 2 or face_embeddings.shape[0] != 1:
            raise VoiceProfileError(
                f"A voice profile is one person's voice: give one face (or several photos of one person as (1, N, "
                f"3, H, W)), got {face_embeddings.shape[0]} faces."
            )
        photos = int(pixel_values.shape[1]) if pixel_values is not None and pixel_values.dim() == 5 else 1
        if pixel_mask is not None:
            photos = int(pixel_mask.sum())
        readings = self.label_attributes(self.calibrated_face_attributes(face_embeddings))
        return VoiceProfile.from_embedding(
            self,
            face_embeddings.float(),
            attributes=readings[0] if readings else {},
            seed=seed,
            speaking_rate=speaking_rate,
            noise_scale=noise_scale,
            noise_scale_duration=noise_scale_duration,
            photos=photos,
        )

    # ------------------------------------------------------------------ utilities

    @property
    def runs_bfloat16_decoder(self) -> bool:
        """Whether synthesis runs the decoder in bfloat16: `config.cpu_bfloat16_decoder` asks for it, and it runs
        only on a CPU with native bf16 (elsewhere the option is ignored and the decoder stays float32)."""
        return bool(self.config.cpu_bfloat16_decoder) and self.device.type == "cpu" and cpu_has_native_bfloat16()

    def fold_weight_norm(self) -> FTVModel:
        """Fold every weight-norm parametrization into plain weights, for deployment (cannot be trained after).
        The voice-profile fingerprint is taken first, so profiles match the unfolded checkpoint."""
        model_fingerprint(self)
        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight")
        return self

    def num_parameters_by_part(self) -> dict[str, int]:
        """Parameter counts of the face encoder, the face-specific layers and the VITS backbone."""

        def count(module: nn.Module | None) -> int:
            return 0 if module is None else sum(p.numel() for p in module.parameters())

        face = count(self.face_encoder)
        face_layers = count(self.face_conditioning) + count(self.face_projection)
        heads = count(self.face_attribute_head) + count(self.audio_attribute_head)
        total = count(self)
        return {
            "face_encoder": face,
            "face_conditioning": face_layers,
            "attribute_heads": heads,
            "backbone": total - face - face_layers - heads,
            "total": total,
        }

    def init_backbone_from_vits(self, vits_model_or_path: str | Path | nn.Module, **kwargs) -> list[str]:
        """Copy a transformers VITS checkpoint (Hub id, local directory or VitsModel) into the backbone.

        Returns the backbone parameter names that the checkpoint did not provide (they keep their init).
        Weight-normed FTV layers take a plain VITS weight w as direction w and gain ||w||.
        """
        from .vits_import import load_vits_backbone

        return load_vits_backbone(self, vits_model_or_path, **kwargs)
