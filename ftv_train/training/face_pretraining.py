"""Face-encoder pretraining: the face encoder and face attribute head trained on L_face alone, before the full model.

Why: the paper trains the NesT face encoder from scratch jointly with VITS for 350k steps. A short budget (the
offline CPU recipe gets a few thousand steps at batch 4) is far too little for a transformer to learn faces that
way: in a measured joint run the face gender accuracy was still at chance (57%) after 1,000 steps, so the voice
could not follow the face. The face branch is cheap on its own (no audio, no decoder), so this stage trains it
with the same face attribute loss on every labelled face of the dataset at a large batch first; the joint stage
then starts from a face embedding that already separates gender and race. Still from scratch: no pretrained face
weights are used.

    python train/pretrain_face_encoder.py --init data/joe-init --data data/offline --out data/joe-face-init

On a GPU machine without the dataset: pack the faces here, train the face branch there, merge it back here:

    python train/pretrain_face_encoder.py --data data/offline --write-pack faces.npz
    python train/pretrain_face_encoder.py --model-config data/joe-init/config.json --data faces.npz \
        --out face-run --device cuda --batch-size 256 --learning-rate 5e-4 --weight-decay 0.1 \
        --warmup-steps 300 --steps 3000 --face-drop-path-rate 0.3 --face-dropout 0.1   # on the GPU machine
    python train/pretrain_face_encoder.py --init data/joe-init --data data/offline --out data/joe-face-init \
        --load-face-branch face-run/face_branch.safetensors --steps 0            # merge + held-out accuracy

Writes face_branch.safetensors, face_pretraining.json (the held-out accuracy curve) and, with --init, the whole
checkpoint.

Measured here: on 2 CPU cores a NesT learns faces far too slowly for a CPU budget (batch 32, 750 steps: held-out
gender accuracy 54%; 150 steps on 256 images: training loss 0.69 -> 0.57), so the stage is made to run on a GPU
from a small face pack (`--write-pack`, JPEG, ~40 MB) and its face branch merged back (`--load-face-branch`).
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm
from transformers import HfArgumentParser
from transformers.hf_argparser import HfArg

from ftv_model import FTVModel, FTVProcessor
from ftv_model.attribute_heads import attribute_loss
from ftv_train.data.dataset_format import face_images, label_target, load_prepared_dataset

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
REPORT_NAME = "face_pretraining.json"


@dataclass
class FacePretrainConfig:
    """One pretraining run; saved into the report."""

    data: str = HfArg(help="prepared dataset with face labels, or a face pack (.npz, `write_face_pack`)")
    # output directory: face_branch.safetensors (+ the whole checkpoint when `init` is given); needed unless the
    # command line only writes a face pack
    out: str | None = HfArg(default=None, help="output directory")
    init: str | None = HfArg(
        default=None, help="FTV checkpoint whose face branch is trained (e.g. a converted Piper voice)"
    )
    model_config: str | None = HfArg(
        default=None, help="config.json to build a fresh model from (instead of --init; face branch output only)"
    )
    load_face_branch: str | None = HfArg(
        default=None, help="face_branch.safetensors to start from (or, with --steps 0, just evaluate)"
    )
    device: str = HfArg(default="cpu", help="cpu or cuda")
    max_minutes: float | None = HfArg(default=None, help="fit the step count to this time budget")
    face_drop_path_rate: float | None = HfArg(default=None, help="NesT stochastic depth for this stage")
    face_dropout: float | None = HfArg(default=None, help="NesT dropout for this stage")
    train_split: str = "train"
    # identities never trained on, and never the final score's: the accuracy this stage monitors is for choices
    eval_split: str = HfArg(default="validation_unseen", help="held-out identities for the accuracy")
    steps: int = 1500
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    eval_every: int = 250
    seed: int = 0
    threads: int | None = HfArg(default=None, help="torch CPU threads")


@dataclass
class IdentityFaces:
    """Every view of every identity of a split, decoded once: images (N, 3, H, W) uint8 and per-image labels."""

    images: torch.Tensor
    identity: torch.Tensor  # (N,) identity index of each image
    gender: torch.Tensor  # (I,) per identity, IGNORE_INDEX when missing
    race: torch.Tensor

    @property
    def num_identities(self) -> int:
        return int(self.gender.shape[0])


def load_identity_faces(split, image_size: int) -> IdentityFaces:
    """One row per speaker (all its face views), resized to the model's input size."""
    speakers = split["speaker"]
    first_row: dict[str, int] = {}
    for index, speaker in enumerate(speakers):
        first_row.setdefault(speaker, index)
    images, identity, gender, race = [], [], [], []
    rows = split.select(sorted(first_row.values()))
    for position, row in enumerate(tqdm(rows, desc="decoding faces", unit="identity")):
        for face in face_images(row["faces"]):
            face = face.resize((image_size, image_size)) if face.size != (image_size, image_size) else face
            images.append(torch.from_numpy(np.asarray(face, dtype=np.uint8).copy()).permute(2, 0, 1))
            identity.append(position)
        gender.append(label_target(int(row["gender"])))
        race.append(label_target(int(row["race"])))
    return IdentityFaces(
        torch.stack(images), torch.tensor(identity), torch.tensor(gender), torch.tensor(race, dtype=torch.long)
    )


