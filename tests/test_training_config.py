"""Training settings without training: the config and its command line, where each setting lives (the loss weights
and the discriminator's settings are the training config's, not the model's), what each recipe freezes, and the
training commands' `--help`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftv_train.training.config import ConfigError, TrainConfig, parse_config

REPO_ROOT = Path(__file__).resolve().parents[1]
PAPER_YAML = REPO_ROOT / "train" / "configs" / "paper.yaml"


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
        "--mel_loss_weight 30 --frame_comb_loss_weight 20 --discriminator_width 0.5 --set model.upsample_rates=[8,8,4] "
        "--set model.upsample_kernel_sizes=[16,16,8] --learning_rate 1e-4 --resume latest"
    )
    config = parse_config(["--config", str(PAPER_YAML), "--data", "d", *overrides.split()])
    assert not config.multiview and not config.audio_attribute_loss and config.attributes == ["gender"]
    assert config.max_grad_norm == 5.0 and config.learning_rate == 1e-4 and config.resume == "latest"
    kwargs = config.model_config_kwargs()
    assert kwargs["face_encoder_type"] == "vit" and kwargs["use_audio_attribute_head"] is False
    assert kwargs["upsample_rates"] == [8, 8, 4]
    assert config.discriminator_settings()["discriminator_width"] == 0.5
    assert config.loss_weights().mel_loss_weight == 30.0 and config.loss_weights().frame_comb_loss_weight == 20.0
    assert parse_config(["--config", str(PAPER_YAML), "--data", "d"]).loss_weights().frame_comb_loss_weight == 0.0
    assert not {"discriminator_width", "mel_loss_weight"} & set(kwargs)  # training settings, not the model's

    for bad in ("--mixed_precision fp8", "--attributes age", "--batch_size zero", "--set model.no_such_field=1"):
        with pytest.raises(ConfigError):
            parse_config(["--config", str(PAPER_YAML), "--data", "d", *bad.split()])
    (tmp_path / "bad.yaml").write_text("batch_sise: 3\n")
    with pytest.raises(ConfigError, match="batch_sise"):
        parse_config(["--config", str(tmp_path / "bad.yaml"), "--data", "d"])
    with pytest.raises(ConfigError, match="--data"):
        TrainConfig().validate()


def test_the_command_line_keeps_its_spellings() -> None:
    """Every boolean takes --no-NAME, --no_NAME and both with dashes (also those that default to false), values
    take `none` and comma lists, and the YAML file's values are the defaults the command line overrides."""
    args = (
        "--no-progress_bar --no_face-attribute-loss --no-init-discriminator --cpu false --no-export_only "
        "--attributes gender,race --adam_betas 0.5,0.9 --max_grad_norm none --heldout_split none --log_with none"
    )
    config = parse_config(["--config", str(PAPER_YAML), "--data", "d", *args.split()])
    assert not (config.progress_bar or config.face_attribute_loss or config.init_discriminator or config.cpu)
    assert config.attributes == ["gender", "race"] and config.adam_betas == [0.5, 0.9]
    assert config.max_grad_norm is None and config.heldout_split is None and config.log_with == ["none"]
    spaced = parse_config(["--data", "d", "--attributes", "race", "gender", "--cpu", "--multiview", "off"])
    assert spaced.attributes == ["race", "gender"] and spaced.cpu and not spaced.multiview
    tiny = REPO_ROOT / "train" / "configs" / "tiny.yaml"
    assert parse_config(["--config", str(tiny), "--data", "d"]).batch_size == 2
    assert parse_config(["--config", str(tiny), "--data", "d", "--batch_size", "3"]).batch_size == 3


def test_the_face_encoder_name_is_checked_by_the_model_config(tmp_path: Path) -> None:
    """One check, FTVConfig's (against the face encoder registry), reported as a configuration error."""
    from ftv_train.training.trainer import Trainer
    from tests.test_training_data import reset_accelerate

    config = parse_config(["--data", "nowhere", "--output", str(tmp_path), "--face_encoder_type", "resnet", "--cpu"])
    reset_accelerate()
    try:
        with pytest.raises(ConfigError, match="face_encoder_type must be"):
            Trainer(config)
    finally:
        reset_accelerate()


