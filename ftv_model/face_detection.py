"""Face detection and THE face crop, shared by data preparation, the app and the CLI.

The model is trained on crops made by `crop_face` from boxes found by `FaceDetector`, and the app must feed it
crops made the same way, so both live here and nowhere else. Typical use::

    detector = FaceDetector()                    # "auto": S3FD if its weights are local, else an offline detector
    image = load_image("photo.jpg")              # EXIF-rotated RGB
    boxes = detector.detect(image)               # largest face first
    face = crop_face(image, boxes[0])            # 128 x 128 RGB, the model's input

Backends:

- ``s3fd``: S3FD (Zhang et al., 2017) through the face-alignment package, the paper's detector. Its weights are a
  download (`S3FD_WEIGHTS_URL`); pass ``weights_path``, set ``FTV_S3FD_WEIGHTS``, or put the file in torch hub's
  checkpoint cache. Batched on the GPU by `FaceDetector.detect_batch`.
- ``dlib``: dlib's HOG frontal-face detector, whose model is compiled into dlib (dlib-bin wheel): fully offline.
  With ``weights_path`` pointing to ``mmod_human_face_detector.dat`` it runs dlib's CNN detector instead. HOG misses
  faces under about 80 px (12 of the first 40 FairFace photos, street photos with 40 px faces); where it finds none,
  dlib's CNN detector (``mmod_human_face_detector.dat`` from the face-recognition-models package, found there
  automatically) looks again on the photo scaled to at most `SMALL_FACE_SIDE` px: it found all 40, at about 0.4 s
  for a 160 px photo (``small_face_fallback=False`` turns it off; the offline corpus keeps its crops that way).
- ``haar``: OpenCV's Haar cascade shipped inside opencv-python: offline, fast, least accurate.
- ``auto``: ``s3fd`` when its weights exist locally, else ``dlib``, else ``haar``.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "BACKENDS",
    "DEFAULT_FACE_SIZE",
    "DEFAULT_MARGIN",
    "S3FD_WEIGHTS_ENV",
    "S3FD_WEIGHTS_URL",
    "SMALL_FACE_SIDE",
    "DetectorUnavailableError",
    "FaceBox",
    "FaceDetectionError",
    "FaceDetector",
    "crop_face",
    "crop_largest_face",
    "load_image",
    "packaged_cnn_weights",
]

BACKENDS = ("auto", "s3fd", "dlib", "haar")
DEFAULT_MARGIN = 0.25
DEFAULT_FACE_SIZE = 128
S3FD_WEIGHTS_URL = "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth"
S3FD_WEIGHTS_ENV = "FTV_S3FD_WEIGHTS"
_S3FD_FILENAME = S3FD_WEIGHTS_URL.rsplit("/", 1)[-1]

ImageInput = Image.Image | np.ndarray
SMALL_FACE_SIDE = 256  # the CNN fallback's working size (its time grows with the area: ~0.4 s at 160 px, 2 s at 320)


def packaged_face_model(filename: str) -> Path | None:
    """A model file shipped in the face-recognition-models package (dlib's CNN detector, landmark models, face
    descriptor), found without importing it (its ``__init__`` needs pkg_resources, which new setuptools no longer
    ships); None where the package is missing."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "models" / filename
        if path.is_file():
            return path
    return None


def packaged_cnn_weights() -> Path | None:
    """dlib's CNN face detector weights shipped in the face-recognition-models package, if it is installed."""
    return packaged_face_model("mmod_human_face_detector.dat")


class FaceDetectionError(ValueError):
    """An input that cannot be used: not an image, a corrupt file, or no face where one is needed."""


class DetectorUnavailableError(FaceDetectionError):
    """A detector backend that is not installed or has no weights; the message names the fix."""


@dataclass(frozen=True)
class FaceBox:
    """A face rectangle in pixel coordinates of the image it was found in (right/bottom exclusive)."""

    left: float
    top: float
    right: float
    bottom: float
    score: float = 1.0

    def __post_init__(self) -> None:
        for name in ("left", "top", "right", "bottom", "score"):  # backends hand out ints and numpy scalars
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2

    def scaled(self, factor: float) -> FaceBox:
        """The same box in an image resized by `factor` (detectors run on downscaled copies of big photos)."""
        return FaceBox(self.left * factor, self.top * factor, self.right * factor, self.bottom * factor, self.score)

    def to_dict(self) -> dict[str, float]:
        return {"left": self.left, "top": self.top, "right": self.right, "bottom": self.bottom, "score": self.score}


