"""Export a trained FTV model for inference only: float16 weights, no training-only modules.

    python -m ftv_model.export_inference runs/offline-cpu/final checkpoints/ftv-offline

Drops the posterior encoder and the duration predictor's posterior flows (`FTVModel.TRAINING_ONLY_PARTS`) and
leaves the discriminator behind, then stores the weights in float16 (about a third of the training export). The
result loads with `FTVModel.from_pretrained` (computing in float32 unless a dtype is given) and synthesizes the
same audio up to float16 rounding; its config says `inference_only: true`, and training from it stops with a
clear error. The source's model card is kept and given an "Inference export" section; its sentence on what the
files hold (a training export's names `discriminator/`) is replaced with `model_card.INFERENCE_FILES_SENTENCE`,
which is true here.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from .loading import CheckpointNotFoundError
from .model_card import with_files_sentence
from .modeling_ftv import FTVModel
from .processing_ftv import FTVProcessor

CARD_NAME = "README.md"


def export_inference(source: str | Path, destination: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """Write the inference-only export of `source` (a save_pretrained directory) into `destination`."""
    source, destination = Path(source), Path(destination)
    model = FTVModel.from_pretrained(str(source), dtype=torch.float32)
    processor = FTVProcessor.from_pretrained(str(source))
    before = model.num_parameters()
    model.to_inference_only()
    after = model.num_parameters()
    model.to(dtype)
    model.config.dtype = dtype
    destination.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(destination))
    processor.save_pretrained(str(destination))
    # The source's card made true for this folder: its sentence on the files (a training card's names
    # `discriminator/`) becomes the inference export's, or is added when the card has none.
    source_card = (source / CARD_NAME).read_text() if (source / CARD_NAME).is_file() else "# FTV model\n"
    card = with_files_sentence(source_card, "inference")
    card += (
        "\n## Inference export\n\n"
        f"Exported from `{source}` with `python -m ftv_model.export_inference`: {after:,} of {before:,} parameters "
        f"(training-only modules dropped: {', '.join(FTVModel.TRAINING_ONLY_PARTS)}; no discriminator), stored as "
        f"{str(dtype).replace('torch.', '')}. `FTVModel.from_pretrained` computes in float32 by default. It cannot "
        "be trained further: warm-start from the full training export instead.\n"
    )
    (destination / CARD_NAME).write_text(card)
    for extra in ("piper_import.json", "face_calibration.json"):  # provenance the card and the config refer to
        if (source / extra).is_file():
            shutil.copy2(source / extra, destination / extra)
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ftv_model.export_inference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", type=Path, help="a save_pretrained directory (e.g. a training run's final/)")
    parser.add_argument("destination", type=Path, help="output directory")
    parser.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    args = parser.parse_args(argv)
    try:
        out = export_inference(args.source, args.destination, getattr(torch, args.dtype))
    except CheckpointNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    print(f"Wrote the inference export to {out} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