def test_older_yaml_and_set_spellings_of_the_moved_settings(tmp_path: Path) -> None:
    """Loss weights and discriminator settings written under `model` (an older YAML, a checkpoint's
    train_config.yaml, `--set model.KEY=VALUE`) still set the training config's fields; null weights are the
    paper's; the command line overrides a YAML file's."""
    old = tmp_path / "old.yaml"
    old.write_text(
        "model:\n  hidden_size: 64\n  discriminator_width: 0.25\n  discriminator_periods: [2, 3, 5]\n"
        "  kl_loss_weight: 2\nmel_loss_weight: null\nadversarial_loss_weight: null\n"
    )
    config = parse_config(["--config", str(old), "--data", "d"])
    assert config.model == {"hidden_size": 64}
    assert (config.discriminator_width, config.discriminator_periods) == (0.25, [2, 3, 5])
    assert (config.kl_loss_weight, config.mel_loss_weight, config.adversarial_loss_weight) == (2.0, 45.0, 1.0)
    assert TrainConfig.from_yaml(old).discriminator_width == 0.25
    assert (
        parse_config(["--config", str(old), "--data", "d", "--discriminator_width", "0.5"]).discriminator_width == 0.5
    )
    overridden = parse_config(
        ["--data", "d", "--set", "model.discriminator_width=0.5", "--set", "model.mel_loss_weight=30"]
    )
    assert (overridden.discriminator_width, overridden.mel_loss_weight, overridden.model) == (0.5, 30.0, {})
    (tmp_path / "twice.yaml").write_text("discriminator_width: 0.5\nmodel:\n  discriminator_width: 0.25\n")
    with pytest.raises(ConfigError, match="twice"):
        parse_config(["--config", str(tmp_path / "twice.yaml"), "--data", "d"])


def test_loss_weights_and_discriminator_settings_have_one_owner(tmp_path: Path) -> None:
    """The training config owns them: a model config has none of its own and nothing in the model reads one (an
    older config.json carrying them loads, with them inert), the model's own `loss` is the paper's sum, and a
    discriminator keeps the settings it was built with, also one saved with the whole model config before it had
    its own."""
    import torch

    from ftv_model import FTVConfig, FTVDiscriminator, FTVModel
    from ftv_model.configuration_ftv import TRAINING_SETTINGS
    from ftv_model.discriminator import FTVDiscriminatorConfig
    from ftv_model.losses import PAPER_LOSS_WEIGHTS
    from ftv_train.training.config import FORMER_MODEL_SETTINGS
    from tests.model_fixtures import tiny_config

    assert TrainConfig().loss_weights() == PAPER_LOSS_WEIGHTS
    default_discriminator = FTVDiscriminatorConfig(**TrainConfig().discriminator_settings())
    assert default_discriminator.to_dict() == FTVDiscriminatorConfig().to_dict()
    assert set(FORMER_MODEL_SETTINGS) == set(TRAINING_SETTINGS)
    fresh = FTVConfig()
    assert not any(hasattr(fresh, name) for name in TRAINING_SETTINGS)
    assert not set(TRAINING_SETTINGS) & set(json.loads(fresh.to_json_string()))
    legacy = {**fresh.to_dict(), "mel_loss_weight": 30.0, "discriminator_width": 0.25, "discriminator_periods": [2]}
    (tmp_path / "config.json").write_text(json.dumps(legacy))
    loaded = FTVConfig.from_pretrained(tmp_path)
    assert loaded.to_dict()["mel_loss_weight"] == 30.0  # kept as it was, so its fingerprint is too
    assert FTVDiscriminator(loaded).config.discriminator_width == 0.25  # what an older caller built from it
    # an export's discriminator/ from before: its weights beside the whole model config (model type "ftv")
    saved = FTVDiscriminator(FTVDiscriminatorConfig(discriminator_periods=[2], discriminator_width=0.25))
    saved.save_pretrained(tmp_path / "discriminator")
    (tmp_path / "discriminator" / "config.json").write_text(json.dumps(legacy))
    old_discriminator = FTVDiscriminator.from_pretrained(tmp_path / "discriminator")
    assert (old_discriminator.config.discriminator_width, old_discriminator.config.discriminator_periods) == (0.25, [2])
    assert all(torch.equal(v, saved.state_dict()[k]) for k, v in old_discriminator.state_dict().items())
    assert json.loads(old_discriminator.config.to_json_string())["model_type"] == "ftv-discriminator"

    torch.manual_seed(0)
    model = FTVModel(tiny_config(segment_size=2048, mel_loss_weight=30.0)).train()  # an inert weight
    batch = {
        "input_ids": torch.randint(1, 100, (2, 12)),
        "pixel_values": torch.randn(2, 3, 128, 128),
        "waveform": 0.1 * torch.randn(2, 12000),
        "waveform_lengths": torch.tensor([12000, 11000]),
        "gender_labels": torch.tensor([1, 0]),
        "race_labels": torch.tensor([3, -100]),
    }
    out = model(**batch)
    terms = (out.mel_loss, out.kl_loss, out.duration_loss, out.face_attribute_loss, out.audio_attribute_loss)
    assert torch.equal(out.loss, PAPER_LOSS_WEIGHTS.reconstruction_loss(*terms))