# --------------------------------------------------------------------------------------------------------------------
# Images


def load_image(source: str | os.PathLike[str] | bytes | bytearray | io.IOBase | ImageInput) -> Image.Image:
    """Load anything image-like as an upright RGB PIL image.

    Accepts a path, raw bytes, a binary file object, a PIL image or an HxW / HxWx3 / HxWx4 uint8 array (RGB order).
    EXIF orientation is applied (phone photos are stored sideways), greyscale, palette, CMYK and alpha images become
    RGB (alpha composited on white, so transparent backgrounds do not turn black). Raises `FaceDetectionError` for a
    missing file, a file that is not an image, or a truncated/corrupt one.
    """
    if isinstance(source, np.ndarray):
        return _array_to_image(source)
    if isinstance(source, Image.Image):
        try:
            source.load()
            return _upright_rgb(source)
        except (OSError, SyntaxError, ValueError) as error:
            raise FaceDetectionError(
                f"The image is corrupt or truncated ({error}): save or export the photo again (or take another) and "
                "upload that."
            ) from error
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise FaceDetectionError("The image is empty (0 bytes).")
        handle: Any = io.BytesIO(bytes(source))
        name = "The image data"
    elif isinstance(source, (str, os.PathLike)):
        handle = Path(source)
        if not handle.is_file():
            raise FaceDetectionError(f"No such image file: {handle}.")
        name = str(handle)
    elif hasattr(source, "read"):
        handle, name = source, "The image stream"
    else:
        raise FaceDetectionError(f"Cannot read an image from a {type(source).__name__}.")
    try:
        with Image.open(handle) as opened:
            opened.load()  # decode now, so corrupt or truncated data fails here and not later
            return _upright_rgb(opened)
    except UnidentifiedImageError as error:
        raise FaceDetectionError(f"{name} is not an image (or not in a format Pillow can read).") from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise FaceDetectionError(
            f"{name} is corrupt or truncated ({error}): save or export the photo again (or take another) and use that."
        ) from error


def _upright_rgb(image: Image.Image) -> Image.Image:
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block must not make an otherwise fine photo unusable
        upright = image
    rgb = _to_rgb(upright)
    return rgb.copy() if rgb is image else rgb


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() if array.size else 0.0
        scaled = (array / peak * 255.0) if peak > 0 else array
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def _array_to_image(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and 0.0 <= array.min() and array.max() <= 1.0:
            array = (array * 255.0).round().astype(np.uint8)
        else:
            raise FaceDetectionError(f"Image arrays must be uint8 (or floats in [0, 1]), got {array.dtype}.")
    if array.ndim == 2:
        return Image.fromarray(array).convert("RGB")
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        if array.shape[2] == 1:
            return Image.fromarray(array[:, :, 0]).convert("RGB")
        return _to_rgb(Image.fromarray(np.ascontiguousarray(array)))
    raise FaceDetectionError(f"Image arrays must be HxW or HxWx{{1,3,4}}, got shape {array.shape}.")


def _as_rgb_array(image: ImageInput) -> np.ndarray:
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    return np.asarray(load_image(image))


# --------------------------------------------------------------------------------------------------------------------
# The crop


def crop_face(
    image: ImageInput, box: FaceBox, margin: float = DEFAULT_MARGIN, size: int = DEFAULT_FACE_SIZE
) -> Image.Image:
    """THE face crop the model is trained on and fed at inference: a square around the face, resized.

    The square is centred on the box centre, its side is ``max(width, height) * (1 + 2 * margin)`` (so the default
    margin adds a quarter of the face size on every side, keeping hair, jaw and ears that carry voice cues), and
    parts of it that fall outside the image are filled by repeating the edge pixels (no black bars for the encoder
    to latch onto). The result is resized to ``size`` x ``size`` RGB with an antialiasing filter. Data preparation
    and the app both call this function, so training and inference crops match exactly.
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    pixels = _as_rgb_array(image)
    height, width = pixels.shape[:2]
    side = max(box.width, box.height) * (1.0 + 2.0 * margin)
    if not np.isfinite(side) or side < 1.0:
        raise FaceDetectionError(f"The face box {box} is empty.")
    center_x, center_y = box.center
    side_px = max(1, int(round(side)))
    left = int(round(center_x - side_px / 2))
    top = int(round(center_y - side_px / 2))
    right, bottom = left + side_px, top + side_px
    pad_left, pad_top = max(0, -left), max(0, -top)
    pad_right, pad_bottom = max(0, right - width), max(0, bottom - height)
    inner = pixels[max(0, top) : min(height, bottom), max(0, left) : min(width, right)]
    if inner.size == 0:
        raise FaceDetectionError(f"The face box {box} lies outside the {width}x{height} image.")
    if pad_left or pad_top or pad_right or pad_bottom:
        inner = np.pad(inner, ((pad_top, pad_bottom), (pad_left, pad_right), (0, 0)), mode="edge")
    crop = Image.fromarray(inner)
    if crop.size != (size, size):
        crop = crop.resize((size, size), Image.Resampling.LANCZOS)
    return crop


# --------------------------------------------------------------------------------------------------------------------
# Backends


def _local_s3fd_weights(weights_path: str | os.PathLike[str] | None) -> Path | None:
    """Where S3FD weights are on this machine without downloading: the argument, the env var, torch hub's cache."""
    candidates: list[Path] = []
    if weights_path:
        candidates.append(Path(weights_path))
    if os.environ.get(S3FD_WEIGHTS_ENV):
        candidates.append(Path(os.environ[S3FD_WEIGHTS_ENV]))
    try:
        import torch.hub

        candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / _S3FD_FILENAME)
    except ImportError:
        pass
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


