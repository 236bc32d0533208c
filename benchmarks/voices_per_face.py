"""What a listener hears across faces: London Set women and men through the demo's synthesis path.

    python benchmarks/voices_per_face.py --model checkpoints/ftv-offline --per-gender 5
    python benchmarks/voices_per_face.py --model A --model B      # side by side, same faces, same sentence

For each model: every chosen person's voice from their neutral photo (the app's defaults, seed 0, one sentence),
its median F0, its length (the speaking rate; one sentence for everyone) and its frame-rate comb (the buzz, dB;
`ftv_train.evaluation.metrics.comb`), the Resemblyzer similarity between different people of one gender (near 1: one
voice per gender) and across genders, and between the same person's neutral and smiling photos (near 1: the voice
stays with the person). People are taken from the dataset's held-out splits when ``--data`` names the offline
corpus, so no model trained on them; where those hold fewer than ``--per-gender`` of a gender, people from training
fill up, flagged in the table. Prints a table; ``--out`` also saves the WAVs to listen to.
"""

from __future__ import annotations

import argparse
import csv
from itertools import combinations
from pathlib import Path

import numpy as np

SENTENCE = "The birch canoe slid on the smooth planks."


def london_people(faces: Path, per_gender: int, held_out: set[str] | None) -> list[tuple[str, str, bool]]:
    """(face id, gender, held out) of `per_gender` people of each gender with both photos: held-out ones first
    when they are known, then, where the held-out splits have too few, people the model trained on (flagged)."""
    chosen: dict[str, list[tuple[str, bool]]] = {"female": [], "male": []}
    with (faces / "london" / "london_info.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            face_id, gender = row["face_id"].strip(), row["face_gender"].strip().lower()
            both = all((faces / "london" / view / f"{face_id}.jpg").is_file() for view in ("neutral", "smiling"))
            if gender in chosen and both:
                chosen[gender].append((face_id, held_out is None or f"london-{face_id}" in held_out))
    people = []
    for gender in ("female", "male"):
        ranked = sorted(chosen[gender], key=lambda person: not person[1])  # held-out people first, order kept
        people += [(face_id, gender, unseen) for face_id, unseen in ranked[:per_gender]]
    return people


def held_out_speakers(data: Path | None) -> set[str] | None:
    """Speakers of the corpus's held-out splits (no training stage saw them), or None without a corpus."""
    if data is None:
        return None
    from ftv_train.data.dataset_format import load_prepared_dataset

    dataset = load_prepared_dataset(data, decode_audio=False, decode_faces=False)
    return {s for split in ("validation_unseen", "test_unseen") if split in dataset for s in dataset[split]["speaker"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="checkpoint (repeat to compare)")
    parser.add_argument("--faces", type=Path, default=Path("../shared/data/faces"))
    parser.add_argument("--data", type=Path, default=None, help="offline corpus: take its held-out London people")
    parser.add_argument("--per-gender", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="folder for the WAVs")
    args = parser.parse_args()

    import torch

    from ftv_model.synthesis import Synthesizer
    from ftv_train.corpus.world import estimate_f0
    from ftv_train.evaluation.metrics.comb import comb_level_db
    from ftv_train.evaluation.metrics.speaker import SpeakerEncoder

    torch.set_num_threads(2)
    people = london_people(args.faces, args.per_gender, held_out_speakers(args.data))
    encoder = SpeakerEncoder()
    for model in args.model:
        synthesizer = Synthesizer(model)
        rate = synthesizer.sampling_rate
        neutral, smiling = [], []
        for face_id, _, _ in people:
            for view, store in (("neutral", neutral), ("smiling", smiling)):
                photo = args.faces / "london" / view / f"{face_id}.jpg"
                store.append(synthesizer.synthesize(photo, SENTENCE, seed=0).waveform)
            if args.out is not None:
                import soundfile

                folder = args.out / Path(model).name
                folder.mkdir(parents=True, exist_ok=True)
                soundfile.write(folder / f"london_{face_id}.wav", neutral[-1], rate)
        emb, emb_smiling = encoder.embed(neutral, rate), encoder.embed(smiling, rate)
        genders = [gender for _, gender, _ in people]
        pairs = {"same gender": [], "across genders": []}
        for i, j in combinations(range(len(people)), 2):
            key = "same gender" if genders[i] == genders[j] else "across genders"
            pairs[key].append(float(emb[i] @ emb[j]))
        print(f"\n{model}: {SENTENCE!r}, seed 0, neutral photos")
        frame_rate = rate / synthesizer.config.hop_length
        print("| person | gender | held out | median F0 (Hz) | length (s) | comb (dB) | same person, smiling photo |")
        print("|---|---|---|---|---|---|---|")
        for k, (face_id, gender, unseen) in enumerate(people):
            f0 = estimate_f0(np.asarray(neutral[k], dtype=np.float32), rate)
            seen = "yes" if unseen else "no (trained on)"
            comb = comb_level_db(neutral[k], rate, frame_rate)
            kept = float(emb[k] @ emb_smiling[k])
            length = len(neutral[k]) / rate
            print(f"| london {face_id} | {gender} | {seen} | {f0:.0f} | {length:.2f} | {comb:.1f} | {kept:.3f} |")
        for gender in ("female", "male"):
            idx = [k for k, g in enumerate(genders) if g == gender]
            within = [float(emb[a] @ emb[b]) for a, b in combinations(idx, 2)]
            if within:
                print(f"different {gender}s: mean {np.mean(within):.3f} (min {min(within):.3f}, max {max(within):.3f})")
        consistency = [float(emb[k] @ emb_smiling[k]) for k in range(len(people))]
        print(f"across genders: mean {np.mean(pairs['across genders']):.3f}")
        print(f"same person, neutral vs smiling: mean {np.mean(consistency):.3f} (min {min(consistency):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
