"""The evaluation runner end to end: a tiny randomly initialised FTVModel, a tiny prepared dataset built from real
speech (VCTK, LibriSpeech) and real faces (London set), every report row, and resuming from the cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from ftv_model.attributes import GENDER_LABELS, RACE_LABELS
from ftv_train.common.audio import load_audio
from ftv_train.data.dataset_format import FEATURES
from ftv_train.evaluation import (
    EvalConfig,
    FTVSynthesizer,
    MetricSuite,
    Utterance,
    age_group,
    run_evaluation,
    safe_name,
    score_records,
    select_utterances,
    shuffled_face_donors,
    speaker_ages,
)
from ftv_train.evaluation.metrics import registry
from ftv_train.evaluation.metrics.base import Column, Metric, fmt
from ftv_train.evaluation.metrics.gender import VoiceGenderClassifier
from ftv_train.evaluation.metrics.speaker import SpeakerReferences

REPO_ROOT = Path(__file__).resolve().parents[1]
LONDON_RACE = {"white": "white", "black": "black", "east_asian": "asian", "west_asian": "middle eastern"}


def _faces_by_gender(shared_data: Path) -> dict[str, list[tuple[list[Image.Image], int]]]:
    """London-set people as (two views, race id), grouped by gender: each test speaker gets a matching face."""
    root = shared_data / "faces" / "london"
    out: dict[str, list] = {"male": [], "female": []}
    for line in (root / "london_info.csv").read_text().strip().splitlines()[1:]:
        face_id, _, gender, eth = line.split(",")
        if gender not in out or len(out[gender]) >= 8:
            continue
        views = [
            Image.open(root / v / f"{face_id}.jpg").convert("RGB").resize((128, 128)) for v in ("neutral", "smiling")
        ]
        race = RACE_LABELS.index(LONDON_RACE[eth]) if eth in LONDON_RACE else -1
        out[gender].append((views, race))
    return out


def _flac_bytes(path: Path) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, load_audio(path), 16000, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def tiny_dataset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train: LibriSpeech (10 speakers, gender-labelled, for the voice-gender classifier); validation: one item;
    test_seen / test_unseen: disjoint VCTK utterances of its 4 speakers (the runner does not care which split
    holds which speakers; real transcripts are what CER needs)."""
    import datasets

    from ftv_model.text_frontend import phonemize

    faces = _faces_by_gender(shared_data)
    features = FEATURES  # the schema prepare_data writes
    speaker_face: dict[str, tuple[list[Image.Image], int]] = {}

    def row(uid: str, speaker: str, gender: str, text: str, path: Path) -> dict:
        if speaker not in speaker_face:
            speaker_face[speaker] = faces[gender].pop(0)
        views, race = speaker_face[speaker]
        audio = _flac_bytes(path)
        return {
            "id": uid,
            "speaker": speaker,
            "text": text,
            "phonemes": "",
            "audio": {"bytes": audio, "path": None},
            "duration": float(sf.info(path).duration),
            "faces": views,
            "num_views": len(views),
            "gender": GENDER_LABELS.index(gender),
            "race": race,
        }

    libri = shared_data / "speech" / "librispeech_test_other"
    sex = {}
    for line in (libri / "SPEAKERS.TXT").read_text().splitlines():
        if "|" in line and not line.startswith(";"):
            f = [x.strip() for x in line.split("|")]
            sex[f[0]] = "female" if f[1] == "F" else "male"
    train = []
    for spk_dir in sorted(p for p in libri.iterdir() if p.is_dir()):
        for path in sorted(spk_dir.glob("*.flac"))[:3]:
            train.append(row(f"libri/{path.stem}", spk_dir.name, sex[spk_dir.name], "Text is not used here.", path))
    vctk = shared_data / "speech" / "vctk"
    seen, unseen = [], []
    for i, line in enumerate((vctk / "transcripts.txt").read_text().strip().splitlines()):
        rel, speaker, text = line.split("|")
        gender = "female" if speaker in ("p225", "p228") else "male"
        item = row(f"vctk/{Path(rel).stem}", speaker, gender, text, vctk / rel)
        (seen if i % 10 < 5 else unseen).append(item)
    for items in (seen, unseen):
        for item, ipa in zip(items, phonemize([it["text"] for it in items])):
            item["phonemes"] = ipa
    splits = {"train": train, "validation": train[:1], "test_seen": seen, "test_unseen": unseen}
    dd = datasets.DatasetDict(
        {
            name: datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in features}, features=features)
            for name, rows in splits.items()
        }
    )
    out = tmp_path_factory.mktemp("tiny-data")
    dd.save_to_disk(str(out))
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.model_fixtures import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-ftv-eval"))


