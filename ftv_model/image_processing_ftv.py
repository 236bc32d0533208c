"""FTVImageProcessor: a face crop -> the normalised tensor the face encoder reads.

It expects a face crop as made by `ftv_model.face_detection.crop_face` (a square around the detected face with a
25% margin on each side); detection and cropping belong to the data pipeline and the app, not here. It converts
any PIL/numpy/tensor image to RGB (greyscale, RGBA and EXIF rotation handled), resizes it to `size` x `size`
and normalises it to [-1, 1]. Several photos of one person can be given as a list; they become
(B, N, 3, H, W) `pixel_values` with a `pixel_mask`, and the model averages their embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

ImageLike = Image.Image | np.ndarray | torch.Tensor | str | Path


def to_rgb_image(image: ImageLike) -> Image.Image:
    """Any supported image -> an upright RGB PIL image, or a ValueError that says what is wrong."""
    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as handle:
                handle.load()
                image = handle.copy() if handle.getexif() is None else ImageOps.exif_transpose(handle)
        except FileNotFoundError as error:
            raise ValueError(f"Image file not found: {image}.") from error
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{image} is not a readable image (corrupt or not an image file).") from error
    elif isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[-1] not in (1, 3, 4):
            image = np.moveaxis(image, 0, -1)
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
            raise ValueError(
                f"An image array must be (H, W), (H, W, 3) or (H, W, 4) (or channels first), got shape {array.shape}."
            )
        if array.dtype != np.uint8:
            scale = 255.0 if array.size and float(np.nanmax(array)) <= 1.0 else 1.0
            array = np.clip(np.nan_to_num(array.astype(np.float32)) * scale, 0, 255).astype(np.uint8)
        image = Image.fromarray(array)
    if not isinstance(image, Image.Image):
        raise ValueError(f"Expected a PIL image, a numpy array, a tensor or a path, got {type(image).__name__}.")
    image = ImageOps.exif_transpose(image)
    if image.width < 8 or image.height < 8:
        raise ValueError(f"The image is {image.width}x{image.height}: too small to show a face.")
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


class FTVImageProcessor(BaseImageProcessor):
    """Resize + normalise face crops to the face encoder's input."""

    model_input_names = ["pixel_values", "pixel_mask"]

    def __init__(
        self,
        size: int = 128,
        image_mean: Sequence[float] = (0.5, 0.5, 0.5),
        image_std: Sequence[float] = (0.5, 0.5, 0.5),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.size = int(size["height"] if isinstance(size, dict) else size)
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)

    def _to_array(self, image: ImageLike) -> np.ndarray:
        rgb = to_rgb_image(image).resize((self.size, self.size), Image.Resampling.BICUBIC)
        array = np.asarray(rgb, dtype=np.float32) / 255.0
        array = (array - np.asarray(self.image_mean, np.float32)) / np.asarray(self.image_std, np.float32)
        return array.transpose(2, 0, 1)

    def preprocess(self, images: Any, return_tensors: str | None = "pt", **kwargs: Any) -> BatchFeature:
        """images: one image, a list (one per item), or a list of lists (several photos per item)."""
        if images is None or (isinstance(images, (list, tuple)) and len(images) == 0):
            raise ValueError("No face image given: pass a face photo (PIL image, array or file path).")
        if not isinstance(images, (list, tuple)):
            images = [images]
        nested = any(isinstance(item, (list, tuple)) for item in images)
        if not nested:
            pixel_values = np.stack([self._to_array(image) for image in images])
            return BatchFeature({"pixel_values": pixel_values}, tensor_type=return_tensors)
        groups = [list(item) if isinstance(item, (list, tuple)) else [item] for item in images]
        if any(len(group) == 0 for group in groups):
            raise ValueError("Every item needs at least one face photo.")
        most = max(len(group) for group in groups)
        pixel_values = np.zeros((len(groups), most, 3, self.size, self.size), dtype=np.float32)
        pixel_mask = np.zeros((len(groups), most), dtype=np.int64)
        for i, group in enumerate(groups):
            for j, image in enumerate(group):
                pixel_values[i, j] = self._to_array(image)
                pixel_mask[i, j] = 1
        return BatchFeature({"pixel_values": pixel_values, "pixel_mask": pixel_mask}, tensor_type=return_tensors)
