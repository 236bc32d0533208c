"""Calibration of the face attribute head: temperature scaling fitted on held-out identities, and its error.

Why: the face head is trained to saturation on a few thousand identities, so on faces it has never seen it is right
about 83% of the time while claiming 0.965 on average, and it reads wrong faces at about 0.9. The demo shows these
readings as probabilities, so they must mean what they say. Temperature scaling (Guo et al. 2017) divides the
logits by one number per attribute, fitted by likelihood on identities no training stage saw
(``validation_unseen``, `ftv_train.data.splits`); it never changes which class is read, so the voice is unchanged. The
expected calibration error (ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins,
weighted by how many readings fall in each) is reported before and after, and once more, by `train/evaluate.py`,
on ``test_unseen``.

    python train/calibrate_face_head.py --model checkpoints/ftv-offline --data data/offline --write
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ftv_train.evaluation.arguments import argument_parser, comma_separated, parse_settings
from ftv_train.evaluation.metrics.calibration import expected_calibration_error, reliability_bins

__all__ = [
    "CALIBRATION_FILE",
    "CalibrationConfig",
    "calibrate_face_head",
    "expected_calibration_error",
    "fit_temperature",
    "read_face_attributes",
    "reliability_bins",
]

CALIBRATION_FILE = "face_calibration.json"


def _log_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    from scipy.special import log_softmax

    return log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the negative log-likelihood of softmax(logits / T) (searched over log T)."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise ValueError("No labelled readings to fit a temperature on.")

    def nll(log_t: float) -> float:
        return float(-_log_probabilities(logits, math.exp(log_t))[np.arange(len(labels)), labels].mean())

    result = minimize_scalar(nll, bounds=(math.log(0.05), math.log(100.0)), method="bounded")
    return float(math.exp(result.x))


def _readings(logits: np.ndarray, labels: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(confidence of the class read, 1 where it is the label) per reading, at `temperature`."""
    log_probs = _log_probabilities(logits, temperature)
    return np.exp(log_probs.max(-1)), (log_probs.argmax(-1) == labels).astype(np.float64)


