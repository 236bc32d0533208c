"""Speaker similarity (SECS): cosine similarity x100 between Resemblyzer embeddings, as in the paper (Table 2).

Resemblyzer embeds one utterance at a time; here every utterance of a batch is cut into its 1.6 s partials
first and all partials go through the LSTM together, which is what makes SECS cheap on large splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ftv_train.common.audio import SAMPLE_RATE, prepare_batch
from ftv_train.evaluation.metrics.base import (
    Column,
    Metric,
    MetricSettings,
    Record,
    Results,
    SplitContext,
    UtteranceText,
    embeddings_of,
    fmt,
    mean_or_none,
)

EMBEDDING_DIM = 256
# Resemblyzer's own defaults for embed_utterance: partials per second and the coverage needed to keep the last one.
_PARTIAL_RATE = 1.3
_MIN_COVERAGE = 0.75
# Below this many samples after VAD trimming, fall back to the untrimmed clip (very short or odd synthetic audio).
_MIN_TRIMMED = SAMPLE_RATE // 4
_TARGET_DBFS = -30  # Resemblyzer's audio_norm_target_dBFS
_SILENCE_RMS = 1e-5  # quieter than this there is no voice to embed (and volume normalisation would divide by 0)


def _import_resemblyzer():
    """Import Resemblyzer with a message that says how to fix the one known breakage."""
    try:
        from resemblyzer import VoiceEncoder, audio
    except ModuleNotFoundError as err:  # pragma: no cover - depends on the environment
        if err.name == "pkg_resources":
            raise ImportError(
                "Resemblyzer's VAD dependency `webrtcvad` imports pkg_resources, which recent setuptools removed. "
                "Install `webrtcvad-wheels` (pinned in requirements.txt), which provides the same module without it."
            ) from err
        raise
    return VoiceEncoder, audio


class SpeakerEncoder:
    """Resemblyzer d-vector encoder (weights ship inside the PyPI package), batched over utterances."""

    name = "resemblyzer"

    def __init__(
        self, device: str | torch.device = "cpu", weights_path: str | Path | None = None, partial_batch_size: int = 64
    ) -> None:
        voice_encoder_cls, self._audio = _import_resemblyzer()
        self.device = torch.device(device)
        self.encoder = voice_encoder_cls(device=self.device, verbose=False, weights_fpath=weights_path)
        self.encoder.eval()
        self.partial_batch_size = partial_batch_size

    def _preprocess(self, wav: np.ndarray) -> np.ndarray:
        """Resemblyzer's volume normalisation and long-silence trimming, unless trimming leaves almost nothing."""
        trimmed = self._audio.preprocess_wav(wav)
        if len(trimmed) >= _MIN_TRIMMED:
            return trimmed.astype(np.float32)
        return self._audio.normalize_volume(wav, _TARGET_DBFS, increase_only=True).astype(np.float32)

    def _partials(self, wav: np.ndarray) -> list[np.ndarray]:
        wav_slices, mel_slices = self.encoder.compute_partial_slices(len(wav), _PARTIAL_RATE, _MIN_COVERAGE)
        needed = wav_slices[-1].stop
        if needed >= len(wav):
            wav = np.pad(wav, (0, needed - len(wav)))
        mel = self._audio.wav_to_mel_spectrogram(wav)
        return [mel[s] for s in mel_slices]

    def embed(self, wavs: Sequence[np.ndarray | torch.Tensor], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """L2-normalised utterance embeddings (N, 256); a silent clip gives a zero row (SECS 0, never NaN)."""
        wavs = prepare_batch(wavs, sample_rate)
        if not wavs:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        partials: list[np.ndarray] = []
        owners: list[int] = []
        for i, wav in enumerate(wavs):
            if len(wav) == 0 or float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) < _SILENCE_RMS:
                continue  # stays a zero row
            parts = self._partials(self._preprocess(wav))
            partials.extend(parts)
            owners.extend([i] * len(parts))
        sums = np.zeros((len(wavs), EMBEDDING_DIM), dtype=np.float64)
        if not partials:
            return sums.astype(np.float32)
        mels = np.stack(partials).astype(np.float32)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(mels), self.partial_batch_size):
                chunk = torch.from_numpy(mels[start : start + self.partial_batch_size]).to(self.device)
                outputs.append(self.encoder(chunk).float().cpu().numpy())
        partial_embeds = np.nan_to_num(np.concatenate(outputs), nan=0.0)
        np.add.at(sums, np.asarray(owners), partial_embeds)
        return l2_normalize(sums).astype(np.float32)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise unit norm; zero rows stay zero instead of turning into NaN."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norms > 0, x / np.maximum(norms, 1e-12), 0.0)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine between matching rows of a and b."""
    return np.sum(l2_normalize(np.atleast_2d(a)) * l2_normalize(np.atleast_2d(b)), axis=-1)


def secs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Speaker encoder cosine similarity on the paper's 0-100 scale, one value per row pair."""
    return 100.0 * cosine_similarity(a, b)


