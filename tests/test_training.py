"""Training loop tests on CPU with a tiny model and a tiny dataset built here in the documented format.

The dataset holds real speech (VCTK, cropped to its first words) and real faces (London Set, two photos plus a
mirrored one as three views), with phonemes precomputed by the project's text front end, written with
`datasets.DatasetDict.save_to_disk` in `ftv_train.data.dataset_format.FEATURES`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from ftv_train.data.collate import (
    FaceSpeechItems,
    FixedBatchSampler,
    FTVCollator,
    LengthBucketBatchSampler,
    count_tokens,
    select_items,
)
from ftv_train.training.config import ConfigError, TrainConfig, parse_config
from tests.hub_fixtures import hub_env

pytest_plugins = ["tests.hub_fixtures"]  # the local Hub server for --push_to_hub

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_YAML = REPO_ROOT / "train" / "configs" / "tiny.yaml"
PAPER_YAML = REPO_ROOT / "train" / "configs" / "paper.yaml"
FACE_PHOTO = REPO_ROOT / "tests" / "fixtures" / "faces" / "london_001.jpg"
# (VCTK speaker, London face id); faces chosen to match the speakers' genders.
SPEAKERS = (("p225", "001"), ("p226", "004"), ("p227", "005"), ("p228", "006"))
LONDON_RACE = {"white": "white", "black": "black", "east_asian": "asian", "west_asian": "middle eastern"}


# ---------------------------------------------------------------------------------------------------------------------
# The tiny dataset
# ---------------------------------------------------------------------------------------------------------------------


def _png(image: Image.Image) -> dict:
    buffer = io.BytesIO()
    image.convert("RGB").resize((128, 128), Image.Resampling.BICUBIC).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def build_tiny_dataset(root: Path, shared_data: Path) -> Path:
    """12 train / 4 validation / 1 test_seen / 3 test_unseen utterances (and the same 3 as validation_unseen, under
    other ids), plus one unalignable train item."""
    import soundfile
    from datasets import Dataset, DatasetDict

    from ftv_model.attributes import GENDER_LABELS, RACE_LABELS
    from ftv_model.text_frontend import phonemize
    from ftv_train.data.dataset_format import FEATURES, SPLITS, encode_audio

    speech = shared_data / "speech" / "vctk"
    faces_root = shared_data / "faces" / "london"
    with open(faces_root / "london_info.csv") as handle:
        face_info = {row["face_id"]: row for row in csv.DictReader(handle)}
    transcripts = {}
    for line in (speech / "transcripts.txt").read_text().splitlines():
        path, speaker, text = line.split("|", 2)
        transcripts.setdefault(speaker, []).append((path, text))

    rows: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for s, (speaker, face_id) in enumerate(SPEAKERS):
        info = face_info[face_id]
        photos = [Image.open(faces_root / kind / f"{face_id}.jpg") for kind in ("neutral", "smiling")]
        views = [_png(photos[0]), _png(photos[1]), _png(ImageOps.mirror(photos[0]))]
        gender = GENDER_LABELS.index(info["face_gender"])
        race = RACE_LABELS.index(LONDON_RACE[info["face_eth"]]) if s != 3 else -1  # one speaker unlabelled
        for u, (path, text) in enumerate(transcripts[speaker][:5]):
            wave, rate = soundfile.read(speech / path, dtype="float32")
            assert rate == 16000
            words = " ".join(text.split()[:2])
            seconds = 0.9 + 0.15 * u
            wave = wave[: int(seconds * rate)]
            split = "train" if u < 3 else "validation" if u == 3 else ("test_seen" if s == 0 else "test_unseen")
            rows[split].append(
                {
                    "id": f"{speaker}/{u:03d}",
                    "speaker": speaker,
                    "text": words,
                    "phonemes": phonemize(words)[0],
                    "audio": {"bytes": encode_audio(wave), "path": None},
                    "duration": len(wave) / rate,
                    "faces": views[: 1 + (u % 3)] if split != "train" else views,
                    "num_views": len(views[: 1 + (u % 3)]) if split != "train" else len(views),
                    "gender": gender,
                    "race": race,
                }
            )
    # Far too much text for 0.4 s of audio: must be filtered out, never reach the alignment.
    long_text = transcripts["p225"][0][1]
    silence = {"bytes": encode_audio(np.zeros(6400, np.float32)), "path": None}
    long_item = {"id": "p225/long", "text": long_text, "phonemes": phonemize(long_text)[0], "audio": silence}
    rows["train"].append({**rows["train"][0], **long_item, "duration": 0.4})
    rows["validation_unseen"] = [{**row, "id": f"{row['id']}-v"} for row in rows["test_unseen"]]
    splits = {split: Dataset.from_list(items, features=FEATURES) for split, items in rows.items()}
    DatasetDict(splits).save_to_disk(str(root))
    (root / "report.json").write_text(json.dumps({"source": "vctk+london (test)", "splits": {}}))
    return root


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    return build_tiny_dataset(tmp_path_factory.mktemp("tiny-data") / "data", shared_data)


def _reset_accelerate() -> None:
    """Accelerate keeps process-wide singletons; in-process runs need them cleared between runs."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def run_training(data: Path, output: Path, args: str) -> Path | None:
    """In-process run of the tiny config; `args` are extra command-line options (space separated)."""
    from ftv_train.training.trainer import train

    config = parse_config(["--config", str(TINY_YAML), "--data", str(data), "--output", str(output), *args.split()])
    _reset_accelerate()
    torch.manual_seed(0)
    try:
        return train(config)
    finally:
        _reset_accelerate()


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


