"""Training-step benchmark: full GAN steps/s (generator + discriminator, forward + backward + both updates) and peak
memory for the paper configuration, with the share of step time spent in alignment search and in data loading.

    python benchmarks/bench_train_step.py                     # GPU at batch 20 when there is one, else CPU batch 2
    python benchmarks/bench_train_step.py --device cpu --batch-size 2 --steps 3
    python benchmarks/bench_train_step.py --precision bf16 --num-workers 6 --json out.json

It runs the training loop's own step (`GANStep` of `ftv_train.training`, prepared by Accelerate) on batches built from
real data: full-length VCTK utterances with their transcripts (phonemized once, up front) and London Set faces from
../shared/data, written in the prepared-dataset format, so batches go through the same selection, sampler, workers
and collator as training. Without the shared data it falls back to random batches shaped like the project notes'
reference (60-120 tokens, 200-400 frames) and skips the data-loading measurement.

Phases: (1) step time on pre-collated batches (model only), with monotonic alignment search (log-likelihood + the
Cython search + transfers) timed inside the step; (2) the same steps fed live by the DataLoader with N workers, where
the time blocked waiting for a batch is the data-loading share.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FTV_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def build_dataset(root: Path, shared: Path, copies: int) -> Path:
    """VCTK utterances (full length) x London faces (2 photos + mirror = 3 views) in the prepared-dataset format."""
    import csv

    import soundfile
    from datasets import Dataset, DatasetDict
    from PIL import Image, ImageOps

    from ftv_model.attributes import GENDER_LABELS
    from ftv_model.text_frontend import phonemize
    from ftv_train.data.dataset_format import FEATURES, SPLITS, encode_audio

    speech = shared / "speech" / "vctk"
    faces = shared / "faces" / "london"
    with open(faces / "london_info.csv") as handle:
        info = [row for row in csv.DictReader(handle)]
    lines = [line.split("|", 2) for line in (speech / "transcripts.txt").read_text().splitlines()]
    phonemes = phonemize([text for _, _, text in lines])

    def png(image: Image.Image) -> dict:
        buffer = io.BytesIO()
        image.convert("RGB").resize((128, 128)).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    rows = []
    for copy in range(copies):
        for index, ((path, speaker, text), ipa) in enumerate(zip(lines, phonemes)):
            face = info[(index + 7 * copy) % len(info)]
            photos = [Image.open(faces / kind / f"{face['face_id']}.jpg") for kind in ("neutral", "smiling")]
            wave, _ = soundfile.read(speech / path, dtype="float32")
            rows.append(
                {
                    "id": f"{copy}/{path}",
                    "speaker": speaker,
                    "text": text,
                    "phonemes": ipa,
                    "audio": {"bytes": encode_audio(wave), "path": None},
                    "duration": len(wave) / 16000,
                    "faces": [png(photos[0]), png(photos[1]), png(ImageOps.mirror(photos[0]))],
                    "num_views": 3,
                    "gender": GENDER_LABELS.index(face["face_gender"]),
                    "race": -1,
                }
            )
    splits = {split: Dataset.from_list(rows if split == "train" else rows[:2], features=FEATURES) for split in SPLITS}
    DatasetDict(splits).save_to_disk(str(root))
    return root


def random_batch(batch_size: int, config: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Batch shaped like the notes' reference: 60-120 token ids, 200-400 frames of (noise) audio, random faces."""
    tokens = torch.randint(60, 121, (batch_size,), generator=generator)
    frames = torch.randint(200, 401, (batch_size,), generator=generator)
    input_ids = torch.randint(1, config.vocab_size, (batch_size, int(tokens.max())), generator=generator)
    mask = (torch.arange(input_ids.shape[1])[None] < tokens[:, None]).long()
    samples = frames * config.hop_length
    waveform = 0.1 * torch.randn(batch_size, int(samples.max()), generator=generator)
    waveform = waveform * (torch.arange(waveform.shape[1])[None] < samples[:, None])
    return {
        "input_ids": input_ids * mask,
        "attention_mask": mask,
        "pixel_values": torch.randn(batch_size, 3, config.image_size, config.image_size, generator=generator),
        "waveform": waveform,
        "waveform_lengths": samples,
        "gender_labels": torch.randint(0, 2, (batch_size,), generator=generator),
        "race_labels": torch.randint(0, 6, (batch_size,), generator=generator),
    }


