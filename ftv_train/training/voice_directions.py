"""Find a checkpoint's named voice directions (pitch, age, masculinity) from its training corpus; see
`ftv_model.voice_directions` for what each one is and how it is found.

    python train/fit_voice_directions.py --model checkpoints/ftv-offline --data data/offline --write
    ftv-fit-voice-directions --model checkpoints/ftv-offline --data data/offline --write   # the same, installed

Each training speaker contributes the model's F for its first face and its labels: the corpus voice's target F0
(`report.json`, offline.voices), its age (offline.ages) and its gender. Prints, for each direction, how closely it
follows its target on the training faces and on the held-out ``validation_unseen`` faces (correlation, or for
masculinity the distance between the gender means in steps); ``--write`` stores them in the checkpoint's
config.json (the weights are untouched, and voice profiles made before stay valid).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import HfArgumentParser
from transformers.hf_argparser import HfArg

DIRECTIONS = {
    "pitch": ("lower", "higher", "ridge regression of the corpus voice's log F0 on F, within each gender"),
    "age": ("younger", "older", "ridge regression of the face's age label on F"),
    "masculinity": ("less masculine", "more masculine", "from the mean F of female-labelled to male-labelled faces"),
}


def speaker_rows(dataset, limit: int | None) -> list[int]:
    """The first utterance of each speaker (at most `limit` speakers, in dataset order)."""
    seen: dict[str, int] = {}
    for index, speaker in enumerate(dataset["speaker"]):
        if speaker not in seen:
            seen[speaker] = index
    rows = list(seen.values())
    return rows if limit is None else rows[:limit]


def embeddings(model, processor, dataset, rows: list[int], batch: int = 32) -> np.ndarray:
    import torch
    from tqdm.auto import tqdm

    out = []
    for start in tqdm(range(0, len(rows), batch), desc="faces", unit="batch"):
        faces = [item[0] for item in dataset.select(rows[start : start + batch])["faces"]]
        inputs = processor(images=faces, do_crop_face=False)
        with torch.inference_mode():
            face = model.get_face_embeddings(inputs["pixel_values"], None, inputs.get("face_descriptors"))
        out.append(face.float().numpy())
    return np.concatenate(out)


@dataclass
class VoiceDirectionsArguments:
    """`ftv-fit-voice-directions`'s options."""

    model: str = HfArg(help="FTV checkpoint directory")
    data: Path = HfArg(help="the offline corpus it was trained on")
    speakers: int = HfArg(default=1000, help="training speakers to fit on")
    write: bool = HfArg(default=False, help="store the directions in the checkpoint's config.json")


def main(argv: Sequence[str] | None = None) -> int:
    """`ftv-fit-voice-directions` / train/fit_voice_directions.py."""
    parser = HfArgumentParser(
        VoiceDirectionsArguments, prog="ftv-fit-voice-directions", description=__doc__.split("\n\n")[0]
    )
    (args,) = parser.parse_args_into_dataclasses(list(argv) if argv is not None else None, look_for_args_file=False)

    import torch

    from ftv_model import FTVConfig, FTVModel, FTVProcessor
    from ftv_model.attributes import GENDER_LABELS
    from ftv_model.face_descriptor import DESCRIPTOR_CACHE_NAME, shared_face_descriptor
    from ftv_model.voice_directions import fit_direction, mean_difference_direction
    from ftv_train.data.dataset_format import load_prepared_dataset

    torch.set_num_threads(2)
    report = json.loads((args.data / "report.json").read_text())["offline"]
    f0s, ages = report["voices"], report.get("ages", {})
    model = FTVModel.from_pretrained(args.model, dtype=torch.float32).eval()
    processor = FTVProcessor.from_pretrained(args.model)
    if (args.data / DESCRIPTOR_CACHE_NAME).is_file() and model.config.face_descriptor:
        shared_face_descriptor(processor.image_processor.face_margin).load_cache(args.data / DESCRIPTOR_CACHE_NAME)
    dataset = load_prepared_dataset(args.data, decode_audio=False)
    male, female = GENDER_LABELS.index("male"), GENDER_LABELS.index("female")

    def table(split: str, limit: int | None):
        data = dataset[split]
        rows = speaker_rows(data, limit)
        picked = data.select(rows)
        speakers, genders = picked["speaker"], np.asarray(picked["gender"])
        faces = embeddings(model, processor, data, rows)
        log_f0 = np.array([np.log(f0s[s]["f0"]) if s in f0s else np.nan for s in speakers])
        age = np.array([ages.get(s) if ages.get(s) is not None else np.nan for s in speakers], dtype=float)
        return faces, genders, log_f0, age

    faces, genders, log_f0, age = table("train", args.speakers)
    held_faces, held_genders, held_f0, held_age = table("validation_unseen", None)
    labelled = (genders == male) | (genders == female)
    fitted: dict[str, dict] = {}

    def held_out_correlation(vector: np.ndarray, values: np.ndarray, groups: np.ndarray | None) -> float:
        keep = ~np.isnan(values) & ((held_genders == male) | (held_genders == female))
        x, y = held_faces[keep] @ vector, values[keep]
        if groups is not None:
            for group in (male, female):
                rows = held_genders[keep] == group
                x[rows], y[rows] = x[rows] - x[rows].mean(), y[rows] - y[rows].mean()
        return float(np.corrcoef(x, y)[0, 1])

    keep = labelled & ~np.isnan(log_f0)
    vector, step, fit = fit_direction(faces[keep], log_f0[keep], genders[keep])
    fitted["pitch"] = {"vector": vector, "step": step, "fit": fit, "held_out": held_out_correlation(vector, held_f0, 1)}
    keep = ~np.isnan(age)
    vector, step, fit = fit_direction(faces[keep], age[keep])
    fitted["age"] = {
        "vector": vector,
        "step": step,
        "fit": fit,
        "held_out": held_out_correlation(vector, held_age, None),
    }
    vector, step, separation = mean_difference_direction(faces[labelled], genders[labelled], male, female)
    held = (held_genders == male) | (held_genders == female)
    projection = held_faces[held] @ vector
    held_separation = (
        projection[held_genders[held] == male].mean() - projection[held_genders[held] == female].mean()
    ) / step
    fitted["masculinity"] = {"vector": vector, "step": step, "fit": separation, "held_out": float(held_separation)}

    print(f"{len(faces)} training speakers, {len(held_faces)} held-out (validation_unseen):")
    print("| direction | step (|F| units) | training faces | held-out faces |")
    print("|---|---|---|---|")
    for name, item in fitted.items():
        measure = "gender means apart, steps" if name == "masculinity" else "correlation"
        print(f"| {name} | {item['step']:.3f} | {item['fit']:.2f} ({measure}) | {item['held_out']:.2f} |")
    directions = {
        name: {
            "vector": [round(float(x), 7) for x in item["vector"]],
            "step": round(item["step"], 6),
            "low": DIRECTIONS[name][0],
            "high": DIRECTIONS[name][1],
            "how": DIRECTIONS[name][2],
            "held_out": round(item["held_out"], 4),
        }
        for name, item in fitted.items()
    }
    if args.write:
        config = FTVConfig.from_pretrained(args.model)
        config.voice_directions = directions
        config.save_pretrained(args.model)
        print(f"Wrote the directions into {Path(args.model) / 'config.json'}.")
    return 0
