"""Writing a prepared dataset and its ``report.json``: the last step of data preparation and of the offline corpus.

Both keep each finished utterance in its own cache folder (``audio.flac``, face files, meta); this turns the records
assigned to the splits into the `datasets.DatasetDict` of `ftv_train.data.dataset_format` and its statistics.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ftv_model.attributes import GENDER_LABELS, MISSING_LABEL, RACE_LABELS
from ftv_train.data.config import PrepareConfig
from ftv_train.data.dataset_format import FEATURES, SPLITS

__all__ = ["build_report", "write_dataset"]


def _examples(records: list[dict], folders: dict[str, Path]) -> Iterator[dict[str, Any]]:
    for meta in records:
        folder = folders[meta["id"]]
        yield {
            "id": meta["id"],
            "speaker": meta["speaker"],
            "text": meta["text"],
            "phonemes": meta["phonemes"],
            "audio": {"bytes": (folder / "audio.flac").read_bytes(), "path": f"{folder.name}.flac"},
            "duration": meta["duration"],
            "faces": [{"bytes": (folder / name).read_bytes(), "path": None} for name in meta["face_files"]],
            "num_views": meta["num_views"],
            "gender": meta["gender"],
            "race": meta["race"],
        }


def write_dataset(by_split: dict[str, list[dict]], folders: dict[str, Path], out: Path, work: Path) -> None:
    """Write the five splits to `out` (replacing any old dataset there) from each record's cached item folder
    (``folders[id]``: ``audio.flac`` and its face files); `work` holds the temporary `datasets` cache."""
    from datasets import Dataset, DatasetDict

    for split in SPLITS:  # a rebuilt dataset replaces the old one entirely
        shutil.rmtree(out / split, ignore_errors=True)
    (out / "dataset_dict.json").unlink(missing_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="hf-cache-", dir=work))
    try:
        splits = {}
        for split in SPLITS:
            records = by_split.get(split, [])
            if records:
                splits[split] = Dataset.from_generator(
                    _examples,
                    features=FEATURES,
                    gen_kwargs={"records": records, "folders": {m["id"]: folders[m["id"]] for m in records}},
                    cache_dir=str(cache),
                )
            else:
                splits[split] = Dataset.from_dict({name: [] for name in FEATURES}, features=FEATURES)
        # one shard at least, or an empty split cannot be loaded back
        DatasetDict(splits).save_to_disk(str(out), num_shards={s: 1 for s in SPLITS if not by_split.get(s)} or None)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _distribution(values: list[int], labels: Sequence[str]) -> dict[str, dict[str, float]]:
    counts = Counter(values)
    total = max(len(values), 1)
    names = [*labels, "missing"]
    ids = [*range(len(labels)), MISSING_LABEL]
    return {name: {"count": counts[i], "percent": round(100.0 * counts[i] / total, 2)} for name, i in zip(names, ids)}


def build_report(
    config: PrepareConfig,
    by_split: dict[str, list[dict]],
    skipped: list[dict],
    discovered: int,
    processed_now: int,
    processing_seconds: float,
    seconds: float,
) -> dict[str, Any]:
    """``report.json``'s content (keys in `ftv_train.data.dataset_format`) for the records written per split."""
    kept = [meta for split in SPLITS for meta in by_split.get(split, [])]
    speakers = {meta["speaker"]: meta for meta in kept}

    def stats(records: list[dict]) -> dict[str, Any]:
        return {
            "utterances": len(records),
            "speakers": len({m["speaker"] for m in records}),
            "hours": round(sum(m["duration"] for m in records) / 3600.0, 4),
        }

    config_dict = dataclasses.asdict(config)
    config_dict["lrs3_subsets"] = list(config.lrs3_subsets)
    return {
        "source": config.source,
        "root": str(config.root),
        "config": config_dict,
        "splits": {split: stats(by_split.get(split, [])) for split in SPLITS},
        "total": stats(kept),
        "gender": {
            "by_utterance": _distribution([m["gender"] for m in kept], GENDER_LABELS),
            "by_speaker": _distribution([m["gender"] for m in speakers.values()], GENDER_LABELS),
        },
        "race": {
            "by_utterance": _distribution([m["race"] for m in kept], RACE_LABELS),
            "by_speaker": _distribution([m["race"] for m in speakers.values()], RACE_LABELS),
        },
        "views_per_utterance": {
            str(n): sum(1 for m in kept if m["num_views"] == n) for n in range(1, config.views + 1)
        },
        "skipped": {
            "count": len(skipped),
            "by_reason": dict(sorted(Counter(m["reason"] for m in skipped).items())),
            "items": [
                {key: m.get(key) for key in ("id", "speaker", "path", "reason", "detail")}
                for m in sorted(skipped, key=lambda m: m["id"])
            ],
        },
        "processing": {
            "discovered": discovered,
            "kept": len(kept),
            "skipped": len(skipped),
            "processed_this_run": processed_now,
            "from_cache": discovered - processed_now,
            "seconds": round(seconds, 2),
            "processing_seconds": round(processing_seconds, 2),
            "clips_per_minute": (
                round(60.0 * processed_now / processing_seconds, 2)
                if processed_now and processing_seconds > 0
                else None
            ),
        },
    }
