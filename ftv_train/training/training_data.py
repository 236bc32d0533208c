"""The data a training run reads: the prepared dataset's training, validation and held-out-identity splits turned
into length-bucketed, sharded loaders, plus the fixed validation faces whose speech is logged."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from ftv_model import FTVConfig, FTVProcessor
from ftv_train.data.collate import (
    FaceSpeechItems,
    FixedBatchSampler,
    FTVCollator,
    LengthBucketBatchSampler,
    build_dataloader,
    fixed_samples,
    select_items,
)
from ftv_train.data.dataset_format import load_prepared_dataset
from ftv_train.training.config import ConfigError, TrainConfig


@dataclass
class TrainingData:
    """Loaders of one process. `eval_loader` and `heldout_loader` are None when their split has no usable item."""

    train_items: FaceSpeechItems
    train_sampler: LengthBucketBatchSampler
    train_loader: Any
    steps_per_epoch: int
    eval_items: FaceSpeechItems
    eval_loader: Any | None = None
    heldout_loader: Any | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)  # main process only


def load_descriptor_cache(config: TrainConfig, processor: FTVProcessor, info: Callable[[str], None]) -> None:
    """Precomputed face descriptors of the dataset's views (the offline corpus writes them), so the collator
    looks them up instead of running dlib's network on every face of every step."""
    from ftv_model.face_descriptor import DESCRIPTOR_CACHE_NAME, shared_face_descriptor

    cache = Path(config.data) / DESCRIPTOR_CACHE_NAME
    if cache.is_file():
        count = shared_face_descriptor(processor.image_processor.face_margin).load_cache(cache)
        info(f"Loaded {count} precomputed face descriptors from {cache}")
    else:
        info(f"No {cache}: face descriptors are computed as batches are made (about 60 ms a face)")


def build_training_data(
    config: TrainConfig,
    accelerator: Accelerator,
    processor: FTVProcessor,
    model_config: FTVConfig,
    info: Callable[[str], None],
) -> TrainingData:
    """Select the usable items of each split (alignable, within the length limits) and build their loaders."""
    dataset = load_prepared_dataset(config.data, decode_audio=False, decode_faces=False)
    for split in (config.train_split, config.eval_split):
        if split not in dataset:
            raise ConfigError(f"{config.data} has no split {split!r} (it has {list(dataset)}).")
    select = dict(
        tokenizer=processor.tokenizer,
        sampling_rate=model_config.sampling_rate,
        hop_length=model_config.hop_length,
        min_seconds=config.min_audio_seconds,
        max_seconds=config.max_audio_seconds,
        max_tokens=min(model_config.max_input_length, processor.max_input_length),
    )
    train_selection = select_items(dataset[config.train_split], max_items=config.max_train_items, **select)
    eval_selection = select_items(dataset[config.eval_split], **select)
    info(f"train ({config.train_split}): {train_selection.summary()}")
    info(f"validation ({config.eval_split}): {eval_selection.summary()}")
    if len(train_selection) == 0:
        raise ConfigError(f"No usable training items in {config.data}/{config.train_split}.")
    train_items = FaceSpeechItems(
        dataset[config.train_split], train_selection, model_config.sampling_rate, multiview=config.multiview
    )
    rate = model_config.sampling_rate
    eval_items = FaceSpeechItems(dataset[config.eval_split], eval_selection, rate, multiview=False)
    collator = FTVCollator(processor, model_config.hop_length, config.attributes)
    pin = accelerator.device.type == "cuda"
    train_sampler = LengthBucketBatchSampler(
        train_selection.seconds,
        config.batch_size,
        num_processes=accelerator.num_processes,
        seed=config.seed,
        bucket_batches=config.bucket_batches,
    )
    train_loader = build_dataloader(
        train_items, train_sampler, collator, config.num_workers, config.prefetch_factor, config.seed, pin
    )
    steps_per_epoch = math.ceil(len(train_sampler) // accelerator.num_processes / config.gradient_accumulation_steps)
    data = TrainingData(train_items, train_sampler, train_loader, steps_per_epoch, eval_items)

    def fixed_loader(items: FaceSpeechItems, selection: Any) -> Any:
        sampler = FixedBatchSampler(
            selection.seconds,
            config.batch_size,
            config.eval_batches,
            accelerator.num_processes,
            accelerator.process_index,
            config.seed,
        )
        workers = min(config.num_workers, 2)
        return build_dataloader(items, sampler, collator, workers, config.prefetch_factor, config.seed, pin)

    if len(eval_selection) > 0:
        data.eval_loader = fixed_loader(eval_items, eval_selection)
    heldout = config.heldout_split
    if heldout and heldout in dataset and model_config.use_face_attribute_head:
        heldout_selection = select_items(dataset[heldout], **select)
        info(f"held-out identities ({heldout}): {heldout_selection.summary()}")
        if len(heldout_selection) > 0:
            heldout_items = FaceSpeechItems(
                dataset[heldout], heldout_selection, model_config.sampling_rate, multiview=False
            )
            data.heldout_loader = fixed_loader(heldout_items, heldout_selection)
    elif heldout and heldout not in dataset:
        info(f"no {heldout} split in {config.data}: no held-out face accuracy (rebuild the dataset)")
    if accelerator.is_main_process:
        source = eval_items if len(eval_items) else train_items
        data.samples = fixed_samples(source, config.num_log_samples)
    return data
