"""Import a Piper ONNX voice (VITS trained by Piper, exported for inference) as FTVModel's backbone.

    model, processor = from_piper("en_US-joe-medium.onnx")      # the .onnx.json beside it is found
    convert_piper("en_US-joe-medium.onnx", "ftv-joe-init")      # a save_pretrained directory with a model card

The only module that builds FTV objects from a Piper voice; the model, processor and tokenizer know nothing of
Piper. It reads the voice's graph (`piper_onnx_graph`), renames its weights (`piper_weight_map`) and sizes the
config from the voice (`piper_voice_config`).

An inference export lacks the posterior encoder, the duration predictor's posterior flows and its first conv flow;
FTV's face parts and the discriminator never existed in Piper. Those start fresh, and every face-conditioning
layer starts at zero, so an imported model speaks exactly like the source voice whatever the face.
"""

from __future__ import annotations

import json
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .configuration_ftv import FTVConfig
from .model_card import FTV_CODE_ROW, PIPER_CODE_LICENCE, front_matter, licences_section, quoted
from .modeling_ftv import FTVModel
from .piper_onnx_graph import PathLike, PiperImportError, read_piper_graph
from .piper_voice_config import (
    PIPER_BOS,
    PIPER_EOS,
    PIPER_PAD,
    infer_config_kwargs,
    piper_vocabulary,
    read_piper_settings,
)
from .piper_weight_map import piper_state_dict
from .processing_ftv import FTVProcessor
from .tokenization_ftv import FTVTokenizer
from .vits_import import load_vits_backbone

# Backbone parameters an inference export cannot provide (they start fresh), as name patterns.
FRESH_BACKBONE = {
    r"posterior_encoder\..*": "posterior encoder (training only; an inference export drops it)",
    r"duration_predictor\.post_.*": "duration predictor's posterior flows (training only)",
    r"duration_predictor\.flows\.1\..*": "duration predictor's first conv flow (unused at inference, dropped)",
    r".*\.(cond|cond_layer)\..*": "face (global) conditioning layers of flow, decoder and duration predictor (zero)",
}
FRESH_PARTS = {
    "face_encoder": "NesT face encoder",
    "face_conditioning": "SC-CNN face conditioning (identity at start)",
    "face_projection": "face embedding -> global conditioning projection",
    "face_attribute_head": "face attribute head",
    "audio_attribute_head": "audio attribute head",
}


@dataclass
class PiperImport:
    """What an import did: every ONNX tensor's FTV name, what was left unmapped, and what starts fresh."""

    onnx_path: str
    json_path: str
    settings: dict[str, Any]
    mapped: dict[str, str] = field(default_factory=dict)  # ONNX initializer -> FTV parameter
    unmapped: dict[str, str] = field(default_factory=dict)  # ONNX initializer -> why
    fresh: dict[str, str] = field(default_factory=dict)  # FTV part -> what it is

    def to_dict(self) -> dict[str, Any]:
        return {
            "onnx": self.onnx_path,
            "json": self.json_path,
            "mapped": self.mapped,
            "unmapped": self.unmapped,
            "fresh": self.fresh,
        }


