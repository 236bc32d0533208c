"""From the prepared dataset to training batches.

Design points (they matter for speed and for exact resumption):

- The dataset is read with audio and faces left as encoded bytes; DataLoader workers decode the FLAC audio and the
  one PNG face view they need, and run the processor on the *stored* phonemes. Workers never phonemize and never
  touch video: all of that happened in `train/prepare_data.py`.
- Items that cannot be aligned (more tokens than spectrogram frames) or fall outside the duration limits are
  dropped once, up front, with counts per reason.
- `LengthBucketBatchSampler` yields batches of similar-length utterances (less padding, so less wasted compute in
  the posterior encoder and flows) in an order that depends only on (seed, epoch). Every process builds the same
  batch list and Accelerate hands process r the batches r, r+N, ...; so it works unchanged under DDP, and a resumed
  run skips exactly the batches it has seen.
- The random face view of an item (multi-view augmentation) is drawn by the sampler, not in the workers, so it is
  reproducible regardless of the number of workers and survives a resume.
"""

from __future__ import annotations

import logging
import math
import signal
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ftv_model.text_frontend import TextFrontendError
from ftv_train.data.dataset_format import decode_audio, face_images, label_target

logger = logging.getLogger(__name__)

# (position in the filtered item list, random draw that picks the face view)
ItemKey = tuple[int, int]


@dataclass
class ItemSelection:
    """The usable items of a split: dataset row indices, their durations (s) and token counts, and what was dropped."""

    rows: np.ndarray
    seconds: np.ndarray
    tokens: np.ndarray
    skipped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.rows)

    def summary(self) -> str:
        dropped = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items())) or "none"
        hours = float(self.seconds.sum()) / 3600
        return f"{len(self)} utterances ({hours:.2f} h); dropped: {dropped}"


def count_tokens(tokenizer: Any, phonemes: str) -> int:
    """Number of ids the processor makes from a stored phoneme string (blanks included)."""
    return len(tokenizer(phonemes, phonemize=False)["input_ids"])


def select_items(
    split: Any,
    tokenizer: Any,
    sampling_rate: int,
    hop_length: int,
    min_seconds: float = 0.0,
    max_seconds: float = math.inf,
    max_tokens: int | None = None,
    max_items: int | None = None,
) -> ItemSelection:
    """Rows of `split` that can train: alignable (tokens <= frames), within the duration limits, known symbols.

    Reads only the `phonemes` and `duration` columns, so it costs seconds even for LRS3.
    """
    columns = split.select_columns(["phonemes", "duration"])[:]
    rows, seconds, tokens = [], [], []
    skipped: Counter = Counter()
    for row, (phonemes, duration) in enumerate(zip(columns["phonemes"], columns["duration"])):
        if max_items is not None and len(rows) >= max_items:
            break
        duration = float(duration)
        if duration < min_seconds:
            skipped["shorter than min_audio_seconds"] += 1
            continue
        if duration > max_seconds:
            skipped["longer than max_audio_seconds"] += 1
            continue
        try:
            count = count_tokens(tokenizer, phonemes)
        except TextFrontendError:
            skipped["empty phonemes or unknown symbols"] += 1
            continue
        if max_tokens is not None and count > max_tokens:
            skipped["more tokens than max_input_length"] += 1
            continue
        if count > int(round(duration * sampling_rate)) // hop_length:
            skipped["more tokens than frames (unalignable)"] += 1
            continue
        rows.append(row)
        seconds.append(duration)
        tokens.append(count)
    return ItemSelection(
        np.asarray(rows, dtype=np.int64), np.asarray(seconds, dtype=np.float64), np.asarray(tokens, np.int64), skipped
    )


