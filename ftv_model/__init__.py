"""ftv_model: face-to-voice speech synthesis as a transformers-style model.

Importing it registers the `ftv` model type with transformers' Auto classes (AutoConfig, AutoModel,
AutoTokenizer, AutoImageProcessor, AutoProcessor).
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor, AutoTokenizer

from .configuration_ftv import FTVConfig
from .discriminator import FTVDiscriminator
from .image_processing_ftv import FTVImageProcessor
from .loading import BUNDLED_CHECKPOINT
from .modeling_ftv import FTVModel, FTVModelOutput, FTVPreTrainedModel, FTVTrainingOutput
from .processing_ftv import FTVProcessor
from .text_frontend import TextFrontendError
from .tokenization_ftv import FTVTokenizer

AutoConfig.register(FTVConfig.model_type, FTVConfig, exist_ok=True)
AutoModel.register(FTVConfig, FTVModel, exist_ok=True)
AutoTokenizer.register(FTVConfig, slow_tokenizer_class=FTVTokenizer, exist_ok=True)
AutoImageProcessor.register(FTVConfig, slow_image_processor_class=FTVImageProcessor, exist_ok=True)
AutoProcessor.register(FTVConfig, FTVProcessor, exist_ok=True)

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
]