# ---------------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------------


def test_auto_precision_is_bf16_on_a_cpu_that_runs_it_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    from ftv_train.training import trainer as training

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    for native, expected in ((True, "bf16"), (False, "no")):
        monkeypatch.setattr(training, "cpu_has_native_bfloat16", lambda native=native: native)
        assert training.resolve_mixed_precision("auto", use_cpu=True) == expected
    assert training.resolve_mixed_precision("no", use_cpu=True) == "no"  # an explicit choice is kept
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    assert training.resolve_mixed_precision("auto", use_cpu=True) == "fp16"  # the launcher's choice wins


def test_config_yaml_and_overrides(tmp_path: Path) -> None:
    config = parse_config(["--config", str(PAPER_YAML), "--data", "d"])
    assert (config.batch_size, config.max_steps, config.learning_rate) == (20, 350_000, 2e-4)
    assert config.adam_betas == [0.8, 0.99] and config.adam_eps == 1e-9 and config.lr_decay == 0.999875
    assert config.multiview and config.face_encoder_type == "nest" and config.attributes == ["gender", "race"]

    overrides = (
        "--no-multiview --face_encoder_type vit --no-audio-attribute-loss --attributes gender --max_grad_norm 5 "
        "--mel_loss_weight 30 --set model.discriminator_width=0.5 --set model.upsample_rates=[8,8,4] "
        "--set model.upsample_kernel_sizes=[16,16,8] --learning_rate 1e-4 --resume latest"
    )
    config = parse_config(["--config", str(PAPER_YAML), "--data", "d", *overrides.split()])
    assert not config.multiview and not config.audio_attribute_loss and config.attributes == ["gender"]
    assert config.max_grad_norm == 5.0 and config.learning_rate == 1e-4 and config.resume == "latest"
    kwargs = config.model_config_kwargs()
    assert kwargs["face_encoder_type"] == "vit" and kwargs["use_audio_attribute_head"] is False
    assert kwargs["discriminator_width"] == 0.5 and kwargs["upsample_rates"] == [8, 8, 4]
    assert kwargs["mel_loss_weight"] == 30.0

    for bad in ("--mixed_precision fp8", "--attributes age", "--batch_size zero", "--set model.no_such_field=1"):
        with pytest.raises(ConfigError):
            parse_config(["--config", str(PAPER_YAML), "--data", "d", *bad.split()])
    (tmp_path / "bad.yaml").write_text("batch_sise: 3\n")
    with pytest.raises(ConfigError, match="batch_sise"):
        parse_config(["--config", str(tmp_path / "bad.yaml"), "--data", "d"])
    with pytest.raises(ConfigError, match="--data"):
        TrainConfig().validate()


# ---------------------------------------------------------------------------------------------------------------------
# Data pipeline
# ---------------------------------------------------------------------------------------------------------------------


