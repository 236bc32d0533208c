"""What each voice adjustment does to a voice: median F0 and speaker similarity along five steps, per direction.

    python benchmarks/voice_directions.py [--model checkpoints/ftv-offline] [--steps -2,-1,0,1,2]

For a London Set woman and man (the demo's example faces), each of the model's named directions
(`config.voice_directions`, fitted by train/fit_voice_directions.py) at each step: the median F0 of one sentence
(seed 0, the app's defaults) and its Resemblyzer similarity to the unadjusted voice (1: the same voice; different
people of one gender score about 0.75-0.85 with this encoder). A direction works when F0 (or what it names) moves
monotonically and the similarity stays high near 0, falling off gradually.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SENTENCE = "The birch canoe slid on the smooth planks."
FACES = Path(__file__).resolve().parents[1] / "examples" / "faces"
PEOPLE = {"woman (london_003)": FACES / "london_003.jpg", "man (london_005)": FACES / "london_005.jpg"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: the bundled one)")
    parser.add_argument("--steps", default="-2,-1,0,1,2")
    args = parser.parse_args()

    import torch

    from ftv_model.synthesis import Synthesizer
    from ftv_train.corpus.world import estimate_f0
    from ftv_train.evaluation.metrics.speaker import SpeakerEncoder

    torch.set_num_threads(2)
    steps = [float(x) for x in args.steps.split(",")]
    synthesizer = Synthesizer(args.model)
    directions = synthesizer.config.voice_directions
    if not directions:
        print(f"{synthesizer.source} has no voice directions: fit them with train/fit_voice_directions.py --write.")
        return 1
    encoder = SpeakerEncoder()
    rate = synthesizer.sampling_rate
    header = " | ".join(f"{s:+g}" for s in steps)
    for person, photo in PEOPLE.items():
        base = synthesizer.synthesize(photo, SENTENCE, seed=0)
        base_embedding = encoder.embed([base.waveform], rate)[0]
        print(f"\n{person}: median F0 in Hz / similarity to the unadjusted voice, by steps")
        print(f"| direction | {header} |")
        print("|---|" + "---|" * len(steps))
        for name in directions:
            cells = []
            for step in steps:
                wave = (
                    base.waveform
                    if step == 0
                    else synthesizer.synthesize(photo, SENTENCE, seed=0, adjustments={name: step}).waveform
                )
                f0 = estimate_f0(np.asarray(wave, dtype=np.float32), rate)
                similarity = float(encoder.embed([wave], rate)[0] @ base_embedding)
                cells.append(f"{f0:.0f} / {similarity:.2f}")
            print(f"| {name} ({directions[name]['low']} -> {directions[name]['high']}) | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
