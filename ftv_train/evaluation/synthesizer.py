"""The model side of the evaluation: the only code that knows the FTVModel / FTVProcessor API."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from ftv_train.common.audio import resample
from ftv_train.evaluation.cache import digest


class Synthesizer(Protocol):
    """What the runner needs from a model; FTVSynthesizer adapts FTVModel, tests may pass stubs."""

    sampling_rate: int
    signature: str

    def face_embeddings(self, faces: Sequence[Image.Image]) -> np.ndarray: ...

    def synthesize(
        self,
        texts: Sequence[str],
        phonemes: Sequence[str] | None,
        faces: Sequence[Image.Image] | None = None,
        face_embeddings: np.ndarray | None = None,
    ) -> list[np.ndarray]: ...

    def can_reconstruct(self) -> bool: ...

    def reconstruct(
        self, waves: Sequence[np.ndarray], sample_rate: int, faces: Sequence[Image.Image]
    ) -> list[np.ndarray]: ...


def checkpoint_settings(model_dir: str | Path, loaded: dict[str, Any]) -> dict[str, Any]:
    """Every setting of a checkpoint: the loaded config's, plus those its config.json holds that FTVConfig no longer
    reads (the loss weights and discriminator settings moved to training). A checkpoint's stamp then stays the same
    when a setting moves out of FTVConfig, and its cached evaluation stays valid."""
    path = Path(model_dir) / "config.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    return {**saved, **loaded}


class FTVSynthesizer:
    """The only code that knows the FTVModel / FTVProcessor API (kept small so an API change is a local fix)."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "cpu",
        noise_scale: float | None = None,
        noise_scale_duration: float | None = None,
        seed: int = 0,
        speaking_rate: float | None = None,
    ) -> None:
        """None: the model config's own setting, as synthesis uses it."""
        from ftv_model import FTVModel, FTVProcessor

        self.device = torch.device(device)
        self.model = FTVModel.from_pretrained(str(model_dir)).eval().to(self.device)
        self.processor = FTVProcessor.from_pretrained(str(model_dir))
        self.sampling_rate = int(self.model.config.sampling_rate)
        config = self.model.config
        duration_noise = config.noise_scale_duration if noise_scale_duration is None else noise_scale_duration
        self.kwargs: dict[str, Any] = {
            "noise_scale": config.noise_scale if noise_scale is None else noise_scale,
            "noise_scale_duration": duration_noise,
            "seed": seed,
        }
        if speaking_rate is not None:
            self.kwargs["speaking_rate"] = speaking_rate
        weights = sorted(Path(model_dir).glob("*.safetensors")) or sorted(Path(model_dir).glob("*.bin"))
        stamp = [f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in weights]
        # the config too: a setting such as face_flip_average changes the voices without touching the weights
        settings = json.dumps(checkpoint_settings(model_dir, config.to_dict()), sort_keys=True, default=str)
        stamp.append(hashlib.sha256(settings.encode()).hexdigest())
        self.signature = digest({"model": str(Path(model_dir).resolve()), "weights": stamp, **self.kwargs})

    def _text_inputs(self, texts: Sequence[str], phonemes: Sequence[str] | None) -> dict[str, Any]:
        if phonemes is not None and all(phonemes):
            return {"phonemes": list(phonemes)}
        return {"text": list(texts)}

    def _face_tensors(self, faces: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """The processor's face inputs for dataset crops: pixel values, and face descriptors where the model reads
        them."""
        encoded = self.processor(images=list(faces), return_tensors="pt", do_crop_face=False)
        return {key: value.to(self.device) for key, value in encoded.items()}

    def _embed(self, faces: Sequence[Image.Image]) -> torch.Tensor:
        inputs = self._face_tensors(faces)
        return self.model.get_face_embeddings(
            inputs["pixel_values"],
            face_descriptors=inputs.get("face_descriptors"),
            face_gender_scores=inputs.get("face_gender_scores"),
        )

    @torch.inference_mode()
    def face_embeddings(self, faces: Sequence[Image.Image]) -> np.ndarray:
        return self._embed(faces).float().cpu().numpy()

    @torch.inference_mode()
    def face_genders(self, faces: Sequence[Image.Image]) -> list[tuple[str, float]] | None:
        """The gender the model's face attribute head reads from each face, with its calibrated probability (None
        without a head): the voice can only follow the face as far as the face encoder gets the gender right."""
        names = self.model.config.attribute_labels.get("gender")
        if self.model.face_attribute_head is None or not names:
            return None
        logits = self.model.calibrated_face_attributes(self._embed(faces)).get("gender")
        if logits is None:
            return None
        confidence, index = logits.float().softmax(-1).max(-1)
        return [(names[int(i)], float(c)) for i, c in zip(index.tolist(), confidence.tolist())]

    @torch.inference_mode()
    def synthesize(
        self,
        texts: Sequence[str],
        phonemes: Sequence[str] | None,
        faces: Sequence[Image.Image] | None = None,
        face_embeddings: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        inputs = self.processor(
            **self._text_inputs(texts, phonemes), images=faces, return_tensors="pt", do_crop_face=False
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        if face_embeddings is not None:
            inputs.pop("pixel_values", None)
            inputs["face_embeddings"] = torch.as_tensor(face_embeddings, dtype=torch.float32, device=self.device)
        out = self.model(**inputs, **self.kwargs)
        waves = out.waveform.float().cpu().numpy()
        lengths = (
            out.sequence_lengths.cpu().tolist() if out.sequence_lengths is not None else [waves.shape[1]] * len(waves)
        )
        return [w[: int(n)] for w, n in zip(waves, lengths)]

    def can_reconstruct(self) -> bool:
        return self.model.posterior_encoder is not None

    @torch.inference_mode()
    def reconstruct(
        self, waves: Sequence[np.ndarray], sample_rate: int, faces: Sequence[Image.Image]
    ) -> list[np.ndarray]:
        """Copy synthesis of recordings at `sample_rate`, returned at the model's rate."""
        waves = [resample(np.asarray(w, dtype=np.float32), sample_rate, self.sampling_rate) for w in waves]
        lengths = torch.tensor([len(w) for w in waves], device=self.device)
        batch = torch.zeros(len(waves), int(lengths.max()), device=self.device)
        for i, w in enumerate(waves):
            batch[i, : len(w)] = torch.from_numpy(w)
        out = self.model.reconstruct(batch, lengths, **self._face_tensors(faces))
        audio = out.waveform.float().cpu().numpy()
        return [a[: int(n)] for a, n in zip(audio, out.sequence_lengths.cpu().tolist())]
