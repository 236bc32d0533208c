"""The tiny training dataset the training tests share, and the data pipeline's tests.

The dataset holds real speech (VCTK, cropped to its first words) and real faces (London Set, two photos plus a
mirrored one as three views), with phonemes precomputed by the project's text front end, written with
`datasets.DatasetDict.save_to_disk` in `ftv_train.data.dataset_format.FEATURES`. `run_training` runs the tiny
config in-process on it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from ftv_train.data.collate import (
    FaceSpeechItems,
    FixedBatchSampler,
    FTVCollator,
    LengthBucketBatchSampler,
    count_tokens,
    select_items,
)
from ftv_train.training.config import parse_config

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_YAML = REPO_ROOT / "train" / "configs" / "tiny.yaml"
PAPER_YAML = REPO_ROOT / "train" / "configs" / "paper.yaml"
FACE_PHOTO = REPO_ROOT / "tests" / "fixtures" / "faces" / "london_001.jpg"
# (VCTK speaker, London face id); faces chosen to match the speakers' genders.
SPEAKERS = (("p225", "001"), ("p226", "004"), ("p227", "005"), ("p228", "006"))
LONDON_RACE = {"white": "white", "black": "black", "east_asian": "asian", "west_asian": "middle eastern"}


# ---------------------------------------------------------------------------------------------------------------------
# The tiny dataset
# ---------------------------------------------------------------------------------------------------------------------


def _png(image: Image.Image) -> dict:
    buffer = io.BytesIO()
    image.convert("RGB").resize((128, 128), Image.Resampling.BICUBIC).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def build_tiny_dataset(root: Path, shared_data: Path) -> Path:
    """12 train / 4 validation / 1 test_seen / 3 test_unseen utterances (and the same 3 as validation_unseen, under
    other ids), plus one unalignable train item."""
    import soundfile
    from datasets import Dataset, DatasetDict

    from ftv_model.attributes import GENDER_LABELS, RACE_LABELS
    from ftv_model.text_frontend import phonemize
    from ftv_train.data.dataset_format import FEATURES, SPLITS, encode_audio

    speech = shared_data / "speech" / "vctk"
    faces_root = shared_data / "faces" / "london"
    with open(faces_root / "london_info.csv") as handle:
        face_info = {row["face_id"]: row for row in csv.DictReader(handle)}
    transcripts = {}
    for line in (speech / "transcripts.txt").read_text().splitlines():
        path, speaker, text = line.split("|", 2)
        transcripts.setdefault(speaker, []).append((path, text))

    rows: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for s, (speaker, face_id) in enumerate(SPEAKERS):
        info = face_info[face_id]
        photos = [Image.open(faces_root / kind / f"{face_id}.jpg") for kind in ("neutral", "smiling")]
        views = [_png(photos[0]), _png(photos[1]), _png(ImageOps.mirror(photos[0]))]
        gender = GENDER_LABELS.index(info["face_gender"])
        race = RACE_LABELS.index(LONDON_RACE[info["face_eth"]]) if s != 3 else -1  # one speaker unlabelled
        for u, (path, text) in enumerate(transcripts[speaker][:5]):
            wave, rate = soundfile.read(speech / path, dtype="float32")
            assert rate == 16000
            words = " ".join(text.split()[:2])
            seconds = 0.9 + 0.15 * u
            wave = wave[: int(seconds * rate)]
            split = "train" if u < 3 else "validation" if u == 3 else ("test_seen" if s == 0 else "test_unseen")
            rows[split].append(
                {
                    "id": f"{speaker}/{u:03d}",
                    "speaker": speaker,
                    "text": words,
                    "phonemes": phonemize(words)[0],
                    "audio": {"bytes": encode_audio(wave), "path": None},
                    "duration": len(wave) / rate,
                    "faces": views[: 1 + (u % 3)] if split != "train" else views,
                    "num_views": len(views[: 1 + (u % 3)]) if split != "train" else len(views),
                    "gender": gender,
                    "race": race,
                }
            )
    # Far too much text for 0.4 s of audio: must be filtered out, never reach the alignment.
    long_text = transcripts["p225"][0][1]
    silence = {"bytes": encode_audio(np.zeros(6400, np.float32)), "path": None}
    long_item = {"id": "p225/long", "text": long_text, "phonemes": phonemize(long_text)[0], "audio": silence}
    rows["train"].append({**rows["train"][0], **long_item, "duration": 0.4})
    rows["validation_unseen"] = [{**row, "id": f"{row['id']}-v"} for row in rows["test_unseen"]]
    splits = {split: Dataset.from_list(items, features=FEATURES) for split, items in rows.items()}
    DatasetDict(splits).save_to_disk(str(root))
    (root / "report.json").write_text(json.dumps({"source": "vctk+london (test)", "splits": {}}))
    return root


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    return build_tiny_dataset(tmp_path_factory.mktemp("tiny-data") / "data", shared_data)


def reset_accelerate() -> None:
    """Accelerate keeps process-wide singletons; in-process runs need them cleared between runs."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def run_training(data: Path, output: Path, args: str) -> Path | None:
    """In-process run of the tiny config; `args` are extra command-line options (space separated)."""
    from ftv_train.training.trainer import train

    config = parse_config(["--config", str(TINY_YAML), "--data", str(data), "--output", str(output), *args.split()])
    reset_accelerate()
    torch.manual_seed(0)
    try:
        return train(config)
    finally:
        reset_accelerate()


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


