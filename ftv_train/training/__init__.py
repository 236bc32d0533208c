"""Training an FTVModel: the config, the Accelerate loop (GAN step, checkpoints, logging), warm starts, the face
branch's pretraining, posterior and mel-adapter distillation, voice directions and the model card of an export.

May import `ftv_train.common`, `ftv_train.data` and `ftv_model`.

One module per subject: `config` (TrainConfig and its command line), `trainer` (the loop, `ftv-train`), `gan_step`,
`checkpointing`, `warm_start` (`--init` rules, frozen parameters, `ftv-make-warm-start`), `training_data`,
`validation`, `meters`, `media_logging`, `export`, `model_card`; the stages around it: `face_pretraining`
(`ftv-pretrain-face-encoder`), `posterior_distillation` (`ftv-distill-posterior`), `mel_adapter_distillation`
(`ftv-distill-mel-adapter`), `voice_directions`
(`ftv-fit-voice-directions`). The public names below load lazily, so importing the package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the submodule that defines it
_EXPORTS: dict[str, str] = {
    "CheckpointManager": "checkpointing",
    "ConfigError": "config",
    "DistillationConfig": "posterior_distillation",
    "FacePretrainConfig": "face_pretraining",
    "GANStep": "gan_step",
    "LoopState": "checkpointing",
    "MelAdapterConfig": "mel_adapter_distillation",
    "TrainConfig": "config",
    "Trainer": "trainer",
    "TrainingDivergedError": "trainer",
    "TrainingInterrupted": "trainer",
    "WarmStartError": "warm_start",
    "freeze_parameters": "warm_start",
    "merge_weights": "warm_start",
    "parse_config": "config",
    "pretrain_face_encoder": "face_pretraining",
    "resolve_mixed_precision": "trainer",
    "run_distillation": "posterior_distillation",
    "run_mel_adapter_distillation": "mel_adapter_distillation",
    "train": "trainer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Resolve a public name on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