def test_sampler_buckets_shards_and_is_deterministic() -> None:
    lengths = np.random.default_rng(0).uniform(1, 10, size=103)
    sampler = LengthBucketBatchSampler(lengths, batch_size=4, num_processes=3, seed=7, bucket_batches=4)
    assert len(sampler) == 24  # 25 full batches rounded down to a multiple of 3 processes
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    assert epoch0 == list(sampler) and len(epoch0) == len(sampler)
    assert all(len(batch) == 4 for batch in epoch0)
    positions = [p for batch in epoch0 for p, _ in batch]
    assert len(set(positions)) == len(positions)  # nothing repeated within an epoch
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    # Sorting within chunks: batches are much tighter in length than random batches.
    spread = np.mean([np.ptp(lengths[[p for p, _ in b]]) for b in epoch0])
    assert spread < 0.5 * np.mean([np.ptp(lengths[i : i + 4]) for i in range(0, 100, 4)])
    # Accelerate's sharding gives process r the batches r, r+3, ...: disjoint, equal counts.
    from accelerate.data_loader import BatchSamplerShard

    sampler.set_epoch(0)
    shards = [list(BatchSamplerShard(sampler, num_processes=3, process_index=r)) for r in range(3)]
    assert [len(s) for s in shards] == [8, 8, 8]
    seen = [p for shard in shards for batch in shard for p, _ in batch]
    assert sorted(seen) == sorted(positions)
    # Evaluation: a fixed random sample (not just the shortest items), split across processes, first views only.
    evaluation = [FixedBatchSampler(lengths, 4, max_batches=2, num_processes=3, process_index=r) for r in range(3)]
    assert [len(e) for e in evaluation] == [2, 2, 2] and list(evaluation[0]) == list(evaluation[0])
    picked = [p for e in evaluation for batch in e for p, draw in batch if draw == 0]
    assert len(set(picked)) == 24 and max(lengths[picked]) > 8


@pytest.mark.shared_data
def test_selection_collate_and_views(tiny_data: Path) -> None:
    from ftv_model import FTVProcessor
    from ftv_train.data.dataset_format import load_prepared_dataset

    dataset = load_prepared_dataset(tiny_data, decode_audio=False, decode_faces=False)
    processor = FTVProcessor()
    selection = select_items(dataset["train"], processor.tokenizer, 16000, 256, min_seconds=0.3)
    assert len(selection) == 12 and selection.skipped["more tokens than frames (unalignable)"] == 1
    phonemes = dataset["train"][0]["phonemes"]
    assert count_tokens(processor.tokenizer, phonemes) == processor(phonemes=[phonemes])["input_ids"].shape[1]

    items = FaceSpeechItems(dataset["train"], selection, 16000, multiview=True)
    views = {items[(0, draw)]["view"] for draw in range(6)}
    assert views == {0, 1, 2}
    items.multiview = False
    assert {items[(0, draw)]["view"] for draw in range(6)} == {0}

    collator = FTVCollator(processor, hop_length=256, attributes=("gender", "race"))
    batch = collator([items[(i, 0)] for i in (0, 9)])  # speaker p225 and the unlabelled p228
    assert batch["pixel_values"].shape == (2, 3, 128, 128)
    assert batch["waveform"].shape[0] == 2 and batch["waveform_lengths"].max() == batch["waveform"].shape[1]
    assert batch["race_labels"].tolist()[1] == -100 and batch["gender_labels"].tolist() == [1, 1]
    assert "race_labels" not in FTVCollator(processor, 256, attributes=("gender",))([items[(0, 0)]])


