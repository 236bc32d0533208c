"""A pretrained face descriptor that holds on real photos: dlib's 128-d face recognition network.

Why: the paper's NesT is trained from scratch; on the 2,400 identities this project can train on offline it reads
gender well on studio photos and unreliably on others, and nothing in it separates one person from another of the
same gender. dlib's ResNet descriptor (``dlib_face_recognition_resnet_model_v1.dat``) was trained on about three
million faces to tell identities apart; a linear probe on it reads gender at 93% on unseen adults. It ships offline,
public domain, in the ``face-recognition-models`` package, with the 5-point landmark model used here to align each
face (eyes level, fixed scale) before it is described. It is used two ways (``FTVConfig.face_descriptor``):

- as a fused input of the face branch (`ftv_model.modeling_ftv`): F = NesT embedding + a learnt projection of the
  descriptor, so the voice can follow the person, not only the gender;
- by the offline corpus (`ftv_train.corpus.build`), whose identity part of each voice is a fixed function of it.

Input is a crop made by `ftv_model.face_detection.crop_face` (the face box is its centre square), so training data,
the app, the CLI and the processor describe exactly the same pixels. The network runs in dlib (not torch) and is not
trained; its weights are read from the package, with a clear error where it is missing.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from .face_detection import DEFAULT_MARGIN, packaged_face_model

DESCRIPTOR_DIM = 128
DESCRIPTOR_NAME = "dlib-resnet-v1"  # the value of FTVConfig.face_descriptor that selects it
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_CACHE_NAME = "face_descriptors.npz"  # beside a dataset: its views' descriptors (`save_cache`)
CHIP_SIZE = 150  # the network's input: an aligned 150 x 150 chip
CHIP_PADDING = 0.25  # dlib's default framing of the chip around the landmarks
LICENCE = (
    "dlib face recognition ResNet v1 and 5-point landmark model (Davis King, dlib.net), public domain (CC0), "
    "shipped in the face-recognition-models package"
)


class FaceDescriptorUnavailableError(ImportError):
    """dlib or the face-recognition-models package (the descriptor's weights) is not installed."""


def _required_file(path: str | os.PathLike[str] | None, filename: str) -> Path:
    found = Path(path) if path is not None else packaged_face_model(filename)
    if found is None or not found.is_file():
        where = f"at {path}" if path is not None else "in the face-recognition-models package"
        raise FaceDescriptorUnavailableError(
            f"The face descriptor needs {filename}, not found {where}: `pip install face-recognition-models dlib-bin` "
            "(scripts/setup.sh installs both), or pass its path."
        )
    return found


def center_box(size: tuple[int, int], margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the face box inside a `crop_face` crop of ``size``: its centre square, the
    crop's side divided by 1 + 2 x margin."""
    width, height = size
    side = min(width, height) / (1.0 + 2.0 * margin)
    left, top = (width - side) / 2.0, (height - side) / 2.0
    return round(left), round(top), round(left + side), round(top + side)


class FaceDescriptor:
    """dlib's 128-d descriptors of face crops: 5-point landmarks in the crop's face box, an aligned chip (eyes level,
    fixed scale), the ResNet. Descriptors of one person lie within about 0.6 of each other (dlib's threshold for
    "same person"), of different people further apart. Thread-safe; load once and reuse (`shared_face_descriptor`).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        landmarks_path: str | os.PathLike[str] | None = None,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        try:
            import dlib
        except ImportError as error:
            raise FaceDescriptorUnavailableError(
                f"The face descriptor needs dlib ({error}): `pip install dlib-bin` (prebuilt wheels)."
            ) from error
        self._dlib = dlib
        self.net = dlib.face_recognition_model_v1(str(_required_file(model_path, DESCRIPTOR_FILE)))
        self.landmarks = dlib.shape_predictor(str(_required_file(landmarks_path, LANDMARKS_FILE)))
        self.margin = margin
        self._lock = threading.Lock()
        self._known: dict[str, np.ndarray] = {}  # pixels_key -> descriptor: precomputed ones (`remember`)
        self._recent = RecentResults()  # the demo's user speaks many texts from one photo: describe it once

    def aligned_chip(self, crop: Image.Image | np.ndarray) -> np.ndarray:
        """The crop's face, aligned by its five landmarks: a ``CHIP_SIZE`` square RGB uint8 array."""
        pixels = np.ascontiguousarray(np.asarray(crop.convert("RGB") if isinstance(crop, Image.Image) else crop))
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"A face crop must be an RGB uint8 image, got shape {pixels.shape} {pixels.dtype}.")
        box = self._dlib.rectangle(*center_box((pixels.shape[1], pixels.shape[0]), self.margin))
        with self._lock:
            shape = self.landmarks(pixels, box)
            return np.asarray(self._dlib.get_face_chip(pixels, shape, size=CHIP_SIZE, padding=CHIP_PADDING))

    def remember(self, descriptors: dict[str, np.ndarray]) -> None:
        """Precomputed descriptors by `pixels_key` (a corpus's ``face_descriptors.npz``): training reads them
        instead of running the network on every step (about 60 ms a face on one core)."""
        with self._lock:
            self._known.update(descriptors)

    def load_cache(self, path: str | os.PathLike[str]) -> int:
        """`remember` the descriptors of a ``face_descriptors.npz`` (keys -> rows); returns how many."""
        with np.load(path) as stored:
            self.remember(dict(zip(stored["keys"].tolist(), stored["descriptors"])))
            return len(stored["keys"])

    def __call__(self, crops: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """Descriptors of face crops, float32 [len(crops), 128] (each of unit-ish norm, about 0.4)."""
        out = np.zeros((len(crops), DESCRIPTOR_DIM), dtype=np.float32)
        arrays = [np.asarray(c.convert("RGB") if isinstance(c, Image.Image) else c) for c in crops]
        keys = [pixels_key(array) for array in arrays]
        for i, key in enumerate(keys):
            found = self._known.get(key)
            out[i] = found if found is not None else self._recent.get(key, out[i])
        todo = [i for i, key in enumerate(keys) if key not in self._known and key not in self._recent]
        if todo:
            chips = [self.aligned_chip(arrays[i]) for i in todo]
            with self._lock:
                vectors = self.net.compute_face_descriptor(chips)
            out[todo] = np.asarray([np.asarray(v) for v in vectors], dtype=np.float32).reshape(len(todo), -1)
            for i in todo:
                self._recent.put(keys[i], out[i].copy())
        return out


class RecentResults:
    """A thread-safe map of the last `size` results by key (least recently used dropped first): a reader's output
    for a photo it has just read."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def pixels_key(pixels: np.ndarray | Image.Image) -> str:
    """The cache key of a crop: a hash of its RGB pixels and shape (the same for a PNG and its decoded image)."""
    array = np.ascontiguousarray(np.asarray(pixels.convert("RGB") if isinstance(pixels, Image.Image) else pixels))
    return hashlib.sha1(f"{array.shape}".encode() + array.tobytes()).hexdigest()


def save_cache(path: str | os.PathLike[str], descriptors: dict[str, np.ndarray]) -> None:
    """Write descriptors by `pixels_key` as ``.npz`` (keys, descriptors) for `FaceDescriptor.load_cache`."""
    keys = sorted(descriptors)
    rows = np.stack([descriptors[k] for k in keys]) if keys else np.zeros((0, DESCRIPTOR_DIM))
    np.savez(path, keys=np.asarray(keys), descriptors=rows.astype(np.float32))


class DescriptorFusion(nn.Module):
    """Descriptor (.., D) -> an addition to F (.., E): LayerNorm, a hidden layer, and an output layer that starts at
    zero, so a model given this branch speaks exactly as before until training moves it."""

    def __init__(self, descriptor_size: int, hidden_size: int, embedding_size: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(descriptor_size)
        self.hidden = nn.Linear(descriptor_size, hidden_size)
        self.out = nn.Linear(hidden_size, embedding_size)
        self.out._ftv_zero_init = True  # FTVPreTrainedModel._init_weights keeps this layer at zero
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, descriptors: torch.Tensor) -> torch.Tensor:
        return self.out(nn.functional.gelu(self.hidden(self.norm(descriptors))))


_SHARED: dict[tuple, FaceDescriptor] = {}
_SHARED_LOCK = threading.Lock()


def shared_face_descriptor(margin: float = DEFAULT_MARGIN) -> FaceDescriptor:
    """One loaded descriptor network per process (loading it takes about 0.3 s and 30 MB)."""
    with _SHARED_LOCK:
        key = (margin,)
        if key not in _SHARED:
            _SHARED[key] = FaceDescriptor(margin=margin)
        return _SHARED[key]
