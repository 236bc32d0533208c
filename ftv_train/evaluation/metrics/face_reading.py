"""The face head's gender reading: how often it reads the speaker's gender from the photo, how well its confidence is
calibrated, and whether the voice follows what it read.

The runner records, for the systems that speak from a photo, the gender the model's face attribute head read
(``face_gender``, a dataset gender id) and its calibrated confidence (``face_gender_confidence``). The voice can
follow the face only as far as the face encoder reads it, so this splits gender agreement into its two links.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .base import Metric, Record, Results, SplitContext, embeddings_of, fmt, fmt_ci, mean_or_none
from .calibration import expected_calibration_error
from .intervals import proportion_interval

RELIABILITY_SYSTEMS = ("model", "baseline")  # the checkpoints whose face head the reliability diagram shows


def face_readings(records: Sequence[Record]) -> tuple[list[int], list[int | None], list[bool]]:
    """(gender label, the face head's reading, whether it read one) per record; -1 labels are unlabelled."""
    genders = [int(r.get("gender", -1)) for r in records]
    readings = [r.get("face_gender") for r in records]
    return genders, readings, [f is not None and f >= 0 for f in readings]


def face_calibration(confidences: Sequence[float], correct: Sequence[float]) -> dict[str, float | None]:
    """The face head's calibration: its mean confidence against how often it is right, and the ECE (10 bins)."""
    if not confidences or len(confidences) != len(correct):
        return {"face_gender_mean_confidence": None, "face_gender_ece": None}
    return {
        "face_gender_mean_confidence": mean_or_none(confidences),
        "face_gender_ece": expected_calibration_error(confidences, correct),
    }


class FaceGenderReading(Metric):
    """Face-reading accuracy, its calibration, and the voice following the reading (None without a face head)."""

    name = "face_gender"

    def split_items(self, records: Sequence[Record], context: SplitContext) -> dict[str, list]:
        genders, readings, read = face_readings(records)
        face_correct = [float(f == g) for f, g, ok in zip(readings, genders, read) if ok and g >= 0]
        confidences = [r.get("face_gender_confidence") for r in records]
        scored = [(c, float(f == g)) for c, f, g, ok in zip(confidences, readings, genders, read) if ok and g >= 0]
        # a confidence for every reading, or none at all (a synthesizer that reads only names gives none)
        face_confidence = [c for c, _ in scored] if all(c is not None for c, _ in scored) else []
        follows_face: list[float] = []
        if context.classifier is not None:
            predicted = context.classifier.predict(embeddings_of(records))
            follows_face = [float(p == f) for p, f, ok in zip(predicted, readings, read) if ok]
        return {"face_correct": face_correct, "face_confidence": face_confidence, "follows_face": follows_face}

    def summarize(self, records: Sequence[Record], items: dict[str, list]) -> dict[str, object]:
        correct = items.get("face_correct", [])
        return {
            "face_gender_accuracy": mean_or_none(correct),
            "face_gender_accuracy_ci95": proportion_interval(correct),
            **face_calibration(items.get("face_confidence", []), correct),
            "gender_follows_face": mean_or_none(items.get("follows_face", [])),
        }

    def section(self, results: Results) -> list[str]:
        read = {k: v for k, v in results["systems"].items() if v["overall"].get("face_gender_accuracy") is not None}
        if not read:
            return []
        lines = [
            "## Where gender agreement is lost",
            "",
            "| System | Face head reads the label's gender | Its mean confidence | Its ECE | "
            "Voice classed as the gender the face head read | Gender agreement |",
            "|---|---|---|---|---|---|",
        ]
        for row in read.values():
            o = row["overall"]
            lines.append(
                f"| {row['title']} | {fmt_ci(o['face_gender_accuracy'], o.get('face_gender_accuracy_ci95'))} | "
                f"{fmt(o.get('face_gender_mean_confidence'), '.3f')} | {fmt(o.get('face_gender_ece'), '.3f')} | "
                f"{fmt(o.get('gender_follows_face'), '.1%')} | {fmt(o['gender_agreement'], '.1%')} |"
            )
        return lines + [
            "",
            "The model's face attribute head on the face each system spoke from (for shuffled faces, another "
            "speaker's), against the speaker's label, and the voice-gender classifier against that reading. The "
            "voice can follow the face only as far as the face encoder reads it: when both are high, agreement is "
            "about their product. Its confidence is the probability it gives the gender it read, after the model's "
            "calibration (`face_attribute_temperatures`, fitted on validation_unseen by train/calibrate_face_head.py); "
            "ECE: the gap between confidence and accuracy over 10 equal-width confidence bins (0 is perfect).",
            "",
        ]

    def plots(self, results: Results, records: dict[str, dict[str, list[Record]]], folder: Path) -> list[Path]:
        """The reliability diagram of the face head's gender reading, per checkpoint."""
        curves = {}
        for system in RELIABILITY_SYSTEMS:
            recs = [r for recs in records.get(system, {}).values() for r in recs]
            scored = [
                (r["face_gender_confidence"], float(r["face_gender"] == r["gender"]))
                for r in recs
                if r.get("face_gender_confidence") is not None and r.get("face_gender", -1) >= 0 and r["gender"] >= 0
            ]
            if scored:
                curves[results["systems"][system]["title"]] = ([c for c, _ in scored], [k for _, k in scored])
        if not curves:
            return []
        from .plots import reliability_diagram

        return [reliability_diagram(curves, folder / "face_gender_reliability.png", "Face head's gender reading")]
