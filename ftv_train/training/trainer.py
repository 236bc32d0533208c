"""The training loop: VITS-style GAN training of FTVModel with Accelerate.

One optimizer step = a discriminator update on (real, generated.detach()) then a generator update through the
freshly updated discriminator (as VITS). Accelerate handles devices, DDP (generator and discriminator are prepared
as separate modules, so each has its own DDP wrapper), mixed precision, gradient accumulation, trackers and
checkpoint state.

Choices made for speed and robustness:

- No host-device synchronisation per step from the loop itself: losses and gradient norms are accumulated on the
  device and read at logging intervals; a step whose gradient norm is not finite is skipped inside the fused AdamW
  kernel (its `found_inf` input, the mechanism GradScaler uses), so skipping needs no `.item()` either. The norm is
  taken after DDP's all-reduce, so every process makes the same decision.
- During the generator update the discriminator's parameters stop requiring gradients and the *unwrapped*
  discriminator is called: no wasted weight gradients, no DDP hooks, and no generator-loss gradients leaking into
  the discriminator's accumulated gradients under gradient accumulation.
- Validation losses and media run under a forked RNG, so logging never changes the training random stream, and a
  resumed run reproduces an uninterrupted one.
- Checkpoints are written to a temporary directory and renamed into place; `--resume latest` only considers
  renamed (complete) ones, so a kill during a save never leaves a checkpoint that looks usable but is not.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import (
    DataLoaderConfiguration,
    DistributedDataParallelKwargs,
    ProjectConfiguration,
    send_to_device,
    set_seed,
)
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from ftv_model import FTVConfig, FTVDiscriminator, FTVModel, FTVProcessor
from ftv_model.image_processing_ftv import FTVImageProcessor
from ftv_model.losses import discriminator_loss, feature_matching_loss, generator_adversarial_loss
from ftv_model.modeling_ftv import cpu_has_native_bfloat16
from ftv_train.data.collate import (
    FaceSpeechItems,
    FixedBatchSampler,
    FTVCollator,
    LengthBucketBatchSampler,
    build_dataloader,
    fixed_samples,
    select_items,
)
from ftv_train.data.dataset_format import PreparedDatasetError, load_prepared_dataset
from ftv_train.data.splits import TRAINING_SPLITS
from ftv_train.training.config import LOSS_WEIGHT_FIELDS, ConfigError, TrainConfig, parse_config
from ftv_train.training.model_card import push_to_hub, write_model_card

logger = logging.getLogger("ftv_train")

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PATTERN = re.compile(r"^step-(\d{8})$")
TEMP_PREFIX = ".tmp-"
STATE_FILE = "training_state.json"
MODEL_CONFIG_FILE = "model_config.json"
PROCESSOR_DIR = "processor"
FINAL_DIR = "final"
DISCRIMINATOR_DIR = "discriminator"
# Names of the per-step values, in the order of the device tensor the loop accumulates.
TRAIN_VALUES = (
    "loss/generator",
    "loss/discriminator",
    "loss/mel",
    "loss/kl",
    "loss/duration",
    "loss/face_attribute",
    "loss/audio_attribute",
    "loss/adversarial",
    "loss/feature_matching",
    "discriminator/real_score",
    "discriminator/fake_score",
)
NORM_VALUES = ("grad_norm/generator", "grad_norm/discriminator")
EVAL_VALUES = ("mel", "kl", "duration", "face_attribute", "audio_attribute")


# Model settings a warm start may change: they shape training (decoder segments, the discriminator), not the
# generator's weights.
TRAINING_ONLY_MODEL_KEYS = (
    "segment_size",
    "decoder_latents",
    "decoder_prior_noise_scale",
    "discriminator_width",
    "discriminator_periods",
)
# Settings a warm start may add to its checkpoint's architecture: new branches that start at zero (the init's voice
# is unchanged until training moves them).
ADDABLE_MODEL_KEYS = ("face_descriptor",)


class TrainingDivergedError(RuntimeError):
    """Too many consecutive steps had non-finite losses or gradients."""


class TrainingInterrupted(Exception):
    """Raised by `train()` after a SIGTERM/SIGINT stopped the run and a checkpoint was written."""

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum
        self.checkpoint = checkpoint


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_tree(path: Path) -> None:
    """Delete a directory by first renaming it to a temporary name, so a kill mid-delete leaves no half checkpoint."""
    if not path.exists():
        return
    trash = path.with_name(f"{TEMP_PREFIX}delete-{path.name}-{os.getpid()}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


class CheckpointManager:
    """Complete checkpoints are `ROOT/step-XXXXXXXX/` with a `training_state.json`; anything else is ignored."""

    def __init__(self, root: str | Path, keep: int) -> None:
        self.root = Path(root)
        self.keep = keep

    def completed(self) -> list[tuple[int, Path]]:
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            match = CHECKPOINT_PATTERN.match(path.name)
            if match and path.is_dir() and (path / STATE_FILE).is_file():
                found.append((int(match.group(1)), path))
        return sorted(found)

    def latest(self) -> Path | None:
        found = self.completed()
        return found[-1][1] if found else None

    def resolve(self, spec: str | None) -> Path | None:
        """`latest` -> newest complete checkpoint (None when there is none yet); a path -> that checkpoint."""
        if spec is None:
            return None
        if spec == "latest":
            return self.latest()
        path = Path(spec)
        if not (path / STATE_FILE).is_file():
            raise ConfigError(
                f"{path} is not a complete checkpoint (no {STATE_FILE}). Pass --resume latest or a "
                f"{self.root}/step-XXXXXXXX directory."
            )
        return path

    def clean_partial(self) -> list[Path]:
        """Remove temporary directories left by runs killed while saving (main process only)."""
        removed = []
        if self.root.is_dir():
            for path in self.root.iterdir():
                if path.name.startswith(TEMP_PREFIX):
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
        return removed

    def save(self, accelerator: Accelerator, step: int, write_extra: Callable[[Path], None]) -> Path:
        """accelerator.save_state into a temp dir on every process, then (main) extra files and an atomic rename."""
        final = self.root / f"step-{step:08d}"
        temp = self.root / f"{TEMP_PREFIX}step-{step:08d}"
        if accelerator.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(temp, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(temp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            write_extra(temp)  # the state file goes last: its presence marks a complete checkpoint
            if final.exists():
                _remove_tree(final)
            os.replace(temp, final)
            _fsync_dir(self.root)
            for _, old in self.completed()[: -self.keep]:
                _remove_tree(old)
        accelerator.wait_for_everyone()
        return final


# ---------------------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------------------


def resolve_mixed_precision(value: str, use_cpu: bool) -> str:
    """`auto`: the launcher's --mixed_precision when it set one, else bf16 on GPUs that support it and on CPUs that
    run it natively (AVX512-BF16 / AMX: a full CPU GAN step of the paper's configuration at batch 4 took 1.70 s in
    bf16 autocast against 3.09 s in float32, benchmarks/bench_train_step.py), else fp32 (a CPU without native bf16
    emulates it, slower than float32). The losses that need float32 (spectrograms, KL, alignment search) stay in
    float32 either way."""
    if value != "auto":
        return value
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launcher in ("fp16", "bf16"):
        return launcher
    if not use_cpu and torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_native_bfloat16() else "no"


def attribute_hits(logits: dict[str, torch.Tensor], batch: dict[str, Any], attributes: list[str]) -> torch.Tensor:
    """(right, labelled) counts of the face head's readings per attribute, flattened: [right_0, labelled_0, ...]."""
    parts = []
    for name in attributes:
        labels = batch[f"{name}_labels"]
        labelled = labels != -100
        read = logits.get(name)
        correct = (read.argmax(-1) == labels) & labelled if read is not None else labelled & False
        parts.append(torch.stack([correct.sum().float(), labelled.sum().float()]))
    return torch.cat(parts) if parts else torch.zeros(0, device=batch["input_ids"].device)


