"""Click-to-audio time of the demo: a gradio_client call to the running app until the WAV is on the client's disk,
and for a three-sentence text, the time to the first audio the button streams next to the time of the whole text.

    python benchmarks/bench_app.py [--runs 7] [--threads 2] [--seconds 5] [--model DIR]

Starts `python app.py` in a subprocess (model loaded once, as in production) and times `/synthesize` requests
for one London Set face and one sentence, as a user's click would send them. Without --model it serves a randomly
initialised default (paper) configuration; its untrained duration predictor makes an arbitrary length, so the
speaking rate is calibrated once so that the sentence lasts about --seconds. Prints the median click-to-audio
time and its split: face detection, processing (phonemes + face crop tensors), model, WAV encoding (measured in
the app) and the rest (gradio: upload, queue, pre/postprocessing, download). Then, alternately, --runs `/speak`
calls (the Synthesize button: each sentence streamed as soon as it is spoken) and `/synthesize` calls (the whole
text at once) for THREE_SENTENCES: the median time to the first sentence's WAV, next to the time of the whole text.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

from app_client import FACE, app_env, predict, running_app, speak, wav_info  # beside this script (benchmarks/)

SENTENCE = "The birch canoe slid on the smooth planks, and glue the sheet to the dark blue background."
THREE_SENTENCES = "Good morning. I would like a cup of tea with milk, please. It is getting warm in here."
PARTS = ("face detection", "processing", "model", "encoding", "total")


def save_default_model(directory: Path) -> Path:
    """A randomly initialised FTVModel(FTVConfig()) + processor, saved like a real checkpoint."""
    import torch

    from ftv_model import FTVConfig, FTVModel, FTVProcessor

    torch.manual_seed(0)
    FTVModel(FTVConfig()).save_pretrained(directory)
    FTVProcessor().save_pretrained(directory)
    return directory


def server_timings(details: str) -> dict[str, float]:
    """The app's own per-stage timings, from the "Timing: ..." line of its details output."""
    found = re.findall(r"(face detection|processing|model|encoding|total) (\d+) ms", details)
    return {name: float(value) / 1000 for name, value in found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="torch threads in the app")
    parser.add_argument("--seconds", type=float, default=5.0, help="target audio length (random model only)")
    parser.add_argument("--model", default=None, help="a trained checkpoint (default: random default config)")
    args = parser.parse_args()

    from gradio_client import Client

    with tempfile.TemporaryDirectory(prefix="ftv-bench-") as scratch:
        scratch_dir = Path(scratch)
        model = args.model or str(save_default_model(scratch_dir / "model"))
        env = app_env(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        start = time.perf_counter()
        with running_app(["--model", model, "--allow-untrained"], scratch_dir / "app.log", env=env) as url:
            startup = time.perf_counter() - start
            client = Client(url, verbose=False, download_files=str(scratch_dir / "downloads"))

            def click(rate: float) -> tuple[float, float, dict[str, float]]:
                begin = time.perf_counter()
                audio, _, _, _, details, _ = predict(client, FACE, SENTENCE, settings=(rate, 0.667, 0.8), seed=0)
                elapsed = time.perf_counter() - begin
                return elapsed, wav_info(audio)["frames"] / 16000, server_timings(details)

            _, natural_seconds, _ = click(1.0)  # warm-up (first phonemizer call, allocator) and calibration
            rate = 1.0 if args.model else max(0.25, min(4.0, natural_seconds / args.seconds))
            runs = [click(rate) for _ in range(args.runs)]

            settings = (rate, 0.667, 0.8)
            speak(client, FACE, THREE_SENTENCES, settings=settings)  # warm-up: sentence-sized shapes
            streams, wholes = [], []
            for _ in range(args.runs):
                begin = time.perf_counter()
                chunks, _ = speak(client, FACE, THREE_SENTENCES, settings=settings, seed=0)
                streams.append((chunks[0][0], chunks[-1][0], time.perf_counter() - begin))
                begin = time.perf_counter()
                audio = predict(client, FACE, THREE_SENTENCES, settings=settings, seed=0)[0]
                wholes.append(time.perf_counter() - begin)
            three_seconds = wav_info(audio)["frames"] / 16000

    totals = [elapsed for elapsed, _, _ in runs]
    audio_seconds = statistics.median(seconds for _, seconds, _ in runs)
    median = statistics.median(totals)
    split = {part: statistics.median(t.get(part, float("nan")) for _, _, t in runs) for part in PARTS}
    load = os.getloadavg()[0]
    print(f"model: {args.model or 'random FTVModel(FTVConfig())'}; {args.threads} torch threads; load avg {load:.2f}")
    print(f"app start (imports + model load, until it serves): {startup:.1f} s")
    print(f"sentence: {len(SENTENCE)} characters -> {audio_seconds:.2f} s of audio (speaking rate {rate:.2f})")
    print(f"click to audio: median {median:.3f} s over {args.runs} runs (min {min(totals):.3f}, max {max(totals):.3f})")
    print(f"  real-time factor {median / audio_seconds:.3f}")
    for part in PARTS[:-1]:
        print(f"  {part:16s} {split[part] * 1000:7.0f} ms")
    rest = (median - split["total"]) * 1000
    print(f"  {'gradio + HTTP':16s} {rest:7.0f} ms  (upload, queue, pre/postprocessing, download)")
    print(
        f"three sentences ({len(THREE_SENTENCES)} characters, {three_seconds:.2f} s of audio), over {args.runs} runs:"
    )
    first, last, outputs = (sorted(column) for column in zip(*streams))
    print(f"  first audio (/speak, streamed)  median {statistics.median(first):.3f} s (min {first[0]:.3f})")
    print(f"  whole text (/synthesize)        median {statistics.median(wholes):.3f} s (min {min(wholes):.3f})")
    print(f"  /speak: last sentence at {statistics.median(last):.3f} s, outputs at {statistics.median(outputs):.3f} s")


if __name__ == "__main__":
    main()
