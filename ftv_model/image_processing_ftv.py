"""FTVImageProcessor: a photo of a face -> the normalised tensor the face encoder reads.

The face encoder was trained on crops made by `ftv_model.face_detection.crop_face` (a square around the detected
face with a 25% margin on each side). By default (`do_crop_face=True`) the processor finds the largest face in each
photo with the same offline detector and crop as the app and the CLI, so an ordinary photo gets the app's voice (a
whole FairFace photo passed uncropped was read as the other gender); a photo with no face is a `FaceDetectionError`.
Pipelines that already hold such crops (data preparation, training, evaluation) pass `do_crop_face=False`. It
converts any PIL/numpy/tensor image to RGB (greyscale, RGBA and EXIF rotation handled), resizes it to
`size` x `size` and normalises it to [-1, 1]. Several photos of one person can be given as a list; they become
(B, N, 3, H, W) `pixel_values` with a `pixel_mask`, and the model averages their embeddings.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

from .face_detection import DEFAULT_MARGIN, FaceDetectionError, FaceDetector, crop_face, load_image

ImageLike = Image.Image | np.ndarray | torch.Tensor | str | Path


def to_rgb_image(image: ImageLike) -> Image.Image:
    """Any supported image -> an upright RGB PIL image, or a ValueError that says what is wrong.

    Loading, EXIF rotation and colour conversion are `face_detection.load_image`'s (one loader for the app, the
    data pipeline and the model); this adds tensors (channels first or last) and a minimum size.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[-1] not in (1, 3, 4):
            image = np.moveaxis(image, 0, -1)
    elif not isinstance(image, (Image.Image, np.ndarray, str, Path, bytes, bytearray)) and not hasattr(image, "read"):
        raise ValueError(f"Expected a PIL image, a numpy array, a tensor or a path, got {type(image).__name__}.")
    rgb = load_image(image)
    if rgb.width < 8 or rgb.height < 8:
        raise ValueError(f"The image is {rgb.width}x{rgb.height}: too small to show a face.")
    return rgb


_DETECTOR: dict[str, FaceDetector] = {}
_DETECTOR_LOCK = threading.Lock()


def shared_face_detector() -> FaceDetector:
    """One offline face detector per process, made on first use (the app's: `FaceDetector()`, "auto")."""
    with _DETECTOR_LOCK:
        if "auto" not in _DETECTOR:
            _DETECTOR["auto"] = FaceDetector()
        return _DETECTOR["auto"]


