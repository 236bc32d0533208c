"""Evaluation throughput on this CPU: utterances evaluated per minute, per metric stage and end to end.

    python benchmarks/bench_evaluate.py [--threads 2] [--utterances 12] [--model DIR] [--speaking-rate R]

Uses real speech from ../shared/data (VCTK as the test split, LibriSpeech as the train split the voice-gender
classifier is fitted on, London-set faces). Prints:

1. each metric's cost on real VCTK utterances (Resemblyzer SECS embedding, whisper tiny.en CER, DNSMOS);
2. `train/evaluate.py`'s runner end to end on the ground-truth row alone (metrics only, no synthesis);
3. the runner with all four rows (model, shuffled faces, average face, ground truth) for --model, or for a tiny
   randomly initialised model (an untrained model's durations are arbitrary: --speaking-rate 4 keeps them near
   real length, since DNSMOS cost grows with length).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before anything imports huggingface_hub

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from tiny_model import TINY_MODEL  # noqa: E402

from ftv_train.common.audio import load_audio  # noqa: E402
from ftv_train.data.dataset_format import FEATURES  # noqa: E402
from ftv_train.evaluation import EvalConfig, MetricSuite, run_evaluation  # noqa: E402

SHARED = Path(os.environ.get("FTV_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def save_tiny_model(directory: Path) -> Path:
    """A randomly initialised tiny model + processor, saved as a normal `save_pretrained` directory."""
    from ftv_model import FTVConfig, FTVModel, FTVProcessor

    torch.manual_seed(0)
    FTVModel(FTVConfig(**TINY_MODEL)).save_pretrained(directory)
    FTVProcessor().save_pretrained(directory)
    return directory


def build_dataset(out: Path) -> Path:
    """test_unseen: 40 VCTK utterances (4 speakers); train: 50 LibriSpeech utterances (10 speakers)."""
    import datasets
    from PIL import Image

    from ftv_model.attributes import GENDER_LABELS
    from ftv_model.text_frontend import phonemize

    london = SHARED / "faces" / "london"
    people = {"male": [], "female": []}
    for line in (london / "london_info.csv").read_text().strip().splitlines()[1:]:
        face_id, _, gender, _ = line.split(",")
        if gender in people:
            people[gender].append(Image.open(london / "neutral" / f"{face_id}.jpg").convert("RGB").resize((128, 128)))
    faces: dict[str, Image.Image] = {}

    def row(uid: str, speaker: str, gender: str, text: str, path: Path) -> dict:
        faces.setdefault(speaker, people[gender].pop(0))
        buf = io.BytesIO()
        sf.write(buf, load_audio(path), 16000, format="FLAC")
        return {
            "id": uid,
            "speaker": speaker,
            "text": text,
            "phonemes": "",
            "audio": {"bytes": buf.getvalue(), "path": None},
            "duration": float(sf.info(path).duration),
            "faces": [faces[speaker]],
            "num_views": 1,
            "gender": GENDER_LABELS.index(gender),
            "race": -1,
        }

    vctk = SHARED / "speech" / "vctk"
    test = []
    for line in (vctk / "transcripts.txt").read_text().strip().splitlines():
        rel, speaker, text = line.split("|")
        test.append(row(Path(rel).stem, speaker, "female" if speaker in ("p225", "p228") else "male", text, vctk / rel))
    for item, ipa in zip(test, phonemize([t["text"] for t in test])):
        item["phonemes"] = ipa
    libri = SHARED / "speech" / "librispeech_test_other"
    sex = {}
    for line in (libri / "SPEAKERS.TXT").read_text().splitlines():
        if "|" in line and not line.startswith(";"):
            f = [x.strip() for x in line.split("|")]
            sex[f[0]] = "female" if f[1] == "F" else "male"
    train = [row(p.stem, p.parent.name, sex[p.parent.name], "-", p) for p in sorted(libri.glob("*/*.flac"))]
    features = FEATURES  # the schema prepare_data writes
    splits = {"train": train, "validation": train[:1], "test_seen": test[:1], "test_unseen": test}
    datasets.DatasetDict(
        {
            k: datasets.Dataset.from_dict({c: [r[c] for r in v] for c in features}, features=features)
            for k, v in splits.items()
        }
    ).save_to_disk(str(out))
    return out


def per_minute(count: int, seconds: float) -> str:
    return f"{60.0 * count / seconds:8.1f}/min  ({seconds / count:6.3f} s each)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--utterances", type=int, default=12, help="test utterances (max 40)")
    parser.add_argument("--model", type=Path, help="a trained FTV checkpoint; default: a tiny random model")
    parser.add_argument("--speaking-rate", type=float, help="default: 4 for the random model, the model's own else")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = min(args.utterances, 40)
    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    data = build_dataset(work / "data")

    suite = MetricSuite(device="cpu", recognizer="whisper", naturalness="dnsmos")
    vctk = SHARED / "speech" / "vctk"
    rows = [line.split("|") for line in (vctk / "transcripts.txt").read_text().strip().splitlines()]
    picks = [rows[i * 40 // n] for i in range(n)]
    wavs = [load_audio(vctk / r[0]) for r in picks]
    audio_s = sum(len(w) for w in wavs) / 16000
    suite.encoder.embed(wavs[:1])  # first call compiles librosa's numba kernels
    print(f"# {n} real VCTK utterances, {audio_s / n:.2f} s mean, torch threads {args.threads}, CPU")
    for name, fn in (
        ("SECS embedding (Resemblyzer, batched)", suite.encoder.embed),
        (f"CER transcription ({suite.scorers['recognizer'].name})", suite.scorers["recognizer"].transcribe),
        (f"naturalness ({suite.scorers['naturalness'].name})", suite.scorers["naturalness"].score),
    ):
        start = time.perf_counter()
        fn(wavs)
        print(f"{name:55s} {per_minute(n, time.perf_counter() - start)}")

    config = EvalConfig(
        data=data, out=work / "gt", splits=["test_unseen"], max_utterances=n, device="cpu", systems=["ground_truth"]
    )
    config.naturalness = "dnsmos"
    start = time.perf_counter()
    run_evaluation(config, metrics=suite)
    print(f"{'runner, ground-truth row only (incl. references, fit)':55s} {per_minute(n, time.perf_counter() - start)}")
    start = time.perf_counter()
    run_evaluation(config, metrics=suite)
    print(f"{'runner, ground-truth row, resumed (all cached)':55s} {per_minute(n, time.perf_counter() - start)}")

    if args.model is None:
        model = save_tiny_model(work / "tiny-model")
        rate = args.speaking_rate or 4.0
        label = "tiny random model"
    else:
        model, rate, label = args.model, args.speaking_rate, str(args.model)
    config = EvalConfig(
        data=data,
        out=work / "all",
        model=model,
        splits=["test_unseen"],
        max_utterances=n,
        device="cpu",
        naturalness="dnsmos",
        batch_size=4,
        speaking_rate=rate,
    )
    start = time.perf_counter()
    results = run_evaluation(config, metrics=suite)
    elapsed = time.perf_counter() - start
    rows_done = n * len(results["systems"])
    model_s = np.mean([s["overall"]["mean_duration_s"] for k, s in results["systems"].items() if k != "ground_truth"])
    print(f"# 4 rows with {label}: synthesized audio {model_s:.2f} s mean")
    print(f"{'runner, 4 rows: utterance-rows':55s} {per_minute(rows_done, elapsed)}")
    print(f"{'runner, 4 rows: test utterances (all 4 rows each)':55s} {per_minute(n, elapsed)}")
    print(f"(outputs in {work})")


if __name__ == "__main__":
    main()
