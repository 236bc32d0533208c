"""The face reading, and the voice it gives, on real photos outside every corpus: talking-head video frames.

    python benchmarks/real_photo_gender.py --model checkpoints/ftv-offline
    python benchmarks/real_photo_gender.py --model A --model B --frames 3     # side by side

Three frames (1 s apart) of each clip in ``../shared/data/video/voxceleb_style`` (in-the-wild interviews, research
use only, so read from ../shared, never copied) go through the demo's path: face detection and crop, the processor,
the model. For each model it prints, per clip, the face head's reading of gender on the crop as the model's own
reading (no anchoring) and as the demo reads it (anchored to `config.face_gender_reader` where the checkpoint has
one), and the median F0 of the voice made from the first frame. The clips carry no labels: the genders in
``real_photo_gender.csv`` are how a maintainer, looking at the frames, judged each person's apparent gender.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

SENTENCE = "The birch canoe slid on the smooth planks."
LABELS = Path(__file__).with_name("real_photo_gender.csv")


def frames(clip: Path, count: int, every_s: float = 1.0) -> list:
    """`count` RGB frames (PIL) of `clip`, `every_s` seconds apart, starting at 1 s."""
    import av

    wanted, out = [1.0 + k * every_s for k in range(count)], []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and wanted and frame.time >= wanted[0]:
                out.append(frame.to_image().convert("RGB"))
                wanted.pop(0)
            if not wanted:
                break
    return out


def readings(model, processor, images, anchored: bool) -> list[str]:
    """The face head's gender reading of each photo, anchored or the model's own."""
    import torch

    network = processor.image_processor.face_gender_network
    processor.image_processor.face_gender_network = network if anchored else None
    try:
        out = []
        for image in images:
            inputs = processor(images=image)
            with torch.inference_mode():
                face = model.get_face_embeddings(
                    inputs["pixel_values"], None, inputs.get("face_descriptors"), inputs.get("face_gender_scores")
                )
                logits = model.face_attributes(face)["gender"][0]
            out.append(model.config.attribute_labels["gender"][int(logits.argmax())])
        return out
    finally:
        processor.image_processor.face_gender_network = network


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="checkpoint (repeat to compare)")
    parser.add_argument("--videos", type=Path, default=Path("../shared/data/video/voxceleb_style"))
    parser.add_argument("--frames", type=int, default=3, help="frames per clip")
    args = parser.parse_args()
    if not args.videos.is_dir():
        parser.error(f"{args.videos} not found: the clips live in ../shared/data (see its README).")

    import torch

    from ftv_model import FTVModel, FTVProcessor
    from ftv_model.synthesis import Synthesizer
    from ftv_train.corpus.world import estimate_f0

    torch.set_num_threads(2)
    with LABELS.open(newline="") as handle:
        labels = {row["clip"]: row["apparent_gender"] for row in csv.DictReader(handle)}
    clips = {name: frames(args.videos / f"{name}.mp4", args.frames) for name in labels}
    for path in args.model:
        model = FTVModel.from_pretrained(path).eval()
        processor = FTVProcessor.from_pretrained(path)
        synthesizer = Synthesizer(path)
        has_reader = bool(model.config.face_gender_reader)
        print(f"\n{path} ({'with' if has_reader else 'without'} a face gender reader), {args.frames} frames a clip")
        print("| clip | apparent gender | head's own reading | as the demo reads it | voice's median F0 (Hz) |")
        print("|---|---|---|---|---|")
        right = {"own": 0, "demo": 0}
        total = 0
        for name, images in clips.items():
            own = readings(model, processor, images, anchored=False)
            demo = readings(model, processor, images, anchored=True) if has_reader else own
            right["own"] += sum(r == labels[name] for r in own)
            right["demo"] += sum(r == labels[name] for r in demo)
            total += len(images)
            wave = synthesizer.synthesize(images[0], SENTENCE, seed=0).waveform
            f0 = estimate_f0(np.asarray(wave, dtype=np.float32), synthesizer.sampling_rate)
            print(f"| {name} | {labels[name]} | {', '.join(own)} | {', '.join(demo)} | {f0:.0f} |")
        print(
            f"frames read right: the head's own {right['own']}/{total}, as the demo reads them {right['demo']}/{total}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
