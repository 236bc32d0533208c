"""FTVProcessor: one object that prepares a face-to-voice request, text and face, for FTVModel."""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, AutoTokenizer, ProcessorMixin
from transformers.feature_extraction_utils import BatchFeature

from .configuration_ftv import FTVConfig
from .image_processing_ftv import FTVImageProcessor
from .loading import raise_checkpoint_error
from .text_frontend import TextFrontendError
from .tokenization_ftv import FTVTokenizer


class FTVProcessor(ProcessorMixin):
    """Wraps FTVTokenizer (text -> phoneme ids) and FTVImageProcessor (face crops -> pixel_values).

    `processor(text=..., images=...)` returns input_ids, attention_mask and pixel_values (plus pixel_mask when
    items have several photos). Photos are searched for the largest face, cropped as the app crops it
    (`do_crop_face=False` for images that already are such crops). Pass `phonemes=` instead of `text=` for
    precomputed IPA strings.
    `max_input_length` bounds the token count with a clear error (split long text into sentences).
    """

    attributes = ["image_processor", "tokenizer"]

    def __init__(
        self,
        image_processor: FTVImageProcessor | None = None,
        tokenizer: FTVTokenizer | None = None,
        max_input_length: int = 1200,
        **kwargs: Any,
    ) -> None:
        image_processor = image_processor if image_processor is not None else FTVImageProcessor()
        tokenizer = tokenizer if tokenizer is not None else FTVTokenizer()
        self.max_input_length = max_input_length
        super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args: Any, **kwargs: Any) -> FTVProcessor:
        register_processing_auto_classes()  # transformers resolves the processor's parts through the Auto classes
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except (OSError, ValueError) as error:
            raise_checkpoint_error(pretrained_model_name_or_path, "processor", error)

    def __call__(  # type: ignore[override]
        self,
        text: str | list[str] | None = None,
        images: Any = None,
        phonemes: str | list[str] | None = None,
        return_tensors: str | None = "pt",
        do_crop_face: bool | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        if text is not None and phonemes is not None:
            raise ValueError("Pass either text or phonemes, not both.")
        data: dict[str, Any] = {}
        source = text if text is not None else phonemes
        if source is not None:
            texts = [source] if isinstance(source, str) else list(source)
            if not texts:
                raise TextFrontendError("No text given: type a sentence to speak.")
            tokenize_kwargs = {"phonemize": False} if phonemes is not None else {}
            encoded = self.tokenizer(texts, padding=True, return_tensors=return_tensors, **tokenize_kwargs)
            lengths = (
                encoded["attention_mask"].sum(-1) if return_tensors else [sum(m) for m in encoded["attention_mask"]]
            )
            longest = int(max(lengths))
            if longest > self.max_input_length:
                raise TextFrontendError(
                    f"The text is too long ({longest} tokens, the limit is {self.max_input_length}): split it into "
                    "sentences and synthesize them one by one or as a batch."
                )
            data.update(encoded)
        if images is not None:
            data.update(self.image_processor(images, return_tensors=return_tensors, do_crop_face=do_crop_face))
        if not data:
            raise ValueError("Nothing to process: give text (or phonemes) and/or images.")
        return BatchFeature(data, tensor_type=return_tensors)

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)


def register_processing_auto_classes() -> None:
    """Register the `ftv` config, tokenizer, image processor and processor with transformers' Auto classes
    (idempotent): `ProcessorMixin.from_pretrained` finds a processor's parts through them. `ftv_model`'s
    `register_auto_classes` adds the model."""
    AutoConfig.register(FTVConfig.model_type, FTVConfig, exist_ok=True)
    AutoTokenizer.register(FTVConfig, slow_tokenizer_class=FTVTokenizer, exist_ok=True)
    AutoImageProcessor.register(FTVConfig, slow_image_processor_class=FTVImageProcessor, exist_ok=True)
    AutoProcessor.register(FTVConfig, FTVProcessor, exist_ok=True)