@dataclass
class SpeakerReferences:
    """Real-voice references per speaker, kept as sums so that a leave-one-out centroid costs O(1).

    Leave-one-out matters: scoring the ground-truth row against a centroid that contains the very same
    recording would give a ceiling of ~100 instead of the true same-speaker similarity.
    """

    sums: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    members: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)  # utterance id -> (speaker, embedding)

    @classmethod
    def build(cls, embeddings: np.ndarray, speakers: Sequence[str], ids: Sequence[str]) -> SpeakerReferences:
        refs = cls()
        for emb, spk, uid in zip(np.asarray(embeddings, dtype=np.float64), speakers, ids):
            spk = str(spk)
            refs.sums[spk] = refs.sums.get(spk, 0.0) + emb
            refs.counts[spk] = refs.counts.get(spk, 0) + 1
            refs.members[str(uid)] = (spk, emb)
        return refs

    @property
    def speakers(self) -> list[str]:
        return sorted(self.sums)

    def centroid(self, speaker: str, exclude_id: str | None = None) -> np.ndarray:
        """Unit-norm mean of the speaker's references, leaving out `exclude_id` when another one remains."""
        speaker = str(speaker)
        total, count = self.sums[speaker], self.counts[speaker]
        member = self.members.get(str(exclude_id)) if exclude_id is not None else None
        if member is not None and member[0] == speaker and count > 1:
            total, count = total - member[1], count - 1
        return l2_normalize(np.asarray(total, dtype=np.float64) / count)

    def has_other_than(self, speaker: str, exclude_id: str) -> bool:
        """Whether a leave-one-out centroid for this utterance exists (else it falls back to the full centroid)."""
        member = self.members.get(str(exclude_id))
        excluded = member is not None and member[0] == str(speaker)
        return self.counts.get(str(speaker), 0) > (1 if excluded else 0)


def secs_to_references(
    embeddings: np.ndarray, speakers: Sequence[str], ids: Sequence[str], references: SpeakerReferences
) -> np.ndarray:
    """SECS of each utterance against its target speaker's real voice (leave-one-out centroid)."""
    targets = np.stack([references.centroid(s, exclude_id=i) for s, i in zip(speakers, ids)]) if len(ids) else []
    return secs(np.asarray(embeddings), np.asarray(targets)) if len(ids) else np.zeros(0)


SPLIT_TITLES = {"test_seen": "Seen SECS", "test_unseen": "Unseen SECS"}
TSNE_SYSTEMS = ("ground_truth", "model")  # the paper's figures: real voices next to the model's


class SpeakerSimilarity(Metric):
    """SECS against each speaker's real recordings of the split; its embedding is also what ABX, gender agreement
    and the voice diversity read."""

    name = "secs"
    backend = "speaker"
    backend_title = "speaker encoder"

    def load(self, settings: MetricSettings) -> SpeakerEncoder:
        return SpeakerEncoder(device=settings.device)

    def score(
        self, model: SpeakerEncoder, wavs: Sequence[np.ndarray], utterances: Sequence[UtteranceText]
    ) -> list[Record]:
        return [{"embedding": [round(float(x), 6) for x in emb]} for emb in model.embed(wavs)]

    def split_items(self, records: Sequence[Record], context: SplitContext) -> dict[str, list]:
        speakers, ids = [r["speaker"] for r in records], [r["id"] for r in records]
        return {"secs": secs_to_references(embeddings_of(records), speakers, ids, context.references).tolist()}

    def summarize(self, records: Sequence[Record], items: dict[str, list]) -> dict[str, float | None]:
        values = items["secs"]
        return {"secs": mean_or_none(values), "secs_std": float(np.std(values)) if values else None}

    def columns(self, results: Results) -> list[Column]:
        def per_split(split: str) -> Column:
            return Column(
                SPLIT_TITLES.get(split, f"SECS ({split})"), lambda row: fmt(row["splits"].get(split, {}).get("secs"))
            )

        return [per_split(split) for split in results["config"]["splits"]]

    def split_columns(self, results: Results) -> list[Column]:
        return [Column("SECS", lambda summary: fmt(summary["secs"]))]

    def note(self, results: Results) -> str:
        return (
            "SECS: cosine x100 between the utterance's Resemblyzer embedding and the mean embedding of the target "
            "speaker's *other* real recordings in the split (leave-one-out, so the ground-truth row is a true "
            "ceiling)."
        )

    def plots(self, results: Results, records: dict[str, dict[str, list[Record]]], folder: Path) -> list[Path]:
        """t-SNE of the real and the model's voices (per split, and pooled), and SECS by system."""
        from ftv_train.evaluation.metrics.plots import bar_chart, tsne_plot

        files: list[Path] = []
        systems = results["systems"]
        for system in TSNE_SYSTEMS:
            groups = dict(records.get(system, {}))
            if len(groups) > 1:  # pooled over splits too (the paper shows seen and unseen speakers separately)
                groups["all"] = [r for recs in records[system].values() for r in recs]
            for split, recs in groups.items():
                recs = tsne_subset(recs, results["config"]["tsne_max_speakers"])
                if len({r["speaker"] for r in recs}) < 2 or len(recs) < 4:
                    continue
                emb = np.asarray([r["embedding"] for r in recs])
                title = f"{systems[system]['title']}, {split}: Resemblyzer embeddings (t-SNE)"
                path = folder / f"tsne_{system}_{split}.png"
                files.append(tsne_plot(emb, [r["speaker"] for r in recs], path, title))
        names = list(systems)
        secs_values = [systems[s]["overall"]["secs"] for s in names]
        files.append(bar_chart(names, secs_values, folder / "secs_by_system.png", "SECS", "SECS (0-100)"))
        return files


def tsne_subset(records: list[Record], max_speakers: int) -> list[Record]:
    """The speakers with most utterances, so the figure stays readable on large splits."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r["speaker"]] = counts.get(r["speaker"], 0) + 1
    keep = set(sorted(counts, key=lambda s: (-counts[s], s))[:max_speakers])
    return [r for r in records if r["speaker"] in keep]
