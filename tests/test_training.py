"""Training loop tests on CPU with a tiny model and the tiny dataset of `tests/test_training_data.py`: runs,
checkpoints, resumption, signals, DDP, the Hub, warm starts, and the stages around training (face pretraining, a
trainable warm start from an inference export)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ftv_train.training.config import ConfigError, parse_config
from tests.hub_fixtures import hub_env
from tests.test_training_data import (
    FACE_PHOTO,
    REPO_ROOT,
    TINY_YAML,
    build_tiny_dataset,
    reset_accelerate,
    run_training,
    subprocess_env,
)

pytest_plugins = ["tests.hub_fixtures"]  # the local Hub server for --push_to_hub


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    return build_tiny_dataset(tmp_path_factory.mktemp("tiny-data") / "data", shared_data)


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
    discriminator = json.loads((output / "checkpoints" / "step-00000006" / "discriminator_config.json").read_text())
    assert (discriminator["discriminator_width"], discriminator["discriminator_periods"]) == (0.125, [2, 3])
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
    # Written as before the discriminator had its own config: its settings (and the loss weights) in the model's.
    checkpoint = tmp_path / "resumed" / "checkpoints" / "step-00000003"
    discriminator = json.loads((checkpoint / "discriminator_config.json").read_text())
    (checkpoint / "discriminator_config.json").unlink()
    model_config = json.loads((checkpoint / "model_config.json").read_text())
    model_config.update({k: v for k, v in discriminator.items() if k.startswith("discriminator_")})
    (checkpoint / "model_config.json").write_text(json.dumps({**model_config, "mel_loss_weight": 45.0}))
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
    killed = subprocess.run(run, env=subprocess_env(), capture_output=True, text=True, timeout=240)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    names = sorted(p.name for p in (output / "checkpoints").iterdir())
    assert names == [".tmp-step-00000004", "step-00000002"]

    from ftv_train.training.checkpointing import CheckpointManager

    assert CheckpointManager(output / "checkpoints", 2).latest().name == "step-00000002"

    # Resume (the partial directory is cleaned up), then SIGTERM once training is under way.
    more = "--resume latest --max_steps 10000 --checkpoint_every 10000 --log_every 1 --no-progress_bar".split()
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "train" / "train.py"), *args, *more],
        env=subprocess_env(),
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
    reset_accelerate()
    try:
        trainer = Trainer(config)
        generator = trainer.accelerator.unwrap_model(trainer.generator)
        discriminator = trainer.accelerator.unwrap_model(trainer.disc)
        g_before = {k: v.clone() for k, v in generator.state_dict().items()}
        d_before = {k: v.clone() for k, v in discriminator.state_dict().items()}
        with pytest.raises(TrainingDivergedError, match="2 consecutive steps"):
            trainer.run()
    finally:
        reset_accelerate()
    assert trainer.state.step == 2
    assert all(torch.equal(g_before[k], v) for k, v in generator.state_dict().items())
    assert any(not torch.equal(d_before[k], v) for k, v in discriminator.state_dict().items())


@pytest.mark.shared_data
def test_accelerate_launch_without_config_file_and_push(tiny_data: Path, tmp_path: Path, hub_server) -> None:
    """`accelerate launch` with no accelerate config file, ending with --push_to_hub to a local Hub server."""
    env = {**subprocess_env(), **hub_env(hub_server.endpoint, tmp_path / "hf")}  # HF_HOME without accelerate config
    env["PYTHONPATH"] = subprocess_env()["PYTHONPATH"]
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
        command.split(), cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=240
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
        f"--init {first} --no-init_discriminator --discriminator_width 0.25 --max_steps 1 "
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
