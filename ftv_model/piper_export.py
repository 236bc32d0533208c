"""Export one voice as a Piper voice: ``VOICE.onnx`` + ``VOICE.onnx.json`` (+ a model card), for any Piper runtime.

    ftv-export-piper --voice my-voice.json --out my-voice [--model org/ftv]
    export_piper_voice(model, tokenizer, profile, "my-voice")        # from Python

The voice profile's face embedding F is folded into the graph as a constant, so the file speaks in that one voice
with Piper's own inputs and nothing of ftv installed: ``input`` (B, S) phoneme ids, ``input_lengths`` (B,),
``scales`` (3,) = [noise_scale, length_scale, noise_w]; output ``output`` (B, 1, 1, T) float audio, as Piper's own
exporter writes it (opset 15). The JSON carries Piper's phoneme-id map (the model's vocabulary), sample rate,
espeak-ng voice and the profile's settings as inference defaults.

Only models whose tokenizer is Piper's scheme can be exported (espeak-ng phonemes with `_` blanks between them and
`^`/`$` around them: every model imported with `convert_piper`, the bundled checkpoint among them); anything else
is a `PiperExportError`. Noise is drawn inside the graph (RandomNormalLike), as in Piper; with noise 0 the export
gives ftv's own synthesis of the same phoneme ids (tests/test_piper_export.py).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from transformers.models.vits.modeling_vits import VitsAttention

from .model_card import CONSENT_NOTE, FTV_CODE_ROW, JOE_VOICE_LICENCE, licences_section
from .voice_profile import VoiceProfile

OPSET = 15
PIPER_VERSION = "1.0.0"  # the config format Piper's runtimes read
INPUT_NAMES = ["input", "input_lengths", "scales"]

__all__ = ["PiperExportError", "PiperVoiceGraph", "export_piper_voice", "piper_config"]


class PiperExportError(ValueError):
    """The model or profile cannot become a Piper voice; the message says why and what to do."""


def _relative_embeddings_without_branches(
    self: VitsAttention, relative_embeddings: torch.Tensor, length
) -> torch.Tensor:
    """transformers' `_get_relative_embeddings` branches on the length in Python, which a trace freezes at the
    example's length. Same result for every length, with no branch: pad by `length` on both sides, then take the
    2 * length - 1 rows around the centre (relative positions -(length - 1) .. length - 1)."""
    padded = nn.functional.pad(relative_embeddings, [0, 0, length, length, 0, 0])
    start = self.window_size + 1
    return padded[:, start : start + 2 * length - 1]


def _shape_without_inferred_length(self: VitsAttention, tensor: torch.Tensor, seq_len: int, bsz: int) -> torch.Tensor:
    """transformers' `_shape` with the length read from the tensor instead of -1: the exporter's shape inference
    replaced that -1 with a constant in the whole graph (the encoder alone exported fine)."""
    return tensor.view(bsz, tensor.shape[1], self.num_heads, self.head_dim).transpose(1, 2).contiguous()


@contextlib.contextmanager
def _traceable_attention() -> Iterator[None]:
    originals = VitsAttention._get_relative_embeddings, VitsAttention._shape
    VitsAttention._get_relative_embeddings = _relative_embeddings_without_branches
    VitsAttention._shape = _shape_without_inferred_length
    try:
        yield
    finally:
        VitsAttention._get_relative_embeddings, VitsAttention._shape = originals


class PiperVoiceGraph(nn.Module):
    """Piper's inference signature around an FTV model with one face embedding folded in (see the module doc).

    It follows `FTVModel._synthesize` step for step, with Piper's scales (length_scale = 1 / speaking rate) and
    the noise drawn in the graph instead of from ftv's per-item seeds."""

    def __init__(self, model: nn.Module, face_embedding: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        face = face_embedding.reshape(1, -1).float()
        self.register_buffer("face_embedding", face, persistent=False)
        if model.face_conditioning is not None:  # F is fixed, so is the SC-CNN kernel: fold it into a plain conv
            with torch.no_grad():
                weight, bias = model.face_conditioning.kernel(face)
            self.register_buffer("conditioning_weight", weight, persistent=False)
            self.register_buffer("conditioning_bias", bias, persistent=False)

    def forward(self, input: torch.Tensor, input_lengths: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        model = self.model
        noise_scale, length_scale, noise_w = scales[0], scales[1], scales[2]
        batch = input.shape[0]
        positions = torch.arange(input.shape[1], device=input.device)
        token_mask = (positions[None, :] < input_lengths[:, None]).unsqueeze(1).float()
        face = self.face_embedding.expand(batch, self.face_embedding.shape[1])
        conditioning = model.face_projection(face).unsqueeze(-1) if model.face_projection is not None else None
        kernel = (self.conditioning_weight, self.conditioning_bias) if model.face_conditioning is not None else None
        hidden, prior_means, prior_log_stddevs = model.encode_text(input, token_mask, face, kernel)
        if model.config.use_stochastic_duration_prediction:
            noise = torch.randn_like(hidden[:, :2])
            log_duration = model.duration_predictor(
                hidden, token_mask, conditioning, reverse=True, noise_scale=noise_w, noise=noise
            )
        else:
            log_duration = model.duration_predictor(hidden, token_mask, conditioning)
        durations = torch.ceil(torch.exp(log_duration) * token_mask * length_scale)
        _, frame_mask, means, log_stddevs = model.expand_to_frames(
            durations, token_mask, prior_means, prior_log_stddevs
        )
        prior_latents = (means + torch.randn_like(means) * torch.exp(log_stddevs) * noise_scale) * frame_mask
        latents = model.flow(prior_latents, frame_mask, conditioning, reverse=True) * frame_mask
        # No padding mask for the decoder: as in Piper's own graphs (and ftv's single-sentence synthesis); its
        # repeat_interleave also broke the exporter, which then froze unrelated reshapes to constants.
        waveform = model.decoder(latents, conditioning)
        return waveform.unsqueeze(1)  # (B, 1, 1, T), Piper's output shape


def check_piper_tokenizer(tokenizer) -> dict[str, list[int]]:
    """Piper's `phoneme_id_map` from an FTV tokenizer, or a PiperExportError when it is not Piper's scheme."""
    scheme = (
        getattr(tokenizer, "phonemize", False)
        and getattr(tokenizer, "add_blank", False)
        and getattr(tokenizer, "bos_symbol", None) == "^"
        and getattr(tokenizer, "eos_symbol", None) == "$"
        and tokenizer.encoder.get("_") == 0
    )
    if not scheme:
        raise PiperExportError(
            "This model's tokenizer does not use Piper's phoneme scheme (espeak-ng phonemes, '_' blanks, '^' and '$' "
            "around them), so Piper could not feed it. Export a model built on a Piper voice (python -m "
            "ftv_model.convert_piper, or the bundled checkpoint)."
        )
    return {symbol: [index] for symbol, index in sorted(tokenizer.encoder.items(), key=lambda item: item[1])}


def piper_config(model: nn.Module, tokenizer, profile: VoiceProfile, name: str) -> dict:
    """The `.onnx.json` Piper's runtimes read, with the profile's settings as inference defaults."""
    settings = profile.settings
    language = str(getattr(tokenizer, "language", "en-us"))
    code = language.replace("-", "_")
    if "_" in code:
        family, region = code.split("_", 1)
        code = f"{family}_{region.upper()}"
    return {
        "audio": {"sample_rate": int(model.config.sampling_rate), "quality": "medium"},
        "espeak": {"voice": language},
        "inference": {
            "noise_scale": float(settings.get("noise_scale", model.config.noise_scale)),
            "length_scale": 1.0 / float(settings.get("speaking_rate", model.config.speaking_rate)),
            "noise_w": float(settings.get("noise_scale_duration", model.config.noise_scale_duration)),
        },
        "phoneme_type": "espeak",
        "phoneme_map": {},
        "phoneme_id_map": check_piper_tokenizer(tokenizer),
        "num_symbols": int(model.config.vocab_size),
        "num_speakers": 1,
        "speaker_id_map": {},
        "piper_version": PIPER_VERSION,
        "language": {"code": code},
        "dataset": name,
        "ftv": {
            "what": "a synthetic voice guessed from a photo of a face by ftv (face-to-voice); not a recorded person",
            "model": profile.model,
            "attributes": profile.attributes,
            "adjustments": profile.adjustments,
        },
    }


MODEL_CARD = """# {name}: a Piper voice made by ftv

A synthetic voice **guessed from a photo of a face** by [ftv](https://github.com/) (face-to-voice), exported for
any Piper runtime (`{name}.onnx` + `{name}.onnx.json`). It is not a recording of anyone: no speech of the person in
the photo was used, and the voice is the model's guess from their face. It was made for someone who has lost their
voice, to use in the tools they already speak with.

- Source model: {model_name} (weights fingerprint `{fingerprint}`)
- Face reading it was conditioned on: {readings}
- Inference defaults: noise_scale {noise_scale:g}, length_scale {length_scale:g}, noise_w {noise_w:g}; sample rate
  {sample_rate} Hz; espeak-ng voice `{language}`

{licences}"""
LICENCES = [
    FTV_CODE_ROW,
    (
        "the voice",
        "the source model's licence applies (the bundled checkpoint was trained from the Piper joe voice, whose "
        f"recordings are {JOE_VOICE_LICENCE}, and synthetic corpus voices)",
    ),
]


def export_piper_voice(
    model: nn.Module, tokenizer, profile: VoiceProfile, out: str | os.PathLike[str], example_text: str = "Hello."
) -> list[Path]:
    """Write OUT.onnx, OUT.onnx.json and OUT.README.md for `profile` spoken by `model`; returns the paths."""
    profile.check_model(model)
    stem = Path(out)
    if stem.suffix == ".onnx":
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    name = stem.name
    config = piper_config(model, tokenizer, profile, name)
    graph = PiperVoiceGraph(model, profile.embedding()).eval()
    ids = torch.tensor([tokenizer(example_text)["input_ids"]], dtype=torch.long)
    example = (ids, torch.tensor([ids.shape[1]], dtype=torch.long), torch.tensor([0.667, 1.0, 0.8]))
    onnx_path = stem.parent / f"{name}.onnx"
    # Grad mode on: the decoder's channels-last CPU path (for eager speed) is for no-grad calls; Piper gets the plain
    # convolutions. No parameter needs a gradient, so nothing is recorded for one.
    with _traceable_attention(), torch.enable_grad():
        for parameter in graph.parameters():
            parameter.requires_grad_(False)
        torch.onnx.export(
            graph,
            example,
            str(onnx_path),
            input_names=INPUT_NAMES,
            output_names=["output"],
            dynamic_axes={
                "input": {0: "batch_size", 1: "phonemes"},
                "input_lengths": {0: "batch_size"},
                "output": {0: "batch_size", 3: "time"},
            },
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=False,
        )
    json_path = stem.parent / f"{name}.onnx.json"
    json_path.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    readings = ", ".join(
        f"{attribute} {max(probs, key=probs.get)} ({max(probs.values()):.0%})"
        for attribute, probs in profile.attributes.items()
    )
    card = MODEL_CARD.format(
        name=name,
        model_name=profile.model.get("name") or "an unnamed ftv model",
        fingerprint=str(profile.model.get("fingerprint"))[:16],
        readings=readings or "none",
        sample_rate=config["audio"]["sample_rate"],
        language=config["espeak"]["voice"],
        licences="\n".join(licences_section(LICENCES, CONSENT_NOTE)),
        **config["inference"],
    )
    card_path = stem.parent / f"{name}.README.md"
    card_path.write_text(card, encoding="utf-8")
    return [onnx_path, json_path, card_path]