def test_the_bundled_checkpoint_keeps_its_voice_profile_fingerprint() -> None:
    """Its config.json still carries the loss weights and discriminator it was trained with; they stay part of its
    config, so voice profiles made with it before the settings moved to training stay valid."""
    from ftv_model import FTVModel
    from ftv_model.loading import BUNDLED_CHECKPOINT
    from ftv_model.voice_profile import model_fingerprint

    model = FTVModel.from_pretrained(BUNDLED_CHECKPOINT)
    assert model_fingerprint(model) == "d53b90ad8d67734339a43b57b2ad3433627d3457e67e9eb87266adeb8692153f"


def test_every_training_command_answers_help(capsys: pytest.CaptureFixture[str]) -> None:
    from ftv_train.training import face_pretraining, posterior_distillation, trainer, voice_directions, warm_start

    expected = {
        trainer: ("--config", "--set", "--no-multiview", "--discriminator_width", "--mel_loss_weight"),
        posterior_distillation: ("--num-utterances", "--synthesis-batch-size", "--threads"),
        face_pretraining: ("--write-pack", "--model-config", "--load-face-branch", "--face-drop-path-rate"),
        warm_start: ("--init", "--weights", "--out"),
        voice_directions: ("--model", "--data", "--speakers", "--write"),
    }
    for module, options in expected.items():
        with pytest.raises(SystemExit) as exit_:
            module.main(["--help"])
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        assert all(option in text for option in options), (module.__name__, text)


# ---------------------------------------------------------------------------------------------------------------------
# What each recipe freezes
# ---------------------------------------------------------------------------------------------------------------------


def test_freeze_keeps_the_named_conditioning_layers_trainable() -> None:
    """The offline recipe freezes the imported prior side but not its face-conditioning layers."""
    from ftv_model import FTVModel
    from ftv_train.training.warm_start import freeze_parameters
    from tests.model_fixtures import tiny_config

    config = parse_config(["--config", str(REPO_ROOT / "train" / "configs" / "offline-cpu.yaml"), "--data", "x"])
    model = FTVModel(tiny_config())
    freeze_parameters(model, config.freeze, config.keep_trainable)
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
        freeze_parameters(FTVModel(tiny_config()), ["no_such_module."])


def test_decoder_stage_keeps_the_distilled_posterior_frozen() -> None:
    """offline-cpu-decoder.yaml: the decoder and the prior's face conditioning train against a posterior that must
    stay joe's (its own face conditioning included), with the discriminator on."""
    from ftv_model import FTVModel
    from ftv_train.training.warm_start import freeze_parameters
    from tests.model_fixtures import tiny_config

    path = REPO_ROOT / "train" / "configs" / "offline-cpu-decoder.yaml"
    config = parse_config(["--config", str(path), "--data", "x"])
    model = FTVModel(tiny_config())
    freeze_parameters(model, config.freeze, config.keep_trainable)
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
    from ftv_train.training.warm_start import freeze_parameters
    from tests.model_fixtures import tiny_config

    path = REPO_ROOT / "train" / "configs" / "offline-cpu-prior.yaml"
    config = parse_config(["--config", str(path), "--data", "x"])
    model = FTVModel(tiny_config())
    freeze_parameters(model, config.freeze, config.keep_trainable)
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
    from ftv_train.training.warm_start import freeze_parameters
    from tests.model_fixtures import tiny_config

    path = REPO_ROOT / "train" / "configs" / "offline-cpu-gta.yaml"
    config = parse_config(["--config", str(path), "--data", "x"])
    assert config.model_config_kwargs()["decoder_latents"] == "prior" and config.adversarial
    model = FTVModel(tiny_config(**config.model_config_kwargs()))
    assert model.config.decoder_latents == "prior"
    freeze_parameters(model, config.freeze, config.keep_trainable)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert {name.split(".")[0] for name in trainable} == {
        "decoder",
        "flow",
        "face_attribute_head",
        "audio_attribute_head",
    }
    assert all("cond_layer" in name for name in trainable if name.startswith("flow."))