class LengthBucketBatchSampler:
    """Fixed-size batches of similar-length items, reshuffled every epoch from (seed, epoch) alone.

    Each epoch: shuffle all items, cut the order into chunks of `bucket_batches` batches, sort each chunk by length,
    cut it into batches, shuffle the batches. Only full batches are kept, and the count is rounded down to a multiple
    of `num_processes` so every process gets the same number (no wrap-around padding). Yields lists of
    `(position, draw)` keys; `draw` picks the face view.
    """

    def __init__(
        self,
        lengths: Sequence[float],
        batch_size: int,
        num_processes: int = 1,
        seed: int = 0,
        bucket_batches: int = 32,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.lengths = np.asarray(lengths, dtype=np.float64)
        self.batch_size = batch_size
        self.num_processes = max(1, num_processes)
        self.seed = seed
        self.bucket_batches = max(1, bucket_batches)
        self.drop_last = True
        self.epoch = 0
        if len(self) == 0:
            raise ValueError(
                f"{len(self.lengths)} usable items are too few for one batch of {batch_size} on each of "
                f"{self.num_processes} processes: lower batch_size or add data."
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        full = len(self.lengths) // self.batch_size
        return full // self.num_processes * self.num_processes

    def batches(self, epoch: int | None = None) -> list[list[ItemKey]]:
        """The batch list of an epoch (what iteration yields), computed without side effects."""
        count = len(self.lengths)
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch])
        order = rng.permutation(count)
        draws = rng.integers(0, 2**62, size=count)
        chunk = self.batch_size * self.bucket_batches
        batches = []
        for start in range(0, count, chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            for offset in range(0, len(part) - self.batch_size + 1, self.batch_size):
                batches.append(part[offset : offset + self.batch_size])
        batches = [batches[i] for i in rng.permutation(len(batches))][: len(self)]
        return [[(int(i), int(draws[i])) for i in batch] for batch in batches]

    def __iter__(self) -> Iterator[list[ItemKey]]:
        yield from self.batches()


class FixedBatchSampler:
    """This process's share of a fixed evaluation sample: the same items (first face view) at every evaluation.

    A seeded random subset of at most `max_batches` batches per process (so evaluation sees utterances of every
    length, not just the shortest), sorted by length to limit padding, batch i going to process i mod N. It is
    iterated to the end each time, without Accelerate's dataloader wrapper, which would otherwise take part in
    deciding when accumulated gradients are synchronised.
    """

    def __init__(
        self,
        lengths: Sequence[float],
        batch_size: int,
        max_batches: int,
        num_processes: int = 1,
        process_index: int = 0,
        seed: int = 0,
    ) -> None:
        lengths = np.asarray(lengths, dtype=np.float64)
        order = np.random.default_rng([seed, 1]).permutation(len(lengths))[: max_batches * batch_size * num_processes]
        order = order[np.argsort(lengths[order], kind="stable")]
        batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
        self.batch_list = [[(int(i), 0) for i in batch] for batch in batches[process_index::num_processes]]

    def __len__(self) -> int:
        return len(self.batch_list)

    def __iter__(self) -> Iterator[list[ItemKey]]:
        yield from self.batch_list


class FaceSpeechItems(Dataset):
    """Map-style view of the selected rows: key (position, draw) -> phonemes, waveform, one face view, labels."""

    def __init__(self, split: Any, selection: ItemSelection, sampling_rate: int, multiview: bool = True) -> None:
        self.split = split
        self.rows = selection.rows
        self.sampling_rate = sampling_rate
        self.multiview = multiview

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: ItemKey | int) -> dict[str, Any]:
        position, draw = key if isinstance(key, tuple) else (key, 0)
        row = self.split[int(self.rows[position])]
        faces = row["faces"]
        if not faces:
            raise ValueError(f"Item {row['id']} has no face view; rerun train/prepare_data.py.")
        view = draw % len(faces) if self.multiview else 0
        return {
            "id": row["id"],
            "phonemes": row["phonemes"],
            "waveform": decode_audio(row["audio"], self.sampling_rate),
            "face": face_images([faces[view]])[0],
            "view": view,
            "gender": int(row["gender"]),
            "race": int(row["race"]),
        }