@pytest.fixture(scope="module")
def metric_suite() -> MetricSuite:
    return MetricSuite(device="cpu", recognizer="whisper", naturalness="dnsmos")


class CountingSynthesizer:
    """Wraps the real adapter and counts what it is asked to synthesize (to check that resume skips work)."""

    def __init__(self, inner: FTVSynthesizer) -> None:
        self.inner = inner
        self.sampling_rate = inner.sampling_rate
        self.signature = inner.signature
        self.items = 0

    def face_embeddings(self, faces):
        return self.inner.face_embeddings(faces)

    def face_genders(self, faces):
        return self.inner.face_genders(faces)

    def synthesize(self, texts, phonemes, faces=None, face_embeddings=None):
        self.items += len(texts)
        return self.inner.synthesize(texts, phonemes, faces=faces, face_embeddings=face_embeddings)

    def can_reconstruct(self):
        return self.inner.can_reconstruct()

    def reconstruct(self, waves, sample_rate, faces):
        self.items += len(waves)
        return self.inner.reconstruct(waves, sample_rate, faces)


@pytest.fixture(scope="module")
def first_run(tiny_dataset: Path, checkpoint: Path, metric_suite: MetricSuite, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("eval-out")
    config = EvalConfig(
        data=tiny_dataset,
        out=out,
        model=checkpoint,
        splits=["test_seen", "test_unseen"],
        max_utterances=3,
        batch_size=4,
        device="cpu",
        naturalness="dnsmos",
        speaking_rate=4.0,  # the untrained model's durations are ~4x too long: keep DNSMOS (O(length^2)) cheap
    )
    synth = CountingSynthesizer(FTVSynthesizer(checkpoint, device="cpu", speaking_rate=4.0))
    results = run_evaluation(config, synthesizer=synth, metrics=metric_suite)
    return {"config": config, "results": results, "synth": synth, "out": out}


def test_end_to_end_report_rows_and_files(first_run: dict) -> None:
    out, results, synth = first_run["out"], first_run["results"], first_run["synth"]
    assert synth.items == 5 * 6  # five model rows x (3 + 3) utterances
    assert set(results["systems"]) == {
        "ground_truth",
        "model",
        "shuffled_faces",
        "shuffled_within_gender",
        "average_face",
        "copy_synthesis",
    }
    assert results["backends"]["recognizer"].startswith("whisper-tiny.en")
    assert results["backends"]["naturalness"] == "DNSMOS OVRL"
    gt = results["systems"]["ground_truth"]["overall"]
    # the ceiling row on real speech: same-speaker SECS, near-zero CER, every speaker recognised
    assert gt["secs"] > 80 and gt["cer"] < 0.08 and gt["abx_accuracy"] >= 0.75 and gt["abx_chance"] == 0.25
    assert gt["num_utterances"] == 6 and gt["gender_agreement"] is not None
    model = results["systems"]["model"]["overall"]
    assert model["secs"] < gt["secs"] and model["cer"] > gt["cer"]  # an untrained model is far from the ceiling
    for system in results["systems"].values():
        assert set(system["splits"]) == {"test_seen", "test_unseen"}
        assert {r["category"] for r in system["overall"]["subgroups"]["gender"]} >= {"male", "female"}
    assert results["gender_classifier"]["num_speakers"] == 10
    # one voice per person: similarities between different same-gender speakers and within a speaker, with intervals
    for row in ("ground_truth", "model"):
        overall = results["systems"][row]["overall"]
        assert -1.0 <= overall["same_speaker_similarity"] <= 1.0 or overall["same_speaker_similarity"] is None
        assert overall["within_gender_similarity"] is not None
    assert "## One voice per person" in (out / "report.md").read_text()
    # the buzz: measured at the checkpoint's own frame rate; real recordings have none
    saved = json.loads((first_run["config"].model / "config.json").read_text())
    assert first_run["config"].comb_hz == saved["sampling_rate"] / saved["hop_length"]
    assert results["backends"]["comb"].startswith(f"comb at k x {first_run['config'].comb_hz:.2f} Hz")
    assert gt["comb_db"] < 2.0 and len(gt["comb_db_ci95"]) == 2
    assert "Frame-rate comb (dB)" in (out / "report.md").read_text()
    # what the face head read from each face is kept, and the face-encoder accuracy is computed from it
    model_records = [json.loads(p.read_text()) for p in sorted((out / "cache" / "model").rglob("*.json"))]
    assert len(model_records) == 6 and all(r["face_gender"] in (0, 1) for r in model_records)
    # with the calibrated probability of what it read, and the head's calibration error from them
    assert all(0.5 <= r["face_gender_confidence"] <= 1.0 for r in model_records)
    assert model["face_gender_mean_confidence"] == pytest.approx(
        np.mean([r["face_gender_confidence"] for r in model_records if r["gender"] >= 0])
    )
    assert 0.0 <= model["face_gender_ece"] <= 1.0
    labelled = [r for r in model_records if r["gender"] >= 0]
    assert model["face_gender_accuracy"] == pytest.approx(np.mean([r["face_gender"] == r["gender"] for r in labelled]))
    assert 0 <= model["gender_follows_face"] <= 1 and gt.get("face_gender_accuracy") is None
    assert 0 <= results["gender_classifier"]["held_out_speaker_accuracy"] <= 1
    # 95% intervals bracket each rate; six utterances leave the proportions' wide
    for name in ("cer", "abx_accuracy", "gender_agreement"):
        low, high = model[f"{name}_ci95"]
        assert low <= model[name] <= high
        assert name == "cer" or high - low > 0.1
    # files
    assert json.loads((out / "metrics.json").read_text())["systems"].keys() == results["systems"].keys()
    report = (out / "report.md").read_text()
    for needle in ("Seen SECS", "Unseen SECS", "CER", "DNSMOS OVRL", "ABX top-1 (chance 25%)", "Table 7 layout"):
        assert needle in report
    for title in ("Ground truth (ceiling)", "faces shuffled", "average face", "Copy synthesis"):
        assert title in report
    assert "Where gender agreement is lost" in report
    low, high = model["gender_agreement_ci95"]
    assert f"{model['gender_agreement']:.1%} ({low:.1%}".rstrip("%") + f"-{high:.1%})" in report
    wavs = sorted((out / "audio").rglob("*.wav"))
    assert len(wavs) == 6 * 6  # ground truth + five model rows
    assert sf.info(str(wavs[0])).samplerate == 16000
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert "tsne_ground_truth_all.png" in pngs and "tsne_model_all.png" in pngs and "secs_by_system.png" in pngs
    assert "abx_by_system.png" in pngs and "secs_by_gender.png" in pngs and "face_gender_reliability.png" in pngs
    assert (out / "gender_classifier.json").is_file()


def test_resume_skips_finished_utterances(first_run: dict, metric_suite: MetricSuite) -> None:
    config, out = first_run["config"], first_run["out"]
    synth = CountingSynthesizer(first_run["synth"].inner)
    records = sorted((out / "cache").rglob("*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in records}
    again = run_evaluation(config, synthesizer=synth, metrics=metric_suite)
    assert synth.items == 0 and again["run_stats"] == {"synthesized": 0, "scored": 0, "reused_audio": 0}
    assert all(p.stat().st_mtime_ns == stamps[p] for p in records if "average_face.json" not in p.name)
    assert again["systems"]["model"]["overall"]["secs"] == pytest.approx(
        first_run["results"]["systems"]["model"]["overall"]["secs"]
    )
    # lose one model-row result: only that utterance is synthesized and scored again
    victim = next((out / "cache" / "model" / "test_unseen").glob("*.json"))
    victim.unlink()
    third = run_evaluation(config, synthesizer=synth, metrics=metric_suite)
    assert synth.items == 1 and third["run_stats"]["scored"] == 1 and victim.is_file()


def test_changing_a_metric_backend_rescores_saved_audio_without_synthesis(
    first_run: dict, metric_suite: MetricSuite, tmp_path: Path
) -> None:
    class ConstantScorer:
        name = "constant"

        def score(self, wavs, sample_rate=16000):
            return [1.0] * len(wavs)

    import copy
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(first_run["out"], out)
    config = copy.copy(first_run["config"])
    config.out = out
    config.systems = ["ground_truth", "model"]
    suite = metric_suite.with_scorer("naturalness", ConstantScorer())
    synth = CountingSynthesizer(first_run["synth"].inner)
    results = run_evaluation(config, synthesizer=synth, metrics=suite)
    assert synth.items == 0 and results["run_stats"]["reused_audio"] == 6 and results["run_stats"]["scored"] == 12
    assert results["systems"]["model"]["overall"]["naturalness"] == 1.0
    assert results["backends"]["naturalness"] == "constant"


class PeakLevel(Metric):
    """A toy metric, as a new module would define it: the loudest sample of each utterance."""

    name = "peak"
    backend = "peak_meter"
    backend_title = "peak meter"

    def load(self, settings):
        class Meter:
            name = "numpy abs max"

        return Meter()

    def score(self, model, wavs, utterances):
        return [{"peak": float(np.abs(wav).max())} for wav in wavs]

    def summarize(self, records, items):
        return {"peak": float(np.mean([r["peak"] for r in records]))}

    def columns(self, results):
        return [Column("Peak level", lambda row: fmt(row["overall"]["peak"], ".3f"))]

    def section(self, results):
        rows = [f"- {row['title']}: {fmt(row['overall']['peak'], '.3f')}" for row in results["systems"].values()]
        return ["## Peak level", "", *rows, ""]


def test_a_metric_registered_with_one_line_is_recorded_summarized_and_reported(
    first_run: dict, metric_suite: MetricSuite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Adding a metric is its module and one line in the registry: the new metric's fields land in each record
    (saved audio re-scored, since the cache lacks its backend), its summary in metrics.json, its cells in the report."""
    import copy
    import shutil

    monkeypatch.setattr(registry, "METRICS", [*registry.METRICS, PeakLevel])  # the one line
    out = tmp_path / "copy"
    shutil.copytree(first_run["out"], out)
    config = copy.copy(first_run["config"])
    config.out, config.systems, config.plots = out, ["ground_truth"], False
    suite = MetricSuite(device="cpu", naturalness="dnsmos", scorers=metric_suite.scorers)  # loads only the new one
    results = run_evaluation(config, metrics=suite)
    assert results["run_stats"]["scored"] == 6 and results["backends"]["peak_meter"] == "numpy abs max"
    records = [json.loads(p.read_text()) for p in sorted((out / "cache" / "ground_truth").rglob("*.json"))]
    assert len(records) == 6 and all(0 < r["peak"] <= 1 and r["peak_meter_backend"] == "numpy abs max" for r in records)
    row = results["systems"]["ground_truth"]
    assert row["overall"]["peak"] == pytest.approx(np.mean([r["peak"] for r in records]))
    assert set(row["splits"]) == {"test_seen", "test_unseen"} and all("peak" in s for s in row["splits"].values())
    assert row["overall"]["secs"] == pytest.approx(first_run["results"]["systems"]["ground_truth"]["overall"]["secs"])
    assert json.loads((out / "metrics.json").read_text())["systems"]["ground_truth"]["overall"]["peak"] > 0
    report = (out / "report.md").read_text()
    assert "| Gender agreement (speakers) | Peak level |" in report and "peak meter: numpy abs max" in report
    assert f"- Ground truth (ceiling): {row['overall']['peak']:.3f}" in report


def test_cli_resumes_a_finished_run(first_run: dict, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("ftv_evaluate_cli", REPO_ROOT / "train" / "evaluate.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    config = first_run["config"]
    code = cli.main(
        [
            "--model", str(config.model), "--data", str(config.data), "--split", "test_seen,test_unseen",
            "--out", str(config.out), "--max-utterances", "3", "--batch-size", "4", "--device", "cpu",
            "--naturalness", "dnsmos", "--recognizer", "whisper", "--threads", "2", "--speaking-rate", "4",
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "Unseen SECS" in printed and "'synthesized': 0" in printed


def test_cli_runs_from_the_repo_root_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, "train/evaluate.py", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "--max-utterances" in result.stdout and "--recognizer" in result.stdout


def test_gender_agreement_is_split_into_the_face_reading_and_the_voice_following_it() -> None:
    """Four utterances: the face head misreads one face, the voice misses one reading, agreement 2 of 4."""
    embeddings = np.array([[-1.0, 0], [1.0, 0], [1.0, 0], [-1.0, 0]])  # the classifier hears m, f, f, m
    classifier = VoiceGenderClassifier(weights=np.array([4.0, 0.0]), bias=0.0, mean=np.zeros(2), scale=np.ones(2))
    labels, read = [0, 0, 1, 1], [0, 1, 1, 1]  # the head reads the second (male) face as female
    recs = [
        {"id": f"u{i}", "speaker": f"s{i}", "embedding": e.tolist(), "gender": g, "race": -1, "face_gender": f,
         "cer_errors": 0, "cer_reference_chars": 1, "naturalness": 3.0, "duration_s": 1.0}
        for i, (e, g, f) in enumerate(zip(embeddings, labels, read))
    ]  # fmt: skip
    references = SpeakerReferences.build(embeddings, [f"s{i}" for i in range(4)], ["r0", "r1", "r2", "r3"])
    summary = score_records(recs, references, classifier, k=3, seed=0)["summary"]
    assert summary["gender_agreement"] == 0.5
    assert summary["face_gender_accuracy"] == 0.75  # the head is right on 3 of 4 faces
    assert summary["gender_follows_face"] == 0.75  # the voice follows its reading on 3 of 4
    for rec in recs:
        rec["face_gender"] = None  # a model without a face attribute head
    summary = score_records(recs, references, classifier, k=3, seed=0)["summary"]
    assert summary["face_gender_accuracy"] is None and summary["gender_follows_face"] is None


def test_gender_agreement_is_reported_for_adults_and_children_apart(tmp_path: Path) -> None:
    """Ages from the corpus's report.json: the two adults agree, one of the two children does not; an utterance
    of unknown age counts in neither group."""
    embeddings = np.array([[-1.0, 0], [1.0, 0], [1.0, 0], [-1.0, 0], [1.0, 0]])  # heard: m, f, f, m, f
    classifier = VoiceGenderClassifier(weights=np.array([4.0, 0.0]), bias=0.0, mean=np.zeros(2), scale=np.ones(2))
    (tmp_path / "report.json").write_text(json.dumps({"offline": {"ages": {"s0": 34, "s1": 71, "s2": 3, "s3": 9}}}))
    ages = speaker_ages(tmp_path)
    assert speaker_ages(tmp_path / "elsewhere") == {}
    labels, read = [0, 1, 0, 1, 0], [0, 1, 1, 1, 0]
    recs = [
        {"id": f"u{i}", "speaker": f"s{i}", "embedding": e.tolist(), "gender": g, "race": -1, "face_gender": f,
         "age": ages.get(f"s{i}"), "cer_errors": 0, "cer_reference_chars": 1, "naturalness": 3.0, "duration_s": 1.0}
        for i, (e, g, f) in enumerate(zip(embeddings, labels, read))
    ]  # fmt: skip
    references = SpeakerReferences.build(embeddings, [f"s{i}" for i in range(5)], [f"r{i}" for i in range(5)])
    summary = score_records(recs, references, classifier, k=3, seed=0)["summary"]
    assert summary["gender_agreement_adults"] == 1.0 and summary["gender_agreement_adults_n"] == 2
    assert summary["gender_agreement_children"] == 0.0 and summary["gender_agreement_children_n"] == 2
    assert summary["face_gender_accuracy_children"] == 0.5  # s2's face was read as female
    assert summary["gender_labelled"] == 5
    assert age_group(None) is None and age_group(17.9) == "children" and age_group(18) == "adults"


def test_face_head_calibration_is_scored_from_its_confidences() -> None:
    """Four readings, all at 0.95 confidence, three right: mean confidence 0.95, ECE |0.75 - 0.95| = 0.2."""
    embeddings = np.array([[-1.0, 0], [1.0, 0], [1.0, 0], [-1.0, 0]])
    classifier = VoiceGenderClassifier(weights=np.array([4.0, 0.0]), bias=0.0, mean=np.zeros(2), scale=np.ones(2))
    recs = [
        {"id": f"u{i}", "speaker": f"s{i}", "embedding": e.tolist(), "gender": g, "race": -1, "face_gender": f,
         "face_gender_confidence": 0.95, "cer_errors": 0, "cer_reference_chars": 1, "naturalness": 3.0,
         "duration_s": 1.0}
        for i, (e, g, f) in enumerate(zip(embeddings, [0, 0, 1, 1], [0, 1, 1, 1]))
    ]  # fmt: skip
    references = SpeakerReferences.build(embeddings, [f"s{i}" for i in range(4)], ["r0", "r1", "r2", "r3"])
    summary = score_records(recs, references, classifier, k=3, seed=0)["summary"]
    assert summary["face_gender_mean_confidence"] == pytest.approx(0.95)
    assert summary["face_gender_ece"] == pytest.approx(0.2)
    low, high = summary["face_gender_accuracy_ci95"]
    assert low < 0.75 < high


def test_the_voice_gender_classifier_is_never_fitted_on_a_scored_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="also scored"):
        EvalConfig(data=tmp_path, out=tmp_path / "out", splits=["train", "test_unseen"], systems=["ground_truth"])
    EvalConfig(data=tmp_path, out=tmp_path / "out", splits=["test_unseen"], systems=["ground_truth"])  # fine


def test_selection_donors_and_names() -> None:
    utts = [Utterance("s", i, f"u{i}", spk, "t", "", 0, 0) for i, spk in enumerate("aaaabbc")]
    picked = select_utterances(utts, 4)
    assert len(picked) == 4 and len({u.id for u in picked}) == 4  # as many as asked for, none twice
    assert {u.speaker for u in picked} == {"a", "b", "c"}
    assert [u.index for u in picked] == sorted(u.index for u in picked)  # in dataset order
    assert sum(u.speaker == "a" for u in picked) <= 2  # every speaker once before anyone twice
    # Speakers are sampled, not taken in sorted order: ids sort by source (and UTKFace's by age), so the first
    # speakers of a sorted list are one kind of face.
    crowd = [Utterance("s", i, f"u{i}", f"{'baby' if i < 50 else 'adult'}-{i:03d}", "t", "", 0, 0) for i in range(100)]
    sample = select_utterances(crowd, 20, seed=0)
    assert len(sample) == 20 and len({u.id for u in sample}) == 20
    assert select_utterances(crowd, None) == crowd and select_utterances(crowd, 500) == crowd  # no cap: all of them
    babies = sum(u.speaker.startswith("baby") for u in sample)
    assert 4 <= babies <= 16, babies
    assert [u.id for u in select_utterances(crowd, 20, seed=0)] == [u.id for u in sample]  # deterministic
    assert [u.id for u in select_utterances(crowd, 20, seed=1)] != [u.id for u in sample]
    donors = shuffled_face_donors(utts, seed=0)
    assert set(donors) == {"a", "b", "c"} and all(donors[s].speaker != s for s in donors)
    assert shuffled_face_donors(utts[:4], seed=0) == {}
    # within gender: each speaker gets a face of another speaker of their own gender label; one alone gets none
    people = [Utterance("s", i, f"p{i}", f"p{i}", "t", "", i % 2 if i < 6 else 1, 0) for i in range(7)]
    same = shuffled_face_donors(people, seed=0, within_gender=True)
    assert set(same) == {f"p{i}" for i in range(7)}
    assert all(d.speaker != s and d.gender == people[int(s[1:])].gender for s, d in same.items())
    assert shuffled_face_donors(people[:3], seed=0, within_gender=True).keys() == {"p0", "p2"}
    names = {safe_name(x) for x in ("a/b", "a_b", "a b", "trainval/0Fi83BHQsMA/00002")}
    assert len(names) == 4 and all("/" not in n for n in names)


def test_copy_synthesis_row_is_skipped_for_an_inference_only_export(
    tiny_dataset: Path, checkpoint: Path, metric_suite: MetricSuite, tmp_path: Path
) -> None:
    """An export without the posterior encoder cannot copy-synthesize: the row is left out, the rest still runs."""
    from ftv_model.export_inference import export_inference

    slim = export_inference(checkpoint, tmp_path / "slim")
    config = EvalConfig(
        data=tiny_dataset,
        out=tmp_path / "out",
        model=slim,
        splits=["test_unseen"],
        max_utterances=2,
        device="cpu",
        naturalness="dnsmos",
        systems=["ground_truth", "copy_synthesis"],
        plots=False,
    )
    results = run_evaluation(config, metrics=metric_suite)
    assert set(results["systems"]) == {"ground_truth"}


def test_synthesis_settings_default_to_the_model_config_and_a_config_edit_is_a_new_model(tmp_path: Path) -> None:
    from .model_fixtures import save_tiny_checkpoint

    checkpoint = save_tiny_checkpoint(tmp_path / "tiny", noise_scale=0.5, noise_scale_duration=0.6)
    synth = FTVSynthesizer(checkpoint)
    assert synth.kwargs["noise_scale"] == 0.5 and synth.kwargs["noise_scale_duration"] == 0.6
    assert FTVSynthesizer(checkpoint, noise_scale=0.3).kwargs["noise_scale"] == 0.3
    assert FTVSynthesizer(checkpoint).signature == synth.signature  # same files, same cache
    # an inference setting in config.json (here flip averaging of the face) changes the voices, not the weights:
    # the cached rows of the model must not be reused
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, "face_flip_average": True}))
    assert FTVSynthesizer(checkpoint).signature != synth.signature