# ---------------------------------------------------------------------------------------------------------------------
# Training runs
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_smoke_run_checkpoints_logs_and_exports(tiny_data: Path, tmp_path: Path) -> None:
    from ftv_model import FTVDiscriminator, FTVModel, FTVProcessor

    output = tmp_path / "run"
    final = run_training(
        tiny_data,
        output,
        "--max_steps 6 --checkpoint_every 3 --keep_checkpoints 1 --log_every 2 --eval_every 3 --media_every 3",
    )
    assert final == output / "final"
    checkpoints = sorted(p.name for p in (output / "checkpoints").iterdir())
    assert checkpoints == ["step-00000006"]  # keep_checkpoints 1 pruned step 3
    state = json.loads((output / "checkpoints" / "step-00000006" / "training_state.json").read_text())
    assert state["step"] == 6 and state["metrics"]["step"] == 6 and "val/mel" in state["metrics"]
    # the face head's accuracy on held-out identities, and the training-identity figure labelled as such
    metrics = state["metrics"]
    assert 0.0 <= metrics["val/heldout_face_gender_accuracy"] <= 1.0
    assert "val/face_gender_accuracy_training_identities" in metrics and "val/face_gender_accuracy" not in metrics
    assert list((output / "logs").rglob("events.out.tfevents*"))
    assert list((output / "samples").rglob("audio_sample_0.wav")) and list((output / "samples").rglob("*.png"))

    model = FTVModel.from_pretrained(final).eval()
    processor = FTVProcessor.from_pretrained(final)
    FTVDiscriminator.from_pretrained(final / "discriminator")
    card = (final / "README.md").read_text()
    assert "Ethical considerations" in card and "| optimizer steps | 6 of 6 |" in card
    from ftv_train.data.dataset_format import face_images, load_prepared_dataset

    row = load_prepared_dataset(tiny_data)["test_unseen"][0]
    inputs = processor(phonemes=[row["phonemes"]], images=face_images(row["faces"][:1]))
    with torch.no_grad():
        audio = model(**inputs, seed=0)
    assert audio.waveform.shape[-1] > 0 and torch.isfinite(audio.waveform).all()

    # Warm start from the export (generator + discriminator), one more step.
    warm = run_training(tiny_data, tmp_path / "warm", f"--init {final} --max_steps 1 --log_with none --media_every 100")
    assert (warm / "discriminator" / "config.json").is_file()


def _parameters(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


@pytest.mark.shared_data
def test_resume_matches_uninterrupted_run(tiny_data: Path, tmp_path: Path) -> None:
    # 8 items at batch 2 = 4 steps per epoch: the resumed run restarts mid-epoch and then crosses into the next.
    # Validation every 2 steps must not disturb the training random stream.
    common = "--log_with none --media_every 100 --eval_every 2 --log_every 1 --max_train_items 8"
    straight = run_training(tiny_data, tmp_path / "straight", f"--max_steps 6 --checkpoint_every 100 {common}")
    run_training(tiny_data, tmp_path / "resumed", f"--max_steps 3 --checkpoint_every 3 {common}")
    resumed = run_training(tiny_data, tmp_path / "resumed", f"--max_steps 6 --resume latest {common}")
    a, b = _parameters(straight), _parameters(resumed)
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-5, worst
    # And the runs did train: parameters moved away from the step-4 checkpoint.
    assert json.loads((resumed / "training_info.json").read_text())["steps"] == 6
    moved = _parameters(tmp_path / "resumed" / "checkpoints" / "step-00000003")
    assert max(float((a[k] - moved[k]).abs().max()) for k in a) > 1e-4


@pytest.mark.shared_data
def test_kill_during_checkpoint_keeps_previous_and_sigterm_saves(tiny_data: Path, tmp_path: Path) -> None:
    """A run SIGKILLed in the middle of writing its second checkpoint leaves the first one as `latest`; a
    resumed run then stops cleanly on SIGTERM with a checkpoint of where it was."""
    output = tmp_path / "run"
    script = tmp_path / "killed_run.py"
    script.write_text(
        f"""
import os, signal, sys
sys.path.insert(0, {str(REPO_ROOT)!r})
from accelerate import Accelerator
from ftv_train.training import trainer as training

original = Accelerator.save_state
def save_state(self, output_dir=None, **kwargs):
    if "step-00000004" in str(output_dir):
        os.makedirs(output_dir, exist_ok=True)
        open(os.path.join(output_dir, "model.safetensors"), "wb").write(b"partial")
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, output_dir, **kwargs)
Accelerator.save_state = save_state
sys.exit(training.main(sys.argv[1:]))
"""
    )
    args = [
        *f"--config {TINY_YAML} --data {tiny_data} --output {output} --log_with none --media_every 100".split(),
        *"--eval_every 100 --checkpoint_every 2 --max_steps 6 --num_threads 1".split(),
    ]
    run = [sys.executable, str(script), *args]
    killed = subprocess.run(run, env=_subprocess_env(), capture_output=True, text=True, timeout=240)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    names = sorted(p.name for p in (output / "checkpoints").iterdir())
    assert names == [".tmp-step-00000004", "step-00000002"]

    from ftv_train.training.trainer import CheckpointManager

    assert CheckpointManager(output / "checkpoints", 2).latest().name == "step-00000002"

    # Resume (the partial directory is cleaned up), then SIGTERM once training is under way.
    more = "--resume latest --max_steps 10000 --checkpoint_every 10000 --log_every 1 --no-progress_bar".split()
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "train" / "train.py"), *args, *more],
        env=_subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "Resumed from" in line:
                break
        time.sleep(3.0)
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=120)
        lines.append(rest)
    finally:
        if process.poll() is None:
            process.kill()
    log = "".join(lines)
    assert process.returncode == 128 + signal.SIGTERM, log[-3000:]
    assert "Resumed from" in log and "step-00000002" in log
    completed = CheckpointManager(output / "checkpoints", 2).completed()
    assert not any(p.name.startswith(".tmp") for p in (output / "checkpoints").iterdir())
    assert completed[-1][0] > 2, log[-3000:]
    state = json.loads((completed[-1][1] / "training_state.json").read_text())
    assert state["step"] == completed[-1][0]