class FTVCollator:
    """Items -> model inputs: processor on stored phonemes and the chosen face, zero-padded audio, labels.

    Items whose decoded audio turns out shorter than their token count (a stale `duration` column) are dropped from
    the batch instead of stopping the run at the alignment step.
    """

    def __init__(self, processor: Any, hop_length: int, attributes: Sequence[str] = ("gender", "race")) -> None:
        self.processor = processor
        self.hop_length = hop_length
        self.attributes = tuple(attributes)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        encoded = self.processor(
            phonemes=[item["phonemes"] for item in items], images=[item["face"] for item in items], do_crop_face=False
        )
        token_lengths = encoded["attention_mask"].sum(-1)
        keep = [i for i, item in enumerate(items) if int(token_lengths[i]) <= len(item["waveform"]) // self.hop_length]
        if not keep:
            ids = ", ".join(item["id"] for item in items)
            raise ValueError(f"No item of this batch can be aligned (audio shorter than its text): {ids}.")
        if len(keep) < len(items):
            logger.warning("Dropped %d unalignable items from a batch.", len(items) - len(keep))
            items = [items[i] for i in keep]
            index = torch.tensor(keep)
            longest = int(token_lengths[index].max())
            encoded = {
                "input_ids": encoded["input_ids"][index, :longest],
                "attention_mask": encoded["attention_mask"][index, :longest],
                **{key: encoded[key][index] for key in ("pixel_values", "face_descriptors") if key in encoded},
            }
        lengths = torch.tensor([len(item["waveform"]) for item in items], dtype=torch.long)
        waveform = torch.zeros(len(items), int(lengths.max()), dtype=torch.float32)
        for i, item in enumerate(items):
            waveform[i, : lengths[i]] = torch.from_numpy(item["waveform"])
        batch = {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "pixel_values": encoded["pixel_values"],
            **({"face_descriptors": encoded["face_descriptors"]} if "face_descriptors" in encoded else {}),
            "waveform": waveform,
            "waveform_lengths": lengths,
        }
        for name in self.attributes:
            batch[f"{name}_labels"] = torch.tensor([label_target(item[name]) for item in items], dtype=torch.long)
        return batch


def quiet_worker(worker_id: int) -> None:
    """DataLoader workers ignore SIGINT/SIGTERM: the main process catches them to checkpoint, and workers dying
    first would break that. Workers still exit when the main process does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def build_dataloader(
    items: FaceSpeechItems,
    batch_sampler: LengthBucketBatchSampler | FixedBatchSampler,
    collator: FTVCollator,
    num_workers: int,
    prefetch_factor: int = 2,
    seed: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """DataLoader over `items` with its own generator, so creating iterators never draws from the global RNG
    (which would make a resumed run's dropout and segment choices differ from an uninterrupted run's)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        items,
        batch_sampler=batch_sampler,
        collate_fn=collator,
        num_workers=num_workers,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        persistent_workers=False,
        pin_memory=pin_memory,
        worker_init_fn=quiet_worker if num_workers > 0 else None,
        generator=generator,
    )


def fixed_samples(items: FaceSpeechItems, count: int) -> list[dict[str, Any]]:
    """`count` items for the audio/mel logs, one per speaker first, in a fixed order; first face view each."""
    if count <= 0 or len(items) == 0:
        return []
    speakers = items.split.select_columns(["speaker"])[:]["speaker"]
    chosen, seen = [], set()
    for position, row in enumerate(items.rows):
        speaker = speakers[int(row)]
        if speaker not in seen:
            seen.add(speaker)
            chosen.append(position)
        if len(chosen) == count:
            break
    for position in range(len(items)):
        if len(chosen) == count:
            break
        if position not in chosen:
            chosen.append(position)
    multiview, items.multiview = items.multiview, False
    try:
        return [items[(position, 0)] for position in chosen]
    finally:
        items.multiview = multiview