class _S3FD:
    """S3FD via face-alignment: the paper's detector. Downloads its weights only when none are local."""

    name = "s3fd"

    def __init__(self, weights_path: str | os.PathLike[str] | None, device: str, threshold: float) -> None:
        try:
            import torch
            from face_alignment.detection.sfd.net_s3fd import s3fd
        except ImportError as error:
            raise DetectorUnavailableError(
                f"The s3fd detector needs face-alignment ({error}): `pip install face-alignment==1.5.0`, "
                "or use the offline detector: --detector dlib (FaceDetector(backend='dlib'))."
            ) from error
        if weights_path is not None and not Path(weights_path).is_file():
            raise DetectorUnavailableError(
                f"No S3FD weights at {weights_path}. Download {S3FD_WEIGHTS_URL} there, "
                "or use the offline detector: --detector dlib."
            )
        local = _local_s3fd_weights(weights_path)
        try:
            if local is not None:
                state = torch.load(local, map_location="cpu", weights_only=True)
            else:  # the real loading path; fails fast without internet
                state = torch.hub.load_state_dict_from_url(S3FD_WEIGHTS_URL, map_location="cpu", progress=False)
        except Exception as error:
            where = local or S3FD_WEIGHTS_URL
            raise DetectorUnavailableError(
                f"Could not load the S3FD weights from {where} ({type(error).__name__}: {error}). Download "
                f"{S3FD_WEIGHTS_URL} and pass its path (--detector-weights PATH, FaceDetector(weights_path=...), "
                f"or ${S3FD_WEIGHTS_ENV}), or use the offline detector: --detector dlib."
            ) from error
        self.torch = torch
        self.device = torch.device(device)
        self.threshold = threshold
        self.net = s3fd()
        self.net.load_state_dict(state)
        self.net.to(self.device).eval()
        self.weights = local

    def detect_many(self, arrays: Sequence[np.ndarray]) -> list[list[FaceBox]]:
        from face_alignment.detection.sfd.bbox import nms
        from face_alignment.detection.sfd.detect import batch_detect

        results: list[list[FaceBox]] = [[] for _ in arrays]
        # Batch images of equal size together (video frames); on CPU a batch saves little, on GPU it is the win.
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, array in enumerate(arrays):
            groups.setdefault(array.shape, []).append(index)
        batch_size = 16 if self.device.type == "cuda" else 4
        for indices in groups.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = self.torch.from_numpy(np.stack([arrays[i] for i in chunk])).permute(0, 3, 1, 2)
                with self.torch.inference_mode():
                    candidates = batch_detect(self.net, batch.float(), device=str(self.device))
                for row, index in enumerate(chunk):
                    boxes = np.asarray(candidates[row]) if len(candidates) else np.zeros((0, 5))
                    if boxes.size == 0:
                        continue
                    boxes = boxes[nms(boxes, 0.3)]
                    results[index] = [FaceBox(*map(float, b[:4]), score=float(b[4])) for b in boxes]
        return [[b for b in boxes if b.score >= self.threshold] for boxes in results]


