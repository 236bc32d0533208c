"""ftv_model: face-to-voice speech synthesis as a transformers-style model.

The package loads lazily (as transformers itself does): `import ftv_model` costs nothing, so the command line's
``--help`` answers at once, and torch and transformers are imported when a class is first used. The `ftv` model type
is registered with transformers' Auto classes (AutoConfig, AutoModel, AutoTokenizer, AutoImageProcessor,
AutoProcessor) at that moment, or at import when transformers is already imported (``from transformers import
AutoModel`` above ``import ftv_model``, the usual import order), or by `register_auto_classes()`.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names resolve to, for type checkers and IDEs
    from .configuration_ftv import FTVConfig
    from .discriminator import FTVDiscriminator
    from .image_processing_ftv import FTVImageProcessor
    from .loading import BUNDLED_CHECKPOINT
    from .modeling_ftv import FTVModel, FTVModelOutput, FTVPreTrainedModel, FTVTrainingOutput
    from .processing_ftv import FTVProcessor
    from .text_frontend import TextFrontendError
    from .tokenization_ftv import FTVTokenizer
    from .voice_profile import VoiceProfile, VoiceProfileError

# public name -> the submodule that defines it
_EXPORTS: dict[str, str] = {
    "BUNDLED_CHECKPOINT": "loading",
    "FTVConfig": "configuration_ftv",
    "FTVDiscriminator": "discriminator",
    "FTVImageProcessor": "image_processing_ftv",
    "FTVModel": "modeling_ftv",
    "FTVModelOutput": "modeling_ftv",
    "FTVPreTrainedModel": "modeling_ftv",
    "FTVProcessor": "processing_ftv",
    "FTVTokenizer": "tokenization_ftv",
    "FTVTrainingOutput": "modeling_ftv",
    "TextFrontendError": "text_frontend",
    "VoiceProfile": "voice_profile",
    "VoiceProfileError": "voice_profile",
}
__all__ = [
    "BUNDLED_CHECKPOINT",
    "FTVConfig",
    "FTVDiscriminator",
    "FTVImageProcessor",
    "FTVModel",
    "FTVModelOutput",
    "FTVPreTrainedModel",
    "FTVProcessor",
    "FTVTokenizer",
    "FTVTrainingOutput",
    "TextFrontendError",
    "VoiceProfile",
    "VoiceProfileError",
    "register_auto_classes",
]
_registered = False


def register_auto_classes() -> None:
    """Register the `ftv` model type with transformers' Auto classes (idempotent; imports torch and transformers)."""
    global _registered
    if _registered:
        return
    _registered = True
    from transformers import AutoModel

    from .configuration_ftv import FTVConfig
    from .modeling_ftv import FTVModel
    from .processing_ftv import register_processing_auto_classes

    register_processing_auto_classes()  # config, tokenizer, image processor, processor
    AutoModel.register(FTVConfig, FTVModel, exist_ok=True)


def __getattr__(name: str) -> Any:
    """Resolve a public name on first use (PEP 562), registering the Auto classes first."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name != "BUNDLED_CHECKPOINT":
        register_auto_classes()
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if "transformers" in sys.modules:
    register_auto_classes()