class FTVImageProcessor(BaseImageProcessor):
    """Face photos -> the face encoder's input: find and crop the face (`do_crop_face`), resize, normalise."""

    model_input_names = ["pixel_values", "pixel_mask", "face_descriptors", "face_gender_scores"]

    def __init__(
        self,
        size: int = 128,
        image_mean: Sequence[float] = (0.5, 0.5, 0.5),
        image_std: Sequence[float] = (0.5, 0.5, 0.5),
        do_crop_face: bool = True,
        face_margin: float = DEFAULT_MARGIN,
        face_descriptor: str | None = None,
        face_gender_network: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.size = int(size["height"] if isinstance(size, dict) else size)
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        self.do_crop_face = bool(do_crop_face)
        self.face_margin = float(face_margin)
        # the pretrained descriptor whose output the model fuses into F (FTVConfig.face_descriptor), or None
        self.face_descriptor = face_descriptor
        # the gender network whose scores the model's gender reader reads (FTVConfig.face_gender_reader), or None
        self.face_gender_network = face_gender_network

    def face_crop(self, image: ImageLike) -> Image.Image:
        """The crop the model expects of the largest face in `image` (as the app makes it), or a
        `FaceDetectionError` that says what to do."""
        rgb = to_rgb_image(image)
        boxes = shared_face_detector().detect(rgb)
        if not boxes:
            raise FaceDetectionError(
                "No face was found in the photo: use a clear, front-facing photo of one face in good light. If it is "
                "already a face crop made by ftv_model.face_detection.crop_face, pass do_crop_face=False."
            )
        return crop_face(rgb, boxes[0], margin=self.face_margin, size=self.size)

    def _crop(self, image: ImageLike, do_crop_face: bool = False) -> Image.Image:
        rgb = self.face_crop(image) if do_crop_face else to_rgb_image(image)
        return rgb.resize((self.size, self.size), Image.Resampling.BICUBIC) if rgb.size != (self.size,) * 2 else rgb

    def _to_array(self, rgb: Image.Image) -> np.ndarray:
        array = np.asarray(rgb, dtype=np.float32) / 255.0
        array = (array - np.asarray(self.image_mean, np.float32)) / np.asarray(self.image_std, np.float32)
        return array.transpose(2, 0, 1)

    def _descriptors(self, crops: list[Image.Image]) -> np.ndarray:
        from .face_descriptor import DESCRIPTOR_NAME, shared_face_descriptor

        if (self.face_descriptor or DESCRIPTOR_NAME) != DESCRIPTOR_NAME:
            raise ValueError(f"Unknown face_descriptor {self.face_descriptor!r}; the one known is {DESCRIPTOR_NAME!r}.")
        return shared_face_descriptor(self.face_margin)(crops)

    def _gender_scores(self, crops: list[Image.Image]) -> np.ndarray:
        from .face_gender_reader import GENDER_NETWORK_NAME, shared_gender_network

        if self.face_gender_network != GENDER_NETWORK_NAME:
            raise ValueError(
                f"Unknown face_gender_network {self.face_gender_network!r}; the one known is {GENDER_NETWORK_NAME!r}."
            )
        return shared_gender_network()(crops)

    def preprocess(
        self, images: Any, return_tensors: str | None = "pt", do_crop_face: bool | None = None, **kwargs: Any
    ) -> BatchFeature:
        """images: one image, a list (one per item), or a list of lists (several photos per item).
        `do_crop_face` (default: the processor's own) finds and crops the face in each photo first."""
        crop = self.do_crop_face if do_crop_face is None else bool(do_crop_face)
        if images is None or (isinstance(images, (list, tuple)) and len(images) == 0):
            raise ValueError("No face image given: pass a face photo (PIL image, array or file path).")
        if not isinstance(images, (list, tuple)):
            images = [images]
        nested = any(isinstance(item, (list, tuple)) for item in images)
        if not nested:
            crops = [self._crop(image, crop) for image in images]
            data = {"pixel_values": np.stack([self._to_array(rgb) for rgb in crops])}
            if self.face_descriptor or self.face_gender_network:
                data["face_descriptors"] = self._descriptors(crops)
            if self.face_gender_network:
                data["face_gender_scores"] = self._gender_scores(crops)
            return BatchFeature(data, tensor_type=return_tensors)
        groups = [list(item) if isinstance(item, (list, tuple)) else [item] for item in images]
        if any(len(group) == 0 for group in groups):
            raise ValueError("Every item needs at least one face photo.")
        most = max(len(group) for group in groups)
        pixel_values = np.zeros((len(groups), most, 3, self.size, self.size), dtype=np.float32)
        pixel_mask = np.zeros((len(groups), most), dtype=np.int64)
        crops = []
        for i, group in enumerate(groups):
            for j, image in enumerate(group):
                crops.append(self._crop(image, crop))
                pixel_values[i, j] = self._to_array(crops[-1])
                pixel_mask[i, j] = 1
        data = {"pixel_values": pixel_values, "pixel_mask": pixel_mask}
        if self.face_descriptor or self.face_gender_network:  # the gender reader reads the descriptor too
            flat, k = self._descriptors(crops), 0
            descriptors = np.zeros((len(groups), most, flat.shape[-1]), dtype=np.float32)
            for i, group in enumerate(groups):
                descriptors[i, : len(group)] = flat[k : k + len(group)]
                k += len(group)
            data["face_descriptors"] = descriptors
        if self.face_gender_network:
            flat, k = self._gender_scores(crops), 0
            scores = np.zeros((len(groups), most), dtype=np.float32)
            for i, group in enumerate(groups):
                scores[i, : len(group)] = flat[k : k + len(group)]
                k += len(group)
            data["face_gender_scores"] = scores
        return BatchFeature(data, tensor_type=return_tensors)
