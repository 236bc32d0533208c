"""Training configuration: one dataclass, filled from a YAML file and then from command-line overrides.

Every value the training loop reads lives here, so a run is fully described by its YAML file plus the overrides
printed at start-up (and stored in each checkpoint). Model architecture values go into the `model` mapping
(`FTVConfig` keyword arguments); the paper's ablation switches and the loss weights are top-level fields because
they also apply when warm-starting from an existing checkpoint (`init`).

Command line: `--config FILE`, then any field as `--name VALUE` (`--batch_size 8`, `--attributes gender,race`,
`--max_grad_norm none`), booleans also as `--name` / `--no-name` (`--no-multiview`), and model fields as
`--set model.hidden_size=64` (repeatable).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MIXED_PRECISION_CHOICES = ("auto", "no", "fp16", "bf16")
LR_DECAY_CHOICES = ("epoch", "step")
ATTRIBUTE_CHOICES = ("gender", "race")
FACE_ENCODER_CHOICES = ("nest", "vit")
# Loss weights that may be overridden on top of the model config (they are read by the model at every forward).
LOSS_WEIGHT_FIELDS = (
    "mel_loss_weight",
    "kl_loss_weight",
    "duration_loss_weight",
    "attribute_loss_weight",
    "audio_attribute_loss_weight",
    "feature_matching_loss_weight",
    "adversarial_loss_weight",
)


class ConfigError(ValueError):
    """A training configuration value that is missing, unknown or out of range; the message says which."""


@dataclass
class TrainConfig:
    """All settings of a training run. Defaults are the paper's (VITS optimiser, batch 20, 350k steps)."""

    # ---- run -----------------------------------------------------------------------------------------------
    data: str | None = None  # prepared dataset directory (train/prepare_data.py)
    output: str = "runs/ftv"  # checkpoints/, logs/, samples/, final/
    seed: int = 1234
    max_steps: int = 350_000  # optimizer steps (one generator + one discriminator update each)
    resume: str | None = None  # "latest" or a checkpoint directory
    init: str | None = None  # warm start: save_pretrained dir or Hub id with FTVModel weights
    init_discriminator: bool = True  # also load INIT/discriminator when it exists
    export_only: bool = False  # write OUTPUT/final from the resumed checkpoint, then stop
    push_to_hub: str | None = None  # publish OUTPUT/final to this Hub repo at the end
    hub_private: bool = False

    # ---- model ---------------------------------------------------------------------------------------------
    model: dict[str, Any] = field(default_factory=dict)  # FTVConfig keyword overrides (fresh models only)
    freeze: list[str] = field(default_factory=list)  # generator parameter-name prefixes to keep fixed
    keep_trainable: list[str] = field(default_factory=list)  # name substrings exempt from `freeze` (e.g. ".cond")
    adversarial: bool = True  # False: no discriminator forward or update (mel/KL/duration/attribute losses only)

    # ---- ablations (paper Tables 4 and 5) ------------------------------------------------------------------
    face_attribute_loss: bool = True  # False: no face attribute head / loss
    audio_attribute_loss: bool = True  # False: no audio attribute head / loss
    face_encoder_type: str = "nest"  # "vit": the "without FGA" ablation
    multiview: bool = True  # False: always the first face view (the "without AUG" ablation)
    attributes: list[str] = field(default_factory=lambda: list(ATTRIBUTE_CHOICES))  # supervised attributes

    # ---- loss weights (None: the model config's value) -----------------------------------------------------
    mel_loss_weight: float | None = None
    kl_loss_weight: float | None = None
    duration_loss_weight: float | None = None
    attribute_loss_weight: float | None = None
    audio_attribute_loss_weight: float | None = None
    feature_matching_loss_weight: float | None = None
    adversarial_loss_weight: float | None = None

    # ---- optimisation --------------------------------------------------------------------------------------
    batch_size: int = 20  # per process and per micro-batch; global = batch_size x processes x accumulation
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-4
    discriminator_learning_rate: float | None = None  # None: learning_rate
    adam_betas: list[float] = field(default_factory=lambda: [0.8, 0.99])
    adam_eps: float = 1e-9
    weight_decay: float = 0.01  # torch AdamW's default, which VITS trains with
    lr_decay: float = 0.999875  # multiplicative decay per epoch (VITS)
    lr_decay_every: str = "epoch"  # "epoch": once per epoch as VITS; "step": the same decay spread over the steps
    max_grad_norm: float | None = None  # None: norms are computed and logged but not clipped (as VITS)
    fused_optimizer: bool = True  # fused AdamW: also lets a non-finite step be skipped without a host sync
    max_consecutive_nonfinite: int = 50  # stop the run after this many skipped steps in a row

    # ---- devices and precision -----------------------------------------------------------------------------
    mixed_precision: str = "auto"  # auto: bf16 on GPUs that support it, else fp32; or no / fp16 / bf16
    cpu: bool = False  # force the CPU even when a GPU is present
    num_threads: int | None = None  # torch intra-op threads (CPU runs)
    allow_tf32: bool = True
    cudnn_benchmark: bool = False  # input lengths vary per batch, so autotuning mostly re-tunes
    find_unused_parameters: bool = False

    # ---- data ----------------------------------------------------------------------------------------------
    train_split: str = "train"
    eval_split: str = "validation"  # losses on held-out utterances of training identities
    # identities no training stage sees: the face head's accuracy on them (val/heldout_face_*_accuracy) is the figure
    # for model selection; None, or a dataset without the split, skips it
    heldout_split: str | None = "validation_unseen"
    num_workers: int = 4
    prefetch_factor: int = 2
    bucket_batches: int = 32  # length buckets are formed within random chunks of this many batches
    min_audio_seconds: float = 0.5
    max_audio_seconds: float = 10.0
    max_train_items: int | None = None  # use only the first N training items (debugging)

    # ---- logging -------------------------------------------------------------------------------------------
    log_with: list[str] = field(default_factory=lambda: ["tensorboard"])
    project_name: str = "ftv"
    log_every: int = 50
    eval_every: int = 2000
    eval_batches: int = 20
    media_every: int = 2000  # mel images + synthesized audio of fixed validation faces
    num_log_samples: int = 4
    save_sample_files: bool = True  # also write the synthesized samples as WAV/PNG under OUTPUT/samples
    progress_bar: bool = True

    # ---- checkpoints ---------------------------------------------------------------------------------------
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3
    export_every: int | None = None  # also refresh OUTPUT/final every N steps
    stop_check_every: int = 10  # multi-process runs agree on a stop signal every N steps

    # ------------------------------------------------------------------------------------------------------
    def validate(self) -> TrainConfig:
        """Raise ConfigError for values the loop cannot run with."""
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise ConfigError(
                f"mixed_precision must be one of {MIXED_PRECISION_CHOICES}, got {self.mixed_precision!r}."
            )
        if self.lr_decay_every not in LR_DECAY_CHOICES:
            raise ConfigError(f"lr_decay_every must be one of {LR_DECAY_CHOICES}, got {self.lr_decay_every!r}.")
        if self.face_encoder_type not in FACE_ENCODER_CHOICES:
            raise ConfigError(
                f"face_encoder_type must be one of {FACE_ENCODER_CHOICES}, got {self.face_encoder_type!r}."
            )
        unknown = [name for name in self.attributes if name not in ATTRIBUTE_CHOICES]
        if unknown:
            raise ConfigError(f"attributes may only name {ATTRIBUTE_CHOICES}, got {unknown}.")
        for name in (
            "max_steps",
            "batch_size",
            "gradient_accumulation_steps",
            "log_every",
            "eval_every",
            "media_every",
            "checkpoint_every",
            "keep_checkpoints",
            "stop_check_every",
            "bucket_batches",
            "max_consecutive_nonfinite",
        ):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers must be 0 or more, got {self.num_workers}.")
        if len(self.adam_betas) != 2:
            raise ConfigError(f"adam_betas needs two values, got {self.adam_betas}.")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"lr_decay must be in (0, 1], got {self.lr_decay}.")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ConfigError(f"max_grad_norm must be positive or none, got {self.max_grad_norm}.")
        if self.min_audio_seconds >= self.max_audio_seconds:
            raise ConfigError("min_audio_seconds must be below max_audio_seconds.")
        conflicting = {
            key: value
            for key, value in self.model.items()
            if (key == "face_encoder_type" and value != self.face_encoder_type)
            or (key == "use_face_attribute_head" and bool(value) != self.face_attribute_loss)
            or (key == "use_audio_attribute_head" and bool(value) != self.audio_attribute_loss)
        }
        if conflicting:
            raise ConfigError(
                f"model.{next(iter(conflicting))} conflicts with the top-level ablation switch: set "
                "face_encoder_type / face_attribute_loss / audio_attribute_loss instead."
            )
        if not self.export_only and self.data is None:
            raise ConfigError("No dataset given: pass --data DIR (a folder written by train/prepare_data.py).")
        return self

    def loss_weight_overrides(self) -> dict[str, float]:
        """Loss weights set in this config (they replace the model config's values)."""
        return {name: float(getattr(self, name)) for name in LOSS_WEIGHT_FIELDS if getattr(self, name) is not None}

    def model_config_kwargs(self) -> dict[str, Any]:
        """FTVConfig keyword arguments for a model trained from scratch: `model` + ablations + loss weights."""
        kwargs = dict(self.model)
        kwargs["face_encoder_type"] = self.face_encoder_type
        kwargs["use_face_attribute_head"] = self.face_attribute_loss
        kwargs["use_audio_attribute_head"] = self.audio_attribute_loss
        kwargs.update(self.loss_weight_overrides())
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown training settings {unknown}. Known settings: {sorted(known)}.")
        hints = _field_types()
        return cls(**{name: _coerce(name, value, hints[name]) for name, value in values.items()})

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Config file {path} not found.")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path} must hold a mapping of settings, got {type(values).__name__}.")
        return cls.from_dict(values)