def _summary(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict[str, Any]:
    confidence, correct = _readings(logits, labels, temperature)
    nll = -_log_probabilities(logits, temperature)[np.arange(len(labels)), labels].mean()
    return {
        "nll": float(nll),
        "temperature": round(temperature, 4),
        "readings": len(labels),
        "accuracy": float(correct.mean()),
        "mean_confidence": float(confidence.mean()),
        "ece": expected_calibration_error(confidence, correct),
        "wrong_mean_confidence": float(confidence[correct == 0].mean()) if (correct == 0).any() else None,
        "share_above_0.99": float((confidence > 0.99).mean()),
    }


def read_face_attributes(model: Any, processor: Any, faces: Sequence[Any], batch_size: int = 64) -> dict[str, Any]:
    """Raw (uncalibrated) face attribute logits of each face, as numpy arrays per attribute."""
    import torch

    out: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        for start in range(0, len(faces), batch_size):
            batch = list(faces[start : start + batch_size])  # dataset crops
            encoded = processor(images=batch, return_tensors="pt", do_crop_face=False)
            descriptors = encoded.get("face_descriptors")
            scores = encoded.get("face_gender_scores")
            embeddings = model.get_face_embeddings(
                encoded["pixel_values"].to(model.device),
                face_descriptors=None if descriptors is None else descriptors.to(model.device),
                face_gender_scores=None if scores is None else scores.to(model.device),
            )
            for name, logits in model.face_attributes(embeddings).items():
                out.setdefault(name, []).append(logits.float().cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in out.items()}


@dataclass
class CalibrationConfig:
    """One calibration: which model, which held-out identities, and whether to write the temperatures back."""

    model: str = field(metadata={"help": "FTV checkpoint directory"})
    data: str = field(metadata={"help": "prepared dataset with a validation_unseen split"})
    split: str = field(default="validation_unseen", metadata={"help": "held-out identities to fit on"})
    attributes: list[str] = field(
        default_factory=lambda: ["gender", "race"], metadata={"help": "face attributes, comma separated"}
    )
    write: bool = field(
        default=False,
        metadata={"help": "store the temperatures in the model's config.json (+ face_calibration.json beside it)"},
    )
    plot: str | None = field(
        default=None,
        metadata={"help": "write the gender reading's reliability diagram (before / after, every split scored) here"},
    )
    check_splits: list[str] = field(
        default_factory=list,
        metadata={"help": "held-out splits scored (never fitted on) with the fitted temperatures, e.g. test_unseen"},
    )
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads"})

    def __post_init__(self) -> None:
        self.attributes, self.check_splits = comma_separated(self.attributes), comma_separated(self.check_splits)


def _held_out_faces(data: str, split: str) -> tuple[list[Any], dict[str, np.ndarray], list[str]]:
    """The first face of each utterance of `split`, its labels, and its speaker; refuses a split of training
    identities (calibrating on faces the head was trained on makes it more overconfident, not less)."""
    from ftv_train.data.dataset_format import load_prepared_dataset
    from ftv_train.data.splits import HELD_OUT_SPLITS
    from ftv_train.evaluation.data import SplitData

    if split not in HELD_OUT_SPLITS:
        raise ValueError(
            f"Calibrate on identities no training stage saw ({', '.join(HELD_OUT_SPLITS)}), not {split!r}; "
            "model selection and calibration use validation_unseen."
        )
    dataset = load_prepared_dataset(data, decode_audio=False, decode_faces=False)
    if split not in dataset:
        raise ValueError(
            f"{data} has no {split} split: it was prepared before held-out validation identities existed. Rebuild "
            "it (train/make_offline_corpus.py or train/prepare_data.py with the same --seed keeps its training "
            "identities)."
        )
    data_split = SplitData(dataset[split], split)
    faces = data_split.faces([u.index for u in data_split.utterances])
    labels = {
        "gender": np.asarray([u.gender for u in data_split.utterances]),
        "race": np.asarray([u.race for u in data_split.utterances]),
    }
    return faces, labels, [u.speaker for u in data_split.utterances]


def calibrate_face_head(config: CalibrationConfig) -> dict[str, Any]:
    """Fit a temperature per attribute on held-out identities; report ECE before and after; optionally write it."""
    import torch

    from ftv_model import FTVModel, FTVProcessor

    if config.threads:
        torch.set_num_threads(config.threads)
    model = FTVModel.from_pretrained(config.model).eval()
    if model.face_attribute_head is None:
        raise ValueError(f"{config.model} has no face attribute head: nothing to calibrate.")
    processor = FTVProcessor.from_pretrained(config.model)
    faces, labels, speakers = _held_out_faces(config.data, config.split)
    model = model.float()
    logits = read_face_attributes(model, processor, faces)
    results: dict[str, Any] = {}
    temperatures = dict(model.config.face_attribute_temperatures)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in config.attributes:
        if name not in logits:
            continue
        known = labels[name] >= 0
        if known.sum() < 10:
            results[name] = {"skipped": f"only {int(known.sum())} labelled readings"}
            continue
        z, y = logits[name][known], labels[name][known]
        temperature = fit_temperature(z, y)
        temperatures[name] = round(temperature, 4)
        results[name] = {"before": _summary(z, y, 1.0), "after": _summary(z, y, temperature)}
        if name == "gender":
            curves[f"{config.split}, before"] = _readings(z, y, 1.0)
            curves[f"{config.split}, after (T={temperature:.2f})"] = _readings(z, y, temperature)
    checks: dict[str, Any] = {}
    for split in config.check_splits:
        check_faces, check_labels, check_speakers = _held_out_faces(config.data, split)
        check_logits = read_face_attributes(model, processor, check_faces)
        checks[split] = {"identities": len(set(check_speakers)), "attributes": {}}
        for name, result in results.items():
            if "skipped" in result or name not in check_logits:
                continue
            known = check_labels[name] >= 0
            z, y = check_logits[name][known], check_labels[name][known]
            if name == "gender":
                curves[f"{split}, before"] = _readings(z, y, 1.0)
                curves[f"{split}, after"] = _readings(z, y, temperatures[name])
            checks[split]["attributes"][name] = {
                "before": _summary(z, y, 1.0),
                "after": _summary(z, y, temperatures[name]),
            }
    if config.plot and curves:
        from ftv_train.evaluation.metrics.plots import reliability_diagram

        reliability_diagram(curves, config.plot, "Reliability of the gender read from the face")
    report = {
        "config": asdict(config),
        "split": config.split,
        "identities": len(set(speakers)),
        "utterances": len(speakers),
        "temperatures": temperatures,
        "attributes": results,
        "checks": checks,
        "method": "temperature scaling (NLL, scipy bounded search over log T); ECE over 10 equal-width bins",
    }
    if config.write:
        from ftv_model import FTVConfig

        folder = Path(config.model)
        stored = FTVConfig.from_pretrained(folder)
        stored.face_attribute_temperatures = temperatures
        stored.save_pretrained(folder)
        (folder / CALIBRATION_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser([CalibrationConfig], __doc__)
    (config,) = parse_settings(parser, argv)
    try:
        report = calibrate_face_head(config)
    except (ValueError, OSError) as error:
        parser.exit(2, f"error: {error}\n")
    scored = [(report["split"] + " (fitted)", report["identities"], report["attributes"])]
    scored += [(split + " (check)", c["identities"], c["attributes"]) for split, c in report["checks"].items()]
    for where, identities, attributes in scored:
        for name, result in attributes.items():
            if "skipped" in result:
                print(f"{name}: skipped ({result['skipped']})")
                continue
            before, after = result["before"], result["after"]
            print(
                f"{name} on {where} ({identities} identities, {before['readings']} readings): accuracy "
                f"{before['accuracy']:.1%}, T = {after['temperature']:.3f}, ECE {before['ece']:.3f} -> "
                f"{after['ece']:.3f}, mean confidence {before['mean_confidence']:.3f} -> {after['mean_confidence']:.3f}"
            )
    print("written to config.json" if config.write else "not written (pass --write)")
    return 0
