"""The prepared dataset: its schema, how to load it, and how to decode its audio and faces.

`train/prepare_data.py` writes it; training and evaluation read it with `load_prepared_dataset`. Everything that
depends on the layout goes through this module, so the schema is written down once, here.

Layout of ``OUT/`` (a `datasets.DatasetDict` written with ``save_to_disk(OUT)``)::

    OUT/dataset_dict.json, OUT/{train,validation,validation_unseen,test_seen,test_unseen}/   the five splits
    OUT/report.json                                                        statistics (see below)
    OUT/.work/                                                             resumable per-item cache (deletable)

Splits (deterministic from ``--seed``):

- ``train`` / ``validation``: utterances of the training speakers, 9:1 by utterance;
- ``test_seen``: held-out utterances of training speakers (every such speaker keeps utterances in ``train``);
- ``validation_unseen`` / ``test_unseen``: every utterance of speakers that appear in no other split, in two
  disjoint sets of speakers (`ftv_train.data.splits`): ``validation_unseen`` for every choice made during development
  (early stopping, recipe comparisons, calibration), ``test_unseen`` (LRS3's ``test/`` speakers, or a seeded share
  of the held-out speakers) scored once per released checkpoint. Datasets written before ``validation_unseen``
  existed load without it.

On small corpora each split gets at least one utterance when that is possible (``test_unseen`` needs two or more
speakers, ``test_seen`` a speaker with two or more utterances).

Columns (`FEATURES`):

============  =====================================  ==========================================================
column        type                                   meaning
============  =====================================  ==========================================================
id            string                                 unique utterance id, e.g. ``trainval/0Fi83BHQsMA/00002``
speaker       string                                 speaker id (LRS3: the YouTube id; GRID: ``s1``...)
text          string                                 cleaned transcript (unicode/whitespace normalised)
phonemes      string                                 ``ftv_model.text_frontend.phonemize(text)``: IPA with stress
audio         Audio(sampling_rate=16000)             mono 16 kHz, stored as 16-bit FLAC bytes
duration      float32                                audio length in seconds
faces         List(Image())                          1..views RGB face crops from ``crop_face`` (128x128 by
                                                     default), from different frames, in shuffled order
num_views     int32                                  ``len(faces)``
gender        ClassLabel(GENDER_LABELS)              speaker-wise pseudo-label, -1 when missing
race          ClassLabel(RACE_LABELS)                speaker-wise pseudo-label, -1 when missing
============  =====================================  ==========================================================

``report.json`` keys: ``source``, ``config``, ``splits`` (per split: utterances, speakers, hours), ``total``,
``gender`` and ``race`` (``by_utterance`` and ``by_speaker``: label -> {count, percent}, like the paper's Table 6,
with ``missing``), ``views_per_utterance`` (histogram: views -> utterances), ``skipped`` (count, ``by_reason`` and
``items``: id, speaker, path, reason, detail) and ``processing`` (discovered, kept, cached, seconds, clips/minute).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Audio, ClassLabel, Features, List, Value
from datasets import Image as ImageFeature
from PIL import Image

from ftv_model.attributes import GENDER_LABELS, IGNORE_INDEX, MISSING_LABEL, RACE_LABELS
from ftv_train.common.audio import SAMPLE_RATE, resample

__all__ = [
    "COLUMNS",
    "FEATURES",
    "MISSING_LABEL",
    "REPORT_NAME",
    "SAMPLE_RATE",
    "REQUIRED_SPLITS",
    "SPLITS",
    "PreparedDatasetError",
    "decode_audio",
    "encode_audio",
    "face_images",
    "label_id",
    "label_target",
    "load_prepared_dataset",
    "load_report",
]

SPLITS = ("train", "validation", "validation_unseen", "test_seen", "test_unseen")
# validation_unseen came later (ftv_train.data.splits): a dataset written before it still loads, without that split
REQUIRED_SPLITS = ("train", "validation", "test_seen", "test_unseen")
REPORT_NAME = "report.json"
COLUMNS = ("id", "speaker", "text", "phonemes", "audio", "duration", "faces", "num_views", "gender", "race")


class PreparedDatasetError(ValueError):
    """A folder that is not a dataset written by train/prepare_data.py (or an older, different schema)."""


FEATURES = Features(
    {
        "id": Value("string"),
        "speaker": Value("string"),
        "text": Value("string"),
        "phonemes": Value("string"),
        "audio": Audio(sampling_rate=SAMPLE_RATE),
        "duration": Value("float32"),
        "faces": List(ImageFeature()),
        "num_views": Value("int32"),
        "gender": ClassLabel(names=list(GENDER_LABELS)),
        "race": ClassLabel(names=list(RACE_LABELS)),
    }
)


def encode_audio(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono float audio in [-1, 1] -> 16-bit FLAC bytes (lossless for 16-bit, about half the size of WAV)."""
    import soundfile

    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(wave, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def decode_audio(value: Any, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Any form the ``audio`` column takes -> mono float32 samples at `sample_rate`.

    Handles the raw ``{"bytes", "path"}`` dict (``Audio(decode=False)``, the fast path for training loaders), the
    torchcodec ``AudioDecoder`` that datasets returns by default, ``{"array", "sampling_rate"}`` dicts, and paths.
    Resamples only when the stored rate differs (never, for data written by prepare_data.py).
    """
    import soundfile

    rate: int
    if isinstance(value, dict) and value.get("array") is not None:
        array, rate = np.asarray(value["array"], dtype=np.float32), int(value["sampling_rate"])
    elif isinstance(value, dict) and value.get("bytes"):
        array, rate = soundfile.read(io.BytesIO(value["bytes"]), dtype="float32", always_2d=True)
    elif isinstance(value, dict) and value.get("path"):
        array, rate = soundfile.read(value["path"], dtype="float32", always_2d=True)
    elif isinstance(value, (str, os.PathLike)):
        array, rate = soundfile.read(str(value), dtype="float32", always_2d=True)
    elif hasattr(value, "get_all_samples"):  # torchcodec AudioDecoder
        samples = value.get_all_samples()
        array, rate = samples.data.numpy().T.astype(np.float32), int(samples.sample_rate)
    else:
        raise TypeError(f"Cannot decode audio from a {type(value).__name__}.")
    if array.ndim == 2:
        # soundfile gives (samples, channels); torchcodec was transposed to the same above
        array = array.mean(axis=1) if array.shape[1] > 1 else array[:, 0]
    if rate != sample_rate:
        array = resample(array, rate, sample_rate)
    return np.ascontiguousarray(array, dtype=np.float32)


def label_id(name: str | None, labels: tuple[str, ...]) -> int:
    """The id a label name is stored as in the ``gender``/``race`` columns; `MISSING_LABEL` for any other name."""
    return labels.index(name) if name in labels else MISSING_LABEL


def label_target(value: int) -> int:
    """A stored label id as a loss target: a missing label (-1) becomes `IGNORE_INDEX`, which the losses skip."""
    return IGNORE_INDEX if value < 0 else int(value)


def face_images(value: list[Any]) -> list[Image.Image]:
    """The ``faces`` column (decoded PIL images or raw ``{"bytes", "path"}`` dicts) -> RGB PIL images."""
    images = []
    for face in value:
        if isinstance(face, dict):
            face = Image.open(io.BytesIO(face["bytes"])) if face.get("bytes") else Image.open(face["path"])
        images.append(face.convert("RGB") if face.mode != "RGB" else face)
    return images


def load_prepared_dataset(path: str | os.PathLike[str], decode_audio: bool = True, decode_faces: bool = True):
    """Load and check a dataset written by train/prepare_data.py; returns the `datasets.DatasetDict`.

    ``decode_audio=False`` leaves ``audio`` as FLAC bytes for `decode_audio` (faster in DataLoader workers than
    torchcodec decoders); ``decode_faces=False`` likewise leaves ``faces`` as PNG bytes.
    Raises `PreparedDatasetError` naming what is missing if the folder is not such a dataset.
    """
    from datasets import load_from_disk

    root = Path(path)
    if not (root / "dataset_dict.json").is_file():
        raise PreparedDatasetError(
            f"{root} is not a prepared dataset (no dataset_dict.json): "
            "make one with `python train/prepare_data.py --source ... --root ... --out DIR`."
        )
    dataset = load_from_disk(str(root))
    missing_splits = [split for split in REQUIRED_SPLITS if split not in dataset]
    if missing_splits:
        raise PreparedDatasetError(f"{root} lacks the splits {missing_splits}; rerun train/prepare_data.py.")
    expected = FEATURES
    for split in (split for split in SPLITS if split in dataset):
        columns = dataset[split].column_names
        missing = [column for column in COLUMNS if column not in columns]
        if missing:
            raise PreparedDatasetError(f"{root}/{split} lacks the columns {missing}; rerun train/prepare_data.py.")
        got = dataset[split].features
        for column in ("gender", "race"):
            if list(got[column].names) != list(expected[column].names):
                raise PreparedDatasetError(
                    f"{root}/{split}: {column} labels {got[column].names} differ from {expected[column].names}."
                )
    if not decode_audio:
        dataset = dataset.cast_column("audio", Audio(sampling_rate=SAMPLE_RATE, decode=False))
    if not decode_faces:
        dataset = dataset.cast_column("faces", List(ImageFeature(decode=False)))
    return dataset


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``report.json`` written next to a prepared dataset."""
    return json.loads((Path(path) / REPORT_NAME).read_text())