# ---------------------------------------------------------------------------------------------------------------------
# Value parsing
# ---------------------------------------------------------------------------------------------------------------------

_NONE_WORDS = ("none", "null", "~", "")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


@typing.no_type_check
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """`X | None` -> (X, True); anything else -> (annotation, False)."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if (origin is typing.Union or origin is types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True  # every optional field has a single underlying type
    return annotation, False


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Turn a YAML value or a command-line string into the field's type, or raise ConfigError."""
    base, optional = _unwrap_optional(annotation)
    if isinstance(value, str) and value.strip().lower() in _NONE_WORDS and optional:
        return None
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name} cannot be empty.")
    origin = typing.get_origin(base)
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE_WORDS:
                return True
            if text in _FALSE_WORDS:
                return False
            raise ValueError(value)
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) else int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if base is str:
            return str(value)
        if origin is list:
            (item_type,) = typing.get_args(base)
            if isinstance(value, str):
                text = value.strip()
                parsed = yaml.safe_load(text) if text.startswith("[") else [v for v in text.split(",") if v.strip()]
                value = parsed
            if not isinstance(value, (list, tuple)):
                value = [value]
            return [_coerce(name, item.strip() if isinstance(item, str) else item, item_type) for item in value]
        if origin is dict:
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{name}: cannot read {value!r} as {_type_name(annotation)}.") from error
    return value


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _model_value(key: str, text: str) -> Any:
    """A `--set model.KEY=VALUE` value, typed after FTVConfig's default for KEY (YAML for lists and the rest)."""
    from ftv_model import FTVConfig

    parameters = inspect.signature(FTVConfig.__init__).parameters
    if key not in parameters or key == "kwargs":
        raise ConfigError(f"model.{key} is not an FTVConfig setting.")
    default = parameters[key].default
    if text.strip().lower() in _NONE_WORDS:
        return None
    if isinstance(default, bool):
        return _coerce(f"model.{key}", text, bool)
    if isinstance(default, float):
        return _coerce(f"model.{key}", text, float)
    if isinstance(default, int):
        return _coerce(f"model.{key}", text, int)
    return yaml.safe_load(text)