# ---------------------------------------------------------------------------------------------------------------------
# Data pipeline
# ---------------------------------------------------------------------------------------------------------------------


def test_sampler_buckets_shards_and_is_deterministic() -> None:
    lengths = np.random.default_rng(0).uniform(1, 10, size=103)
    sampler = LengthBucketBatchSampler(lengths, batch_size=4, num_processes=3, seed=7, bucket_batches=4)
    assert len(sampler) == 24  # 25 full batches rounded down to a multiple of 3 processes
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    assert epoch0 == list(sampler) and len(epoch0) == len(sampler)
    assert all(len(batch) == 4 for batch in epoch0)
    positions = [p for batch in epoch0 for p, _ in batch]
    assert len(set(positions)) == len(positions)  # nothing repeated within an epoch
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    # Sorting within chunks: batches are much tighter in length than random batches.
    spread = np.mean([np.ptp(lengths[[p for p, _ in b]]) for b in epoch0])
    assert spread < 0.5 * np.mean([np.ptp(lengths[i : i + 4]) for i in range(0, 100, 4)])
    # Accelerate's sharding gives process r the batches r, r+3, ...: disjoint, equal counts.
    from accelerate.data_loader import BatchSamplerShard

    sampler.set_epoch(0)
    shards = [list(BatchSamplerShard(sampler, num_processes=3, process_index=r)) for r in range(3)]
    assert [len(s) for s in shards] == [8, 8, 8]
    seen = [p for shard in shards for batch in shard for p, _ in batch]
    assert sorted(seen) == sorted(positions)
    # Evaluation: a fixed random sample (not just the shortest items), split across processes, first views only.
    evaluation = [FixedBatchSampler(lengths, 4, max_batches=2, num_processes=3, process_index=r) for r in range(3)]
    assert [len(e) for e in evaluation] == [2, 2, 2] and list(evaluation[0]) == list(evaluation[0])
    picked = [p for e in evaluation for batch in e for p, draw in batch if draw == 0]
    assert len(set(picked)) == 24 and max(lengths[picked]) > 8


@pytest.mark.shared_data
def test_selection_collate_and_views(tiny_data: Path) -> None:
    from ftv_model import FTVProcessor
    from ftv_train.data.dataset_format import load_prepared_dataset

    dataset = load_prepared_dataset(tiny_data, decode_audio=False, decode_faces=False)
    processor = FTVProcessor()
    selection = select_items(dataset["train"], processor.tokenizer, 16000, 256, min_seconds=0.3)
    assert len(selection) == 12 and selection.skipped["more tokens than frames (unalignable)"] == 1
    phonemes = dataset["train"][0]["phonemes"]
    assert count_tokens(processor.tokenizer, phonemes) == processor(phonemes=[phonemes])["input_ids"].shape[1]

    items = FaceSpeechItems(dataset["train"], selection, 16000, multiview=True)
    views = {items[(0, draw)]["view"] for draw in range(6)}
    assert views == {0, 1, 2}
    items.multiview = False
    assert {items[(0, draw)]["view"] for draw in range(6)} == {0}

    collator = FTVCollator(processor, hop_length=256, attributes=("gender", "race"))
    batch = collator([items[(i, 0)] for i in (0, 9)])  # speaker p225 and the unlabelled p228
    assert batch["pixel_values"].shape == (2, 3, 128, 128)
    assert batch["waveform"].shape[0] == 2 and batch["waveform_lengths"].max() == batch["waveform"].shape[1]
    assert batch["race_labels"].tolist()[1] == -100 and batch["gender_labels"].tolist() == [1, 1]
    assert "race_labels" not in FTVCollator(processor, 256, attributes=("gender",))([items[(0, 0)]])
