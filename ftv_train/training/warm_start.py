"""A trainable warm start from an inference export: its weights put into a full model of the same architecture.

Why: an inference export (`ftv_model.export_inference`, e.g. the bundled checkpoint) drops the posterior encoder and
the duration predictor's posterior flows, so training cannot continue from it. Its generator is still the best
start for the next stage; this copies every tensor it has into a full model (``--init``: e.g. the converted Piper
voice it was first trained from, which has the training-only parts) and keeps the rest of ``--init``. Distil the
posterior afterwards (train/distill_posterior.py) so it matches the decoder it now sits beside.

    python train/make_warm_start.py --init data/joe-init --weights checkpoints/ftv-offline --out data/ftv-warm
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file

from ftv_model import FTVModel, FTVProcessor


class WarmStartError(ValueError):
    """The weights do not fit the full model (another architecture)."""


def merge_weights(init: str | Path, weights: str | Path) -> tuple[FTVModel, dict[str, int]]:
    """The full model of `init` with every tensor of the checkpoint `weights` copied in (float32); counts of what
    came from where."""
    model = FTVModel.from_pretrained(str(init), torch_dtype=torch.float32)
    if model.config.inference_only:
        raise WarmStartError(f"--init {init} is an inference-only export: give a full model (e.g. a converted voice).")
    source = load_file(str(Path(weights) / "model.safetensors"))
    state = model.state_dict()
    wrong = [k for k, v in source.items() if k not in state or state[k].shape != v.shape]
    if wrong:
        raise WarmStartError(
            f"{weights} has {len(wrong)} tensors the model of {init} lacks or shapes differently (e.g. {wrong[0]}): "
            "the two are different architectures."
        )
    state.update({k: v.float() for k, v in source.items()})
    model.load_state_dict(state)
    loaded = FTVModel.config_class.from_pretrained(str(weights))
    model.config.face_attribute_temperatures = dict(loaded.face_attribute_temperatures or {})
    kept = sorted({k.split(".")[0] for k in state if k not in source})
    return model, {"copied": len(source), "kept_from_init": len(state) - len(source), "kept_parts": kept}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init", required=True, help="full FTV model (has the posterior encoder)")
    parser.add_argument("--weights", required=True, help="FTV checkpoint whose weights to start from")
    parser.add_argument("--out", required=True, help="where the trainable warm start goes")
    args = parser.parse_args(argv)
    try:
        model, counts = merge_weights(args.init, args.weights)
    except WarmStartError as error:
        parser.exit(2, f"error: {error}\n")
    model.save_pretrained(args.out)
    FTVProcessor.from_pretrained(args.weights).save_pretrained(args.out)
    print(
        f"{args.out}: {counts['copied']} tensors from {args.weights}, {counts['kept_from_init']} from {args.init} "
        f"({', '.join(counts['kept_parts'])})"
    )
    return 0
