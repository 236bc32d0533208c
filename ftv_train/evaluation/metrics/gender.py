"""Voice-gender classifier: logistic regression on Resemblyzer embeddings, fitted on real labelled speech.

It stands in for the paper's human gender-classification task (Figure 2): the agreement between the gender a
synthesized voice is classified as and the face's gender label. Saved as plain JSON (no pickle), so a saved
classifier can be loaded safely anywhere and read by eye.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ftv_model.attributes import GENDER_LABELS

from .base import Column, Metric, Record, Results, SplitContext, embeddings_of, fmt, fmt_ci, mean_or_none
from .intervals import proportion_interval

_FORMAT = "ftv-voice-gender-logreg/1"


def _as_label_ids(labels: Sequence[int | str], names: Sequence[str]) -> np.ndarray:
    """Accept ids or names ("male", "F", "female", ...) and return ids into `names`."""
    aliases = {"m": "male", "f": "female", "man": "male", "woman": "female"}
    out = []
    for lab in labels:
        if isinstance(lab, str):
            name = aliases.get(lab.strip().lower(), lab.strip().lower())
            out.append(list(names).index(name))
        else:
            out.append(int(lab))
    return np.asarray(out, dtype=np.int64)


@dataclass
class VoiceGenderClassifier:
    """Binary logistic regression over standardised embeddings; class 1 is `labels[1]`."""

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    labels: tuple[str, ...] = GENDER_LABELS
    info: dict = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        embeddings: np.ndarray,
        labels: Sequence[int | str],
        c: float = 1.0,
        names: Sequence[str] = GENDER_LABELS,
        info: dict | None = None,
    ) -> VoiceGenderClassifier:
        """Fit on real speech; C=1 L2 regularisation keeps it from memorising the few training speakers."""
        from sklearn.linear_model import LogisticRegression

        x = np.asarray(embeddings, dtype=np.float64)
        y = _as_label_ids(labels, names)
        keep = y >= 0
        x, y = x[keep], y[keep]
        if len(set(y.tolist())) < 2:
            raise ValueError("The gender classifier needs real speech of both genders to fit")
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
        model.fit((x - mean) / scale, y)
        meta = {"num_utterances": int(len(y)), "class_counts": np.bincount(y, minlength=2).tolist()}
        return cls(
            model.coef_[0].copy(), float(model.intercept_[0]), mean, scale, tuple(names), {**meta, **(info or {})}
        )

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Probability of `labels[1]` for each embedding."""
        z = ((np.asarray(embeddings, dtype=np.float64) - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        return (self.predict_proba(embeddings) >= 0.5).astype(np.int64)

    def accuracy(self, embeddings: np.ndarray, labels: Sequence[int | str]) -> float:
        """Accuracy over labelled items (missing labels, -1, are ignored)."""
        y = _as_label_ids(labels, self.labels)
        keep = y >= 0
        if not keep.any():
            return float("nan")
        return float(np.mean(self.predict(np.asarray(embeddings)[keep]) == y[keep]))

    def save(self, path: str | Path) -> None:
        payload = {
            "format": _FORMAT,
            "labels": list(self.labels),
            "weights": self.weights.tolist(),
            "bias": self.bias,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "info": self.info,
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> VoiceGenderClassifier:
        payload = json.loads(Path(path).read_text())
        if payload.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a saved voice-gender classifier ({payload.get('format')!r})")
        return cls(
            np.asarray(payload["weights"]),
            float(payload["bias"]),
            np.asarray(payload["mean"]),
            np.asarray(payload["scale"]),
            tuple(payload["labels"]),
            payload.get("info", {}),
        )


def held_out_speaker_accuracy(
    embeddings: np.ndarray,
    labels: Sequence[int | str],
    speakers: Sequence[str],
    num_folds: int = 5,
    seed: int = 0,
) -> float:
    """Accuracy on speakers never seen in fitting (speaker-grouped k-fold): utterance-level splits would let the
    classifier recognise the speaker rather than the gender."""
    y = _as_label_ids(labels, GENDER_LABELS)
    spk = np.asarray([str(s) for s in speakers])
    unique = np.array(sorted(set(spk.tolist())))
    rng = np.random.default_rng(seed)
    folds = np.array_split(rng.permutation(unique), min(num_folds, len(unique)))
    hits, total = 0, 0
    for held in folds:
        test = np.isin(spk, held) & (y >= 0)
        train = ~np.isin(spk, held) & (y >= 0)
        if not test.any() or len(set(y[train].tolist())) < 2:
            continue
        clf = VoiceGenderClassifier.fit(np.asarray(embeddings)[train], y[train])
        hits += int(np.sum(clf.predict(np.asarray(embeddings)[test]) == y[test]))
        total += int(test.sum())
    return hits / total if total else float("nan")


def speaker_majority(agree: Sequence[float], speakers: Sequence[str]) -> float | None:
    """Share of speakers whose utterances mostly agree with their gender label (a tie counts one half)."""
    by_speaker: dict[str, list[float]] = {}
    for value, speaker in zip(agree, speakers):
        by_speaker.setdefault(speaker, []).append(value)
    if not by_speaker:
        return None
    votes = [1.0 if np.mean(v) > 0.5 else 0.5 if np.mean(v) == 0.5 else 0.0 for v in by_speaker.values()]
    return float(np.mean(votes))


class GenderAgreement(Metric):
    """The voice-gender classifier's reading of each utterance against the speaker's gender label, per utterance
    and per speaker; its section says how the classifier was fitted."""

    name = "gender_agreement"

    def split_items(self, records: Sequence[Record], context: SplitContext) -> dict[str, list]:
        if context.classifier is None:
            return {"agree": [], "agree_speakers": []}
        predicted = context.classifier.predict(embeddings_of(records))
        genders = [int(r.get("gender", -1)) for r in records]
        labelled = [(float(p == g), r["speaker"]) for p, g, r in zip(predicted, genders, records) if g >= 0]
        return {"agree": [a for a, _ in labelled], "agree_speakers": [s for _, s in labelled]}

    def summarize(self, records: Sequence[Record], items: dict[str, list]) -> dict[str, object]:
        agree = items["agree"]
        return {
            "gender_agreement": mean_or_none(agree),
            "gender_agreement_ci95": proportion_interval(agree),
            "gender_labelled": len(agree),
            "gender_agreement_speakers": speaker_majority(agree, items.get("agree_speakers", [])),
        }

    def columns(self, results: Results) -> list[Column]:
        return [
            Column(
                "Gender agreement (utterances)",
                lambda row: fmt_ci(row["overall"]["gender_agreement"], row["overall"].get("gender_agreement_ci95")),
            ),
            Column(
                "Gender agreement (speakers)", lambda row: fmt(row["overall"].get("gender_agreement_speakers"), ".1%")
            ),
        ]

    def split_columns(self, results: Results) -> list[Column]:
        return [Column("Gender agr.", lambda summary: fmt(summary["gender_agreement"], ".1%"))]

    def note(self, results: Results) -> str:
        return (
            "Gender agreement: a voice-gender classifier on the audio agrees with the speaker's gender label, per "
            "utterance and per speaker (the majority of a speaker's utterances)."
        )

    def section(self, results: Results) -> list[str]:
        classifier = results.get("gender_classifier")
        lines = ["## Voice-gender classifier", ""]
        if classifier:
            lines.append(
                "Logistic regression on Resemblyzer embeddings of real speech"
                + (
                    f" from `{classifier['fit_split']}` ({classifier['num_speakers']} speakers)"
                    if "fit_split" in classifier
                    else ""
                )
                + f"; accuracy on held-out speakers: {fmt(classifier.get('held_out_speaker_accuracy'), '.1%')}. "
                "Its agreement on the ground-truth row is its accuracy on this split's real speech."
            )
        else:
            lines.append("No classifier (no labelled real speech of both genders to fit it on): gender agreement n/a.")
        lines.append("")
        return lines
