"""`ftv-export-piper`: export a saved voice profile as a Piper voice (VOICE.onnx + VOICE.onnx.json + a model card).

    ftv-export-piper --voice my-voice.json --out my-voice [--model org/ftv]

The work is `ftv_model.piper_export.export_piper_voice`; this module only parses the command line and imports
torch after parsing, so `--help` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .loading import add_model_arguments

DESCRIPTION = (
    "Export one voice as a Piper voice: ``VOICE.onnx`` + ``VOICE.onnx.json`` (+ a model card), for any Piper runtime."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftv-export-piper", description=DESCRIPTION)
    parser.add_argument("--voice", type=Path, required=True, metavar="PROFILE", help="voice profile (--save-voice)")
    parser.add_argument(
        "--out", type=Path, required=True, help="NAME: writes NAME.onnx, NAME.onnx.json, NAME.README.md"
    )
    add_model_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`ftv-export-piper --voice PROFILE --out NAME`: one line on stderr and exit 2 on bad input."""
    args = build_parser().parse_args(argv)
    from .piper_export import export_piper_voice
    from .synthesis import Synthesizer
    from .voice_profile import VoiceProfile

    try:
        profile = VoiceProfile.load(args.voice)
        synthesizer = Synthesizer(args.model, allow_untrained=args.allow_untrained or None)
        paths = export_piper_voice(synthesizer.model, synthesizer.processor.tokenizer, profile, args.out)
    except ValueError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print("Wrote " + ", ".join(str(p) for p in paths) + ".")
    return 0


if __name__ == "__main__":
    sys.exit(main())