def normalize(images: torch.Tensor, processor: FTVProcessor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (B, 3, H, W) -> the float input the image processor makes (same mean / std)."""
    image_processor = processor.image_processor
    mean = torch.tensor(image_processor.image_mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(image_processor.image_std, device=device).view(1, 3, 1, 1)
    return (images.to(device).float() / 255.0 - mean) / std


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip, a random crop of 85-100% of the side (resized back) and brightness/contrast jitter,
    for a whole float batch at once on its device."""
    batch = images.shape[0]
    rand = torch.rand(batch, 5, generator=generator).to(images.device)
    scale = 0.85 + 0.15 * rand[:, 0]
    flip = torch.where(rand[:, 1] < 0.5, -1.0, 1.0)
    shift_x = (1 - scale) * (2 * rand[:, 2] - 1)
    shift_y = (1 - scale) * (2 * rand[:, 3] - 1)
    theta = torch.zeros(batch, 2, 3, device=images.device)
    theta[:, 0, 0], theta[:, 0, 2] = scale * flip, shift_x
    theta[:, 1, 1], theta[:, 1, 2] = scale, shift_y
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gain = (0.8 + 0.4 * rand[:, 4]).view(-1, 1, 1, 1)
    return out * gain


@torch.no_grad()
def attribute_accuracy(
    model: FTVModel, faces: IdentityFaces, processor: FTVProcessor, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Per-identity accuracy of the face head (first view of each identity, no augmentation)."""
    model.eval()
    first = torch.zeros(faces.num_identities, dtype=torch.long)
    seen = set()
    for index, identity in enumerate(faces.identity.tolist()):
        if identity not in seen:
            seen.add(identity)
            first[identity] = index
    predictions: dict[str, list[torch.Tensor]] = {"gender": [], "race": []}
    for start in range(0, len(first), 128):
        pixels = normalize(faces.images[first[start : start + 128]], processor, device)
        logits = model.face_attribute_head(model.get_face_embeddings(pixels))
        for name in predictions:
            predictions[name].append(logits[name].argmax(-1).cpu())
    result = {}
    for name, labels in (("gender", faces.gender), ("race", faces.race)):
        predicted = torch.cat(predictions[name])
        known = labels != IGNORE_INDEX
        correct = (predicted[known] == labels[known]).float()
        result[f"{name}_accuracy"] = float(correct.mean()) if known.any() else math.nan
    model.train()
    return result


FACE_BRANCH = ("face_encoder.", "face_attribute_head.")
FACE_BRANCH_FILE = "face_branch.safetensors"


def write_face_pack(
    data: str | Path, out: str | Path, splits: tuple[str, ...] = ("train", "validation_unseen")
) -> Path:
    """Every identity's face views and labels from a prepared dataset in one small .npz (JPEG bytes), so the stage
    can run where the dataset (with its audio) is not, e.g. on a GPU machine."""
    dataset = load_prepared_dataset(data, decode_audio=False, decode_faces=False)
    arrays: dict[str, np.ndarray] = {}
    for split in splits:
        faces = load_identity_faces(dataset[split], 128)
        encoded = []
        for image in faces.images:
            buffer = io.BytesIO()
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=90)
            encoded.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
        arrays[f"{split}/jpeg"] = np.array(encoded, dtype=object)
        arrays[f"{split}/identity"] = faces.identity.numpy()
        arrays[f"{split}/gender"] = faces.gender.numpy()
        arrays[f"{split}/race"] = faces.race.numpy()
    out = Path(out)
    np.savez(out, **arrays)
    return out


def read_face_pack(path: str | Path, split: str) -> IdentityFaces:
    pack = np.load(path, allow_pickle=True)
    images = [
        torch.from_numpy(np.asarray(Image.open(io.BytesIO(data.tobytes())).convert("RGB"), dtype=np.uint8).copy())
        for data in pack[f"{split}/jpeg"]
    ]
    return IdentityFaces(
        torch.stack(images).permute(0, 3, 1, 2).contiguous(),
        torch.from_numpy(pack[f"{split}/identity"]).long(),
        torch.from_numpy(pack[f"{split}/gender"]).long(),
        torch.from_numpy(pack[f"{split}/race"]).long(),
    )


def load_faces(data: str, split: str, image_size: int) -> IdentityFaces:
    if str(data).endswith(".npz"):
        return read_face_pack(data, split)
    dataset = load_prepared_dataset(data, decode_audio=False, decode_faces=False)
    return load_identity_faces(dataset[split], image_size)


def pretrain_face_encoder(config: FacePretrainConfig) -> dict:
    """Run the stage; save the face branch (face_branch.safetensors) and, with --init, the whole checkpoint."""
    from safetensors.torch import load_file, save_file

    from ftv_model import FTVConfig

    if not config.out:
        raise ValueError("Give the output directory (out): face_branch.safetensors and the report go there.")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    overrides = {
        key: value
        for key, value in (("face_drop_path_rate", config.face_drop_path_rate), ("face_dropout", config.face_dropout))
        if value is not None
    }
    if config.init:
        model = FTVModel.from_pretrained(config.init, **overrides)
        processor = FTVProcessor.from_pretrained(config.init)
    elif config.model_config:
        model_config = FTVConfig.from_json_file(config.model_config)
        for key, value in overrides.items():
            setattr(model_config, key, value)
        model, processor = FTVModel(model_config), FTVProcessor()
    else:
        raise ValueError("Give --init (an FTV checkpoint) or --model-config (a config.json) to build the model from.")
    if model.face_attribute_head is None:
        raise ValueError("The model has no face attribute head (use_face_attribute_head=False): nothing to train.")
    if config.load_face_branch:
        missing = model.load_state_dict(load_file(config.load_face_branch), strict=False)
        if any(key.startswith(FACE_BRANCH) for key in missing.missing_keys):
            raise ValueError(f"{config.load_face_branch} does not hold the whole face branch.")
    size = model.config.image_size
    train = load_faces(config.data, config.train_split, size) if config.steps else None
    held_out = load_faces(config.data, config.eval_split, size)
    model.requires_grad_(False)
    branch = torch.nn.ModuleDict({"encoder": model.face_encoder, "head": model.face_attribute_head}).to(device)
    branch.requires_grad_(True)
    curve: list[dict[str, float]] = []
    started = time.perf_counter()
    steps_done = 0
    if train is not None:
        logger.info(
            "face pretraining on %s: %d images of %d identities, %d identities held out",
            device,
            len(train.images),
            train.num_identities,
            held_out.num_identities,
        )
        steps_done = _train_face_branch(model, branch, train, held_out, processor, config, device, generator, curve)
    accuracy = attribute_accuracy(model, held_out, processor, device)
    curve.append({"step": steps_done, **accuracy})
    model.to("cpu").eval()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k.startswith(FACE_BRANCH)}
    save_file(state, str(out / FACE_BRANCH_FILE))
    if config.init:
        model.save_pretrained(str(out))
        processor.save_pretrained(str(out))
        for extra in ("piper_import.json", "README.md"):
            if (Path(config.init) / extra).is_file():
                (out / extra).write_bytes((Path(config.init) / extra).read_bytes())
    report = {
        "config": asdict(config),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "seconds": round(time.perf_counter() - started, 1),
        "steps": steps_done,
        "train_images": len(train.images) if train is not None else None,
        "held_out_identities": held_out.num_identities,
        "curve": curve,
    }
    source_report = Path(config.load_face_branch).parent / REPORT_NAME if config.load_face_branch else None
    if (
        source_report is not None
        and source_report.is_file()
        and source_report.resolve() != (out / REPORT_NAME).resolve()
    ):
        report["source"] = json.loads(source_report.read_text())  # the run that trained the loaded branch
    (out / REPORT_NAME).write_text(json.dumps(report, indent=1))
    return report


def _train_face_branch(model, branch, train, held_out, processor, config, device, generator, curve) -> int:
    images = train.images.to(device)
    identity_gender, identity_race = train.gender.to(device), train.race.to(device)
    views_of = [torch.nonzero(train.identity == i).flatten() for i in range(train.num_identities)]
    parameters = [p for p in branch.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    total = config.steps
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    running: list[torch.Tensor] = []
    started = time.perf_counter()
    model.train()
    step = 0
    bar = tqdm(total=total, desc="face pretraining", unit="step")
    while step < total:
        if config.max_minutes and step == 50:
            # Fit the step count to the time budget once the speed is known (the schedule then follows it).
            rate = step / (time.perf_counter() - started)
            total = max(step + 1, min(total, int(rate * config.max_minutes * 60)))
            bar.total = total
        warm = min(1.0, (step + 1) / config.warmup_steps)
        progress = max(0.0, (step - config.warmup_steps) / max(1, total - config.warmup_steps))
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * warm * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        identities = torch.randint(0, train.num_identities, (config.batch_size,), generator=generator)
        views = torch.stack(
            [views_of[i][torch.randint(0, len(views_of[i]), (), generator=generator)] for i in identities.tolist()]
        ).to(device)
        identities = identities.to(device)
        pixels = augment(normalize(images[views], processor, device), generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits = branch["head"](branch["encoder"](pixels))
        loss = attribute_loss(logits, {"gender": identity_gender[identities], "race": identity_race[identities]})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running.append(loss.detach())
        step += 1
        bar.update(1)
        if step % config.eval_every == 0 and step < total:
            accuracy = attribute_accuracy(model, held_out, processor, device)
            point = {"step": step, "loss": float(torch.stack(running).mean()), **accuracy}
            curve.append(point)
            running = []
            bar.set_postfix(loss=f"{point['loss']:.3f}", gender=f"{accuracy['gender_accuracy']:.1%}")
            logger.info("face pretraining %s", point)
    bar.close()
    return step


def main(argv: Sequence[str] | None = None) -> int:
    """`ftv-pretrain-face-encoder` / train/pretrain_face_encoder.py: train the face branch, or only write a face pack
    (`--write-pack`)."""
    parser = HfArgumentParser(
        FacePretrainConfig,
        prog="ftv-pretrain-face-encoder",
        description="Train the face encoder and face attribute head on the dataset's face labels (L_face only), "
        "before train.py (see ftv_train/training/face_pretraining.py).",
    )
    parser.add_argument("--write-pack", "--write_pack", help="only write the faces and labels of --data to this .npz")
    config, extra = parser.parse_args_into_dataclasses(
        list(argv) if argv is not None else None, look_for_args_file=False
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    if extra.write_pack:
        path = write_face_pack(config.data, extra.write_pack, (config.train_split, config.eval_split))
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
        return 0
    if not config.out:
        parser.error("--out is required")
    report = pretrain_face_encoder(config)
    print(json.dumps(report["curve"][-1]))
    print(f"wrote {config.out} ({report['seconds']:.0f} s, {report['steps']} steps on {report['device']})")
    return 0
