"""A training run's export, OUTPUT/final: the generator and its processor as `save_pretrained` folders, the
discriminator under `discriminator/` (so training can continue from it with `--init`) and a model card that says
how the weights were made. Written into a temporary folder and renamed into place, so it is always whole.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ftv_model import FTVDiscriminator, FTVModel, FTVProcessor
from ftv_model.losses import LossWeights
from ftv_train.training.checkpointing import DISCRIMINATOR_DIR, TEMP_PREFIX, remove_tree
from ftv_train.training.config import TrainConfig
from ftv_train.training.model_card import write_model_card


def export_model(
    directory: Path,
    model: FTVModel,
    processor: FTVProcessor,
    discriminator: FTVDiscriminator,
    card_info: dict[str, Any],
) -> Path:
    """Write the export atomically (main process only)."""
    temp = directory.with_name(f"{TEMP_PREFIX}{directory.name}-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    model.save_pretrained(str(temp))
    processor.save_pretrained(str(temp))
    discriminator.save_pretrained(str(temp / DISCRIMINATOR_DIR))
    write_model_card(temp, card_info)
    if directory.exists():
        remove_tree(directory)
    os.replace(temp, directory)
    return directory


def face_pretraining_summary(init: str | None) -> str | None:
    """One line on the face-branch stage that made the --init checkpoint, if it did (face_pretraining.json)."""
    if not init:
        return None
    path = Path(init) / "face_pretraining.json"
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


def card_info(
    config: TrainConfig,
    run: dict[str, Any],
    face_descriptor: str | None,
    loss_weights: LossWeights,
) -> dict[str, Any]:
    """What the model card tells (`model_card.build_model_card`): the config's choices plus `run`, the facts of the
    run (steps, epochs, processes, device, precision, hours, metrics)."""
    report = None
    if config.data and (Path(config.data) / "report.json").is_file():
        try:
            report = json.loads((Path(config.data) / "report.json").read_text())
        except ValueError:
            report = None
    d_lr = config.discriminator_learning_rate or config.learning_rate
    processes = run["num_processes"]
    return {
        "repo_id": config.push_to_hub,
        "steps": run["steps"],
        "max_steps": config.max_steps,
        "epochs": run["epochs"],
        "global_batch_size": config.batch_size * processes * config.gradient_accumulation_steps,
        "batch_size": config.batch_size,
        "num_processes": processes,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "mixed_precision": run["mixed_precision"],
        "device": f"{processes} x {run['device']}",
        "learning_rate": f"{config.learning_rate:g} / {d_lr:g}",
        "hours": run["hours"],
        "metrics": dict(run["metrics"]),
        "dataset_report": report,
        "data_path": config.data,
        "init": config.init,
        "face_pretraining": face_pretraining_summary(config.init),
        "frozen": {"prefixes": list(config.freeze), "except": list(config.keep_trainable)},
        "adversarial": config.adversarial,
        "face_descriptor": face_descriptor,
        "loss_weights": {name: float(value) for name, value in dataclasses.asdict(loss_weights).items()},
        "ablations": {
            "face_attribute_loss": config.face_attribute_loss,
            "audio_attribute_loss": config.audio_attribute_loss,
            "face_encoder_type": config.face_encoder_type,
            "multiview": config.multiview,
            "attributes": ",".join(config.attributes),
        },
        "config": config.to_dict(),
    }
