"""Training configuration: one dataclass, filled from a YAML file and then from command-line overrides.

Every value the training loop reads lives here, so a run is fully described by its YAML file plus the overrides
printed at start-up (and stored in each checkpoint). Model architecture values go into the `model` mapping
(`FTVConfig` keyword arguments); the paper's ablation switches are top-level fields because they also apply when
warm-starting from an existing checkpoint (`init`). The loss weights and the discriminator's settings are training
settings and live only here (the model config no longer has them).

Command line (`transformers.HfArgumentParser` over `TrainConfig`): `--config FILE`, then any field as
`--name VALUE` (`--batch_size 8`, `--attributes gender race` or `gender,race`, `--max_grad_norm none`), booleans
also as `--name` / `--no-name` (`--no-multiview`), and model fields as `--set model.hidden_size=64` (repeatable).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser
from transformers.hf_argparser import HfArg

from ftv_model.configuration_ftv import TRAINING_SETTINGS

MIXED_PRECISION_CHOICES = ("auto", "no", "fp16", "bf16")
LR_DECAY_CHOICES = ("epoch", "step")
ATTRIBUTE_CHOICES = ("gender", "race")
# Settings that were the model config's before they moved here (`ftv_model.configuration_ftv.TRAINING_SETTINGS`): an
# older YAML's `model:` mapping and `--set model.KEY=VALUE` still set them, into the top-level field of that name.
FORMER_MODEL_SETTINGS = TRAINING_SETTINGS


class ConfigError(ValueError):
    """A training configuration value that is missing, unknown or out of range; the message says which."""


@dataclass
class TrainConfig:
    """All settings of a training run. Defaults are the paper's (VITS optimiser, batch 20, 350k steps)."""

    # ---- run -----------------------------------------------------------------------------------------------
    data: str | None = HfArg(default=None, help="prepared dataset directory (train/prepare_data.py)")
    output: str = HfArg(default="runs/ftv", help="run directory: checkpoints/, logs/, samples/, final/")
    seed: int = 1234
    max_steps: int = HfArg(default=350_000, help="optimizer steps (one generator + one discriminator update each)")
    resume: str | None = HfArg(default=None, help='"latest" or a checkpoint directory')
    init: str | None = HfArg(default=None, help="warm start: save_pretrained dir or Hub id with FTVModel weights")
    init_discriminator: bool = HfArg(default=True, help="also load INIT/discriminator when it exists")
    export_only: bool = HfArg(default=False, help="write OUTPUT/final from the resumed checkpoint, then stop")
    push_to_hub: str | None = HfArg(default=None, help="publish OUTPUT/final to this Hub repo at the end")
    hub_private: bool = False

    # ---- model ---------------------------------------------------------------------------------------------
    # FTVConfig keyword overrides (fresh models; a warm start may only change training-only ones): the YAML's
    # `model:` mapping and `--set model.KEY=VALUE`
    model: dict[str, Any] = field(default_factory=dict)
    freeze: list[str] = HfArg(default_factory=list, help="generator parameter-name prefixes to keep fixed")
    keep_trainable: list[str] = HfArg(
        default_factory=list, help='parameter-name substrings exempt from freeze (e.g. ".cond")'
    )
    adversarial: bool = HfArg(
        default=True, help="False: no discriminator forward or update (mel/KL/duration/attribute losses only)"
    )

    # ---- ablations (paper Tables 4 and 5) ------------------------------------------------------------------
    face_attribute_loss: bool = HfArg(default=True, help="False: no face attribute head / loss")
    audio_attribute_loss: bool = HfArg(default=True, help="False: no audio attribute head / loss")
    face_encoder_type: str = HfArg(default="nest", help='"vit": the "without FGA" ablation')
    multiview: bool = HfArg(default=True, help='False: always the first face view (the "without AUG" ablation)')
    attributes: list[str] = HfArg(
        default_factory=lambda: list(ATTRIBUTE_CHOICES), help="supervised attributes (gender, race)"
    )

    # ---- loss weights (VITS's and the paper's; `ftv_model.losses.PAPER_LOSS_WEIGHTS`) ----------------------
    mel_loss_weight: float = 45.0
    kl_loss_weight: float = 1.0
    duration_loss_weight: float = 1.0
    attribute_loss_weight: float = 1.0
    audio_attribute_loss_weight: float = HfArg(default=0.3, help="L_attr = L_face + this x L_audio")
    feature_matching_loss_weight: float = 1.0
    adversarial_loss_weight: float = 1.0
    frame_comb_loss_weight: float = HfArg(
        default=0.0,
        help="penalise the part of the generated segment that repeats every hop_length samples, the decoder's buzz "
        "(0: VITS, the paper; ftv_model.losses.frame_comb_loss)",
    )

    # ---- discriminator (a fresh one; one loaded from INIT/discriminator or a checkpoint keeps its own) --------
    discriminator_periods: list[int] = HfArg(
        default_factory=lambda: [2, 3, 5, 7, 11], help="one period discriminator per period"
    )
    discriminator_use_scale: bool = HfArg(default=True, help="the scale discriminator on the raw waveform")
    discriminator_width: float = HfArg(
        default=1.0, help="channel multiplier (1.0: the paper's 46.8M parameters; smaller for CPU runs)"
    )

    # ---- optimisation --------------------------------------------------------------------------------------
    batch_size: int = HfArg(
        default=20, help="per process and per micro-batch; global = batch_size x processes x accumulation"
    )
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-4
    discriminator_learning_rate: float | None = HfArg(default=None, help="None: learning_rate")
    adam_betas: list[float] = field(default_factory=lambda: [0.8, 0.99])
    adam_eps: float = 1e-9
    weight_decay: float = HfArg(default=0.01, help="torch AdamW's default, which VITS trains with")
    lr_decay: float = HfArg(default=0.999875, help="multiplicative decay per epoch (VITS)")
    lr_decay_every: str = HfArg(
        default="epoch", help='"epoch": once per epoch as VITS; "step": the same decay spread over the steps'
    )
    max_grad_norm: float | None = HfArg(
        default=None, help="None: norms are computed and logged but not clipped (as VITS)"
    )
    fused_optimizer: bool = HfArg(
        default=True, help="fused AdamW: also lets a non-finite step be skipped without a host sync"
    )
    max_consecutive_nonfinite: int = HfArg(default=50, help="stop the run after this many skipped steps in a row")

    # ---- devices and precision -----------------------------------------------------------------------------
    mixed_precision: str = HfArg(
        default="auto", help="auto: bf16 on GPUs that support it (and CPUs that run it natively), else fp32"
    )
    cpu: bool = HfArg(default=False, help="force the CPU even when a GPU is present")
    num_threads: int | None = HfArg(default=None, help="torch intra-op threads (CPU runs)")
    allow_tf32: bool = True
    cudnn_benchmark: bool = HfArg(default=False, help="input lengths vary per batch, so autotuning mostly re-tunes")
    find_unused_parameters: bool = False

    # ---- data ----------------------------------------------------------------------------------------------
    train_split: str = "train"
    eval_split: str = HfArg(default="validation", help="losses on held-out utterances of training identities")
    heldout_split: str | None = HfArg(
        default="validation_unseen",
        help="identities no training stage sees: the face head's accuracy on them (val/heldout_face_*_accuracy) "
        "is the figure for model selection; none, or a dataset without the split, skips it",
    )
    num_workers: int = 4
    prefetch_factor: int = 2
    bucket_batches: int = HfArg(default=32, help="length buckets are formed within random chunks of this many batches")
    min_audio_seconds: float = 0.5
    max_audio_seconds: float = 10.0
    max_train_items: int | None = HfArg(default=None, help="use only the first N training items (debugging)")

    # ---- logging -------------------------------------------------------------------------------------------
    log_with: list[str] = field(default_factory=lambda: ["tensorboard"])
    project_name: str = "ftv"
    log_every: int = 50
    eval_every: int = 2000
    eval_batches: int = 20
    media_every: int = HfArg(default=2000, help="mel images + synthesized audio of fixed validation faces")
    num_log_samples: int = 4
    save_sample_files: bool = HfArg(
        default=True, help="also write the synthesized samples as WAV/PNG under OUTPUT/samples"
    )
    progress_bar: bool = True

    # ---- checkpoints ---------------------------------------------------------------------------------------
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3
    export_every: int | None = HfArg(default=None, help="also refresh OUTPUT/final every N steps")
    stop_check_every: int = HfArg(default=10, help="multi-process runs agree on a stop signal every N steps")

    # ------------------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        """Type every value (YAML and the command line give text, `none`, `a,b` lists) and move the former model
        settings of `model` to their fields."""
        if not isinstance(self.model, dict):
            raise ConfigError(f"model must be a mapping of FTVConfig settings, got {self.model!r}.")
        self.model = dict(self.model)
        for name in FORMER_MODEL_SETTINGS:
            if name in self.model:
                setattr(self, name, self.model.pop(name))
        hints = _field_types()
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is None and item.name in FORMER_MODEL_SETTINGS:  # older YAML: null = the model's, the default
                value = item.default if item.default_factory is dataclasses.MISSING else item.default_factory()
            setattr(self, item.name, _coerce(item.name, value, hints[item.name]))

    def validate(self) -> TrainConfig:
        """Raise ConfigError for values the loop cannot run with."""
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise ConfigError(
                f"mixed_precision must be one of {MIXED_PRECISION_CHOICES}, got {self.mixed_precision!r}."
            )
        if self.lr_decay_every not in LR_DECAY_CHOICES:
            raise ConfigError(f"lr_decay_every must be one of {LR_DECAY_CHOICES}, got {self.lr_decay_every!r}.")
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

    def model_config_kwargs(self) -> dict[str, Any]:
        """FTVConfig keyword arguments for a model trained from scratch: `model` + the ablation switches."""
        kwargs = dict(self.model)
        kwargs["face_encoder_type"] = self.face_encoder_type
        kwargs["use_face_attribute_head"] = self.face_attribute_loss
        kwargs["use_audio_attribute_head"] = self.audio_attribute_loss
        return kwargs

    def loss_weights(self) -> Any:
        """The weights of the generator's loss terms, as `ftv_model.losses.LossWeights`."""
        from ftv_model.losses import LossWeights

        return LossWeights(**{item.name: getattr(self, item.name) for item in dataclasses.fields(LossWeights)})

    def discriminator_settings(self) -> dict[str, Any]:
        """`FTVDiscriminatorConfig` keyword arguments for a fresh discriminator."""
        return {
            "discriminator_periods": list(self.discriminator_periods),
            "discriminator_use_scale": self.discriminator_use_scale,
            "discriminator_width": self.discriminator_width,
        }

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
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(read_yaml_settings(path))


