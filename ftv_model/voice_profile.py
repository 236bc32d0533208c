"""Voice profiles: one voice, kept as a small JSON file, spoken again without the photo.

A profile holds what the model needs to speak in one voice and nothing of the face's pixels: the face embedding F
(averaged over the photos used, stored exactly: float32 values written as the shortest decimals that read back to
the same bits), the face head's readings, the synthesis settings and seed, the model's name, revision and weight
fingerprint, and a SHA-256 checksum of all of that. The same profile, text and model give the same audio on every
machine, because synthesis from a profile skips the photo's detection, cropping and encoding altogether.

    profile = model.voice_profile(**processor(images=photo))       # or Synthesizer(...).voice_profile(photo)
    profile.save("my-voice.json")
    model(**processor(text="Hello."), voice=VoiceProfile.load("my-voice.json"))

A profile made with another model (its fingerprint differs) or a damaged file raises `VoiceProfileError`, a
ValueError whose message says what to do.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = "ftv-voice-profile"
VERSION = 1
SUFFIX = ".json"
MAX_PROFILE_BYTES = 1_000_000  # a profile is a few kB; anything far larger is not one
SETTINGS = ("seed", "speaking_rate", "noise_scale", "noise_scale_duration")
# Config entries that never change the audio made from a given F: adding or refitting them keeps profiles valid.
# Settings that do not change how a given F sounds: a profile keeps F itself, so how F is read from a photo (the
# face gender reader, the descriptor's scale) and how it is labelled or adjusted leave saved profiles valid.
VOICE_NEUTRAL_SETTINGS = frozenset(
    {
        "transformers_version",
        "dtype",
        "torch_dtype",
        "face_attribute_temperatures",
        "voice_directions",
        "face_gender_reader",
        "face_descriptor_scale",
    }
)

# Architecture settings added after profiles were first made, with the default that leaves the model as it was: left
# out of the fingerprint at that default, so older profiles stay valid (any other value changes the weights anyway).
SETTINGS_ADDED_LATER = {"mel_adapter": None}

__all__ = ["VoiceProfile", "VoiceProfileError", "model_fingerprint"]


class VoiceProfileError(ValueError):
    """A profile that cannot be used: damaged, not a profile, or made with another model."""


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over the model's weights (names, shapes, float32 values) and its voice-relevant config.

    Computed once and kept on the model; `FTVModel.fold_weight_norm` computes it before folding, so a served
    (folded) model and the same checkpoint loaded for training or scripting share one fingerprint."""
    cached = getattr(model, "_voice_fingerprint", None)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None:
        architecture = {
            k: v
            for k, v in config.to_dict().items()
            if not k.startswith("_")
            and k not in VOICE_NEUTRAL_SETTINGS
            and not (k in SETTINGS_ADDED_LATER and v == SETTINGS_ADDED_LATER[k])
        }
        digest.update(json.dumps(architecture, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    fingerprint = digest.hexdigest()
    model._voice_fingerprint = fingerprint
    return fingerprint


def _exact_floats(values: torch.Tensor | np.ndarray) -> list[float]:
    """float32 values as Python floats; json writes each as the shortest decimal that reads back exactly."""
    array = np.asarray(values.detach().cpu().float() if isinstance(values, torch.Tensor) else values, np.float32)
    return [float(x) for x in array.reshape(-1)]


@dataclass(frozen=True)
class VoiceProfile:
    """One voice: F plus everything else that fixes the audio for a given text (see the module docstring)."""

    face_embedding: tuple[float, ...]
    attributes: dict[str, dict[str, float]] = field(default_factory=dict)
    settings: dict[str, float | int | None] = field(default_factory=dict)
    model: dict[str, str | None] = field(default_factory=dict)
    photos: int = 1
    adjustments: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ making one

    @classmethod
    def from_embedding(
        cls,
        model: torch.nn.Module,
        face_embedding: torch.Tensor,
        *,
        attributes: dict[str, dict[str, float]] | None = None,
        seed: int = 0,
        speaking_rate: float | None = None,
        noise_scale: float | None = None,
        noise_scale_duration: float | None = None,
        photos: int = 1,
        adjustments: dict[str, float] | None = None,
    ) -> VoiceProfile:
        """A profile of F (E,) or (1, E) for `model`; unset settings take the model config's values."""
        if face_embedding.dim() == 2 and face_embedding.shape[0] == 1:
            face_embedding = face_embedding[0]
        size = model.config.face_embedding_size
        if face_embedding.dim() != 1 or face_embedding.shape[0] != size:
            raise VoiceProfileError(
                f"A voice profile holds one face embedding of size {size}, got {tuple(face_embedding.shape)}."
            )
        config = model.config
        settings = {
            "seed": int(seed),
            "speaking_rate": float(config.speaking_rate if speaking_rate is None else speaking_rate),
            "noise_scale": float(config.noise_scale if noise_scale is None else noise_scale),
            "noise_scale_duration": float(
                config.noise_scale_duration if noise_scale_duration is None else noise_scale_duration
            ),
        }
        return cls(
            face_embedding=tuple(_exact_floats(face_embedding)),
            attributes={k: {label: float(p) for label, p in v.items()} for k, v in (attributes or {}).items()},
            settings=settings,
            model={
                "name": str(getattr(config, "_name_or_path", "") or "") or None,
                "revision": getattr(config, "_commit_hash", None),
                "fingerprint": model_fingerprint(model),
            },
            photos=int(photos),
            adjustments=dict(adjustments or {}),
        )

    # ------------------------------------------------------------------ using one

    def check_model(self, model: torch.nn.Module) -> None:
        """Raise unless the profile was made with `model` (same weights and config)."""
        expected = self.model.get("fingerprint")
        if expected != model_fingerprint(model):
            made_with = self.model.get("name") or "an unnamed model"
            raise VoiceProfileError(
                f"This voice profile was made with another model ({made_with}); its voice would come out different "
                "here. Load that model to use it, or make a new profile from the photo with this model."
            )

    def adjusted(self, model: torch.nn.Module, amounts: dict[str, float]) -> VoiceProfile:
        """This voice moved along the model's named directions (`ftv_model.voice_directions`): ``{"pitch": 1.0}``
        is one step higher. Adjustments add up across calls and are recorded in the profile."""
        from .voice_directions import adjust_embedding, check_adjustments

        self.check_model(model)
        directions = model.config.voice_directions
        amounts = check_adjustments(directions, amounts)
        if not amounts:
            return self
        with torch.no_grad():
            moved = adjust_embedding(self.embedding(), directions, amounts)
            readings = model.label_attributes(model.calibrated_face_attributes(moved.to(next(model.parameters()))))
        total = dict(self.adjustments)
        for name, amount in amounts.items():
            total[name] = round(total.get(name, 0.0) + amount, 6)
        return VoiceProfile(
            face_embedding=tuple(_exact_floats(moved[0])),
            attributes=readings[0] if readings else {},
            settings=dict(self.settings),
            model=dict(self.model),
            photos=self.photos,
            adjustments={k: v for k, v in total.items() if v},
        )

    def embedding(self, like: torch.Tensor | None = None) -> torch.Tensor:
        """F as a (1, E) tensor, on `like`'s device and dtype when given."""
        tensor = torch.tensor([self.face_embedding], dtype=torch.float32)
        return tensor if like is None else tensor.to(device=like.device, dtype=like.dtype)

    def with_settings(self, **settings: float | int | None) -> VoiceProfile:
        """A copy with some synthesis settings replaced (None leaves a setting as it is)."""
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise VoiceProfileError(f"Unknown voice settings {sorted(unknown)}; known: {list(SETTINGS)}.")
        merged = {**self.settings, **{k: v for k, v in settings.items() if v is not None}}
        return VoiceProfile(**{**asdict(self), "settings": merged})

    # ------------------------------------------------------------------ files

    def _content(self) -> dict[str, Any]:
        data = asdict(self)
        data["face_embedding"] = list(self.face_embedding)
        return {"format": FORMAT, "version": VERSION, **data}

    @staticmethod
    def _checksum(content: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def to_json(self) -> str:
        content = self._content()
        return json.dumps({**content, "checksum": self._checksum(content)}, indent=1)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile as JSON (a directory gets `ftv-voice.json`); returns the path written."""
        target = Path(path)
        if target.is_dir():
            target = target / f"ftv-voice{SUFFIX}"
        target.write_text(self.to_json(), encoding="utf-8")
        return target

    @classmethod
    def from_json(cls, text: str, source: str = "The voice profile") -> VoiceProfile:
        def damaged(why: str) -> VoiceProfileError:
            return VoiceProfileError(
                f"{source} is damaged or not an ftv voice profile ({why}); save it again from the app or the CLI."
            )

        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise damaged(f"not JSON: {error.msg}") from error
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise damaged("no ftv-voice-profile format tag")
        if data.get("version") != VERSION:
            raise VoiceProfileError(
                f"{source} has profile version {data.get('version')}; this ftv reads version {VERSION}. Update ftv."
            )
        checksum = data.pop("checksum", None)
        if checksum != cls._checksum(data):
            raise damaged("its checksum does not match its content")
        try:
            embedding = tuple(float(x) for x in data["face_embedding"])
            if not embedding or not all(math.isfinite(x) for x in embedding):
                raise ValueError("the face embedding is empty or not finite")
            return cls(
                face_embedding=embedding,
                attributes=dict(data.get("attributes", {})),
                settings=dict(data.get("settings", {})),
                model=dict(data.get("model", {})),
                photos=int(data.get("photos", 1)),
                adjustments=dict(data.get("adjustments", {})),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise damaged(str(error)) from error

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VoiceProfile:
        source = Path(path)
        label = f"The voice profile {source.name}"
        try:
            if source.stat().st_size > MAX_PROFILE_BYTES:
                raise VoiceProfileError(f"{label} is too large to be a voice profile (they are a few kB).")
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError as error:
            raise VoiceProfileError(f"No voice profile at {source}: check the path.") from error
        except (OSError, UnicodeDecodeError) as error:
            raise VoiceProfileError(f"Could not read {label}: {error}") from error
        return cls.from_json(text, label)
