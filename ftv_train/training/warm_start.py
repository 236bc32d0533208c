"""Warm starts: what a training run may take from an existing checkpoint (`--init`), what it may change, what it
keeps fixed (`freeze`), and a trainable warm start made from an inference export (`ftv-make-warm-start`).

The architecture of a warm start is its checkpoint's: only the model settings that shape training and not the
generator's weights (`TRAINING_ONLY_MODEL_KEYS`) may differ, and new branches that start at zero may be added
(`ADDABLE_MODEL_KEYS`). The discriminator comes from INIT/discriminator when there is one (with the settings it
was built with), else it is a fresh one with the training config's settings.

`ftv-make-warm-start`: an inference export (`ftv_model.export_inference`, e.g. the bundled checkpoint) drops the
posterior encoder and the duration predictor's posterior flows, so training cannot continue from it. Its generator
is still the best start for the next stage; this copies every tensor it has into a full model (``--init``: e.g. the
converted Piper voice it was first trained from, which has the training-only parts) and keeps the rest of
``--init``. Distil the posterior afterwards (train/distill_posterior.py) so it matches the decoder it now sits beside.

    python train/make_warm_start.py --init data/joe-init --weights checkpoints/ftv-offline --out data/ftv-warm
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import HfArgumentParser
from transformers.hf_argparser import HfArg

from ftv_model import FTVConfig, FTVDiscriminator, FTVModel, FTVProcessor
from ftv_model.discriminator import FTVDiscriminatorConfig
from ftv_model.image_processing_ftv import FTVImageProcessor
from ftv_train.training.checkpointing import DISCRIMINATOR_DIR
from ftv_train.training.config import FORMER_MODEL_SETTINGS, ConfigError, TrainConfig

# Model settings a warm start may change: they shape training (decoder segments and what the decoder learns from),
# not the generator's weights.
TRAINING_ONLY_MODEL_KEYS = ("segment_size", "decoder_latents", "decoder_prior_noise_scale")
# Settings a warm start may add to its checkpoint's architecture: new branches that start at zero (the init's voice
# is unchanged until training moves them).
ADDABLE_MODEL_KEYS = ("face_descriptor",)


class WarmStartError(ValueError):
    """The weights do not fit the full model (another architecture)."""


# ---------------------------------------------------------------------------------------------------------------------
# Rules of a training run's warm start
# ---------------------------------------------------------------------------------------------------------------------


def check_init_compatible(config: TrainConfig, loaded: FTVConfig) -> None:
    """ConfigError when the run asks for another architecture than its --init checkpoint's."""
    if loaded.face_encoder_type != config.face_encoder_type:
        raise ConfigError(
            f"--init {config.init} has face_encoder_type={loaded.face_encoder_type!r} but this run asks for "
            f"{config.face_encoder_type!r}; the architecture of a warm start is fixed by its checkpoint."
        )
    different = {key: value for key, value in config.model.items() if getattr(loaded, key, value) != value}
    addable = {key for key in ADDABLE_MODEL_KEYS if getattr(loaded, key, None) is None}
    architecture = {key: value for key, value in different.items() if key not in (*TRAINING_ONLY_MODEL_KEYS, *addable)}
    if architecture:
        raise ConfigError(
            f"model settings {architecture} differ from the --init checkpoint's; drop them (a warm start keeps "
            "the checkpoint's architecture) or train from scratch."
        )


def apply_training_only_settings(config: TrainConfig, model_config: FTVConfig) -> None:
    """The run's training-only model settings onto a loaded (warm start or resumed) model config."""
    for key in TRAINING_ONLY_MODEL_KEYS:
        if key in config.model:
            setattr(model_config, key, config.model[key])


def note_former_model_settings(config: TrainConfig, model_config: FTVConfig, info: Callable[[str], None]) -> None:
    """Say so when a loaded config.json from before the loss weights and the discriminator moved to training
    carries values other than this run's: the run's are used (a loaded discriminator keeps its own)."""
    differing = {
        name: getattr(model_config, name)
        for name in FORMER_MODEL_SETTINGS
        if hasattr(model_config, name) and getattr(model_config, name) != getattr(config, name)
    }
    if differing:
        info(
            f"The loaded model config carries the training settings {differing} (written before they moved to the "
            "training config); the run's own apply (a discriminator loaded with the model keeps its settings): "
            + ", ".join(f"{name}={getattr(config, name)}" for name in differing)
        )


def freeze_parameters(model: torch.nn.Module, prefixes: list[str], keep: list[str] | None = None) -> None:
    """Fix the parameters whose names start with a prefix, except those containing a `keep` substring."""
    if not prefixes:
        return
    matched = dict.fromkeys(prefixes, 0)
    for name, parameter in model.named_parameters():
        if any(part in name for part in keep or ()):
            continue
        for prefix in prefixes:
            if name.startswith(prefix):
                parameter.requires_grad_(False)
                matched[prefix] += 1
    unmatched = [prefix for prefix, count in matched.items() if count == 0]
    if unmatched:
        raise ConfigError(f"freeze prefixes {unmatched} match no generator parameter.")


def default_processor(model_config: FTVConfig) -> FTVProcessor:
    """The processor of a model that comes without one: the model's image size and face descriptor."""
    return FTVProcessor(
        image_processor=FTVImageProcessor(size=model_config.image_size, face_descriptor=model_config.face_descriptor),
        max_input_length=model_config.max_input_length,
    )