def test_clean_decoder_experiment_trains_the_decoder_alone() -> None:
    """offline-cpu-clean-decoder.yaml: only the decoder moves, so who gets which voice cannot change while the
    frame-comb loss (given on the command line) works on the buzz."""
    from ftv_model import FTVModel
    from ftv_train.training.warm_start import freeze_parameters
    from tests.model_fixtures import tiny_config

    path = REPO_ROOT / "train" / "configs" / "offline-cpu-clean-decoder.yaml"
    config = parse_config(["--config", str(path), "--data", "x", "--frame_comb_loss_weight", "20"])
    assert config.loss_weights().frame_comb_loss_weight == 20.0 and config.adversarial
    model = FTVModel(tiny_config(**config.model_config_kwargs()))
    freeze_parameters(model, config.freeze, config.keep_trainable)
    trainable = {name.split(".")[0] for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable == {"decoder"}


SDP_TRAINING_ONLY = ("duration_predictor.post_", "duration_predictor.flows.1.")


@pytest.mark.parametrize(
    "recipe", ["offline-cpu-faces.yaml", "offline-cpu-faces-clean.yaml", "offline-cpu-kokoro.yaml"]
)
def test_one_voice_per_face_stage_trains_the_face_to_voice_path(recipe: str) -> None:
    """Stage 4 (all forms): the descriptor branch, the decoder, the flow's face conditioning and the heads learn who
    gets which voice; joe's prior side (text encoder, SC-CNN, flow body, posterior, NesT) stays fixed. The clean form
    also lets the duration predictor's face conditioning learn (the corpus's rate axis); the clean form and the
    Kokoro one turn the buzz loss on, and the Kokoro one keeps joe's durations whole (learnt ones lost words)."""
    from ftv_model import FTVModel
    from ftv_train.training.warm_start import freeze_parameters
    from tests.model_fixtures import tiny_config

    config = parse_config(["--config", str(REPO_ROOT / "train" / "configs" / recipe), "--data", "x"])
    model = FTVModel(tiny_config(**config.model_config_kwargs()))
    assert model.face_descriptor_fusion is not None and config.adversarial
    freeze_parameters(model, config.freeze, config.keep_trainable)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    roots = {name.split(".")[0] for name in trainable}
    assert {"face_descriptor_fusion", "decoder", "flow", "face_attribute_head", "audio_attribute_head"} <= roots
    assert not roots & {"text_encoder", "face_conditioning", "posterior_encoder", "face_encoder", "face_projection"}
    assert all("cond_layer" in name for name in trainable if name.startswith("flow."))
    durations = {name for name in trainable if name.startswith("duration_predictor.")}
    clean = recipe == "offline-cpu-faces-clean.yaml"
    # of what synthesis uses, only the face conditioning; the rest only shapes the training bound
    used_in_synthesis = {name for name in durations if not name.startswith(SDP_TRAINING_ONLY)}
    assert used_in_synthesis == ({"duration_predictor.cond.weight", "duration_predictor.cond.bias"} if clean else set())
    assert bool(durations - used_in_synthesis) == clean
    assert (config.loss_weights().frame_comb_loss_weight > 0) == (recipe != "offline-cpu-faces.yaml")


def test_posterior_latent_experiment_trains_the_decoder_on_recordings_and_keeps_joes_words() -> None:
    """offline-cpu-kokoro-posterior.yaml: the decoder learns from the recording's posterior latents (VITS), the
    posterior and the whole flow move with it, and joe's text encoder and durations stay frozen."""
    from ftv_model import FTVModel
    from ftv_train.training.warm_start import freeze_parameters
    from tests.model_fixtures import tiny_config

    path = REPO_ROOT / "train" / "configs" / "offline-cpu-kokoro-posterior.yaml"
    config = parse_config(["--config", str(path), "--data", "x"])
    model = FTVModel(tiny_config(**config.model_config_kwargs()))
    assert model.config.decoder_latents == "posterior" and config.adversarial
    freeze_parameters(model, config.freeze, config.keep_trainable)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    roots = {name.split(".")[0] for name in trainable}
    assert {"decoder", "posterior_encoder", "flow"} <= roots
    assert not roots & {"text_encoder", "face_conditioning", "duration_predictor", "face_encoder", "face_projection"}
    assert any(name.startswith("flow.") and "cond_layer" not in name for name in trainable)
