"""The metric models of a run, loaded once and shared by every system and split, and the per-utterance record."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ftv_train.common.audio import SAMPLE_RATE
from ftv_train.evaluation.config import EvalConfig, resolve_device
from ftv_train.evaluation.data import Utterance
from ftv_train.evaluation.metrics.base import Metric, MetricSettings, Record
from ftv_train.evaluation.metrics.comb import CombMeter
from ftv_train.evaluation.metrics.registry import registered_metrics
from ftv_train.evaluation.metrics.speaker import SpeakerEncoder


class MetricSuite:
    """The registered metrics and the models of those that score audio (`scorers`, by backend name)."""

    def __init__(
        self,
        device: str = "cpu",
        recognizer: str = "whisper",
        recognizer_path: str | None = None,
        naturalness: str = "auto",
        utmos_path: str | None = None,
        scorers: Mapping[str, Any] | None = None,
        comb_hz: float = MetricSettings.comb_hz,
    ) -> None:
        """`scorers`: models already loaded (by backend name), reused instead of loading them again."""
        settings = MetricSettings(
            resolve_device(device), recognizer, recognizer_path, naturalness, utmos_path, comb_hz=comb_hz
        )
        self.metrics: list[Metric] = registered_metrics()
        self.scorers: dict[str, Any] = {}
        for metric in self.metrics:
            if metric.backend is not None:
                given = (scorers or {}).get(metric.backend)
                self.scorers[metric.backend] = given if given is not None else metric.load(settings)

    @classmethod
    def from_config(cls, config: EvalConfig) -> MetricSuite:
        return cls(
            config.device,
            config.recognizer,
            config.recognizer_path,
            config.naturalness,
            config.utmos_path,
            comb_hz=config.comb_hz,
        )

    def with_scorer(self, backend: str, scorer: Any) -> MetricSuite:
        """A copy that scores `backend` with another model (the rest shared)."""
        if backend not in self.scorers:
            raise KeyError(f"No metric scores with a {backend!r} backend; these do: {list(self.scorers)}")
        suite = copy.copy(self)
        suite.scorers = {**self.scorers, backend: scorer}
        return suite

    def with_settings(self, comb_hz: float | None = None) -> MetricSuite:
        """This suite, or a copy whose settings-only scorers (no model to load) follow the run's config: a suite
        shared by several runs then measures each model's comb at that model's own frame rate."""
        if comb_hz is None or "comb" not in self.scorers or self.scorers["comb"].frame_rate_hz == comb_hz:
            return self
        return self.with_scorer("comb", CombMeter(comb_hz))

    @property
    def encoder(self) -> SpeakerEncoder:
        """The speaker encoder, which also embeds the real references and the voice-gender classifier's speech."""
        return self.scorers["speaker"]

    @property
    def backends(self) -> dict[str, str]:
        """backend -> the name of the model behind it (e.g. "recognizer" -> "whisper-tiny.en (faster-whisper)")."""
        return {backend: scorer.name for backend, scorer in self.scorers.items()}

    def score(self, wavs: Sequence[np.ndarray], utts: Sequence[Utterance], system: str) -> list[Record]:
        """Per-utterance record: who said what, and each audio metric's fields (embedding, transcript and its
        character errors, naturalness, ...), with the models that scored them."""
        records: list[Record] = [
            {
                "id": utt.id,
                "split": utt.split,
                "speaker": utt.speaker,
                "system": system,
                "text": utt.text,
                "duration_s": round(len(wav) / SAMPLE_RATE, 4),
                "gender": utt.gender,
                "race": utt.race,
                "age": utt.age,
            }
            for utt, wav in zip(utts, wavs)
        ]
        for metric in self.metrics:
            if metric.backend is not None:
                for record, fields in zip(records, metric.score(self.scorers[metric.backend], wavs, utts)):
                    record.update(fields)
        backends = {f"{backend}_backend": name for backend, name in self.backends.items()}
        return [{**record, **backends} for record in records]
