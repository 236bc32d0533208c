"""Finding a checkpoint: where a model comes from when none is given, one clear error when it cannot be loaded
(shared by the model and the processor), and the `--model` flags of the app and the CLIs (light imports, so
`--help` answers at once).

The default model location has one owner, this module (`resolve_model_source`): the `--model` argument, else
$FTV_MODEL, else `BUNDLED_CHECKPOINT`, the `checkpoints/ftv-offline` folder of the source checkout this package
runs from. scripts/setup.sh installs the checkout in editable mode, so `python app.py`, `ftv-synthesize` and
`ftv-export-piper` find it from any folder; an install without the checkout needs `--model` or $FTV_MODEL.

transformers reports a missing local directory as an invalid Hub repo id, and an offline miss as a cache error;
a user needs to hear what was looked for and how to get a checkpoint instead.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from huggingface_hub.errors import HFValidationError

# The checkpoint bundled with the repository: the default model when neither --model nor $FTV_MODEL names one.
BUNDLED_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "ftv-offline"
MODEL_ENV = "FTV_MODEL"
ALLOW_UNTRAINED_ENV = "FTV_ALLOW_UNTRAINED"
BFLOAT16_ENV = "FTV_BF16"
BFLOAT16_UNAVAILABLE = "--bf16 needs a CPU that runs bfloat16 natively (AVX512-BF16 or AMX), which this is not"

GET_MODEL_HELP = (
    "Train one (see train/ and the README), put it at checkpoints/ftv-offline, or point to one with "
    f"--model PATH_OR_HUB_ID (or ${MODEL_ENV})."
)
NO_MODEL_HELP = f"{GET_MODEL_HELP} To try the pipeline with random weights (only noise), pass --allow-untrained."


def resolve_model_source(model: str | os.PathLike[str] | None = None) -> str | None:
    """Where to load the model from: the argument, else $FTV_MODEL, else `BUNDLED_CHECKPOINT` if it exists.

    Returns a local directory or a Hub id, or None when nothing is configured.
    """
    if model is not None and str(model).strip():
        return str(model).strip()
    if os.environ.get(MODEL_ENV, "").strip():
        return os.environ[MODEL_ENV].strip()
    if (BUNDLED_CHECKPOINT / "config.json").is_file():
        return str(BUNDLED_CHECKPOINT)
    return None


class CheckpointNotFoundError(OSError):
    """No FTV checkpoint at the given path or Hub id."""


def raise_checkpoint_error(name: str | os.PathLike, what: str, error: Exception) -> None:
    """Re-raise a from_pretrained failure as CheckpointNotFoundError with the fix in the message."""
    if not isinstance(error, (OSError, HFValidationError)):
        raise error
    location = str(name)
    if os.path.isdir(location):
        reason = f"the directory {location} has no loadable {what} files ({error})"
    elif os.path.isabs(location) or location.startswith(".") or location.count("/") > 1 or os.path.exists(location):
        reason = f"there is no directory {location}"
    else:
        reason = f"the Hub repo {location!r} could not be reached or is not in the local cache ({error})"
    raise CheckpointNotFoundError(
        f"Could not load the FTV {what}: {reason}. Give a directory written by save_pretrained (config.json + "
        "model.safetensors + processor files) or a Hub repo id (online, or already cached when HF_HUB_OFFLINE=1). "
        "To make one, train with `accelerate launch train/train.py` (see README)."
    ) from error


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """`--model` and `--allow-untrained`, shared by the app and the CLI so both pick models the same way."""
    parser.add_argument(
        "--model",
        default=None,
        help=f"checkpoint directory or Hub id (default: ${MODEL_ENV}, else checkpoints/ftv-offline)",
    )
    parser.add_argument(
        "--allow-untrained",
        action="store_true",
        help="run even with untrained (random) weights or no checkpoint at all: the audio is noise "
        f"(also ${ALLOW_UNTRAINED_ENV}=1)",
    )


def add_bfloat16_argument(parser: argparse.ArgumentParser) -> None:
    """`--bf16`, shared by the app and the CLI (the synthesis front ends; an export has its own precision)."""
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="run the decoder in bfloat16 on a CPU that runs it natively (AVX512-BF16 or AMX): faster there "
        "(README, Speed), audio within -40 dB of the float32 default; ignored elsewhere "
        f"(also ${BFLOAT16_ENV}=1)",
    )


def synthesizer_options(args: argparse.Namespace) -> dict[str, Any]:
    """`Synthesizer` keyword arguments from the options the app and the CLI share (these, `--detector`, `--device`);
    an unset switch defers to its environment variable."""
    return {
        "allow_untrained": args.allow_untrained or None,
        "detector_backend": args.detector,
        "device": args.device,
        "bfloat16": args.bf16 or None,
    }