# ---------------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """`--config`, `--set` and one option per TrainConfig field (values parsed by the field's type later)."""
    parser = argparse.ArgumentParser(
        description="Train the face-to-voice model (GAN training as VITS). Values: YAML config, then overrides.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--config", help="YAML file of TrainConfig settings (train/configs/paper.yaml)")
    parser.add_argument(
        "--set",
        action="append",
        dest="model_overrides",
        metavar="model.KEY=VALUE",
        help="override an FTVConfig value, e.g. --set model.discriminator_width=0.5 (repeatable)",
    )
    hints = _field_types()
    for item in dataclasses.fields(TrainConfig):
        base, _ = _unwrap_optional(hints[item.name])
        names = [f"--{item.name}"]
        if "_" in item.name:
            names.append(f"--{item.name.replace('_', '-')}")
        if base is bool:
            parser.add_argument(*names, dest=item.name, nargs="?", const="true", metavar="true|false")
            negated = dict.fromkeys(f"--no{sep}{name[2:]}" for name in names for sep in ("-", "_"))
            parser.add_argument(*negated, dest=item.name, action="store_const", const="false")
        elif item.name == "model":
            continue  # through --set
        else:
            metavar = "A,B,..." if typing.get_origin(base) is list else _type_name(base).upper()
            parser.add_argument(*names, dest=item.name, metavar=metavar)
    return parser


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """TrainConfig from `--config` YAML (or defaults) with command-line overrides applied, validated."""
    args = vars(build_parser().parse_args(argv))
    config_path = args.pop("config", None)
    model_overrides = args.pop("model_overrides", None) or []
    values: dict[str, Any] = {}
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"Config file {path} not found.")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of settings.")
        values.update(loaded)
    values.update(args)
    model = dict(values.get("model") or {})
    for override in model_overrides:
        key, sep, text = override.partition("=")
        key = key.strip()
        if not sep or not key.startswith("model."):
            raise ConfigError(f"--set expects model.KEY=VALUE, got {override!r}.")
        model[key[len("model.") :]] = _model_value(key[len("model.") :], text)
    values["model"] = model
    return TrainConfig.from_dict(values).validate()
