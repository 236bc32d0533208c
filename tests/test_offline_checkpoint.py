"""The committed checkpoint (checkpoints/ftv-offline): the app's and the CLI's default model.

It must stay small (float16, inference only) with a card that says so, load as the default with no arguments, speak
intelligibly and read a London Set woman (001, a training identity of the offline corpus) and a FairFace man (0101,
one of its held-out identities) correctly, and give faces it never trained on clearly different voices: a held-out
woman's voice is pitched well above held-out men's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from ftv_model import loading
from ftv_model.export_inference import export_inference
from ftv_model.model_card import INFERENCE_FILES_SENTENCE as FILES_SENTENCE  # what an inference export holds
from ftv_model.synthesis import Synthesizer

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO_ROOT / "checkpoints" / "ftv-offline"
FACES = REPO_ROOT / "tests" / "fixtures" / "faces"
SENTENCE = "The birch canoe slid on the smooth planks."
# Identities of the offline corpus the checkpoint was trained on that its split held out of training (test_unseen):
# the fixture photo and its speaker id. test_the_compared_faces_are_held_out_identities recomputes the split.
HELD_OUT_WOMAN = ("london_025.jpg", "london-025")
HELD_OUT_MEN = (("london_021.jpg", "london-021"), ("fairface_0101.jpg", "fairface-0101"))
TRAINING_SPLITS = ("train", "validation", "test_seen")  # splits whose speakers training saw


def named_files(card: str) -> list[str]:
    """The file names the card's sentence on what the folder holds names (`config.json`, ...)."""
    (sentence,) = re.findall(r"The files hold\b.*?(?=\n\s*\n|\Z)", card, flags=re.DOTALL)
    return re.findall(r"`([\w./-]+\.\w+/?)`", sentence)


def test_checkpoint_is_a_small_float16_inference_export() -> None:
    size = sum(path.stat().st_size for path in CHECKPOINT.rglob("*") if path.is_file())
    assert size < 50 * 2**20, f"{size / 2**20:.1f} MiB"
    config = json.loads((CHECKPOINT / "config.json").read_text())
    assert config["inference_only"] is True and config["model_type"] == "ftv"
    with safe_open(str(CHECKPOINT / "model.safetensors"), "pt") as weights:
        dtypes = {weights.get_slice(name).get_dtype() for name in weights.keys()}
        assert not any(name.startswith("posterior_encoder.") for name in weights.keys())
    assert dtypes == {"F16"}
    card = (CHECKPOINT / "README.md").read_text()
    for fact in ("Synthetic voices on real faces", "never heard a real person's voice", "Inference export"):
        assert fact in card
    # It names the files it holds, and only those: no discriminator/ to continue training from.
    assert FILES_SENTENCE in card and "discriminator/" not in card and not (CHECKPOINT / "discriminator").exists()
    assert named_files(card) and all((CHECKPOINT / name).is_file() for name in named_files(card))


def test_an_inference_export_card_names_what_the_folder_holds(tmp_path: Path) -> None:
    """export_inference keeps the training card but not its `discriminator/` claim: the card names the files the
    export holds (each one there), with or without a source card."""
    from ftv_train.training.model_card import build_model_card
    from tests.model_fixtures import save_tiny_checkpoint

    source = save_tiny_checkpoint(tmp_path / "final")
    (source / "README.md").write_text(build_model_card({"steps": 1}))
    assert "`discriminator/`" in (source / "README.md").read_text()  # what a training export's card says
    exported = export_inference(source, tmp_path / "export")
    card = (exported / "README.md").read_text()
    assert not (exported / "discriminator").exists() and "discriminator/" not in card
    assert card.count("The files hold") == 1 and FILES_SENTENCE in card and "## Usage" in card  # the rest is kept
    assert sorted(named_files(card)) == sorted(
        ["config.json", "model.safetensors", "processor_config.json", "tokenizer_config.json", "vocab.json"]
    )
    assert all((exported / name).is_file() for name in named_files(card))
    assert build_model_card({"steps": 1}, holds="inference").count("discriminator/") == 0

    (source / "README.md").unlink()
    bare = (export_inference(source, tmp_path / "bare") / "README.md").read_text()
    assert FILES_SENTENCE in bare and "discriminator/" not in bare


@pytest.fixture(scope="module")
def default_synthesizer() -> Synthesizer:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("FTV_MODEL", raising=False)
        patch.delenv("FTV_ALLOW_UNTRAINED", raising=False)
        synthesizer = Synthesizer()  # no arguments: what `python app.py` and the CLI serve
    assert Path(synthesizer.source) == loading.BUNDLED_CHECKPOINT == CHECKPOINT
    assert not synthesizer.untrained
    return synthesizer


