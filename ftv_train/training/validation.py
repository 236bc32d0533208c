"""Validation during training: the training losses on a fixed sample of validation batches, the face head's
accuracy there, and its accuracy on identities no training stage sees (the figure for model selection).

Runs under a forked RNG seeded the same way each time, so every evaluation sees the same decoder segments and the
training random stream is untouched (a resumed run reproduces an uninterrupted one).
"""

from __future__ import annotations

from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device

from ftv_model import FTVModel
from ftv_train.data.splits import TRAINING_SPLITS
from ftv_train.training.gan_step import model_inputs
from ftv_train.training.media_logging import rng_devices

EVAL_VALUES = ("mel", "kl", "duration", "face_attribute", "audio_attribute")


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


@torch.no_grad()
def evaluate(
    accelerator: Accelerator,
    model: FTVModel,
    eval_loader: Any,
    heldout_loader: Any | None,
    attributes: list[str],
    eval_split: str,
    seed: int,
) -> dict[str, float]:
    """`val/*` metrics of the unwrapped model, reduced over processes."""
    model.eval()
    device = accelerator.device
    totals = torch.zeros(len(EVAL_VALUES) + 1 + 2 * len(attributes), device=device)
    try:
        with torch.random.fork_rng(devices=rng_devices(device)):
            torch.manual_seed(seed + accelerator.process_index)  # the same segments every time
            for batch in eval_loader:  # always to the end: a fixed sample, already sharded
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
    suffix = "_training_identities" if eval_split in TRAINING_SPLITS else ""
    for i, name in enumerate(attributes):
        correct, labelled = values[offset + 2 * i], values[offset + 2 * i + 1]
        if labelled and model.config.use_face_attribute_head:
            metrics[f"val/face_{name}_accuracy{suffix}"] = correct / labelled
    metrics.update(heldout_face_accuracy(accelerator, model, heldout_loader, attributes))
    return metrics


@torch.no_grad()
def heldout_face_accuracy(
    accelerator: Accelerator, model: FTVModel, heldout_loader: Any | None, attributes: list[str]
) -> dict[str, float]:
    """The face head's accuracy on identities no training stage sees (`heldout_split`): the face path only."""
    if heldout_loader is None:
        return {}
    device = accelerator.device
    totals = torch.zeros(2 * len(attributes), device=device)
    model.eval()
    try:
        for batch in heldout_loader:
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