@pytest.mark.shared_data
def test_nonfinite_steps_are_skipped_and_stop_the_run(tiny_data: Path, tmp_path: Path) -> None:
    """A NaN loss skips the generator update (weights unchanged, discriminator still trains); two in a row stop."""
    from ftv_train.training.trainer import Trainer, TrainingDivergedError

    args = "--mel_loss_weight nan --max_consecutive_nonfinite 2 --log_every 1 --log_with none --max_steps 10"
    config = parse_config(
        ["--config", str(TINY_YAML), "--data", str(tiny_data), "--output", str(tmp_path), *args.split()]
    )
    _reset_accelerate()
    try:
        trainer = Trainer(config)
        generator = trainer.accelerator.unwrap_model(trainer.generator)
        discriminator = trainer.accelerator.unwrap_model(trainer.disc)
        g_before = {k: v.clone() for k, v in generator.state_dict().items()}
        d_before = {k: v.clone() for k, v in discriminator.state_dict().items()}
        with pytest.raises(TrainingDivergedError, match="2 consecutive steps"):
            trainer.run()
    finally:
        _reset_accelerate()
    assert trainer.state.step == 2
    assert all(torch.equal(g_before[k], v) for k, v in generator.state_dict().items())
    assert any(not torch.equal(d_before[k], v) for k, v in discriminator.state_dict().items())


@pytest.mark.shared_data
def test_accelerate_launch_without_config_file_and_push(tiny_data: Path, tmp_path: Path, hub_server) -> None:
    """`accelerate launch` with no accelerate config file, ending with --push_to_hub to a local Hub server."""
    env = {**_subprocess_env(), **hub_env(hub_server.endpoint, tmp_path / "hf")}  # HF_HOME without accelerate config
    env["PYTHONPATH"] = _subprocess_env()["PYTHONPATH"]
    command = (
        f"{sys.executable} -m accelerate.commands.launch train/train.py --config {TINY_YAML} --data {tiny_data} "
        f"--output {tmp_path / 'run'} --max_steps 2 --log_with none --media_every 100 --eval_every 100 "
        "--checkpoint_every 100 --num_threads 1 --push_to_hub org/ftv-tiny"
    )
    result = subprocess.run(command.split(), cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "checkpoints" / "step-00000002" / "training_state.json").is_file()
    files = hub_server.files("org/ftv-tiny")
    for name in ("model.safetensors", "config.json", "vocab.json", "discriminator/model.safetensors", "README.md"):
        assert name in files, sorted(files)
    card = hub_server.read_file("org/ftv-tiny", "README.md").decode()
    assert 'FTVModel.from_pretrained("org/ftv-tiny")' in card and "vctk+london (test)" in card
    assert "unauthorized voice cloning" in " ".join(card.split())  # the paper's ethical notes