def lr_schedule(decay: float, steps_per_epoch: int, every: str) -> Callable[[int], float]:
    """LR factor after `step` optimizer steps: decay ** epochs, per whole epoch (VITS) or spread over steps."""
    steps_per_epoch = max(1, steps_per_epoch)

    def factor(step: int) -> float:
        epochs = step / steps_per_epoch
        return decay ** (math.floor(epochs) if every == "epoch" else epochs)

    return factor


def flat_hparams(config: TrainConfig) -> dict[str, Any]:
    """The config as scalar values (what TensorBoard's hparams accept)."""
    flat: dict[str, Any] = {}
    for key, value in config.to_dict().items():
        items = value.items() if isinstance(value, dict) else [("", value)]
        for sub, item in items:
            name = f"{key}.{sub}" if sub else key
            flat[name] = item if isinstance(item, (int, float, str, bool)) else str(item)
    return flat


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    keys = (
        "input_ids",
        "attention_mask",
        "pixel_values",
        "face_descriptors",
        "waveform",
        "waveform_lengths",
        "gender_labels",
        "race_labels",
    )
    return {key: batch[key] for key in keys if key in batch}


def mel_figure(panels: list[tuple[str, np.ndarray]]):
    """A matplotlib figure with one log-mel image per panel (title, (mels, frames))."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 2.4 * len(panels)), squeeze=False)
    for axis, (title, mel) in zip(axes[:, 0], panels):
        image = axis.imshow(mel, aspect="auto", origin="lower", interpolation="none")
        axis.set_title(title, fontsize=9)
        figure.colorbar(image, ax=axis)
    figure.tight_layout()
    return figure


def figure_array(figure) -> np.ndarray:
    figure.canvas.draw()
    array = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    return array


# ---------------------------------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------------------------------


class GANStep:
    """The VITS GAN update of one micro-batch, for modules prepared by Accelerate (shared with the benchmark).

    After each optimizer update `norm_g`/`norm_d` hold the gradient norms (after DDP's all-reduce, so equal on
    every process) and `finite_g`/`finite_d` whether the update was applied; all stay on the device.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        generator: torch.nn.Module,
        discriminator: torch.nn.Module,
        optimizer_g: Any,
        optimizer_d: Any,
        model_config: FTVConfig,
        max_grad_norm: float | None = None,
        sync_free_skip: bool = True,
        adversarial: bool = True,
    ) -> None:
        self.accelerator = accelerator
        self.adversarial = adversarial
        self.generator = generator
        self.disc = discriminator
        self.optimizer_g = optimizer_g
        self.optimizer_d = optimizer_d
        self.model_config = model_config
        self.max_grad_norm = max_grad_norm
        self.sync_free_skip = sync_free_skip
        self.fp16 = accelerator.mixed_precision == "fp16"
        self.generator_parameters = [p for p in generator.parameters() if p.requires_grad]
        self.discriminator_parameters = [p for p in discriminator.parameters() if p.requires_grad]
        device = accelerator.device
        self.norm_g = self.norm_d = torch.zeros((), device=device)
        self.finite_g = self.finite_d = torch.ones((), device=device, dtype=torch.bool)
        self.last_mels: tuple[torch.Tensor, torch.Tensor] | None = None

    def _optimizer_step(self, optimizer: Any, parameters: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Unscale (fp16), norm / clip, step unless the norm is not finite, zero grads. Returns (norm, finite)."""
        self.accelerator.unscale_gradients(optimizer=optimizer)
        grads = [p.grad for p in parameters if p.grad is not None]
        if self.max_grad_norm is None:
            norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=self.accelerator.device)
        else:
            norm = torch.nn.utils.clip_grad_norm_(parameters, self.max_grad_norm)
        finite = torch.isfinite(norm)
        if self.sync_free_skip:
            optimizer.optimizer.found_inf = (~finite).float()  # fused AdamW skips the update on the device
            optimizer.step()
        elif self.fp16 or bool(finite):  # the GradScaler skips overflowed steps itself
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm.detach(), finite

    def __call__(self, batch: dict[str, torch.Tensor], keep_mels: bool = False) -> torch.Tensor:
        """One micro-batch; returns the per-step values (TRAIN_VALUES order) as one device tensor."""
        accelerator = self.accelerator
        out = self.generator(**model_inputs(batch))

        if self.adversarial:
            loss_g, loss_d, loss_adv, loss_fm, real_score, fake_score = self._adversarial(out)
        else:  # mel / KL / duration / attribute losses only: no discriminator forward or update at all
            loss_g = out.loss
            loss_d = loss_adv = loss_fm = real_score = fake_score = torch.zeros((), device=out.loss.device)
        accelerator.backward(loss_g)
        if accelerator.sync_gradients:
            self.norm_g, self.finite_g = self._optimizer_step(self.optimizer_g, self.generator_parameters)
        if keep_mels:
            self.last_mels = (out.predicted_mel[0].detach().float(), out.target_mel[0].detach().float())
        with torch.no_grad():
            return torch.stack(
                [
                    loss_g.detach().float(),
                    loss_d.detach().float(),
                    out.mel_loss.detach().float(),
                    out.kl_loss.detach().float(),
                    out.duration_loss.detach().float(),
                    out.face_attribute_loss.detach().float(),
                    out.audio_attribute_loss.detach().float(),
                    loss_adv.detach().float(),
                    loss_fm.detach().float(),
                    real_score,
                    fake_score,
                ]
            )

    def _adversarial(self, out: Any) -> tuple[torch.Tensor, ...]:
        """Update the discriminator, then the generator's loss with the adversarial and feature-matching terms."""
        accelerator = self.accelerator
        config = self.model_config
        real, fake = out.target_waveform, out.predicted_waveform
        batch_size = real.shape[0]
        # Discriminator: real and generated audio in one forward.
        scores, _ = self.disc(torch.cat([real, fake.detach()], dim=0))
        real_scores = [score[:batch_size] for score in scores]
        fake_scores = [score[batch_size:] for score in scores]
        loss_d = discriminator_loss(real_scores, fake_scores)
        accelerator.backward(loss_d)
        if accelerator.sync_gradients:
            self.norm_d, self.finite_d = self._optimizer_step(self.optimizer_d, self.discriminator_parameters)

        # Generator: through the updated discriminator, whose weights get no gradients here.
        discriminator = accelerator.unwrap_model(self.disc)
        discriminator.requires_grad_(False)
        try:
            with parametrize.cached():  # weight norm computed once for both forwards
                with torch.no_grad():
                    _, real_features = discriminator(real)
                fake_scores_g, fake_features = discriminator(fake)
        finally:
            for parameter in self.discriminator_parameters:
                parameter.requires_grad_(True)
        loss_adv = generator_adversarial_loss(fake_scores_g)
        loss_fm = feature_matching_loss(real_features, fake_features)
        loss_g = out.loss + config.adversarial_loss_weight * loss_adv + config.feature_matching_loss_weight * loss_fm
        with torch.no_grad():
            real_score = torch.stack([s.float().mean() for s in real_scores]).mean()
            fake_score = torch.stack([s.float().mean() for s in fake_scores]).mean()
        return loss_g, loss_d, loss_adv, loss_fm, real_score, fake_score


@dataclass
class LoopState:
    """Where the run is: saved in every checkpoint's training_state.json."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches this process has consumed in the current epoch
    nonfinite_total: int = 0
    elapsed_seconds: float = 0.0


class Trainer:
    """Builds everything from a TrainConfig and runs GAN training; `run()` returns the export directory."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.output = Path(config.output)
        self.checkpoints = CheckpointManager(self.output / CHECKPOINT_DIR, config.keep_checkpoints)
        self.state = LoopState()
        self.metrics: dict[str, float] = {}
        self._stop_signal: int | None = None
        self._export_requested = False
        self._old_handlers: dict[int, Any] = {}
        self._logged_references = False
        self._elapsed_before = 0.0
        self._stop_now = False  # set once every process has agreed to stop
        self._setup()

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        config = self.config
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        if torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = config.allow_tf32
            torch.backends.cudnn.allow_tf32 = config.allow_tf32
            torch.backends.cudnn.benchmark = config.cudnn_benchmark
        self.mixed_precision = resolve_mixed_precision(config.mixed_precision, config.cpu)
        log_with = [name for name in config.log_with if name and name != "none"] or None
        self.accelerator = Accelerator(
            mixed_precision=self.mixed_precision,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            cpu=config.cpu,
            log_with=log_with,
            project_config=ProjectConfiguration(project_dir=str(self.output), logging_dir=str(self.output / "logs")),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.find_unused_parameters)],
            dataloader_config=DataLoaderConfiguration(non_blocking=True),
        )
        accelerator = self.accelerator
        self.is_main = accelerator.is_main_process
        if self.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
            for path in self.checkpoints.clean_partial():
                self.info(f"Removed an incomplete checkpoint left by an interrupted save: {path}")
        set_seed(config.seed, device_specific=True)

        self.resume_from = self.checkpoints.resolve(config.resume)
        if config.resume == "latest" and self.resume_from is None:
            self.info(f"--resume latest: no checkpoint in {self.checkpoints.root} yet, starting from scratch.")
        if config.export_only and self.resume_from is None:
            raise ConfigError("--export_only needs a checkpoint to export: pass --resume latest or a checkpoint dir.")
        self.model, self.discriminator, self.processor = self._build_models()
        # the processor computes what the model reads: the face descriptors where it fuses them
        self.processor.image_processor.face_descriptor = self.model.config.face_descriptor
        self._load_descriptor_cache()
        self._freeze(self.model, config.freeze, config.keep_trainable)

        device = accelerator.device
        self.model.to(device)
        self.discriminator.to(device)
        self.model_config: FTVConfig = self.model.config
        generator_parameters = [p for p in self.model.parameters() if p.requires_grad]
        discriminator_parameters = [p for p in self.discriminator.parameters() if p.requires_grad]
        fused = config.fused_optimizer and device.type in ("cuda", "cpu", "mps")
        self.sync_free_skip = fused and self.mixed_precision != "fp16"
        d_lr = config.discriminator_learning_rate or config.learning_rate
        optimizer_kwargs = dict(betas=tuple(config.adam_betas), eps=config.adam_eps, weight_decay=config.weight_decay)
        if fused:
            optimizer_kwargs["fused"] = True
        self.optimizer_g = torch.optim.AdamW(generator_parameters, lr=config.learning_rate, **optimizer_kwargs)
        self.optimizer_d = torch.optim.AdamW(discriminator_parameters, lr=d_lr, **optimizer_kwargs)

        if not config.export_only:
            self._build_data()
        else:
            self.train_loader = self.eval_loader = None
            self.steps_per_epoch = 1
        schedule = lr_schedule(config.lr_decay, self.steps_per_epoch, config.lr_decay_every)
        self.scheduler_g = torch.optim.lr_scheduler.LambdaLR(self.optimizer_g, schedule)
        self.scheduler_d = torch.optim.lr_scheduler.LambdaLR(self.optimizer_d, schedule)

        prepared = accelerator.prepare(self.model, self.discriminator, self.optimizer_g, self.optimizer_d)
        self.generator, self.disc, self.optimizer_g, self.optimizer_d = prepared
        self.step_fn = GANStep(
            accelerator,
            self.generator,
            self.disc,
            self.optimizer_g,
            self.optimizer_d,
            self.model_config,
            max_grad_norm=config.max_grad_norm,
            sync_free_skip=self.sync_free_skip,
            adversarial=config.adversarial,
        )
        if self.train_loader is not None:
            self.train_loader = accelerator.prepare(self.train_loader)  # the eval loader shards itself
        # Not prepared: Accelerate would step them once per process; these are functions of the optimizer step.
        accelerator.register_for_checkpointing(self.scheduler_g, self.scheduler_d)

        if self.resume_from is not None:
            self._load_checkpoint(self.resume_from)
        if log_with and not config.export_only:
            accelerator.init_trackers(config.project_name, config=flat_hparams(config))

    def _build_models(self) -> tuple[FTVModel, FTVDiscriminator, FTVProcessor]:
        config = self.config
        if self.resume_from is not None:
            # The checkpoint fixes the architecture; weights come from accelerator.load_state.
            model_config = FTVConfig.from_json_file(str(self.resume_from / MODEL_CONFIG_FILE))
            self._apply_training_overrides(model_config)
            model = FTVModel(model_config)
            discriminator = FTVDiscriminator(model_config)
            processor = FTVProcessor.from_pretrained(str(self.resume_from / PROCESSOR_DIR))
            return model, discriminator, processor
        if config.init:
            self.info(f"Warm start from {config.init}")
            model = FTVModel.from_pretrained(config.init)
            if model.config.inference_only:
                raise ConfigError(
                    f"--init {config.init} is an inference-only export (float16, no posterior encoder): it cannot be "
                    "trained. Warm-start from the full export of the run that made it (OUTPUT/final) or from a "
                    "converted voice (python -m ftv_model.convert_piper --out DIR)."
                )
            self._check_init_compatible(model.config)
            self._apply_training_overrides(model.config)
            if self.config.model.get("face_descriptor") and model.face_descriptor_fusion is None:
                model.add_face_descriptor_fusion(self.config.model["face_descriptor"])
                self.info(f"Added the {model.config.face_descriptor} face descriptor branch (starts at zero)")
            if not config.face_attribute_loss and model.face_attribute_head is not None:
                model.face_attribute_head = None  # switched off: no loss, no DDP-unused parameters
            if not config.audio_attribute_loss and model.audio_attribute_head is not None:
                model.audio_attribute_head = None
            model.config.use_face_attribute_head = model.face_attribute_head is not None
            model.config.use_audio_attribute_head = model.audio_attribute_head is not None
            discriminator = self._init_discriminator(model.config)
            try:
                processor = FTVProcessor.from_pretrained(config.init)
            except Exception as error:  # noqa: BLE001 - any unreadable processor falls back to the default
                self.info(f"No processor in {config.init} ({type(error).__name__}); using the default one.")
                processor = self._default_processor(model.config)
            return model, discriminator, processor
        model_config = FTVConfig(**config.model_config_kwargs())
        return FTVModel(model_config), FTVDiscriminator(model_config), self._default_processor(model_config)

    def _init_discriminator(self, model_config: FTVConfig) -> FTVDiscriminator:
        config = self.config
        if config.init_discriminator:
            try:
                discriminator = FTVDiscriminator.from_pretrained(config.init, subfolder=DISCRIMINATOR_DIR)
                self.info(f"Loaded the discriminator from {config.init}/{DISCRIMINATOR_DIR}")
                return discriminator
            except Exception as error:  # noqa: BLE001 - absent or unreadable: train a fresh one
                self.info(f"No discriminator in {config.init} ({type(error).__name__}); training a fresh one.")
        return FTVDiscriminator(model_config)

    def _default_processor(self, model_config: FTVConfig) -> FTVProcessor:
        return FTVProcessor(
            image_processor=FTVImageProcessor(
                size=model_config.image_size, face_descriptor=model_config.face_descriptor
            ),
            max_input_length=model_config.max_input_length,
        )

    def _check_init_compatible(self, loaded: FTVConfig) -> None:
        config = self.config
        if loaded.face_encoder_type != config.face_encoder_type:
            raise ConfigError(
                f"--init {config.init} has face_encoder_type={loaded.face_encoder_type!r} but this run asks for "
                f"{config.face_encoder_type!r}; the architecture of a warm start is fixed by its checkpoint."
            )
        different = {key: value for key, value in config.model.items() if getattr(loaded, key, value) != value}
        addable = {key for key in ADDABLE_MODEL_KEYS if getattr(loaded, key, None) is None}
        architecture = {
            key: value for key, value in different.items() if key not in (*TRAINING_ONLY_MODEL_KEYS, *addable)
        }
        if architecture:
            raise ConfigError(
                f"model settings {architecture} differ from the --init checkpoint's; drop them (a warm start keeps "
                "the checkpoint's architecture) or train from scratch."
            )

    def _apply_training_overrides(self, model_config: FTVConfig) -> None:
        for name, value in self.config.loss_weight_overrides().items():
            setattr(model_config, name, value)
        for key in TRAINING_ONLY_MODEL_KEYS:
            if key in self.config.model:
                setattr(model_config, key, self.config.model[key])

    @staticmethod
    def _freeze(model: torch.nn.Module, prefixes: list[str], keep: list[str] | None = None) -> None:
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

    def _load_descriptor_cache(self) -> None:
        """Precomputed face descriptors of the dataset's views (the offline corpus writes them), so the collator
        looks them up instead of running dlib's network on every face of every step."""
        if not self.model.config.face_descriptor:
            return
        from ftv_model.face_descriptor import DESCRIPTOR_CACHE_NAME, shared_face_descriptor

        cache = Path(self.config.data) / DESCRIPTOR_CACHE_NAME
        if cache.is_file():
            count = shared_face_descriptor(self.processor.image_processor.face_margin).load_cache(cache)
            self.info(f"Loaded {count} precomputed face descriptors from {cache}")
        else:
            self.info(f"No {cache}: face descriptors are computed as batches are made (about 60 ms a face)")

    def _build_data(self) -> None:
        config, accelerator, model_config = self.config, self.accelerator, self.model_config
        dataset = load_prepared_dataset(config.data, decode_audio=False, decode_faces=False)
        for split in (config.train_split, config.eval_split):
            if split not in dataset:
                raise ConfigError(f"{config.data} has no split {split!r} (it has {list(dataset)}).")
        select = dict(
            tokenizer=self.processor.tokenizer,
            sampling_rate=model_config.sampling_rate,
            hop_length=model_config.hop_length,
            min_seconds=config.min_audio_seconds,
            max_seconds=config.max_audio_seconds,
            max_tokens=min(model_config.max_input_length, self.processor.max_input_length),
        )
        train_selection = select_items(dataset[config.train_split], max_items=config.max_train_items, **select)
        eval_selection = select_items(dataset[config.eval_split], **select)
        self.info(f"train ({config.train_split}): {train_selection.summary()}")
        self.info(f"validation ({config.eval_split}): {eval_selection.summary()}")
        if len(train_selection) == 0:
            raise ConfigError(f"No usable training items in {config.data}/{config.train_split}.")
        self.train_items = FaceSpeechItems(
            dataset[config.train_split], train_selection, model_config.sampling_rate, multiview=config.multiview
        )
        self.eval_items = FaceSpeechItems(
            dataset[config.eval_split], eval_selection, model_config.sampling_rate, multiview=False
        )
        collator = FTVCollator(self.processor, model_config.hop_length, config.attributes)
        pin = accelerator.device.type == "cuda"
        self.train_sampler = LengthBucketBatchSampler(
            train_selection.seconds,
            config.batch_size,
            num_processes=accelerator.num_processes,
            seed=config.seed,
            bucket_batches=config.bucket_batches,
        )
        self.train_loader = build_dataloader(
            self.train_items, self.train_sampler, collator, config.num_workers, config.prefetch_factor, config.seed, pin
        )
        self.steps_per_epoch = math.ceil(
            len(self.train_sampler) // accelerator.num_processes / config.gradient_accumulation_steps
        )
        self.eval_loader = None
        if len(eval_selection) > 0:
            eval_sampler = FixedBatchSampler(
                eval_selection.seconds,
                config.batch_size,
                config.eval_batches,
                accelerator.num_processes,
                accelerator.process_index,
                config.seed,
            )
            self.eval_loader = build_dataloader(
                self.eval_items,
                eval_sampler,
                collator,
                min(config.num_workers, 2),
                config.prefetch_factor,
                config.seed,
                pin,
            )
        self.heldout_loader = None
        heldout = config.heldout_split
        if heldout and heldout in dataset and self.model_config.use_face_attribute_head:
            heldout_selection = select_items(dataset[heldout], **select)
            self.info(f"held-out identities ({heldout}): {heldout_selection.summary()}")
            if len(heldout_selection) > 0:
                heldout_items = FaceSpeechItems(
                    dataset[heldout], heldout_selection, model_config.sampling_rate, multiview=False
                )
                heldout_sampler = FixedBatchSampler(
                    heldout_selection.seconds,
                    config.batch_size,
                    config.eval_batches,
                    accelerator.num_processes,
                    accelerator.process_index,
                    config.seed,
                )
                self.heldout_loader = build_dataloader(
                    heldout_items,
                    heldout_sampler,
                    collator,
                    min(config.num_workers, 2),
                    config.prefetch_factor,
                    config.seed,
                    pin,
                )
        elif heldout and heldout not in dataset:
            self.info(f"no {heldout} split in {config.data}: no held-out face accuracy (rebuild the dataset)")
        self.samples: list[dict[str, Any]] = []
        if self.is_main:
            source = self.eval_items if len(self.eval_items) else self.train_items
            self.samples = fixed_samples(source, config.num_log_samples)
        global_batch = config.batch_size * accelerator.num_processes * config.gradient_accumulation_steps
        self.info(
            f"{accelerator.num_processes} process(es) on {accelerator.device.type}, mixed precision "
            f"{self.mixed_precision}"
            + (
                f" (this CPU {'runs' if cpu_has_native_bfloat16() else 'does not run'} bfloat16 natively)"
                if accelerator.device.type == "cpu"
                else ""
            )
            + f", global batch {global_batch}, {self.steps_per_epoch} optimizer steps per epoch"
        )

    # ------------------------------------------------------------------ output

    def info(self, message: str) -> None:
        if getattr(self, "accelerator", None) is None or self.accelerator.is_main_process:
            logger.info(message)

    # ------------------------------------------------------------------ checkpoints

    def _write_checkpoint_extra(self, directory: Path) -> None:
        unwrapped = self.accelerator.unwrap_model(self.generator)
        unwrapped.config.to_json_file(str(directory / MODEL_CONFIG_FILE))
        self.processor.save_pretrained(str(directory / PROCESSOR_DIR))
        (directory / "train_config.yaml").write_text(self.config.to_yaml())
        state = {
            "step": self.state.step,
            "epoch": self.state.epoch,
            "batches_in_epoch": self.state.batches_in_epoch,
            "nonfinite_total": self.state.nonfinite_total,
            "elapsed_seconds": self.state.elapsed_seconds,
            "num_processes": self.accelerator.num_processes,
            "batch_size": self.config.batch_size,
            "gradient_accumulation_steps": self.config.gradient_accumulation_steps,
            "metrics": self.metrics,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        path = directory / STATE_FILE
        with open(path, "w") as handle:
            json.dump(state, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())

    def save_checkpoint(self) -> Path:
        self.state.nonfinite_total = int(self._nonfinite_total.item())
        self.state.elapsed_seconds = self._elapsed()
        path = self.checkpoints.save(self.accelerator, self.state.step, self._write_checkpoint_extra)
        self._last_checkpoint_step = self.state.step
        self.info(f"Saved checkpoint {path}")
        return path

    def _load_checkpoint(self, path: Path) -> None:
        self.accelerator.load_state(str(path))
        saved = json.loads((path / STATE_FILE).read_text())
        self.state = LoopState(
            step=int(saved["step"]),
            epoch=int(saved["epoch"]),
            batches_in_epoch=int(saved["batches_in_epoch"]),
            nonfinite_total=int(saved.get("nonfinite_total", 0)),
            elapsed_seconds=float(saved.get("elapsed_seconds", 0.0)),
        )
        self.metrics = dict(saved.get("metrics") or {})
        old_processes = int(saved.get("num_processes", self.accelerator.num_processes))
        if old_processes != self.accelerator.num_processes:
            # Same fraction of the epoch, counted in this run's per-process batches.
            self.state.batches_in_epoch = self.state.batches_in_epoch * old_processes // self.accelerator.num_processes
            self.info(
                f"The checkpoint was written by {old_processes} processes, this run has "
                f"{self.accelerator.num_processes}: the data position is approximate for the rest of this epoch."
            )
        self.info(f"Resumed from {path} at step {self.state.step} (epoch {self.state.epoch})")

    # ------------------------------------------------------------------ export

    def export(self, directory: Path | None = None) -> Path:
        """save_pretrained model + processor (+ discriminator/ and a model card) into OUTPUT/final, atomically."""
        directory = Path(directory or self.output / FINAL_DIR)
        if self.is_main:
            temp = directory.with_name(f"{TEMP_PREFIX}{directory.name}-{os.getpid()}")
            shutil.rmtree(temp, ignore_errors=True)
            model = self.accelerator.unwrap_model(self.generator)
            model.save_pretrained(str(temp))
            self.processor.save_pretrained(str(temp))
            self.accelerator.unwrap_model(self.disc).save_pretrained(str(temp / DISCRIMINATOR_DIR))
            write_model_card(temp, self.card_info())
            if directory.exists():
                _remove_tree(directory)
            os.replace(temp, directory)
            self.info(f"Exported the model to {directory}")
        return directory  # no barrier: SIGUSR1 may reach the main process alone

    def _face_pretraining_summary(self) -> str | None:
        """One line on the face-branch stage that made the --init checkpoint, if it did (face_pretraining.json)."""
        if not self.config.init:
            return None
        path = Path(self.config.init) / "face_pretraining.json"
        if not path.is_file():
            return None
        report = json.loads(path.read_text())
        last = report["curve"][-1] if report.get("curve") else {}
        trained = report.get("source") or report  # a merged branch keeps the report of the run that trained it
        batch = trained.get("config", {}).get("batch_size")
        return (
            f"train/pretrain_face_encoder.py, {trained.get('steps')} steps at batch {batch} on "
            f"{trained.get('device')} ({trained.get('seconds')} s); held-out gender accuracy "
            f"{last.get('gender_accuracy', float('nan')):.1%}, race {last.get('race_accuracy', float('nan')):.1%}"
        )

    def card_info(self) -> dict[str, Any]:
        config, accelerator = self.config, self.accelerator
        report = None
        if config.data and (Path(config.data) / "report.json").is_file():
            try:
                report = json.loads((Path(config.data) / "report.json").read_text())
            except ValueError:
                report = None
        d_lr = config.discriminator_learning_rate or config.learning_rate
        device = accelerator.device.type
        if device == "cuda":
            device = torch.cuda.get_device_name(accelerator.device)
        return {
            "repo_id": config.push_to_hub,
            "steps": self.state.step,
            "max_steps": config.max_steps,
            "epochs": self.state.epoch,
            "global_batch_size": config.batch_size * accelerator.num_processes * config.gradient_accumulation_steps,
            "batch_size": config.batch_size,
            "num_processes": accelerator.num_processes,
            "gradient_accumulation_steps": config.gradient_accumulation_steps,
            "mixed_precision": self.mixed_precision,
            "device": f"{accelerator.num_processes} x {device}",
            "learning_rate": f"{config.learning_rate:g} / {d_lr:g}",
            "hours": round(self._elapsed() / 3600, 3),
            "metrics": dict(self.metrics),
            "dataset_report": report,
            "data_path": config.data,
            "init": config.init,
            "face_pretraining": self._face_pretraining_summary(),
            "frozen": {"prefixes": list(config.freeze), "except": list(config.keep_trainable)},
            "adversarial": config.adversarial,
            "face_descriptor": self.model_config.face_descriptor,
            "loss_weights": {name: float(getattr(self.model_config, name)) for name in LOSS_WEIGHT_FIELDS},
            "ablations": {
                "face_attribute_loss": config.face_attribute_loss,
                "audio_attribute_loss": config.audio_attribute_loss,
                "face_encoder_type": config.face_encoder_type,
                "multiview": config.multiview,
                "attributes": ",".join(config.attributes),
            },
            "config": config.to_dict(),
        }

    # ------------------------------------------------------------------ signals

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum == getattr(signal, "SIGUSR1", None):
            self._export_requested = True
            return
        if self._stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self._stop_signal = signum
        logger.warning("Received signal %d: saving a checkpoint after this step, then stopping.", signum)

    def _install_signal_handlers(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        signals = [signal.SIGTERM, signal.SIGINT] + ([signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else [])
        for signum in signals:
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers.clear()

    def _should_stop(self) -> bool:
        """Host flag alone in one process; every `stop_check_every` steps all processes agree (all-reduce max)."""
        if self.accelerator.num_processes == 1:
            return self._stop_signal is not None
        if self.state.step % self.config.stop_check_every:
            return False
        flag = torch.tensor([1.0 if self._stop_signal is not None else 0.0], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    # ------------------------------------------------------------------ the loop

    def _elapsed(self) -> float:
        """Training wall time over all runs of this output (resumed runs add to the saved total)."""
        start = getattr(self, "_start_time", None)
        return self._elapsed_before + (time.perf_counter() - start if start is not None else 0.0)

    def _reset_meters(self) -> None:
        device = self.accelerator.device
        self._sums = torch.zeros(len(TRAIN_VALUES), device=device)
        self._counts = torch.zeros(len(TRAIN_VALUES), device=device)
        self._norm_sums = torch.zeros(len(NORM_VALUES), device=device)
        self._norm_counts = torch.zeros(len(NORM_VALUES), device=device)
        self._interval_nonfinite = torch.zeros((), device=device, dtype=torch.long)
        self._interval_start = time.perf_counter()
        self._interval_steps = 0
        self._interval_data_time = 0.0

    def run(self) -> Path | None:
        """Train to max_steps (or until a signal), export OUTPUT/final, push if asked. Returns the export dir."""
        config, accelerator = self.config, self.accelerator
        self._start_time = time.perf_counter()
        self._elapsed_before = self.state.elapsed_seconds
        device = accelerator.device
        self._nonfinite_total = torch.tensor(self.state.nonfinite_total, device=device, dtype=torch.long)
        self._consecutive = torch.zeros((), device=device, dtype=torch.long)
        self._last_checkpoint_step = self.state.step if self.resume_from is not None else -1
        if config.export_only:
            return self._finish(export=True)
        self._install_signal_handlers()
        try:
            self._train_loop()
        finally:
            self._restore_signal_handlers()
        if self._stop_signal is not None:
            if self._last_checkpoint_step != self.state.step:
                checkpoint = self.save_checkpoint()
            else:
                checkpoint = self.checkpoints.latest()
            accelerator.end_training()
            self.info(f"Stopped at step {self.state.step}. Continue with --resume latest.")
            raise TrainingInterrupted(self._stop_signal, checkpoint)
        if self._last_checkpoint_step != self.state.step:
            self.save_checkpoint()
        return self._finish(export=True)

    def _finish(self, export: bool) -> Path | None:
        directory = self.export() if export else None
        if self.config.push_to_hub and directory is not None and self.is_main:
            url = push_to_hub(directory, self.config.push_to_hub, private=self.config.hub_private)
            self.info(f"Published {directory} to {url}")
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
        return directory

    def _train_loop(self) -> None:
        config, accelerator, state = self.config, self.accelerator, self.state
        self._reset_meters()
        progress = tqdm(
            total=config.max_steps,
            initial=state.step,
            disable=not (self.is_main and config.progress_bar),
            dynamic_ncols=True,
            desc="train",
        )
        self._progress = progress
        self.generator.train()
        self.disc.train()
        try:
            while state.step < config.max_steps and not self._stop_now:
                self.train_sampler.set_epoch(state.epoch)
                self.train_loader.set_epoch(state.epoch)
                loader = self.train_loader
                if state.batches_in_epoch:
                    loader = accelerator.skip_first_batches(self.train_loader, state.batches_in_epoch)
                iterator = iter(loader)
                finished_epoch = True
                while True:
                    waited = time.perf_counter()
                    batch = next(iterator, None)
                    self._interval_data_time += time.perf_counter() - waited
                    if batch is None:
                        break
                    next_step = state.step + 1
                    keep_mels = self.is_main and next_step % config.media_every == 0
                    with accelerator.accumulate(self.generator, self.disc):
                        values = self.step_fn(batch, keep_mels=keep_mels)
                    state.batches_in_epoch += 1
                    finite_values = torch.isfinite(values)
                    self._sums += torch.where(finite_values, values, torch.zeros_like(values))
                    self._counts += finite_values
                    if not accelerator.sync_gradients:
                        continue
                    self._after_optimizer_step()
                    progress.update(1)
                    if state.step >= config.max_steps or self._stop_now:
                        finished_epoch = False
                        break
                if finished_epoch:
                    state.epoch += 1
                    state.batches_in_epoch = 0
        finally:
            progress.close()

    def _after_optimizer_step(self) -> None:
        config, state = self.config, self.state
        self.scheduler_g.step()
        if config.adversarial:  # without a discriminator update there is nothing to schedule
            self.scheduler_d.step()
        state.step += 1
        self._interval_steps += 1
        step_fn = self.step_fn
        bad = ~(step_fn.finite_g & step_fn.finite_d)
        self._nonfinite_total += bad
        self._interval_nonfinite += bad
        self._consecutive = (self._consecutive + 1) * bad
        norms = torch.stack([step_fn.norm_g.float(), step_fn.norm_d.float()])
        finite_norms = torch.isfinite(norms)
        self._norm_sums += torch.where(finite_norms, norms, torch.zeros_like(norms))
        self._norm_counts += finite_norms
        step = state.step
        if step % config.log_every == 0 or step == config.max_steps:
            self._log_training(step)
        if self.eval_loader is not None and step % config.eval_every == 0:
            self._evaluate(step)
        if self.is_main and step % config.media_every == 0:
            self._log_media(step)
        if step % config.checkpoint_every == 0:
            self.save_checkpoint()
        if config.export_every and step % config.export_every == 0:
            self.export()
        if self._export_requested:
            self._export_requested = False
            self.export()
        if self._should_stop():
            self._stop_now = True
            if self._stop_signal is None:  # another process got the signal
                self._stop_signal = signal.SIGTERM

    # ------------------------------------------------------------------ logging

    def _log_training(self, step: int) -> None:
        accelerator = self.accelerator
        # Skip decisions use all-reduced gradient norms, so the three step counters are equal on every process.
        counters = torch.stack([self._interval_nonfinite, self._nonfinite_total, self._consecutive]).float()
        packed = torch.cat([self._sums, self._counts, self._norm_sums, self._norm_counts, counters])
        packed = accelerator.reduce(packed, reduction="sum") if accelerator.num_processes > 1 else packed
        values = packed.tolist()  # the one host sync of a logging interval
        n, m = len(TRAIN_VALUES), len(NORM_VALUES)
        sums, counts = values[:n], values[n : 2 * n]
        norm_sums, norm_counts = values[2 * n : 2 * n + m], values[2 * n + m : 2 * n + 2 * m]
        interval_nonfinite, nonfinite_total, consecutive = (
            int(round(v / accelerator.num_processes)) for v in values[-3:]
        )
        logs: dict[str, float] = {}
        for name, total, count in zip(TRAIN_VALUES, sums, counts):
            if count:
                logs[f"train/{name}"] = total / count
        for name, total, count in zip(NORM_VALUES, norm_sums, norm_counts):
            if count:
                logs[f"train/{name}"] = total / count
        elapsed = time.perf_counter() - self._interval_start
        steps_per_second = self._interval_steps / max(elapsed, 1e-9)
        global_batch = self.config.batch_size * accelerator.num_processes * self.config.gradient_accumulation_steps
        logs.update(
            {
                "train/lr/generator": self.scheduler_g.get_last_lr()[0],
                "train/lr/discriminator": self.scheduler_d.get_last_lr()[0],
                "speed/steps_per_second": steps_per_second,
                "speed/samples_per_second": steps_per_second * global_batch,
                "speed/data_wait_fraction": self._interval_data_time / max(elapsed, 1e-9),
                "train/nonfinite_steps": float(interval_nonfinite),
                "train/nonfinite_steps_total": float(nonfinite_total),
                "train/epoch": float(self.state.epoch),
            }
        )
        if torch.cuda.is_available() and accelerator.device.type == "cuda":
            logs["speed/peak_memory_gib"] = torch.cuda.max_memory_allocated(accelerator.device) / 2**30
        accelerator.log(logs, step=step)
        if interval_nonfinite:
            logger.warning(
                "%d of the last %d steps had non-finite losses or gradients and were skipped (%d in a row now).",
                interval_nonfinite,
                self._interval_steps,
                consecutive,
            )
        if self.is_main:
            self._progress.set_postfix(
                g=f"{logs.get('train/loss/generator', float('nan')):.3f}",
                d=f"{logs.get('train/loss/discriminator', float('nan')):.3f}",
                mel=f"{logs.get('train/loss/mel', float('nan')):.3f}",
                it_s=f"{steps_per_second:.2f}",
            )
        self._reset_meters()
        if consecutive >= self.config.max_consecutive_nonfinite:
            latest = self.checkpoints.latest()
            raise TrainingDivergedError(
                f"{consecutive} consecutive steps (up to step {step}) had non-finite losses or gradients, so the run "
                f"stopped (limit: max_consecutive_nonfinite={self.config.max_consecutive_nonfinite}). The weights were "
                "not updated by those steps. Resume from the last checkpoint"
                f"{f' ({latest})' if latest else ''} with a lower learning_rate, a max_grad_norm, or "
                "mixed_precision=no, and check the data for silent or corrupt audio."
            )

    def _rng_devices(self) -> list[torch.device]:
        device = self.accelerator.device
        return [device] if device.type == "cuda" else []

    @torch.no_grad()
    def _evaluate(self, step: int) -> dict[str, float]:
        """Training losses on a fixed sample of validation batches, plus face attribute accuracy."""
        accelerator = self.accelerator
        model = accelerator.unwrap_model(self.generator)
        model.eval()
        device = accelerator.device
        attributes = list(self.config.attributes)
        totals = torch.zeros(len(EVAL_VALUES) + 1 + 2 * len(attributes), device=device)
        try:
            with torch.random.fork_rng(devices=self._rng_devices()):
                torch.manual_seed(self.config.seed + accelerator.process_index)  # the same segments every time
                for batch in self.eval_loader:  # always to the end: a fixed sample, already sharded
                    batch = send_to_device(batch, device, non_blocking=True)
                    out = model(**model_inputs(batch))
                    losses = [
                        out.mel_loss,
                        out.kl_loss,
                        out.duration_loss,
                        out.face_attribute_loss,
                        out.audio_attribute_loss,
                    ]
                    parts = [torch.stack([loss.float() for loss in losses]), torch.ones(1, device=device)]
                    parts.append(attribute_hits(out.attribute_logits or {}, batch, attributes))
                    totals += torch.cat(parts)
        finally:
            model.train()
        totals = accelerator.reduce(totals, reduction="sum") if accelerator.num_processes > 1 else totals
        values = totals.tolist()
        batches = max(values[len(EVAL_VALUES)], 1.0)
        metrics = {f"val/{name}": values[i] / batches for i, name in enumerate(EVAL_VALUES)}
        offset = len(EVAL_VALUES) + 1
        # the eval split's identities are training identities: its face accuracy says so in its name
        suffix = "_training_identities" if self.config.eval_split in TRAINING_SPLITS else ""
        for i, name in enumerate(attributes):
            correct, labelled = values[offset + 2 * i], values[offset + 2 * i + 1]
            if labelled and self.model_config.use_face_attribute_head:
                metrics[f"val/face_{name}_accuracy{suffix}"] = correct / labelled
        metrics.update(self._heldout_face_accuracy(model, attributes))
        accelerator.log(metrics, step=step)
        self.metrics = {**metrics, "step": step}
        return metrics

    @torch.no_grad()
    def _heldout_face_accuracy(self, model: Any, attributes: list[str]) -> dict[str, float]:
        """The face head's accuracy on identities no training stage sees (`heldout_split`): the face path only."""
        if self.heldout_loader is None:
            return {}
        accelerator, device = self.accelerator, self.accelerator.device
        totals = torch.zeros(2 * len(attributes), device=device)
        model.eval()
        try:
            for batch in self.heldout_loader:
                batch = send_to_device(batch, device, non_blocking=True)
                face = model.get_face_embeddings(
                    batch["pixel_values"], batch.get("pixel_mask"), batch.get("face_descriptors")
                )
                totals += attribute_hits(model.face_attributes(face), batch, attributes)
        finally:
            model.train()
        totals = accelerator.reduce(totals, reduction="sum") if accelerator.num_processes > 1 else totals
        values = totals.tolist()
        return {
            f"val/heldout_face_{name}_accuracy": values[2 * i] / values[2 * i + 1]
            for i, name in enumerate(attributes)
            if values[2 * i + 1]
        }

    @torch.no_grad()
    def _log_media(self, step: int) -> None:
        """Mel images of the last training segment and synthesized audio + mels for the fixed validation faces."""
        accelerator = self.accelerator
        model = accelerator.unwrap_model(self.generator)
        features = model.audio_features
        sampling_rate = self.model_config.sampling_rate
        audio: dict[str, np.ndarray] = {}
        figures: dict[str, Any] = {}
        if self.step_fn.last_mels is not None:
            predicted, target = (mel.cpu().numpy() for mel in self.step_fn.last_mels)
            figures["mel/train_segment"] = mel_figure([("generated segment", predicted), ("real segment", target)])
            self.step_fn.last_mels = None
        if self.samples:
            inputs = self.processor(
                phonemes=[s["phonemes"] for s in self.samples],
                images=[s["face"] for s in self.samples],
                do_crop_face=False,
            )
            inputs = {key: value.to(accelerator.device) for key, value in inputs.items()}
            model.eval()
            try:
                with torch.random.fork_rng(devices=self._rng_devices()):
                    output = model(**inputs, seed=0)
            finally:
                model.train()
            for i, sample in enumerate(self.samples):
                length = int(output.sequence_lengths[i])
                wave = output.waveform[i, :length].float().cpu()
                real = torch.from_numpy(sample["waveform"])
                tag = f"sample_{i}"
                audio[f"audio/{tag}"] = wave.numpy()
                if not self._logged_references:
                    audio[f"audio_reference/{tag}"] = real.numpy()
                mels = [
                    (f"synthesized ({sample['id']})", features.mel_spectrogram(wave[None])[0].numpy()),
                    ("real recording", features.mel_spectrogram(real[None])[0].numpy()),
                ]
                figures[f"mel/{tag}"] = mel_figure(mels)
            self._logged_references = True
        self._write_media(step, audio, figures, sampling_rate)

    def _write_media(self, step: int, audio: dict[str, np.ndarray], figures: dict[str, Any], rate: int) -> None:
        from matplotlib import pyplot as plt

        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                writer = tracker.tracker
                for tag, figure in figures.items():
                    writer.add_figure(tag, figure, global_step=step, close=False)
                for tag, wave in audio.items():
                    peak = float(np.abs(wave).max()) if wave.size else 0.0
                    writer.add_audio(tag, wave / max(peak, 1.0), global_step=step, sample_rate=rate)
                writer.flush()
            elif hasattr(tracker, "log_images") and figures:
                tracker.log_images({tag: [figure_array(fig)] for tag, fig in figures.items()}, step=step)
        if self.config.save_sample_files:
            import soundfile

            folder = self.output / "samples" / f"step-{step:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for tag, wave in audio.items():
                soundfile.write(str(folder / (tag.replace("/", "_") + ".wav")), np.clip(wave, -1, 1), rate)
            for tag, figure in figures.items():
                figure.savefig(str(folder / (tag.replace("/", "_") + ".png")))
        for figure in figures.values():
            plt.close(figure)


# ---------------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------------


def train(config: TrainConfig) -> Path | None:
    """Run training for `config` (validated). Returns OUTPUT/final; raises TrainingInterrupted on SIGTERM/SIGINT."""
    trainer = Trainer(config.validate())
    return trainer.run()


def main(argv: list[str] | None = None) -> int:
    """CLI: parse, train, map interruptions to 128 + signal (the shell convention), config errors to 2."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # its per-file checkpoint messages drown the log
    try:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()  # casting columns to raw bytes prints one bar per split
    except ImportError:
        pass
    try:
        config = parse_config(argv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        train(config)
    except (ConfigError, PreparedDatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingInterrupted as interrupted:
        return 128 + interrupted.signum
    except TrainingDivergedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