def fresh_discriminator(config: TrainConfig) -> FTVDiscriminator:
    return FTVDiscriminator(FTVDiscriminatorConfig(**config.discriminator_settings()))


def load_warm_start(
    config: TrainConfig, info: Callable[[str], None]
) -> tuple[FTVModel, FTVDiscriminator, FTVProcessor]:
    """The --init checkpoint made ready for this run: its generator (ablated heads removed, an added descriptor
    branch), its discriminator when there is one and it is wanted, and its processor."""
    info(f"Warm start from {config.init}")
    model = FTVModel.from_pretrained(config.init)
    if model.config.inference_only:
        raise ConfigError(
            f"--init {config.init} is an inference-only export (float16, no posterior encoder): it cannot be "
            "trained. Warm-start from the full export of the run that made it (OUTPUT/final) or from a "
            "converted voice (python -m ftv_model.convert_piper --out DIR)."
        )
    check_init_compatible(config, model.config)
    apply_training_only_settings(config, model.config)
    note_former_model_settings(config, model.config, info)
    if config.model.get("face_descriptor") and model.face_descriptor_fusion is None:
        model.add_face_descriptor_fusion(config.model["face_descriptor"])
        info(f"Added the {model.config.face_descriptor} face descriptor branch (starts at zero)")
    if not config.face_attribute_loss and model.face_attribute_head is not None:
        model.face_attribute_head = None  # switched off: no loss, no DDP-unused parameters
    if not config.audio_attribute_loss and model.audio_attribute_head is not None:
        model.audio_attribute_head = None
    model.config.use_face_attribute_head = model.face_attribute_head is not None
    model.config.use_audio_attribute_head = model.audio_attribute_head is not None
    discriminator = None
    if config.init_discriminator:
        try:
            discriminator = FTVDiscriminator.from_pretrained(config.init, subfolder=DISCRIMINATOR_DIR)
            info(f"Loaded the discriminator from {config.init}/{DISCRIMINATOR_DIR}")
        except Exception as error:  # noqa: BLE001 - absent or unreadable: train a fresh one
            info(f"No discriminator in {config.init} ({type(error).__name__}); training a fresh one.")
    if discriminator is None:
        discriminator = fresh_discriminator(config)
    try:
        processor = FTVProcessor.from_pretrained(config.init)
    except Exception as error:  # noqa: BLE001 - any unreadable processor falls back to the default
        info(f"No processor in {config.init} ({type(error).__name__}); using the default one.")
        processor = default_processor(model.config)
    return model, discriminator, processor


# ---------------------------------------------------------------------------------------------------------------------
# A trainable warm start from an inference export
# ---------------------------------------------------------------------------------------------------------------------


def merge_weights(init: str | Path, weights: str | Path) -> tuple[FTVModel, dict[str, int]]:
    """The full model of `init` with every tensor of the checkpoint `weights` copied in (float32); counts of what
    came from where."""
    model = FTVModel.from_pretrained(str(init), torch_dtype=torch.float32)
    if model.config.inference_only:
        raise WarmStartError(f"--init {init} is an inference-only export: give a full model (e.g. a converted voice).")
    source = load_file(str(Path(weights) / "model.safetensors"))
    state = model.state_dict()
    wrong = [k for k, v in source.items() if k not in state or state[k].shape != v.shape]
    if wrong:
        raise WarmStartError(
            f"{weights} has {len(wrong)} tensors the model of {init} lacks or shapes differently (e.g. {wrong[0]}): "
            "the two are different architectures."
        )
    state.update({k: v.float() for k, v in source.items()})
    model.load_state_dict(state)
    loaded = FTVModel.config_class.from_pretrained(str(weights))
    model.config.face_attribute_temperatures = dict(loaded.face_attribute_temperatures or {})
    kept = sorted({k.split(".")[0] for k in state if k not in source})
    return model, {"copied": len(source), "kept_from_init": len(state) - len(source), "kept_parts": kept}


@dataclass
class WarmStartArguments:
    """`ftv-make-warm-start`'s options."""

    init: str = HfArg(help="full FTV model (has the posterior encoder)")
    weights: str = HfArg(help="FTV checkpoint whose weights to start from")
    out: str = HfArg(help="where the trainable warm start goes")


def main(argv: Sequence[str] | None = None) -> int:
    """`ftv-make-warm-start` / train/make_warm_start.py."""
    parser = HfArgumentParser(
        WarmStartArguments,
        prog="ftv-make-warm-start",
        description="A trainable warm start from an inference export: its weights put into a full model of the "
        "same architecture (--init), the rest of which is kept.",
    )
    (args,) = parser.parse_args_into_dataclasses(list(argv) if argv is not None else None, look_for_args_file=False)
    try:
        model, counts = merge_weights(args.init, args.weights)
    except WarmStartError as error:
        parser.exit(2, f"error: {error}\n")
    model.save_pretrained(args.out)
    FTVProcessor.from_pretrained(args.weights).save_pretrained(args.out)
    print(
        f"{args.out}: {counts['copied']} tensors from {args.weights}, {counts['kept_from_init']} from {args.init} "
        f"({', '.join(counts['kept_parts'])})"
    )
    return 0
