"""CPU inference speed of FTVModel: real-time factor (synthesis time / audio time) for a ~5-second sentence.

    python benchmarks/bench_inference.py [--threads 2] [--runs 5] [--model DIR]

Without --model it times a randomly initialised default (paper) configuration with durations pinned so the
sentence lasts ~5 s (an untrained duration predictor would make any length). Weight norm is folded into the weights,
as the app and the CLI serve the model (with it, every call recomputes each decoder weight, which bf16 pays dearly
for). Prints the median RTF and where the
time goes (face encoder + text encoder, duration predictor, flow, decoder), then the same with the bfloat16 CPU decoder
(`FTVConfig.cpu_bfloat16_decoder`) when this CPU runs bf16 natively, with its difference to float32 in dB.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from timing import ModuleTimer, synthesis_parts  # beside this script (benchmarks/)

from ftv_model import FTVConfig, FTVModel, FTVProcessor

SENTENCE = "The birch canoe slid on the smooth planks, and glue the sheet to the dark blue background."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="target audio length for a random model")
    parser.add_argument("--model", default=None, help="a trained FTV checkpoint (its own durations are used)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.model:
        model, processor = FTVModel.from_pretrained(args.model), FTVProcessor.from_pretrained(args.model)
    else:
        torch.manual_seed(0)
        model, processor = FTVModel(FTVConfig()), FTVProcessor()
    model.eval().fold_weight_norm()  # as the app and the CLI serve it (ftv_model.synthesis.Synthesizer)
    inputs = processor(text=SENTENCE, images=torch.rand(3, 256, 256), do_crop_face=False)  # a stand-in crop
    tokens = int(inputs["attention_mask"].sum())
    if not args.model:
        # Pin every token to the same duration so the random model speaks for --seconds.
        frames = args.seconds * model.config.sampling_rate / model.config.hop_length
        log_duration = torch.log(torch.tensor(round(frames / tokens) - 0.5))  # ceil() lands on the rounded value
        predictor = model.duration_predictor
        predictor.forward = lambda hidden, mask, *a, **k: (
            log_duration.expand(hidden.shape[0], 1, hidden.shape[2]) * mask
        )

    parts = synthesis_parts(model)
    timer = ModuleTimer({k: v for k, v in parts.items() if not (k == "duration predictor" and not args.model)})
    with torch.inference_mode():
        model(**inputs, seed=0)  # warm-up
        timer.reset()
        times, audio_seconds = [], 0.0
        for run in range(args.runs):
            start = time.perf_counter()
            out = model(**inputs, seed=run)
            times.append(time.perf_counter() - start)
            audio_seconds = float(out.sequence_lengths[0]) / model.config.sampling_rate
    median = statistics.median(times)
    print(f"torch {torch.__version__}, {args.threads} threads, {tokens} tokens, {audio_seconds:.2f} s of audio")
    print(f"float32 decoder: median {median * 1000:.0f} ms over {args.runs} runs -> RTF {median / audio_seconds:.3f}")
    total = sum(timer.totals.values())
    for name, seconds in timer.totals.items():
        print(f"  {name:20s} {seconds / args.runs * 1000:7.1f} ms  ({seconds / max(total, 1e-9) * 100:4.1f}%)")

    from ftv_model.modeling_ftv import cpu_has_native_bfloat16

    if not cpu_has_native_bfloat16():
        print("bfloat16 decoder: skipped (this CPU has no native bf16)")
        return
    with torch.inference_mode():
        reference = model(**inputs, seed=0).waveform
        model.config.cpu_bfloat16_decoder = True
        fast = model(**inputs, seed=0).waveform
        times = []
        for run in range(args.runs):
            start = time.perf_counter()
            model(**inputs, seed=run)
            times.append(time.perf_counter() - start)
    difference = 10 * torch.log10((fast - reference).pow(2).mean() / reference.pow(2).mean())
    median = statistics.median(times)
    print(
        f"bfloat16 decoder: median {median * 1000:.0f} ms -> RTF {median / audio_seconds:.3f} "
        f"(difference to float32: {float(difference):.1f} dB)"
    )


if __name__ == "__main__":
    main()