def median_f0(waveform: np.ndarray, rate: int) -> float:
    from ftv_train.corpus.world import load_pyworld

    pyworld = load_pyworld()  # pyworld 0.3.5's own __init__ needs the removed pkg_resources
    samples = waveform.astype(np.float64)
    f0, _ = pyworld.harvest(samples, rate, f0_floor=60.0, f0_ceil=400.0)
    voiced = f0[f0 > 0]
    assert voiced.size > 20, "almost no voiced frames"
    return float(np.median(voiced))


@pytest.fixture(scope="module")
def voice(default_synthesizer: Synthesizer):
    """SENTENCE spoken (seed 0) for a fixture face, synthesized once per module."""
    results = {}

    def synthesize(photo: str):
        if photo not in results:
            results[photo] = default_synthesizer.synthesize(Image.open(FACES / photo), SENTENCE, seed=0)
        return results[photo]

    return synthesize


@pytest.fixture(scope="module")
def woman_and_man(voice):
    return voice("london_001.jpg"), voice("fairface_0101.jpg")


def test_default_model_speaks_intelligibly_and_reads_the_faces(default_synthesizer, woman_and_man) -> None:
    """whisper tiny.en understands the bundled voice on both faces: corpus CER over three Harvard sentences each
    below 20% (its CER on the corpus's own recordings is 14%; the recipes that lost the words scored 50-130%)."""
    import torch
    import torchaudio

    from ftv_train.corpus.prompts import HARVARD
    from ftv_train.evaluation.metrics.cer import character_errors, load_recognizer

    woman, man = woman_and_man
    assert woman.attributes["gender"]["female"] > 0.5 > man.attributes["gender"]["female"]
    recognizer = load_recognizer("whisper")
    errors = characters = 0
    transcripts = []
    for face in ("london_001.jpg", "fairface_0101.jpg"):
        for sentence in (SENTENCE, *HARVARD[1:3]):
            result = default_synthesizer.synthesize(Image.open(FACES / face), sentence, seed=0)
            rate = result.sampling_rate
            audio16k = torchaudio.functional.resample(torch.from_numpy(result.waveform), rate, 16000).numpy()
            (text,) = recognizer.transcribe([audio16k], 16000)
            item_errors, item_characters = character_errors(sentence, text)
            errors, characters = errors + item_errors, characters + item_characters
            transcripts.append(text)
    assert errors / characters < 0.2, transcripts


def test_the_compared_faces_are_held_out_identities(shared_data: Path) -> None:
    """The faces below are identities the offline corpus held out of training: its split (seed 0, the
    data-preparation fractions) over the faces in ../shared, whose 264 held-out identities are the card's
    test_unseen row; their labels are the genders the test expects."""
    from ftv_train.corpus.build import OfflineCorpusConfig, discover_identities, plan_splits

    found = discover_identities(shared_data / "faces")
    identities = {identity.speaker: identity for identity in found}
    plan = plan_splits(found, OfflineCorpusConfig(faces=str(shared_data / "faces"), out="unused"))
    splits = plan.speaker_split  # "training", or the held-out split
    held_out = {speaker for speaker, split in splits.items() if split != "training"}
    assert len(held_out) == 264 and "| test_unseen | 1056 | 264 |" in (CHECKPOINT / "README.md").read_text()
    assert splits[HELD_OUT_WOMAN[1]] == "test_unseen" and identities[HELD_OUT_WOMAN[1]].gender == 1  # female
    for _, speaker in HELD_OUT_MEN:
        assert splits[speaker] == "test_unseen" and identities[speaker].gender == 0  # male
    assert not {HELD_OUT_WOMAN[1], *(s for _, s in HELD_OUT_MEN)} & plan.removed
    assert "london-001" not in held_out  # the training identity the reading test uses


def test_the_face_sets_the_voice(voice) -> None:
    """Faces the checkpoint never trained on: the held-out London woman's voice is pitched clearly above both
    held-out men's, a London and a FairFace one (measured: 197 Hz against 110 and 118 Hz)."""

    def voice_f0(photo: str) -> float:
        result = voice(photo)
        return median_f0(result.waveform, result.sampling_rate)

    woman_f0 = voice_f0(HELD_OUT_WOMAN[0])
    for photo, _ in HELD_OUT_MEN:
        assert woman_f0 > 1.3 * voice_f0(photo), photo