class _TensorSource(nn.Module):
    """Hands a plain name -> tensor dict to `load_vits_backbone`, which converts weight-normed layers."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self._tensors = tensors

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return dict(self._tensors)


def zero_face_conditioning(model: nn.Module) -> None:
    """Make every face path a no-op: global-conditioning `cond` layers output 0, SC-CNN is the identity.

    Weight-normed `cond_layer`s get a zero gain (the direction stays, so training can grow them); plain ones a zero
    weight. Biases are zeroed. The face encoder, projection and heads are untouched: nothing reads them yet.
    """
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.split(".")[-1] not in ("cond", "cond_layer"):
                continue
            parametrizations = getattr(module, "parametrizations", None)
            if parametrizations is not None and "weight" in parametrizations:
                parametrizations.weight.original0.zero_()
            else:
                module.weight.zero_()
            if module.bias is not None:
                module.bias.zero_()
        conditioning = getattr(model, "face_conditioning", None)
        if conditioning is not None:
            channels = conditioning.channels
            conditioning.projection.weight[:channels].zero_()
            conditioning.projection.bias[:channels].zero_()
            conditioning.projection.weight[-channels:].zero_()
            conditioning.projection.bias[-channels:].zero_()


# Inference controls: overriding them is a choice, not a contradiction of the voice.
_SOFT = {"noise_scale", "noise_scale_duration", "speaking_rate", "segment_size"}


def model_from_piper(
    onnx_path: PathLike, json_path: PathLike | None = None, **config_overrides: Any
) -> tuple[FTVModel, PiperImport]:
    """An FTVModel with a Piper voice as its backbone, and the import report.

    config_overrides may set FTVConfig fields the voice does not determine (face encoder, heads); a
    backbone field that contradicts the voice is an error.
    """
    voice = read_piper_graph(onnx_path)  # first: a file that is not ONNX should say so, not ask for a JSON
    settings, settings_path = read_piper_settings(onnx_path, json_path)
    inferred = infer_config_kwargs(voice, settings)
    if max(piper_vocabulary(settings).values()) >= inferred["vocab_size"]:
        raise PiperImportError(
            f"phoneme_id_map uses ids up to {max(piper_vocabulary(settings).values())} but the embedding has "
            f"{inferred['vocab_size']} rows: the .onnx.json does not belong to this .onnx."
        )
    clashes = {k: v for k, v in config_overrides.items() if k in inferred and v != inferred[k] and k not in _SOFT}
    if clashes:
        raise PiperImportError(f"{clashes} contradict the voice's own sizes ({ {k: inferred[k] for k in clashes} }).")
    config = FTVConfig(**{**inferred, **config_overrides})

    state, mapped, unmapped = piper_state_dict(voice)
    model = FTVModel(config)
    untouched = load_vits_backbone(model, _TensorSource(state))
    missing = [name for name in untouched if not any(re.fullmatch(p, name) for p in FRESH_BACKBONE)]
    if missing:
        raise PiperImportError(
            f"The voice did not provide {len(missing)} backbone tensors an inference export has, e.g. {missing[:5]}."
        )
    zero_face_conditioning(model)
    model.eval()

    report = PiperImport(str(onnx_path), str(settings_path), settings, mapped, unmapped)
    for pattern, description in FRESH_BACKBONE.items():
        matching = [name for name in untouched if re.fullmatch(pattern, name)]
        if matching:
            report.fresh[pattern] = f"{description}: {len(matching)} tensors"
    for attribute, description in FRESH_PARTS.items():
        if getattr(model, attribute, None) is not None:
            report.fresh[attribute] = description
    report.fresh["discriminator"] = "multi-period / multi-scale discriminator (train.py builds it)"
    if unmapped:
        listed = "; ".join(f"{name}: {why}" for name, why in sorted(unmapped.items()))
        warnings.warn(f"{len(unmapped)} tensors of {onnx_path} were left unmapped: {listed}", stacklevel=2)
    return model, report


def tokenizer_from_piper(onnx_path: PathLike, json_path: PathLike | None = None) -> FTVTokenizer:
    """FTVTokenizer reproducing Piper's ids: its `phoneme_id_map`, `^ _ p1 _ ... pn _ $`, its espeak-ng voice."""
    settings, _ = read_piper_settings(onnx_path, json_path)
    vocabulary = piper_vocabulary(settings)
    language = settings.get("espeak", {}).get("voice")
    if not language:
        raise PiperImportError("The voice settings name no espeak-ng voice (`espeak.voice`).")
    with tempfile.TemporaryDirectory() as directory:
        vocab_file = Path(directory) / "vocab.json"
        vocab_file.write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
        return FTVTokenizer(
            vocab_file=str(vocab_file),
            language=language,
            add_blank=True,
            bos_symbol=PIPER_BOS,
            eos_symbol=PIPER_EOS,
            pad_token=PIPER_PAD,
            unk_token=PIPER_PAD,
        )


def processor_from_piper(onnx_path: PathLike, json_path: PathLike | None = None, **kwargs: Any) -> FTVProcessor:
    """FTVProcessor with the voice's tokenizer and the default face image processor."""
    return FTVProcessor(tokenizer=tokenizer_from_piper(onnx_path, json_path), **kwargs)


def from_piper(
    onnx_path: PathLike, json_path: PathLike | None = None, **config_overrides: Any
) -> tuple[FTVModel, FTVProcessor]:
    """The model and processor of a Piper voice, as `from_pretrained` gives them for a checkpoint (its tokenizer is
    `processor.tokenizer`). The model speaks exactly like the voice until trained; `config_overrides` set fields the
    voice does not determine (face encoder sizes, heads). `model_from_piper` also returns the import report."""
    model, _ = model_from_piper(onnx_path, json_path, **config_overrides)
    return model, processor_from_piper(onnx_path, json_path, max_input_length=model.config.max_input_length)