@pytest.mark.shared_data
def test_ddp_two_cpu_processes(tiny_data: Path, tmp_path: Path) -> None:
    """Two processes (gloo DDP): separate DDP wrappers, sharded batches, per-process RNG states in the checkpoint."""
    command = (
        f"{sys.executable} -m torch.distributed.run --standalone --nproc_per_node 2 train/train.py "
        f"--config {TINY_YAML} --data {tiny_data} --output {tmp_path / 'run'} --max_steps 2 --log_with none "
        "--media_every 100 --eval_every 2 --checkpoint_every 2 --num_threads 1 --no-progress_bar"
    )
    result = subprocess.run(
        command.split(), cwd=REPO_ROOT, env=_subprocess_env(), capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    checkpoint = tmp_path / "run" / "checkpoints" / "step-00000002"
    assert (checkpoint / "random_states_0.pkl").is_file() and (checkpoint / "random_states_1.pkl").is_file()
    state = json.loads((checkpoint / "training_state.json").read_text())
    assert state["num_processes"] == 2 and "val/mel" in state["metrics"]
    assert (tmp_path / "run" / "final" / "discriminator" / "model.safetensors").is_file()


@pytest.mark.shared_data
def test_no_discriminator_mode_and_training_only_overrides(tiny_data: Path, tmp_path: Path) -> None:
    """`--no-adversarial` trains the generator with no discriminator update; a warm start may resize the
    discriminator (a training-only setting) but not the generator."""
    from safetensors.torch import load_file

    first = run_training(tiny_data, tmp_path / "first", "--max_steps 2 --log_with none --media_every 100")
    discriminator_before = load_file(str(first / "discriminator" / "model.safetensors"))
    second = run_training(
        tiny_data,
        tmp_path / "second",
        f"--init {first} --no-adversarial --max_steps 2 --log_with none --media_every 100 --eval_every 100",
    )
    discriminator_after = load_file(str(second / "discriminator" / "model.safetensors"))
    assert all(torch.equal(discriminator_before[k], discriminator_after[k]) for k in discriminator_before)
    generator_moved = max(
        float((_parameters(first)[k] - _parameters(second)[k]).abs().max()) for k in _parameters(first)
    )
    assert generator_moved > 1e-5
    card = (second / "README.md").read_text()
    assert "no discriminator" in card

    resized = run_training(
        tiny_data,
        tmp_path / "resized",
        f"--init {first} --no-init_discriminator --set model.discriminator_width=0.25 --max_steps 1 "
        "--log_with none --media_every 100 --eval_every 100",
    )
    assert json.loads((resized / "discriminator" / "config.json").read_text())["discriminator_width"] == 0.25
    assert json.loads((resized / "config.json").read_text())["decoder_latents"] == "posterior"
    aligned = run_training(
        tiny_data,
        tmp_path / "aligned",
        f"--init {first} --set model.decoder_latents=prior --max_steps 1 --log_with none --media_every 100 "
        "--eval_every 100",
    )
    assert json.loads((aligned / "config.json").read_text())["decoder_latents"] == "prior"
    with pytest.raises(ConfigError, match="differ from the --init"):
        run_training(tiny_data, tmp_path / "bad", f"--init {first} --set model.hidden_size=48 --max_steps 1")
    # a warm start may add the pretrained face descriptor branch: it trains, and the export speaks from photos
    described = run_training(
        tiny_data,
        tmp_path / "described",
        f"--init {first} --set model.face_descriptor=dlib-resnet-v1 --max_steps 2 --log_with none "
        "--media_every 100 --eval_every 100",
    )
    assert json.loads((described / "config.json").read_text())["face_descriptor"] == "dlib-resnet-v1"
    assert json.loads((described / "processor_config.json").read_text())["image_processor"]["face_descriptor"]
    fusion = [k for k in _parameters(described) if k.startswith("face_descriptor_fusion.out.")]
    assert fusion and max(float(_parameters(described)[k].abs().max()) for k in fusion) > 0  # it moved off zero
    from ftv_model.synthesis import Synthesizer

    result = Synthesizer(described, allow_untrained=True).synthesize(FACE_PHOTO, "Hello there.", seed=0)
    assert result.waveform.size > 0


@pytest.mark.shared_data
def test_inference_only_export_cannot_be_trained(tiny_data: Path, tmp_path: Path) -> None:
    from ftv_model.export_inference import export_inference

    final = run_training(tiny_data, tmp_path / "run", "--max_steps 1 --log_with none --media_every 100")
    exported = export_inference(final, tmp_path / "export")
    with pytest.raises(ConfigError, match="inference-only export"):
        run_training(tiny_data, tmp_path / "again", f"--init {exported} --max_steps 1")


def test_freeze_keeps_the_named_conditioning_layers_trainable() -> None:
    """The offline recipe freezes the imported prior side but not its face-conditioning layers."""
    from ftv_model import FTVModel
    from ftv_train.training.trainer import Trainer
    from tests.model_fixtures import tiny_config

    config = parse_config(["--config", str(REPO_ROOT / "train" / "configs" / "offline-cpu.yaml"), "--data", "x"])
    model = FTVModel(tiny_config())
    Trainer._freeze(model, config.freeze, config.keep_trainable)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    frozen_roots = tuple(config.freeze)
    inside_frozen = {name for name in trainable if name.startswith(frozen_roots)}
    assert inside_frozen and all(any(keep in name for keep in config.keep_trainable) for name in inside_frozen)
    assert any(name.startswith("flow.") and "cond_layer" in name for name in trainable)
    assert any(name.startswith("duration_predictor.cond.") for name in trainable)
    assert not any(name.startswith(("text_encoder.", "decoder.")) for name in trainable)
    assert any(name.startswith("posterior_encoder.") for name in trainable)
    assert any(name.startswith("face_conditioning.") for name in trainable)
    with pytest.raises(ConfigError, match="match no generator parameter"):
        Trainer._freeze(FTVModel(tiny_config()), ["no_such_module."])


def test_decoder_stage_keeps_the_distilled_posterior_frozen() -> None:
    """offline-cpu-decoder.yaml: the decoder and the prior's face conditioning train against a posterior that must
    stay joe's (its own face conditioning included), with the discriminator on."""
    from ftv_model import FTVModel
    from ftv_train.training.trainer import Trainer
    from tests.model_fixtures import tiny_config

    path = REPO_ROOT / "train" / "configs" / "offline-cpu-decoder.yaml"
    config = parse_config(["--config", str(path), "--data", "x"])
    model = FTVModel(tiny_config())
    Trainer._freeze(model, config.freeze, config.keep_trainable)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert config.adversarial
    assert not any(name.startswith(("posterior_encoder.", "text_encoder.")) for name in trainable)
    assert any(name.startswith("decoder.") for name in trainable)
    flow_conditioning = {n for n, _ in model.named_parameters() if n.startswith("flow.") and "cond_layer" in n}
    assert flow_conditioning and flow_conditioning <= trainable
    assert not any(name.startswith("flow.") and "cond_layer" not in name for name in trainable)
    assert not any(name.startswith("duration_predictor.") for name in trainable)


def test_prior_stage_trains_only_what_makes_the_prior() -> None:
    """offline-cpu-prior.yaml: text encoder, SC-CNN and flow learn the frozen posterior's latents; nothing that
    feeds the trained decoder (its weights, the face encoder and projection that make its face input) moves."""
    from ftv_model import FTVModel
    from ftv_train.training.trainer import Trainer
    from tests.model_fixtures import tiny_config

    path = REPO_ROOT / "train" / "configs" / "offline-cpu-prior.yaml"
    config = parse_config(["--config", str(path), "--data", "x"])
    model = FTVModel(tiny_config())
    Trainer._freeze(model, config.freeze, config.keep_trainable)
    trainable = {name.split(".")[0] for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert not config.adversarial
    assert {"text_encoder", "face_conditioning", "flow"} <= trainable
    frozen = {"decoder", "posterior_encoder", "duration_predictor", "face_encoder", "face_projection"}
    assert not trainable & frozen


def test_aligned_prior_stage_trains_only_the_decoder_side() -> None:
    """offline-cpu-gta.yaml: the decoder learns from joe's prior latents (`decoder_latents: prior`), so everything
    that makes the prior's statistics or the alignment (text encoder, durations, posterior, face encoder and
    projection) stays fixed; the flow's face conditioning learns with it."""
    from ftv_model import FTVModel
    from ftv_train.training.trainer import Trainer
    from tests.model_fixtures import tiny_config

    path = REPO_ROOT / "train" / "configs" / "offline-cpu-gta.yaml"
    config = parse_config(["--config", str(path), "--data", "x"])
    assert config.model_config_kwargs()["decoder_latents"] == "prior" and config.adversarial
    model = FTVModel(tiny_config(**config.model_config_kwargs()))
    assert model.config.decoder_latents == "prior"
    Trainer._freeze(model, config.freeze, config.keep_trainable)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert {name.split(".")[0] for name in trainable} == {
        "decoder",
        "flow",
        "face_attribute_head",
        "audio_attribute_head",
    }
    assert all("cond_layer" in name for name in trainable if name.startswith("flow."))


@pytest.mark.shared_data
def test_face_pretraining_pack_train_and_merge(tiny_data: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    """Stage 1: faces packed for a machine without the dataset, the face branch trained there, merged back."""
    from safetensors.torch import load_file

    from ftv_model import FTVModel
    from ftv_train.data.dataset_format import load_prepared_dataset
    from ftv_train.training.face_pretraining import (
        FACE_BRANCH_FILE,
        FacePretrainConfig,
        load_identity_faces,
        pretrain_face_encoder,
        read_face_pack,
        write_face_pack,
    )

    pack = write_face_pack(tiny_data, tmp_path / "faces.npz")
    direct = load_identity_faces(load_prepared_dataset(tiny_data)["train"], 128)
    packed = read_face_pack(pack, "train")
    assert packed.images.shape == direct.images.shape and packed.images.dtype == torch.uint8
    assert torch.equal(packed.gender, direct.gender) and torch.equal(packed.identity, direct.identity)
    assert (packed.images.float() - direct.images.float()).abs().mean() < 3  # JPEG quality 90

    before = FTVModel.from_pretrained(tiny_checkpoint).face_encoder.state_dict()
    config = FacePretrainConfig(
        data=str(pack), out=str(tmp_path / "branch"), model_config=str(tiny_checkpoint / "config.json"), steps=3,
        batch_size=4, warmup_steps=1, eval_every=2,
    )  # fmt: skip
    report = pretrain_face_encoder(config)
    assert report["steps"] == 3 and [point["step"] for point in report["curve"]] == [2, 3]
    branch = load_file(str(tmp_path / "branch" / FACE_BRANCH_FILE))
    assert all(key.startswith(("face_encoder.", "face_attribute_head.")) for key in branch)
    assert any(not torch.equal(branch[f"face_encoder.{k}"], v) for k, v in before.items())

    merged = FacePretrainConfig(
        data=str(pack), out=str(tmp_path / "merged"), init=str(tiny_checkpoint), steps=0,
        load_face_branch=str(tmp_path / "branch" / FACE_BRANCH_FILE),
    )  # fmt: skip
    merged_report = pretrain_face_encoder(merged)
    assert merged_report["curve"][-1]["gender_accuracy"] == report["curve"][-1]["gender_accuracy"]
    model = FTVModel.from_pretrained(tmp_path / "merged")
    assert all(torch.equal(model.state_dict()[key], value) for key, value in branch.items())


def test_warm_start_from_an_inference_export_speaks_like_it_and_can_train(tmp_path) -> None:
    """An inference export's weights put back into a full model: the same audio, the training-only parts from the
    full model (so it can train), and a checkpoint of another architecture is a clear error."""
    import torch

    from ftv_model import FTVModel
    from ftv_model.export_inference import export_inference
    from ftv_train.training.warm_start import WarmStartError, merge_weights
    from tests.model_fixtures import save_tiny_checkpoint

    trained = save_tiny_checkpoint(tmp_path / "trained", seed=3)
    model = FTVModel.from_pretrained(trained)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    model.save_pretrained(trained)
    export = export_inference(trained, tmp_path / "export", dtype=torch.float32)
    fresh = save_tiny_checkpoint(tmp_path / "fresh", seed=5)
    merged, counts = merge_weights(fresh, export)
    assert counts["kept_parts"] == ["duration_predictor", "posterior_encoder"]
    assert merged.posterior_encoder is not None and not merged.config.inference_only
    inputs = {"input_ids": torch.randint(1, 30, (1, 20)), "face_embeddings": torch.randn(1, 32)}
    with torch.inference_mode():
        a = FTVModel.from_pretrained(export).eval()(**inputs, seed=1).waveform
        b = merged.eval()(**inputs, seed=1).waveform
    assert torch.equal(a, b)
    other = save_tiny_checkpoint(tmp_path / "other", seed=5, hidden_size=48)
    with pytest.raises(WarmStartError, match="different architectures"):
        merge_weights(other, export)
