"""The offline corpus (train/make_offline_corpus.py, ftv_train/corpus/) built small from the shared faces.

One ``--small`` build (12 identities x 3 sentences, two workers) is shared by the tests; it needs the voice engines
(apt: flite festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k espeak-ng) and pyworld.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from ftv_model.attributes import GENDER_LABELS, RACE_LABELS
from ftv_model.face_detection import FaceDetector
from ftv_train.corpus.build import OfflineCorpusConfig, build_faces, build_speaker
from ftv_train.corpus.cli import main as make_offline_corpus
from ftv_train.corpus.engines import EngineUnavailableError
from ftv_train.corpus.faces import Identity, discover_identities, small_selection
from ftv_train.corpus.voice_mapping import AXES, MAPPING_NAME, VoiceMapping
from ftv_train.corpus.voices import BASE_VOICES, check_engines, voice_params
from ftv_train.corpus.world import estimate_f0
from ftv_train.data.dataset_format import (
    REQUIRED_SPLITS,
    SPLITS,
    decode_audio,
    face_images,
    load_prepared_dataset,
    load_report,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _engines_or_skip() -> None:
    if importlib.util.find_spec("pyworld") is None:
        pytest.skip("needs pyworld (requirements-train.txt)")
    try:
        check_engines()
    except EngineUnavailableError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def corpus(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The --small corpus, built through the CLI (`ftv-make-offline-corpus`, train/make_offline_corpus.py) with two
    workers."""
    _engines_or_skip()
    out = tmp_path_factory.mktemp("offline") / "corpus"
    code = make_offline_corpus(
        ["--faces", str(shared_data / "faces"), "--out", str(out), "--small", "--workers", "2", "--no-progress"]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def dataset(corpus: Path):
    return load_prepared_dataset(corpus, decode_audio=False, decode_faces=False)


def _rows(dataset) -> list[dict]:
    return [dict(row, split=split) for split in SPLITS for row in dataset[split]]


def test_loads_in_the_schema_with_speaker_disjoint_unseen_split(corpus: Path, dataset) -> None:
    report = load_report(corpus)
    assert report["total"] == {**report["total"], "utterances": 36, "speakers": 12}
    speakers = {split: set(dataset[split]["speaker"]) for split in SPLITS}
    assert all(dataset[split].num_rows > 0 for split in REQUIRED_SPLITS)  # 12 identities: one held out
    held_out = speakers["test_unseen"] | speakers["validation_unseen"]
    assert held_out and not held_out & (speakers["train"] | speakers["validation"] | speakers["test_seen"])
    assert speakers["test_seen"] <= speakers["train"]
    assert report["offline"]["identities"] == {"fairface": 4, "london": 4, "utkface": 4}
    assert {row["id"] for row in _rows(dataset)} == {
        f"{s}/{n:02d}" for s in report["offline"]["voices"] for n in range(3)
    }


def test_views_and_labels(shared_data: Path, corpus: Path, dataset) -> None:
    truth = {identity.speaker: identity for identity in discover_identities(shared_data / "faces")}
    labels: dict[str, set] = defaultdict(set)
    for row in _rows(dataset):
        assert 2 <= row["num_views"] <= 5 and len(row["faces"]) == row["num_views"]
        assert all(face.size == (128, 128) for face in face_images(row["faces"]))
        labels[row["speaker"]].add((row["gender"], row["race"]))
        assert row["phonemes"] and row["text"]
    for speaker, values in labels.items():
        assert values == {(truth[speaker].gender, truth[speaker].race)}
        if speaker.startswith("utkface-"):  # labels straight from the file name, checked independently here
            age, gender, race = speaker.removeprefix("utkface-").split("_")[:3]
            assert GENDER_LABELS[truth[speaker].gender] == ("male", "female")[int(gender)]
            expected = {"0": "white", "1": "black", "2": "asian", "3": "indian"}.get(race)
            assert truth[speaker].race == (RACE_LABELS.index(expected) if expected else -1)
    assert {gender for values in labels.values() for gender, _ in values} == {0, 1}


def test_one_consistent_voice_per_identity_and_female_voices_higher(corpus: Path, dataset) -> None:
    voices = load_report(corpus)["offline"]["voices"]
    f0: dict[str, list[float]] = defaultdict(list)
    gender = {}
    for row in _rows(dataset):
        f0[row["speaker"]].append(estimate_f0(decode_audio(row["audio"])))
        gender[row["speaker"]] = row["gender"]
    for speaker, values in f0.items():
        target = voices[speaker]["f0"]
        # every sentence of a speaker lands near the same target pitch (within 2.5 semitones)
        assert all(abs(12 * np.log2(value / target)) < 2.5 for value in values), (speaker, target, values)
    medians = {speaker: float(np.median(values)) for speaker, values in f0.items()}
    male = [m for s, m in medians.items() if gender[s] == 0]
    female = [m for s, m in medians.items() if gender[s] == 1]
    assert np.median(female) > 1.4 * np.median(male), (male, female)


def test_every_view_has_its_descriptor_precomputed_and_the_rule_saved(corpus: Path, dataset) -> None:
    """Training with face descriptors reads them from the corpus (`face_descriptors.npz`), keyed by the pixels of
    each stored view; the values are what the descriptor network gives for that view."""
    from ftv_model.face_descriptor import DESCRIPTOR_CACHE_NAME, FaceDescriptor, pixels_key

    with np.load(corpus / DESCRIPTOR_CACHE_NAME) as stored:
        known = dict(zip(stored["keys"].tolist(), stored["descriptors"]))
    views = [face for row in _rows(dataset) for face in face_images(row["faces"])]
    assert all(pixels_key(view) in known for view in views)
    fresh = FaceDescriptor()(views[:3])
    np.testing.assert_allclose(np.stack([known[pixels_key(v)] for v in views[:3]]), fresh, atol=1e-5)
    report = load_report(corpus)["offline"]
    assert report["voice_rule"]["axes"] == list(AXES) and (corpus / MAPPING_NAME).is_file()


def test_transform_keeps_speech_clean(corpus: Path) -> None:
    dnsmos = load_report(corpus)["offline"]["dnsmos"]
    assert dnsmos["clips"] == 12
    assert dnsmos["after"] > dnsmos["before"] - 0.35, dnsmos


def test_deterministic_across_processes(shared_data: Path, corpus: Path, tmp_path: Path) -> None:
    """A speaker rebuilt here, in this process, matches the worker-built one byte for byte (same seed, and the
    voice mapping the build fitted and saved)."""
    voices = load_report(corpus)["offline"]["voices"]
    identity = next(i for i in discover_identities(shared_data / "faces") if i.speaker == sorted(voices)[0])
    config = OfflineCorpusConfig(faces=str(shared_data / "faces"), out=str(tmp_path), small=True, progress=False)
    built = next((corpus / ".work").glob("offline-*"))
    faces = build_faces(identity, config, FaceDetector(backend="dlib", small_face_fallback=False), tmp_path)
    for face in (tmp_path / "faces" / identity.speaker).glob("face_*.png"):
        assert face.read_bytes() == (built / "faces" / identity.speaker / face.name).read_bytes()
    mapping = VoiceMapping.load(corpus / MAPPING_NAME)
    meta = build_speaker(identity, config, tmp_path, mapping, faces)
    ours, theirs = tmp_path / "speech" / identity.speaker, built / "speech" / identity.speaker
    assert json.loads((ours / "speaker.json").read_text()) == json.loads((theirs / "speaker.json").read_text())
    for item in meta["utterances"]:
        assert (ours / item["folder"] / "audio.flac").read_bytes() == (
            theirs / item["folder"] / "audio.flac"
        ).read_bytes()


def _identity(gender: int, age: float | None, name: str = "x") -> Identity:
    return Identity(speaker=name, source="test", images=(), gender=gender, race=-1, age=age)


def test_voice_follows_labels_and_the_face_position() -> None:
    middle = dict.fromkeys(AXES, 0.5)
    male = [voice_params(_identity(0, 30), {**middle, "f0": u}, "male").f0 for u in np.linspace(0.01, 0.99, 9)]
    female = [voice_params(_identity(1, 30), {**middle, "f0": u}, "female").f0 for u in np.linspace(0.01, 0.99, 9)]
    assert max(male) < min(female)
    assert male == sorted(male) and len(set(male)) == 9  # higher along the F0 axis, every step a different voice
    bases = {voice_params(_identity(0, 30), {**middle, "base": u}, "male").base for u in np.linspace(0.01, 0.99, 20)}
    assert len(bases) == sum(v.pool == "male" for v in BASE_VOICES)  # the base-voice axis reaches every voice
    assert voice_params(_identity(1, 6), middle, "female").f0 > voice_params(_identity(1, 30), middle, "female").f0


def test_voice_mapping_is_a_smooth_fixed_function_of_the_descriptor(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    descriptors = rng.normal(0.0, 0.05, (200, 128)) + np.r_[np.full(100, 0.1), np.full(100, -0.1)][:, None]
    pools = ["male"] * 100 + ["female"] * 100
    mapping = VoiceMapping.fit(descriptors, pools)
    mapping.save(tmp_path / MAPPING_NAME)
    loaded = VoiceMapping.load(tmp_path / MAPPING_NAME)
    face = descriptors[3]
    assert loaded.position(face, "male") == pytest.approx(mapping.position(face, "male"), abs=1e-5)  # fixed
    near = face + rng.normal(0.0, 0.002, 128)  # another photo of the same person
    far = descriptors[40]  # someone else of the same pool
    gap = lambda a, b: max(abs(a[k] - b[k]) for k in AXES)  # noqa: E731
    assert gap(mapping.position(face, "male"), mapping.position(near, "male")) < 0.05
    assert gap(mapping.position(face, "male"), mapping.position(far, "male")) > 0.2
    positions = np.array([list(mapping.position(d, "male").values()) for d in descriptors[:100]])
    assert positions.min() > 0 and positions.max() < 1 and (positions.std(axis=0) > 0.2).all()  # spread over ranges
    assert mapping.nearest_pool(descriptors[150]) == "female"


def test_sources_and_licences(shared_data: Path, corpus: Path) -> None:
    publishable = discover_identities(shared_data / "faces", ("london", "fairface"))
    assert {identity.source for identity in publishable} == {"london", "fairface"}
    assert "non-commercial" in load_report(corpus)["offline"]["licences"]["utkface"]
    with pytest.raises(ValueError, match="Unknown face sources"):
        discover_identities(shared_data / "faces", ("lrs3",))


def test_missing_engine_names_the_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(EngineUnavailableError, match="apt-get install flite"):
        check_engines()


def test_cli_keeps_every_flag_spelling_and_the_library_defaults() -> None:
    from ftv_train.common.cli import parse_arguments
    from ftv_train.corpus.cli import OfflineCorpusArguments

    def parse(*flags: str) -> OfflineCorpusConfig:
        return parse_arguments(OfflineCorpusArguments, ["--faces", "f", "--out", "o", *flags], "test").to_config()

    assert parse() == OfflineCorpusConfig(faces="f", out="o")
    flags = ["--small", "--seed", "3", "--workers", "2", "--sentences", "2", "--identities", "5"]
    flags += ["--sources", "london, fairface", "--dnsmos-sample", "0", "--no-progress"]
    expected = dict(small=True, seed=3, workers=2, sentences=2, identities=5, dnsmos_sample=0, progress=False)
    assert parse(*flags) == OfflineCorpusConfig("f", "o", sources=("london", "fairface"), **expected)


def test_audio_is_16k_flac(dataset) -> None:
    import soundfile

    row = dataset["train"][0]
    info = soundfile.info(io.BytesIO(row["audio"]["bytes"]))
    assert info.samplerate == 16000 and info.channels == 1
    assert abs(info.duration - row["duration"]) < 0.01


# --------------------------------------------------------------------------------------------------------------------
# Duplicate photos and the held-out splits


def test_duplicate_photos_are_grouped_by_bytes_and_by_look_not_by_pose(tmp_path: Path) -> None:
    from PIL import Image

    from ftv_train.data.face_dedup import find_duplicate_groups, resolve_duplicates

    fixtures = REPO_ROOT / "tests" / "fixtures" / "faces"
    copy = tmp_path / "copy.jpg"
    copy.write_bytes((fixtures / "london_001.jpg").read_bytes())
    resaved = tmp_path / "resaved.jpg"  # the same photo re-encoded smaller: other bytes, same look
    Image.open(fixtures / "london_005.jpg").resize((160, 160)).save(resaved, quality=70)
    photos = [
        ("a", fixtures / "london_001.jpg"),
        ("b", copy),
        ("c", fixtures / "london_005.jpg"),
        ("d", resaved),
        ("e", fixtures / "fairface_0101.jpg"),
    ]
    groups = find_duplicate_groups(photos)
    assert [(g.speakers, g.exact) for g in groups] == [(("a", "b"), True), (("c", "d"), False)]
    labels = {"a": (0, 1), "b": (0, 1), "c": (1, 0), "d": (0, 0)}
    removed, rows = resolve_duplicates(groups, labels=labels.__getitem__, in_training=lambda s: s == "b")
    assert removed == {"a", "c", "d"}  # a: the held-out copy of b; c/d: labels disagree, both go
    assert [row["kept"] for row in rows] == ["b", None]


def test_no_identity_and_no_photo_is_shared_between_training_and_held_out_splits(shared_data: Path) -> None:
    """The real corpus's plan: known UTKFace duplicates are resolved, and no photo of a held-out identity (either
    held-out split) matches a training photo by bytes or by look."""
    from ftv_train.corpus.build import plan_splits
    from ftv_train.data.face_dedup import PHASH_MAX_DISTANCE, THUMBNAIL_MIN_CORRELATION, photo_signature

    identities = discover_identities(shared_data / "faces")
    plan = plan_splits(identities, OfflineCorpusConfig(faces=str(shared_data / "faces"), out="unused"))
    kept = [i for i in identities if i.speaker not in plan.removed]
    sides: dict[str, list] = {"training": [], "held_out": []}
    for identity in kept:
        side = "training" if plan.speaker_split[identity.speaker] == "training" else "held_out"
        sides[side] += [photo_signature(path) for path in identity.images]
    held = {
        split: {s for s, v in plan.speaker_split.items() if v == split} - plan.removed
        for split in ("validation_unseen", "test_unseen")
    }
    assert len(held["validation_unseen"]) > 100 and len(held["test_unseen"]) > 100
    assert not held["validation_unseen"] & held["test_unseen"]
    training_sha = {s.sha256 for s in sides["training"]}
    assert not training_sha & {s.sha256 for s in sides["held_out"]}
    train_bits = np.stack([s.phash for s in sides["training"]])
    train_thumbs = np.stack([s.thumbnail for s in sides["training"]])
    for signature in sides["held_out"]:
        near = (train_bits != signature.phash).sum(axis=1) <= PHASH_MAX_DISTANCE
        assert not near.any() or (train_thumbs[near] @ signature.thumbnail).max() < THUMBNAIL_MIN_CORRELATION
    # the two test_unseen photos that were byte-identical to training photos, and the photo labelled three ways
    assert {"utkface-1_1_1_20170109194716353", "utkface-5_1_2_20161219151834275"} <= plan.removed
    conflicting = {"utkface-20_1_4_20161223230110540", "utkface-21_0_4_20161223214838473"}
    assert conflicting <= plan.removed
    report = plan.report()
    assert report["removed_identities"] == len(plan.removed) and report["conflicting_label_groups"] >= 1

    # a --identities subset spans the ages (UTKFace ids sort by age) and keeps every identity on its full-draw side
    subset = small_selection(identities, 400, spread=True)
    ages = {
        name: [i.age for i in group if i.source == "utkface"]
        for name, group in (("all", identities), ("subset", subset))
    }
    assert abs(np.median(ages["subset"]) - np.median(ages["all"])) <= 5
    assert abs(np.mean(np.less(ages["subset"], 13)) - np.mean(np.less(ages["all"], 13))) < 0.1
    speakers = {identity.speaker for identity in subset}
    part = plan.restricted_to(speakers)
    assert part.speaker_split == {speaker: plan.speaker_split[speaker] for speaker in speakers}
    assert {item.split("/")[0] for item in part.assignment} == speakers
    assert {"validation_unseen", "test_unseen", "training"} <= set(part.speaker_split.values())
    assert part.removed == plan.removed & speakers
