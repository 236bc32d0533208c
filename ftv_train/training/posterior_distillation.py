"""Teach a fresh posterior encoder the latent space of an imported voice, by distillation from that voice.

A Piper (ONNX) import has every part of VITS except the posterior encoder, so training starts with a random one
whose latents the imported decoder cannot render: trained on the corpus through the frozen decoder (mel loss +
KL, offline-cpu-posterior.yaml, 1,500 steps) its copy synthesis stayed unintelligible (CER 67% on unseen
speakers) and every later stage inherited that gap. The imported voice itself gives exact pairs instead: its own
synthesis is a waveform together with the latents z its decoder rendered it from. The posterior encoder is fitted
to give z back from that waveform's linear spectrogram (Gaussian negative log-likelihood of z under the posterior,
which is what VITS's posterior is for), so afterwards posterior -> decoder reproduces the voice and the training
losses of later stages start consistent with the imported prior, flow and decoder.

    python train/distill_posterior.py --model data/joe-face-init --data data/offline --out data/joe-distilled

Writes the full model and posterior_distillation.json (the held-out negative log-likelihood before and after).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import HfArgumentParser
from transformers.hf_argparser import HfArg

from ftv_model import FTVModel, FTVProcessor

logger = logging.getLogger(__name__)


@dataclass
class DistillationConfig:
    """Pairs come from `num_utterances` corpus sentences (phonemes) and faces, spoken by the model itself."""

    model: Path = HfArg(help="full FTV model (e.g. a converted Piper voice)")
    data: Path = HfArg(help="prepared dataset: its sentences and faces are used")
    out: Path = HfArg(help="where the model with the distilled posterior goes")
    split: str = "train"
    num_utterances: int = HfArg(default=512, help="corpus sentences the model speaks for the pairs")
    steps: int = 1500
    batch_size: int = 8
    synthesis_batch_size: int = 8
    learning_rate: float = 5e-4
    noise_scale: float = 0.667
    noise_scale_duration: float = 0.8
    seed: int = 0
    threads: int | None = HfArg(default=None, help="torch CPU threads")


@dataclass
class LatentPair:
    waveform: torch.Tensor  # (samples,) at the model's rate
    latents: torch.Tensor  # (flow_size, frames): what the decoder rendered `waveform` from
    face: torch.Tensor  # (face_embedding_size,)


def load_sentences(data: Path, split: str, count: int, seed: int) -> list[dict]:
    """`count` rows (phonemes + first face) of a prepared dataset, picked at random with `seed`."""
    from ftv_train.data.dataset_format import load_prepared_dataset

    rows = load_prepared_dataset(str(data), decode_audio=False, decode_faces=False)[split]
    rows = rows.select_columns([c for c in ("phonemes", "faces") if c in rows.column_names])
    picks = random.Random(seed).sample(range(len(rows)), min(count, len(rows)))
    return [rows[i] for i in picks]


@torch.no_grad()
def synthesize_pairs(
    model: FTVModel, processor: FTVProcessor, rows: list[dict], config: DistillationConfig
) -> list[LatentPair]:
    """The model's own speech for each row (its sentence, its face) with the latents it was rendered from."""
    from ftv_train.data.dataset_format import face_images

    pairs: list[LatentPair] = []
    hop = model.config.hop_length
    for start in tqdm(range(0, len(rows), config.synthesis_batch_size), desc="teacher synthesis", unit="batch"):
        batch = rows[start : start + config.synthesis_batch_size]
        faces = [face_images(row["faces"][:1])[0] for row in batch]
        inputs = processor(
            phonemes=[row["phonemes"] for row in batch], images=faces, return_tensors="pt", do_crop_face=False
        )
        out = model(
            **inputs,
            noise_scale=config.noise_scale,
            noise_scale_duration=config.noise_scale_duration,
            seed=config.seed + start,
        )
        for i, samples in enumerate(out.sequence_lengths.tolist()):
            frames = samples // hop
            pairs.append(
                LatentPair(
                    waveform=out.waveform[i, :samples].float().clone(),
                    latents=out.spectrogram[i, :, :frames].float().clone(),
                    face=out.face_embedding[i].float().clone(),
                )
            )
    return pairs


