"""The training loop: VITS-style GAN training of FTVModel with Accelerate.

One optimizer step is a `GANStep` (gan_step.py): a discriminator update, then a generator update through the
freshly updated discriminator. Accelerate handles devices, DDP (generator and discriminator are prepared as
separate modules, so each has its own DDP wrapper), mixed precision, gradient accumulation, trackers and checkpoint
state. The pieces around the loop have their own modules: the config (config.py), checkpoints (checkpointing.py),
warm starts and frozen parameters (warm_start.py), the data (training_data.py), validation (validation.py) and
media (media_logging.py).

Choices made for speed and robustness:

- No host-device synchronisation per step from the loop itself: losses and gradient norms are accumulated on the
  device and read at logging intervals; non-finite steps are skipped on the device (see gan_step.py).
- Validation losses and media run under a forked RNG, so logging never changes the training random stream, and a
  resumed run reproduces an uninterrupted one.
- Checkpoints are written to a temporary directory and renamed into place; `--resume latest` only considers
  renamed (complete) ones, so a kill during a save never leaves a checkpoint that looks usable but is not.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from ftv_model import FTVConfig, FTVDiscriminator, FTVModel, FTVProcessor
from ftv_model.discriminator import FTVDiscriminatorConfig
from ftv_model.modeling_ftv import cpu_has_native_bfloat16
from ftv_train.data.dataset_format import PreparedDatasetError
from ftv_train.training.checkpointing import (
    CHECKPOINT_DIR,
    DISCRIMINATOR_CONFIG_FILE,
    FINAL_DIR,
    MODEL_CONFIG_FILE,
    PROCESSOR_DIR,
    TRAIN_CONFIG_FILE,
    CheckpointManager,
    LoopState,
    read_training_state,
    write_training_state,
)
from ftv_train.training.config import ConfigError, TrainConfig, parse_config
from ftv_train.training.export import card_info, export_model
from ftv_train.training.gan_step import GANStep
from ftv_train.training.media_logging import MediaLogger
from ftv_train.training.meters import StepMeters
from ftv_train.training.model_card import push_to_hub
from ftv_train.training.optimizer_state import match_optimizer_state, trainable_names, write_parameter_names
from ftv_train.training.training_data import build_training_data, load_descriptor_cache
from ftv_train.training.validation import evaluate
from ftv_train.training.warm_start import (
    apply_training_only_settings,
    default_processor,
    freeze_parameters,
    fresh_discriminator,
    load_warm_start,
    note_former_model_settings,
)

logger = logging.getLogger("ftv_train")


class TrainingDivergedError(RuntimeError):
    """Too many consecutive steps had non-finite losses or gradients."""


class TrainingInterrupted(Exception):
    """Raised by `train()` after a SIGTERM/SIGINT stopped the run and a checkpoint was written."""

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum
        self.checkpoint = checkpoint


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
        if self.model.config.face_descriptor:
            load_descriptor_cache(config, self.processor, self.info)
        freeze_parameters(self.model, config.freeze, config.keep_trainable)

        device = accelerator.device
        self.model.to(device)
        self.discriminator.to(device)
        self.model_config: FTVConfig = self.model.config
        generator_parameters = [p for p in self.model.parameters() if p.requires_grad]
        discriminator_parameters = [p for p in self.discriminator.parameters() if p.requires_grad]
        self.optimizer_parameter_names = {"generator": trainable_names(self.model)}  # saved beside the state
        self.optimizer_parameter_names["discriminator"] = trainable_names(self.discriminator)
        fused = config.fused_optimizer and device.type in ("cuda", "cpu", "mps")
        self.sync_free_skip = fused and self.mixed_precision != "fp16"
        d_lr = config.discriminator_learning_rate or config.learning_rate
        optimizer_kwargs = dict(betas=tuple(config.adam_betas), eps=config.adam_eps, weight_decay=config.weight_decay)
        if fused:
            optimizer_kwargs["fused"] = True
        self.optimizer_g = torch.optim.AdamW(generator_parameters, lr=config.learning_rate, **optimizer_kwargs)
        self.optimizer_d = torch.optim.AdamW(discriminator_parameters, lr=d_lr, **optimizer_kwargs)

        self.data = None
        self.train_loader = None
        steps_per_epoch = 1
        if not config.export_only:
            self.data = build_training_data(config, accelerator, self.processor, self.model_config, self.info)
            self.train_loader, steps_per_epoch = self.data.train_loader, self.data.steps_per_epoch
            global_batch = config.batch_size * accelerator.num_processes * config.gradient_accumulation_steps
            native = "runs" if cpu_has_native_bfloat16() else "does not run"
            self.info(
                f"{accelerator.num_processes} process(es) on {device.type}, mixed precision {self.mixed_precision}"
                + (f" (this CPU {native} bfloat16 natively)" if device.type == "cpu" else "")
                + f", global batch {global_batch}, {steps_per_epoch} optimizer steps per epoch"
            )
        schedule = lr_schedule(config.lr_decay, steps_per_epoch, config.lr_decay_every)
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
            config.loss_weights(),
            max_grad_norm=config.max_grad_norm,
            sync_free_skip=self.sync_free_skip,
            adversarial=config.adversarial,
        )
        if self.train_loader is not None:
            self.train_loader = accelerator.prepare(self.train_loader)  # the eval loader shards itself
        self.media = MediaLogger(
            accelerator,
            self.processor,
            self.data.samples if self.data is not None else [],
            self.model_config.sampling_rate,
            self.output / "samples" if config.save_sample_files else None,
        )
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
            apply_training_only_settings(config, model_config)
            note_former_model_settings(config, model_config, self.info)
            model = FTVModel(model_config)
            # checkpoints written before the discriminator had its own config keep its settings in the model's
            saved = self.resume_from / DISCRIMINATOR_CONFIG_FILE
            if not saved.is_file():
                saved = self.resume_from / MODEL_CONFIG_FILE
            discriminator = FTVDiscriminator(FTVDiscriminatorConfig.from_pretrained(str(saved)))
            processor = FTVProcessor.from_pretrained(str(self.resume_from / PROCESSOR_DIR))
            return model, discriminator, processor
        if config.init:
            return load_warm_start(config, self.info)
        try:
            model_config = FTVConfig(**config.model_config_kwargs())
        except ValueError as error:  # FTVConfig validates its settings (face_encoder_type among them)
            raise ConfigError(f"model settings: {error}") from error
        return FTVModel(model_config), fresh_discriminator(config), default_processor(model_config)

    # ------------------------------------------------------------------ output

    def info(self, message: str) -> None:
        if getattr(self, "accelerator", None) is None or self.accelerator.is_main_process:
            logger.info(message)

    # ------------------------------------------------------------------ checkpoints

    def _write_checkpoint_extra(self, directory: Path) -> None:
        self.accelerator.unwrap_model(self.generator).config.to_json_file(str(directory / MODEL_CONFIG_FILE))
        self.accelerator.unwrap_model(self.disc).config.to_json_file(str(directory / DISCRIMINATOR_CONFIG_FILE))
        self.processor.save_pretrained(str(directory / PROCESSOR_DIR))
        (directory / TRAIN_CONFIG_FILE).write_text(self.config.to_yaml())
        write_parameter_names(directory, self.optimizer_parameter_names)
        extra = {
            "num_processes": self.accelerator.num_processes,
            "batch_size": self.config.batch_size,
            "gradient_accumulation_steps": self.config.gradient_accumulation_steps,
            "metrics": self.metrics,
        }
        write_training_state(directory, self.state, extra)

    def save_checkpoint(self) -> Path:
        self.state.nonfinite_total = int(self.meters.nonfinite_total.item())
        self.state.elapsed_seconds = self._elapsed()
        path = self.checkpoints.save(self.accelerator, self.state.step, self._write_checkpoint_extra)
        self._last_checkpoint_step = self.state.step
        self.info(f"Saved checkpoint {path}")
        return path

    def _load_checkpoint(self, path: Path) -> None:
        self.accelerator.load_state(str(path))
        optimizers = {"generator": self.optimizer_g.optimizer, "discriminator": self.optimizer_d.optimizer}
        match_optimizer_state(path, optimizers, self.optimizer_parameter_names, self.info)
        self.state, saved = read_training_state(path)
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
            unwrap = self.accelerator.unwrap_model
            export_model(directory, unwrap(self.generator), self.processor, unwrap(self.disc), self.card_info())
            self.info(f"Exported the model to {directory}")
        return directory  # no barrier: SIGUSR1 may reach the main process alone

    def card_info(self) -> dict[str, Any]:
        accelerator = self.accelerator
        device = accelerator.device.type
        if device == "cuda":
            device = torch.cuda.get_device_name(accelerator.device)
        run = {
            "steps": self.state.step,
            "epochs": self.state.epoch,
            "num_processes": accelerator.num_processes,
            "mixed_precision": self.mixed_precision,
            "device": device,
            "hours": round(self._elapsed() / 3600, 3),
            "metrics": self.metrics,
        }
        return card_info(self.config, run, self.model_config.face_descriptor, self.step_fn.loss_weights)

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

    def run(self) -> Path | None:
        """Train to max_steps (or until a signal), export OUTPUT/final, push if asked. Returns the export dir."""
        config, accelerator = self.config, self.accelerator
        self._start_time = time.perf_counter()
        self._elapsed_before = self.state.elapsed_seconds
        self.meters = StepMeters(accelerator.device, self.state.nonfinite_total)
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
        self.meters.reset()
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
                self.data.train_sampler.set_epoch(state.epoch)
                self.train_loader.set_epoch(state.epoch)
                loader = self.train_loader
                if state.batches_in_epoch:
                    loader = accelerator.skip_first_batches(self.train_loader, state.batches_in_epoch)
                iterator = iter(loader)
                finished_epoch = True
                while True:
                    waited = time.perf_counter()
                    batch = next(iterator, None)
                    self.meters.data_seconds += time.perf_counter() - waited
                    if batch is None:
                        break
                    next_step = state.step + 1
                    keep_mels = self.is_main and next_step % config.media_every == 0
                    with accelerator.accumulate(self.generator, self.disc):
                        values = self.step_fn(batch, keep_mels=keep_mels)
                    state.batches_in_epoch += 1
                    self.meters.add_micro_batch(values)
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
        step_fn = self.step_fn
        self.meters.add_optimizer_step(step_fn)
        step = state.step
        if step % config.log_every == 0 or step == config.max_steps:
            self._log_training(step)
        if self.data.eval_loader is not None and step % config.eval_every == 0:
            self._evaluate(step)
        if self.is_main and step % config.media_every == 0:
            self.media.log(step, self.accelerator.unwrap_model(self.generator), step_fn.last_mels)
            step_fn.last_mels = None
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
        reading = self.meters.read(accelerator)
        logs = dict(reading.means)
        seconds = max(reading.seconds, 1e-9)
        steps_per_second = reading.steps / seconds
        global_batch = self.config.batch_size * accelerator.num_processes * self.config.gradient_accumulation_steps
        logs.update(
            {
                "train/lr/generator": self.scheduler_g.get_last_lr()[0],
                "train/lr/discriminator": self.scheduler_d.get_last_lr()[0],
                "speed/steps_per_second": steps_per_second,
                "speed/samples_per_second": steps_per_second * global_batch,
                "speed/data_wait_fraction": reading.data_seconds / seconds,
                "train/nonfinite_steps": float(reading.nonfinite),
                "train/nonfinite_steps_total": float(reading.nonfinite_total),
                "train/epoch": float(self.state.epoch),
            }
        )
        if torch.cuda.is_available() and accelerator.device.type == "cuda":
            logs["speed/peak_memory_gib"] = torch.cuda.max_memory_allocated(accelerator.device) / 2**30
        accelerator.log(logs, step=step)
        if reading.nonfinite:
            logger.warning(
                "%d of the last %d steps had non-finite losses or gradients and were skipped (%d in a row now).",
                reading.nonfinite,
                reading.steps,
                reading.consecutive,
            )
        if self.is_main:
            self._progress.set_postfix(
                g=f"{logs.get('train/loss/generator', float('nan')):.3f}",
                d=f"{logs.get('train/loss/discriminator', float('nan')):.3f}",
                mel=f"{logs.get('train/loss/mel', float('nan')):.3f}",
                it_s=f"{steps_per_second:.2f}",
            )
        self.meters.reset()
        consecutive = reading.consecutive
        if consecutive >= self.config.max_consecutive_nonfinite:
            latest = self.checkpoints.latest()
            raise TrainingDivergedError(
                f"{consecutive} consecutive steps (up to step {step}) had non-finite losses or gradients, so the run "
                f"stopped (limit: max_consecutive_nonfinite={self.config.max_consecutive_nonfinite}). The weights were "
                "not updated by those steps. Resume from the last checkpoint"
                f"{f' ({latest})' if latest else ''} with a lower learning_rate, a max_grad_norm, or "
                "mixed_precision=no, and check the data for silent or corrupt audio."
            )

    def _evaluate(self, step: int) -> dict[str, float]:
        """Training losses on a fixed sample of validation batches, plus face attribute accuracy."""
        config = self.config
        model = self.accelerator.unwrap_model(self.generator)
        metrics = evaluate(
            self.accelerator,
            model,
            self.data.eval_loader,
            self.data.heldout_loader,
            list(config.attributes),
            config.eval_split,
            config.seed,
        )
        self.accelerator.log(metrics, step=step)
        self.metrics = {**metrics, "step": step}
        return metrics


# ---------------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------------


def train(config: TrainConfig) -> Path | None:
    """Run training for `config` (validated). Returns OUTPUT/final; raises TrainingInterrupted on SIGTERM/SIGINT."""
    trainer = Trainer(config.validate())
    return trainer.run()


def main(argv: Sequence[str] | None = None) -> int:
    """`ftv-train` / train/train.py: parse, train, map interruptions to 128 + signal (the shell convention), config
    errors to 2."""
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