class AlignmentTimer:
    """Wraps the model's alignment functions to time them (synchronising the GPU around them)."""

    def __init__(self, device: torch.device) -> None:
        import ftv_model.modeling_ftv as modeling

        self.modeling = modeling
        self.device = device
        self.seconds = 0.0
        self.originals = (modeling.alignment_log_likelihood, modeling.monotonic_alignment)

    def _timed(self, function):
        def wrapper(*args, **kwargs):
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            start = time.perf_counter()
            result = function(*args, **kwargs)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds += time.perf_counter() - start
            return result

        return wrapper

    def __enter__(self) -> AlignmentTimer:
        likelihood, search = self.originals
        self.modeling.alignment_log_likelihood = self._timed(likelihood)
        self.modeling.monotonic_alignment = self._timed(search)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.modeling.alignment_log_likelihood, self.modeling.monotonic_alignment = self.originals


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")
    parser.add_argument("--batch-size", type=int, help="default: 20 on GPU (the paper's), 2 on CPU")
    parser.add_argument("--steps", type=int, help="timed steps per phase (default 20 on GPU, 3 on CPU)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 5 on GPU, 1 on CPU)")
    parser.add_argument("--precision", default="auto", help="auto (bf16 where supported), no, bf16 or fp16")
    parser.add_argument("--num-workers", type=int, default=4, help="DataLoader workers for the data-loading phase")
    parser.add_argument("--threads", type=int, help="torch threads (CPU)")
    parser.add_argument("--data", type=Path, help="a prepared dataset to read instead of building one")
    parser.add_argument("--random-data", action="store_true", help="skip real data: random batches, no data phase")
    parser.add_argument("--model-config", type=Path, help="a checkpoint's config.json (default: the paper's config)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="FTVConfig (or discriminator_*) override"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import yaml
    from accelerate import Accelerator

    from ftv_model import FTVConfig, FTVDiscriminator, FTVModel, FTVProcessor
    from ftv_model.discriminator import DISCRIMINATOR_SETTINGS, FTVDiscriminatorConfig
    from ftv_train.data.collate import (
        FaceSpeechItems,
        FTVCollator,
        LengthBucketBatchSampler,
        build_dataloader,
        select_items,
    )
    from ftv_train.data.dataset_format import load_prepared_dataset
    from ftv_train.training.config import TrainConfig
    from ftv_train.training.gan_step import GANStep
    from ftv_train.training.trainer import resolve_mixed_precision

    use_cuda = torch.cuda.is_available() and args.device in ("auto", "cuda")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no GPU is visible")
    batch_size = args.batch_size or (20 if use_cuda else 2)
    steps = args.steps or (20 if use_cuda else 3)
    warmup = args.warmup if args.warmup is not None else (5 if use_cuda else 1)
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = resolve_mixed_precision(args.precision, use_cpu=not use_cuda)
    accelerator = Accelerator(cpu=not use_cuda, mixed_precision=precision)
    device = accelerator.device
    if use_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    overrides = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)}
    # the discriminator's settings (`--set discriminator_width=0.25`) are its own config's, not the model's
    discriminator_overrides = {key: overrides.pop(key) for key in DISCRIMINATOR_SETTINGS if key in overrides}
    if args.model_config:
        config = FTVConfig.from_json_file(str(args.model_config))
        for key, value in overrides.items():
            setattr(config, key, value)
        config.inference_only = False
        # an older config.json still carries the discriminator it was trained with
        discriminator_config = FTVDiscriminatorConfig.from_pretrained(str(args.model_config))
    else:
        config = FTVConfig(**overrides)
        discriminator_config = FTVDiscriminatorConfig(**TrainConfig().discriminator_settings())
    for key, value in discriminator_overrides.items():
        setattr(discriminator_config, key, value)
    torch.manual_seed(0)
    model = FTVModel(config).to(device)
    discriminator = FTVDiscriminator(discriminator_config).to(device)
    optimizer_kwargs = dict(lr=2e-4, betas=(0.8, 0.99), eps=1e-9, fused=True)
    optimizer_g = torch.optim.AdamW(model.parameters(), **optimizer_kwargs)
    optimizer_d = torch.optim.AdamW(discriminator.parameters(), **optimizer_kwargs)
    model, discriminator, optimizer_g, optimizer_d = accelerator.prepare(model, discriminator, optimizer_g, optimizer_d)
    loss_weights = TrainConfig().loss_weights()  # the paper's
    step = GANStep(accelerator, model, discriminator, optimizer_g, optimizer_d, loss_weights, None, precision != "fp16")
    processor = FTVProcessor()

    # ---- batches
    loader = None
    source = "random (60-120 tokens, 200-400 frames)"
    temp = None
    if not args.random_data and (args.data or SHARED_DATA.is_dir()):
        data_dir = args.data
        if data_dir is None:
            temp = tempfile.TemporaryDirectory(prefix="ftv-bench-")
            copies = max(1, -(-(batch_size * (warmup + steps)) // 40))
            data_dir = build_dataset(Path(temp.name) / "data", SHARED_DATA, copies)
            source = f"VCTK x London Set ({copies * 40} utterances, full length)"
        else:
            source = str(data_dir)
        split = load_prepared_dataset(data_dir, decode_audio=False, decode_faces=False)["train"]
        selection = select_items(split, processor.tokenizer, config.sampling_rate, config.hop_length, 0.5, 10.0)
        items = FaceSpeechItems(split, selection, config.sampling_rate, multiview=True)
        sampler = LengthBucketBatchSampler(selection.seconds, batch_size, seed=0, bucket_batches=4)
        collator = FTVCollator(processor, config.hop_length)
        loader = build_dataloader(items, sampler, collator, args.num_workers, 2, 0, pin_memory=use_cuda)
        single = build_dataloader(items, sampler, collator, 0, 2, 0)
        start = time.perf_counter()
        batches = [batch for _, batch in zip(range(warmup + steps), single)]
        collate_seconds = (time.perf_counter() - start) / len(batches)
        if len(batches) < warmup + steps:
            batches = (batches * (warmup + steps))[: warmup + steps]
    else:
        generator = torch.Generator().manual_seed(0)
        batches = [random_batch(batch_size, config, generator) for _ in range(warmup + steps)]
        collate_seconds = None

    def to_device(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: value.to(device, non_blocking=True) for key, value in batch.items()}

    # ---- phase 1: model step on pre-collated batches
    for batch in batches[:warmup]:
        step(to_device(batch))
    synchronize(device)
    if use_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with AlignmentTimer(device) as alignment:
        for batch in batches[warmup:]:
            batch = to_device(batch)
            synchronize(device)
            start = time.perf_counter()
            step(batch)
            synchronize(device)
            times.append(time.perf_counter() - start)
    step_seconds = statistics.median(times)
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**30
        if use_cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    )
    tokens = [int(b["attention_mask"].sum(-1).float().mean()) for b in batches]
    frames = [int((b["waveform_lengths"] // config.hop_length).float().mean()) for b in batches]

    # ---- phase 2: the same step fed live by the DataLoader
    data_share = None
    if loader is not None:
        waited, total, done = 0.0, 0.0, 0
        iterator = iter(loader)
        for batch in batches[:1]:
            step(to_device(batch))
        start_all = time.perf_counter()
        while done < steps:
            start = time.perf_counter()
            batch = next(iterator, None)
            if batch is None:
                iterator = iter(loader)
                continue
            waited += time.perf_counter() - start
            step(to_device(batch))
            synchronize(device)
            done += 1
        total = time.perf_counter() - start_all
        data_share = waited / total

    label = torch.cuda.get_device_name(device) if use_cuda else f"CPU ({torch.get_num_threads()} threads)"
    results = {
        "device": label,
        "note": None if use_cuda else "CPU run at a small batch: not the paper's GPU setting",
        "precision": precision,
        "batch_size": batch_size,
        "data": source,
        "mean_tokens": round(statistics.mean(tokens), 1),
        "mean_frames": round(statistics.mean(frames), 1),
        "generator_parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "discriminator_parameters_m": round(sum(p.numel() for p in discriminator.parameters()) / 1e6, 2),
        "step_seconds_median": round(step_seconds, 4),
        "step_seconds_all": [round(t, 4) for t in times],
        "steps_per_second": round(1 / step_seconds, 3),
        "samples_per_second": round(batch_size / step_seconds, 2),
        "peak_memory_gib": round(peak, 2),
        "peak_memory_kind": "torch.cuda.max_memory_allocated" if use_cuda else "process max RSS",
        "alignment_share": round(alignment.seconds / sum(times), 4),
        "collate_seconds_per_batch_one_process": round(collate_seconds, 3) if collate_seconds is not None else None,
        "data_wait_share": round(data_share, 4) if data_share is not None else None,
        "num_workers": args.num_workers if loader is not None else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    width = max(len(key) for key in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if temp is not None:
        temp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