def _collate(pairs: list[LatentPair], hop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    frames = torch.tensor([p.latents.shape[-1] for p in pairs])
    longest = int(frames.max())
    waveform = torch.zeros(len(pairs), longest * hop)
    latents = torch.zeros(len(pairs), pairs[0].latents.shape[0], longest)
    for i, pair in enumerate(pairs):
        waveform[i, : pair.waveform.shape[-1]] = pair.waveform
        latents[i, :, : pair.latents.shape[-1]] = pair.latents
    mask = (torch.arange(longest)[None, :] < frames[:, None]).unsqueeze(1).float()
    return waveform, latents, mask, torch.stack([p.face for p in pairs])


def posterior_nll(model: FTVModel, pairs: list[LatentPair]) -> torch.Tensor:
    """Mean negative log-likelihood (nats per latent value, without the constant) of the teacher's latents under
    the posterior of its waveform."""
    waveform, latents, mask, faces = _collate(pairs, model.config.hop_length)
    spectrogram = model.audio_features.linear_spectrogram(waveform)[..., : latents.shape[-1]]
    _, conditioning = model._face_inputs(None, None, faces, len(pairs))
    _, mean, log_stddev = model.posterior_encoder(spectrogram, mask, conditioning)
    nll = log_stddev + 0.5 * ((latents - mean) * torch.exp(-log_stddev)) ** 2
    return (nll * mask).sum() / (mask.sum() * latents.shape[1])


def distill_posterior(model: FTVModel, pairs: list[LatentPair], config: DistillationConfig) -> list[float]:
    """Train only the posterior encoder on the pairs; returns the loss of every step."""
    if model.posterior_encoder is None:
        raise ValueError("The model has no posterior encoder (an inference-only export): distill into a full one.")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    parameters = list(model.posterior_encoder.parameters())
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, betas=(0.8, 0.99), weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / config.steps))
    )
    rng = random.Random(config.seed)
    model.train()
    losses = []
    bar = tqdm(range(config.steps), desc="posterior distillation", unit="step")
    for _ in bar:
        loss = posterior_nll(model, rng.sample(pairs, min(config.batch_size, len(pairs))))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 5.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(nll=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return losses


def run_distillation(config: DistillationConfig) -> dict:
    """Load, make the pairs, distill, check on held-out pairs, save the full model with a summary."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model = FTVModel.from_pretrained(str(config.model)).eval()
    processor = FTVProcessor.from_pretrained(str(config.model))
    if model.config.inference_only:
        raise ValueError(
            f"{config.model} is an inference-only export (no posterior encoder): distill into the full model "
            "(a converted voice from `python -m ftv_model.convert_piper`, or a training run's OUTPUT/final)."
        )
    started = time.time()
    rows = load_sentences(config.data, config.split, config.num_utterances + config.batch_size * 4, config.seed)
    pairs = synthesize_pairs(model, processor, rows, config)
    held_out, pairs = pairs[: config.batch_size * 4], pairs[config.batch_size * 4 :]
    synthesis_seconds = time.time() - started

    def held_out_nll() -> float:
        with torch.no_grad():
            chunks = [held_out[i : i + config.batch_size] for i in range(0, len(held_out), config.batch_size)]
            return sum(float(posterior_nll(model, chunk)) for chunk in chunks) / len(chunks)

    before = held_out_nll()
    losses = distill_posterior(model, pairs, config)
    after = held_out_nll()
    results = {
        "pairs": len(pairs),
        "held_out_pairs": len(held_out),
        "held_out_nll_before": round(before, 4),
        "held_out_nll_after": round(after, 4),
        "final_training_nll": round(sum(losses[-50:]) / len(losses[-50:]), 4),
        "synthesis_seconds": round(synthesis_seconds, 1),
        "seconds": round(time.time() - started, 1),
    }
    return save_distilled(model, processor, config, "posterior_distillation.json", results)


def save_distilled(model: FTVModel, processor: FTVProcessor, config: Any, summary_name: str, results: dict) -> dict:
    """Save a distillation's model and processor to `config.out`, with a JSON summary (its settings, then
    `results`) named `summary_name`; returns the summary."""
    summary = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}, **results}
    config.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(config.out))
    processor.save_pretrained(str(config.out))
    (config.out / summary_name).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run_command(parser: HfArgumentParser, run: Callable[[Any], dict], argv: Sequence[str] | None) -> int:
    """A distillation command: parse its options, run it, print its summary without the settings."""
    (config,) = parser.parse_args_into_dataclasses(list(argv) if argv is not None else None, look_for_args_file=False)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    summary = run(config)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=2))
    return 0


def build_parser() -> HfArgumentParser:
    """`ftv-distill-posterior`'s options: one per DistillationConfig field."""
    return HfArgumentParser(
        DistillationConfig,
        prog="ftv-distill-posterior",
        description="Fit a fresh posterior encoder to an imported voice's own latents (see the module docstring).",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`ftv-distill-posterior` / train/distill_posterior.py."""
    return run_command(build_parser(), run_distillation, argv)
