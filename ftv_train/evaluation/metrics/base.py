"""What a metric of the evaluation report is: one class per metric, and the formatting its report cells share.

A metric is one subject from the per-utterance score to the report's cells, so adding one touches one new file and
one line of `registry.METRICS`. It may:

- score audio (``backend`` set): `load` its model once, then `score` each batch of wavs into fields of the
  utterance's cached record (the record also names the model, as ``<backend>_backend``, so a changed model re-scores
  the saved audio);
- add `split_items`: values per utterance that need the split's real references or the voice-gender classifier
  (pooled over the splits for the overall row; a later metric may read an earlier one's items);
- `summarize` the records and items of a split (and of all splits) into keys of metrics.json, and add keys to the
  overall row only (`summarize_overall`);
- give the report columns of the main table (`columns`) and of the per-split table (`split_columns`), a sentence
  under the main table (`note`), a section of its own (`section`) and figures (`plots`).

The report lays these out in the registry's order. Metrics see utterances, records and results as plain objects and
dicts, so this layer needs nothing from the runner above it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

Record = dict[str, Any]  # one utterance of one system, as cached in OUT/cache/<system>/<split>/<id>.json
Results = dict[str, Any]  # everything metrics.json holds: config, backends, systems -> {title, overall, splits}


class UtteranceText(Protocol):
    """What a metric may read of a test utterance besides its audio."""

    id: str
    speaker: str
    text: str


@dataclass(frozen=True)
class MetricSettings:
    """The evaluation settings that choose the metric models (EvalConfig's fields of the same names)."""

    device: str = "cpu"
    recognizer: str = "whisper"
    recognizer_path: str | None = None
    naturalness: str = "auto"
    utmos_path: str | None = None
    comb_hz: float = 22050 / 256  # the decoder's frame rate: sampling_rate / hop_length


@dataclass(frozen=True)
class SplitContext:
    """What a split's records are scored against: its speakers' real voices and the voice-gender classifier."""

    references: Any  # SpeakerReferences of the split's real recordings
    classifier: Any | None  # VoiceGenderClassifier, None when none could be fitted
    abx_k: int = 3
    seed: int = 0


@dataclass(frozen=True)
class Column:
    """One column of a report table: its header and how a row's cell is written."""

    header: str
    cell: Callable[[dict[str, Any]], str]


class Metric:
    """Base class: every hook does nothing, so a metric overrides only what it has."""

    name: ClassVar[str]
    backend: ClassVar[str | None] = None  # key of results["backends"] and of the record's "<backend>_backend"
    backend_title: ClassVar[str] = ""  # how the report's header names the model

    def load(self, settings: MetricSettings) -> Any:
        """The model that scores audio (anything with a `name`), loaded once per run."""
        raise NotImplementedError(f"{self.name} scores no audio")

    def score(self, model: Any, wavs: Sequence[np.ndarray], utterances: Sequence[UtteranceText]) -> list[Record]:
        """Record fields of each utterance of a batch (16 kHz mono float32 wavs)."""
        return [{} for _ in wavs]

    def split_items(self, records: Sequence[Record], context: SplitContext) -> dict[str, list]:
        return {}

    def summarize(self, records: Sequence[Record], items: dict[str, list]) -> dict[str, Any]:
        return {}

    def summarize_overall(
        self, records: Sequence[Record], items: dict[str, list], labels: dict[str, list[str]]
    ) -> dict[str, Any]:
        """Keys of the overall row only; `labels` names the gender and race ids."""
        return {}

    def columns(self, results: Results) -> list[Column]:
        """Main-table columns; a cell gets the system's {"title", "overall", "splits"}."""
        return []

    def split_columns(self, results: Results) -> list[Column]:
        """Per-split-table columns; a cell gets the split's summary."""
        return []

    def note(self, results: Results) -> str:
        """A sentence under the main table that says what the columns measure."""
        return ""

    def section(self, results: Results) -> list[str]:
        """Markdown lines of the metric's own section (none when it has nothing to show)."""
        return []

    def plots(self, results: Results, records: dict[str, dict[str, list[Record]]], folder: Path) -> list[Path]:
        """Figures written into `folder`; `records` is system -> split -> records."""
        return []


def mean_or_none(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def embeddings_of(records: Sequence[Record]) -> np.ndarray:
    return np.asarray([r["embedding"] for r in records], dtype=np.float32)


def fmt(value: float | None, spec: str = ".2f", scale: float = 1.0) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value * scale, spec)


def fmt_ci(value: float | None, interval: Sequence[float] | None, spec: str = ".1%") -> str:
    """The value and its 95% interval, when there is one: 81.0% (72.2-87.5%)."""
    text = fmt(value, spec)
    if value is None or not interval:
        return text
    low, high = format(interval[0], spec), format(interval[1], spec)
    return f"{text} ({low.rstrip('%')}-{high})"