class _Dlib:
    """dlib's HOG detector (model compiled into dlib) or, given mmod weights, its CNN detector."""

    name = "dlib"

    def __init__(self, weights_path: str | os.PathLike[str] | None, small_face_fallback: bool = True) -> None:
        try:
            import dlib
        except ImportError as error:
            raise DetectorUnavailableError(
                f"The dlib detector needs dlib ({error}): `pip install dlib-bin` (prebuilt wheels), "
                "or use --detector haar (opencv-python)."
            ) from error
        self.cnn = None
        if weights_path is not None:
            if not Path(weights_path).is_file():
                raise DetectorUnavailableError(
                    f"No dlib CNN weights at {weights_path}: pass mmod_human_face_detector.dat (shipped in the "
                    "face-recognition-models package) or no weights for the HOG detector."
                )
            self.cnn = dlib.cnn_face_detection_model_v1(str(weights_path))
        self.hog = dlib.get_frontal_face_detector()
        fallback = packaged_cnn_weights() if small_face_fallback and self.cnn is None else None
        self.fallback = dlib.cnn_face_detection_model_v1(str(fallback)) if fallback else None

    def _small_faces(self, array: np.ndarray) -> list[FaceBox]:
        """The CNN detector on the photo scaled to at most SMALL_FACE_SIDE px (upsampled once), boxes mapped back."""
        scale = min(1.0, SMALL_FACE_SIDE / max(array.shape[:2]))
        if scale < 1.0:
            size = (max(1, round(array.shape[1] * scale)), max(1, round(array.shape[0] * scale)))
            array = np.asarray(Image.fromarray(array).resize(size, Image.Resampling.BILINEAR))
        boxes = []
        for det in self.fallback(array, 1):
            r = det.rect
            box = FaceBox(r.left(), r.top(), r.right() + 1, r.bottom() + 1, float(det.confidence))
            boxes.append(box.scaled(1.0 / scale) if scale < 1.0 else box)
        return boxes

    def detect_many(self, arrays: Sequence[np.ndarray]) -> list[list[FaceBox]]:
        results = []
        for array in arrays:
            # HOG finds faces down to ~80 px; upsampling small images once lets it find ~40 px faces.
            upsample = 1 if min(array.shape[:2]) < 640 else 0
            boxes: list[FaceBox] = []
            if self.cnn is not None:
                for det in self.cnn(array, upsample):
                    r = det.rect
                    boxes.append(FaceBox(r.left(), r.top(), r.right() + 1, r.bottom() + 1, float(det.confidence)))
            else:
                rects, scores, _ = self.hog.run(array, upsample, 0.0)
                for r, score in zip(rects, scores):
                    boxes.append(FaceBox(r.left(), r.top(), r.right() + 1, r.bottom() + 1, float(score)))
                if not boxes and self.fallback is not None:
                    boxes = self._small_faces(array)
            results.append(boxes)
        return results


class _Haar:
    """OpenCV's frontal-face Haar cascade, shipped inside opencv-python."""

    name = "haar"

    def __init__(self, weights_path: str | os.PathLike[str] | None) -> None:
        try:
            import cv2
        except ImportError as error:
            raise DetectorUnavailableError(
                f"The haar detector needs OpenCV ({error}): `pip install opencv-python-headless`."
            ) from error
        path = (
            Path(weights_path) if weights_path else Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        )
        self.cv2 = cv2
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise DetectorUnavailableError(f"Could not load the Haar cascade {path}.")

    def detect_many(self, arrays: Sequence[np.ndarray]) -> list[list[FaceBox]]:
        results = []
        for array in arrays:
            grey = self.cv2.equalizeHist(self.cv2.cvtColor(array, self.cv2.COLOR_RGB2GRAY))
            min_side = max(24, int(0.08 * min(grey.shape)))
            found = self.cascade.detectMultiScale3(
                grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side), outputRejectLevels=True
            )
            rects, _, weights = found
            boxes = [
                FaceBox(float(x), float(y), float(x + w), float(y + h), float(s))
                for (x, y, w, h), s in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1))
            ]
            results.append(boxes)
        return results