# ---------------------------------------------------------------------------------------------------------------------
# Conversion to a save_pretrained directory, with a model card
# ---------------------------------------------------------------------------------------------------------------------


def converted_voice_card(report: PiperImport, config: FTVConfig) -> str:
    """README.md of a converted voice: source, licences, what was imported and what starts fresh."""
    settings = report.settings
    name = Path(report.onnx_path).name
    dataset = settings.get("dataset", "unknown")
    language = settings.get("language", {}).get("code", settings.get("espeak", {}).get("voice", "unknown"))
    quality = settings.get("audio", {}).get("quality", "unknown")
    source_card = Path(report.onnx_path).with_name("MODEL_CARD")
    source_text = source_card.read_text(encoding="utf-8").strip() if source_card.is_file() else ""
    parts: dict[str, int] = {}
    for target in report.mapped.values():
        parts[target.split(".")[0]] = parts.get(target.split(".")[0], 0) + 1
    where = "given in the source model card below" if source_text else "given in the voice's own model card"
    licences = [
        FTV_CODE_ROW,
        ("Piper's code", PIPER_CODE_LICENCE),
        (
            f"the voice `{name}`",
            f"that of its recordings, {where}: check it before you publish anything trained from this model",
        ),
    ]
    lines = [
        front_matter(extra_tags=("piper",)),
        "",
        f"# FTV initialised from the Piper voice `{name}`",
        "",
        f"A face-to-voice (FTV) model whose VITS backbone is the Piper voice `{name}` (dataset `{dataset}`, "
        f"language `{language}`, quality `{quality}`, {config.sampling_rate} Hz), converted by "
        "`python -m ftv_model.convert_piper`. Until it is trained it speaks exactly like that voice, whatever the "
        "face: every face-conditioning layer starts at zero.",
        "",
        *licences_section(licences),
        "## Imported from the voice",
        "",
        *(f"- `{part}`: {count} tensors" for part, count in sorted(parts.items())),
        "",
        f"Architecture read from the voice: hidden {config.hidden_size}, {config.num_hidden_layers} text-encoder "
        f"layers, {config.prior_encoder_num_flows} flows x {config.prior_encoder_num_wavenet_layers} WaveNet layers, "
        f"decoder width {config.upsample_initial_channel}, upsampling {config.upsample_rates} "
        f"(hop {config.hop_length}), residual blocks type {config.resblock_type} with kernels "
        f"{config.resblock_kernel_sizes}, vocabulary {config.vocab_size}.",
        "",
        "## Initialised fresh (an inference export lacks them, or Piper never had them)",
        "",
        *(f"- {description}" for description in report.fresh.values()),
        "",
        "## Inference defaults (Piper's `scales`)",
        "",
        f"noise_scale {config.noise_scale} (Piper noise_scale), noise_scale_duration {config.noise_scale_duration} "
        f"(noise_w), speaking_rate {config.speaking_rate:g} (1 / length_scale).",
        "",
    ]
    if report.unmapped:
        lines += ["## ONNX tensors left unmapped", ""]
        lines += [f"- `{name}`: {why}" for name, why in sorted(report.unmapped.items())] + [""]
    lines += [
        "## Use",
        "",
        "```",
        "python train/train.py --config train/configs/paper.yaml --data DATA --output runs/ftv --init THIS_DIR",
        "```",
        "",
    ]
    if source_text:
        lines += ["## Source model card", "", *quoted(source_text)]
    return "\n".join(lines) + "\n"


def convert_piper(
    onnx_path: PathLike, output_dir: PathLike, json_path: PathLike | None = None, **config_overrides: Any
) -> PiperImport:
    """Convert a Piper voice into a `save_pretrained` FTV directory (model, processor, README.md, import report)."""
    model, report = model_from_piper(onnx_path, json_path, **config_overrides)
    processor = processor_from_piper(onnx_path, json_path, max_input_length=model.config.max_input_length)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    processor.save_pretrained(output)
    (output / "README.md").write_text(converted_voice_card(report, model.config), encoding="utf-8")
    (output / "piper_import.json").write_text(json.dumps(report.to_dict(), indent=1, ensure_ascii=False) + "\n")
    return report


__all__ = [
    "FRESH_BACKBONE",
    "FRESH_PARTS",
    "PiperImport",
    "convert_piper",
    "converted_voice_card",
    "from_piper",
    "model_from_piper",
    "processor_from_piper",
    "tokenizer_from_piper",
    "zero_face_conditioning",
]
