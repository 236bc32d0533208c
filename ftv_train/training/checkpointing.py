"""Checkpoints of a training run: where they go, how they are written so that a kill never leaves one that looks
usable but is not, and the loop state each one records.

A checkpoint is `OUTPUT/checkpoints/step-XXXXXXXX/`: Accelerate's state (models, optimizers, schedulers, RNG states),
the generator's `model_config.json`, the discriminator's `discriminator_config.json`, the processor, the
`train_config.yaml` of the run and, written last, `training_state.json`. It is written into a temporary directory
and renamed into place; `--resume latest` only considers renamed (complete) ones.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from ftv_train.training.config import ConfigError

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PATTERN = re.compile(r"^step-(\d{8})$")
TEMP_PREFIX = ".tmp-"
STATE_FILE = "training_state.json"
MODEL_CONFIG_FILE = "model_config.json"
# The discriminator's settings; checkpoints written before it existed hold them in MODEL_CONFIG_FILE.
DISCRIMINATOR_CONFIG_FILE = "discriminator_config.json"
TRAIN_CONFIG_FILE = "train_config.yaml"
PROCESSOR_DIR = "processor"
FINAL_DIR = "final"
DISCRIMINATOR_DIR = "discriminator"


@dataclass
class LoopState:
    """Where the run is: saved in every checkpoint's training_state.json."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches this process has consumed in the current epoch
    nonfinite_total: int = 0
    elapsed_seconds: float = 0.0


def write_training_state(directory: Path, state: LoopState, extra: dict[str, Any]) -> None:
    """training_state.json, flushed to disk: its presence marks a complete checkpoint, so it is written last."""
    path = directory / STATE_FILE
    with open(path, "w") as handle:
        json.dump({**asdict(state), **extra, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())


def read_training_state(directory: Path) -> tuple[LoopState, dict[str, Any]]:
    """The loop state of a checkpoint and everything else its training_state.json holds."""
    saved = json.loads((directory / STATE_FILE).read_text())
    state = LoopState(
        step=int(saved["step"]),
        epoch=int(saved["epoch"]),
        batches_in_epoch=int(saved["batches_in_epoch"]),
        nonfinite_total=int(saved.get("nonfinite_total", 0)),
        elapsed_seconds=float(saved.get("elapsed_seconds", 0.0)),
    )
    return state, saved


def fsync_dir(path: Path) -> None:
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


def remove_tree(path: Path) -> None:
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
                remove_tree(final)
            os.replace(temp, final)
            fsync_dir(self.root)
            for _, old in self.completed()[: -self.keep]:
                remove_tree(old)
        accelerator.wait_for_everyone()
        return final