def _dlib_installed() -> bool:
    try:
        import dlib  # noqa: F401
    except ImportError:
        return False
    return True


class FaceDetector:
    """Finds faces; `detect` returns boxes sorted largest first (the speaker is usually the largest face).

    ``backend`` is one of `BACKENDS` (see the module docstring). ``weights_path`` is the local weights file of the
    chosen backend (S3FD ``.pth``, dlib ``mmod_human_face_detector.dat``, or a Haar ``.xml``). ``max_side`` bounds
    the size detection runs at: big photos are downscaled for speed and boxes mapped back. ``min_size`` drops
    faces smaller than that many pixels (too little detail to be a useful training view). ``small_face_fallback``:
    where dlib's HOG finds no face, its CNN detector looks again (see the module docstring). Thread-safe.
    """

    def __init__(
        self,
        backend: str = "auto",
        weights_path: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        *,
        threshold: float = 0.5,
        max_side: int = 1024,
        min_size: float = 0.0,
        small_face_fallback: bool = True,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"Unknown face detector backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
        if backend == "auto":
            if _local_s3fd_weights(weights_path) is not None:
                backend = "s3fd"
            else:
                backend = "dlib" if _dlib_installed() else "haar"
                weights_path = None  # the given path (if any) was meant for s3fd and does not exist
        self.backend = backend
        self.device = device
        self.max_side = max_side
        self.min_size = min_size
        self._lock = threading.Lock()
        if backend == "s3fd":
            self._impl: Any = _S3FD(weights_path, device, threshold)
        elif backend == "dlib":
            self._impl = _Dlib(weights_path, small_face_fallback)
        else:
            self._impl = _Haar(weights_path)

    def __repr__(self) -> str:
        return f"FaceDetector(backend={self.backend!r}, device={self.device!r})"

    def detect(self, image: ImageInput) -> list[FaceBox]:
        """Faces in one image (PIL or HxWx3 uint8 RGB array), largest first; empty when there is none."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[ImageInput]) -> list[list[FaceBox]]:
        """Faces in several images at once (batched on the GPU for s3fd); one largest-first list per image."""
        arrays, scales = [], []
        for image in images:
            array = _as_rgb_array(image)
            scale = 1.0
            longest = max(array.shape[:2])
            if self.max_side and longest > self.max_side:
                scale = self.max_side / longest
                small = Image.fromarray(array).resize(
                    (max(1, round(array.shape[1] * scale)), max(1, round(array.shape[0] * scale))),
                    Image.Resampling.BILINEAR,
                )
                array = np.asarray(small)
            arrays.append(array)
            scales.append(scale)
        if not arrays:
            return []
        with self._lock:
            found = self._impl.detect_many(arrays)
        results = []
        for boxes, scale, array in zip(found, scales, arrays):
            height, width = array.shape[:2]
            kept = []
            for box in boxes:
                clipped = FaceBox(
                    max(0.0, box.left),
                    max(0.0, box.top),
                    min(float(width), box.right),
                    min(float(height), box.bottom),
                    box.score,
                )
                if clipped.width <= 1 or clipped.height <= 1:
                    continue
                if scale != 1.0:
                    clipped = clipped.scaled(1.0 / scale)
                if min(clipped.width, clipped.height) < self.min_size:
                    continue
                kept.append(clipped)
            kept.sort(key=lambda b: (-b.area, -b.score))
            results.append(kept)
        return results


def crop_largest_face(
    image: ImageInput,
    detector: FaceDetector | None = None,
    margin: float = DEFAULT_MARGIN,
    size: int = DEFAULT_FACE_SIZE,
) -> tuple[Image.Image, FaceBox]:
    """Detect faces and return the crop of the largest one with its box; `FaceDetectionError` if there is none.

    The app's one-call path from an uploaded photo to the model's input.
    """
    pil = load_image(image)
    detector = detector or FaceDetector()
    boxes = detector.detect(pil)
    if not boxes:
        raise FaceDetectionError(
            "No face was found in the image: use a clear, front-facing photo with one face in good light."
        )
    return crop_face(pil, boxes[0], margin=margin, size=size), boxes[0]