# ---------------------------------------------------------------------------------------------------------------------
# Value parsing
# ---------------------------------------------------------------------------------------------------------------------

_NONE_WORDS = ("none", "null", "~", "")
_TRUE_WORDS = ("true", "yes", "on", "1", "t", "y")
_FALSE_WORDS = ("false", "no", "off", "0", "f", "n")


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


def _list_items(value: Any) -> list[Any]:
    """A list value's items: a YAML list, command-line words, each word `a,b` or `[a, b]` (YAML)."""
    words = value if isinstance(value, (list, tuple)) else [value]
    items: list[Any] = []
    for word in words:
        if not isinstance(word, str):
            items.append(word)
            continue
        text = word.strip()
        parsed = yaml.safe_load(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
        items.extend(parsed if isinstance(parsed, list) else [parsed])
    return items


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
            return [_coerce(name, item, item_type) for item in _list_items(value)]
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
    """A `--set model.KEY=VALUE` value, typed after FTVConfig's default for KEY (YAML for lists and the rest); the
    text as it is for a former model setting (its TrainConfig field types it)."""
    if key in FORMER_MODEL_SETTINGS:
        return text
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


def read_yaml_settings(path: str | Path) -> dict[str, Any]:
    """A YAML file's settings, checked against TrainConfig's fields; an older file's `model:` entries that are
    training settings now (loss weights, discriminator) become top-level settings."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} not found.")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, got {type(values).__name__}.")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"Unknown training settings {unknown} in {path}. Known settings: {sorted(known)}.")
    model = values.get("model")
    if isinstance(model, dict):
        model = dict(model)
        for name in FORMER_MODEL_SETTINGS:
            if name in model:
                moved = model.pop(name)
                if values.get(name) is not None and values[name] != moved:
                    raise ConfigError(f"{path} sets {name} twice (top level and in model:); keep the top-level one.")
                values[name] = moved
        values["model"] = model
    return values


# ---------------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------------


def _negations(name: str) -> list[str]:
    """Every spelling of a boolean's `--no` option: --no_NAME, --no-NAME, and both again with dashes in NAME."""
    spellings = [f"--no{sep}{spelled}" for spelled in (name, name.replace("_", "-")) for sep in ("_", "-")]
    return list(dict.fromkeys(spellings))


class TrainConfigParser(HfArgumentParser):
    """`HfArgumentParser` over TrainConfig that keeps the command line's spellings from before it: values are read
    as text and typed by TrainConfig (so `none`, `a,b` lists and `on`/`off` read as in the YAML file), every
    boolean takes all four `--no` spellings (`--no-progress_bar`, `--no-audio-attribute-loss`, ...), also those
    that default to false, and `model` comes from the YAML file and `--set`, not from an option of its own."""

    def __init__(self, **kwargs: Any) -> None:
        hints = _field_types()
        self.field_names = {item.name for item in dataclasses.fields(TrainConfig)}
        self.bool_fields = [name for name in self.field_names if _unwrap_optional(hints[name])[0] is bool]
        self.negated: set[str] = set()
        super().__init__(TrainConfig, **kwargs)
        for name in sorted(set(self.bool_fields) - self.negated):  # HfArgumentParser negates defaults of True only
            self.add_argument(*_negations(name), action="store_false", dest=name, default=argparse.SUPPRESS)

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action | None:
        dest = kwargs.get("dest") or (names[0][2:] if names and names[0].startswith("--") else None)
        if dest not in getattr(self, "field_names", ()):
            return super().add_argument(*names, **kwargs)
        if dest == "model":
            return None
        if kwargs.get("action") == "store_false":
            self.negated.add(dest)
            kwargs.setdefault("help", f"set {dest} to false")
            return super().add_argument(*_negations(dest), **kwargs)
        kwargs["type"] = str  # TrainConfig types the text (none, a,b, on/off), as it does a YAML value
        return super().add_argument(*names, **kwargs)


def build_parser() -> TrainConfigParser:
    """`--config`, `--set` and one option per TrainConfig field."""
    parser = TrainConfigParser(
        prog="ftv-train",
        description="Train the face-to-voice model (GAN training as VITS). Values: YAML config, then overrides.",
    )
    parser.add_argument("--config", help="YAML file of TrainConfig settings (train/configs/paper.yaml)")
    parser.add_argument(
        "--set",
        action="append",
        dest="model_overrides",
        default=[],
        metavar="model.KEY=VALUE",
        help="override an FTVConfig value, e.g. --set model.segment_size=4096 (repeatable)",
    )
    return parser


def _config_file(argv: Sequence[str] | None) -> str | None:
    finder = argparse.ArgumentParser(add_help=False)
    finder.add_argument("--config")
    known, _ = finder.parse_known_args(argv)
    return known.config


def parse_config(argv: Sequence[str] | None = None) -> TrainConfig:
    """TrainConfig from `--config` YAML (or defaults) with command-line overrides applied, validated."""
    parser = build_parser()
    config_file = _config_file(argv)
    if config_file is not None:
        parser.set_defaults(**read_yaml_settings(config_file))  # the YAML's values are the defaults to override
    values = vars(parser.parse_args(argv))
    values.pop("config", None)
    model = dict(values.get("model") or {})
    for override in values.pop("model_overrides", None) or []:
        key, sep, text = override.partition("=")
        key = key.strip()
        if not sep or not key.startswith("model."):
            raise ConfigError(f"--set expects model.KEY=VALUE, got {override!r}.")
        model[key[len("model.") :]] = _model_value(key[len("model.") :], text)
    values["model"] = model  # former model settings in it are moved to their fields by TrainConfig
    return TrainConfig.from_dict(values).validate()
