"""Finding a checkpoint: one clear error when it cannot be loaded (shared by the model and the processor), the
bundled default, and the `--model` flags of the app and the CLI (light imports, so `--help` answers at once).

transformers reports a missing local directory as an invalid Hub repo id, and an offline miss as a cache error;
a user needs to hear what was looked for and how to get a checkpoint instead.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from huggingface_hub.errors import HFValidationError

# The checkpoint bundled with the repository (the app's and the CLI's default); an installed checkout (scripts/setup.sh
# installs it in editable mode) finds it from any folder.
BUNDLED_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "ftv-offline"

ALLOW_UNTRAINED_ENV = "FTV_ALLOW_UNTRAINED"


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
        help="checkpoint directory or Hub id (default: $FTV_MODEL, else checkpoints/ftv-offline)",
    )
    parser.add_argument(
        "--allow-untrained",
        action="store_true",
        help="run even with untrained (random) weights or no checkpoint at all: the audio is noise "
        f"(also ${ALLOW_UNTRAINED_ENV}=1)",
    )
