"""Command line synthesis: a face photo and text in, a WAV of synthetic speech out.

    python -m ftv_model.synthesize --image face.jpg --text "Hello there." --out hello.wav
    python -m ftv_model.synthesize --image a.jpg --image b.jpg --text-file speech.txt --model org/ftv --seed 3
    python -m ftv_model.synthesize --image face.jpg --text "Hello." --save-voice my-voice.json
    python -m ftv_model.synthesize --voice my-voice.json --text "Same voice, no photo."
    python -m ftv_model.synthesize --voice my-voice.json --adjust pitch=-1 --adjust age=0.5 --text "A bit lower."

Several --image photos must show the same person; their face embeddings are averaged. --save-voice keeps the
voice as a profile (no photo in it); --voice speaks from one, with its settings and seed unless flags override
them. The output is a 16 kHz mono WAV marked as synthetic in its metadata; without --out it is named
ftv-synthetic-*.wav. Bad input (no face, not an image, empty text, no model) prints one line on stderr and exits
with status 2, never a traceback (set FTV_DEBUG=1 to get tracebacks).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

EXIT_BAD_INPUT = 2
DEBUG_ENV = "FTV_DEBUG"


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but usage errors are one line on stderr (exit 2), like every other input error here."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see --help)\n")


def _adjustment(text: str) -> tuple[str, float]:
    """NAME=STEPS for --adjust."""
    name, sep, value = text.partition("=")
    try:
        if not sep or not name.strip():
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--adjust takes NAME=STEPS, like pitch=-1 (got {text!r})") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="python -m ftv_model.synthesize",
        description="Speak text in a voice inferred from a photo of a face (ftv). The output is synthetic speech, "
        "marked as such in its file metadata. Only use faces you have the right to use.",
    )
    face = parser.add_mutually_exclusive_group(required=True)
    face.add_argument(
        "--image",
        action="append",
        metavar="PHOTO",
        help="photo of the face (repeat for more photos of the same person; embeddings are averaged)",
    )
    face.add_argument(
        "--voice", type=Path, metavar="PROFILE", help="speak in a saved voice profile (from --save-voice or the app)"
    )
    text = parser.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="the text to speak")
    text.add_argument("--text-file", type=Path, metavar="FILE", help="read the text to speak from a UTF-8 file")
    parser.add_argument(
        "--out", type=Path, default=None, help="output WAV file or directory (default: ./ftv-synthetic-<time>.wav)"
    )
    from ftv_model.loading import add_bfloat16_argument, add_model_arguments

    add_model_arguments(parser)
    add_bfloat16_argument(parser)
    parser.add_argument(
        "--save-voice", type=Path, default=None, metavar="PROFILE", help="also save the voice as a profile (JSON)"
    )
    parser.add_argument(
        "--adjust",
        action="append",
        default=[],
        type=_adjustment,
        metavar="NAME=STEPS",
        help="move the voice along one of the model's named directions, e.g. pitch=-1 or age=0.5 (at most 3 steps; "
        "repeat for several; the bundled model's: pitch, age, masculinity)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="noise seed: same seed + same input = same audio (default: 0, or the profile's)",
    )
    parser.add_argument("--speaking-rate", type=float, default=None, help="> 1 speaks faster (default 1.0)")
    parser.add_argument("--noise-scale", type=float, default=None, help="prior noise, i.e. expressiveness (0.667)")
    parser.add_argument(
        "--noise-scale-duration", type=float, default=None, help="duration noise, i.e. rhythm variation (0.8)"
    )
    parser.add_argument(
        "--detector",
        default="auto",
        choices=("auto", "s3fd", "dlib", "haar"),
        help="face detector backend (default: auto)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    return parser


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Silence progress bars and library warnings, which would bury the one line that matters on stderr, and
    restore them afterwards (`main` also runs in-process, e.g. in tests)."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_bars = transformers_logging.is_progress_bar_enabled()
    hub_bars_off = are_progress_bars_disabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    disable_progress_bars()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if transformers_bars:
            transformers_logging.enable_progress_bar()
        if not hub_bars_off:
            enable_progress_bars()


def run(args: argparse.Namespace) -> int:
    """Validate the cheap things first (text, photos), then load the model once and synthesize."""
    from ftv_model.loading import BFLOAT16_UNAVAILABLE, synthesizer_options
    from ftv_model.synthesis import Synthesizer, check_text, read_photo
    from ftv_model.voice_profile import VoiceProfile

    if args.text_file is not None:
        try:
            text = args.text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"Could not read the text file {args.text_file}: {error}") from error
    else:
        text = args.text
    check_text(text)  # the script check needs the model's language: the synthesizer makes it once loaded
    photos = args.image or []
    for index, photo in enumerate(photos):
        read_photo(photo, "The photo" if len(photos) == 1 else f"Photo {index + 1}")
    voice = VoiceProfile.load(args.voice) if args.voice is not None else None
    if args.save_voice is not None and args.save_voice.suffix.lower() != ".json" and not args.save_voice.is_dir():
        raise ValueError(f"--save-voice must end in .json (or be a directory), got {args.save_voice}.")
    out = args.out
    if out is not None and out.suffix.lower() != ".wav" and not out.is_dir():
        raise ValueError(f"--out must end in .wav (or be a directory), got {out}.")

    start = time.perf_counter()
    with _quiet_libraries():
        synthesizer = Synthesizer(args.model, **synthesizer_options(args))
    loaded = time.perf_counter() - start
    result = synthesizer.synthesize(
        photos,
        text,
        voice=voice,
        adjustments=dict(args.adjust),
        seed="default" if args.seed is None else args.seed,
        speaking_rate=args.speaking_rate,
        noise_scale=args.noise_scale,
        noise_scale_duration=args.noise_scale_duration,
    )
    if synthesizer.untrained:  # after synthesis, so that an input error stays the only line on stderr
        print(f"warning: the model is {synthesizer.description}", file=sys.stderr)
    if synthesizer.config.cpu_bfloat16_decoder and not synthesizer.bfloat16:
        print(f"note: float32 it is: {BFLOAT16_UNAVAILABLE}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    try:
        path = synthesizer.save(result, out if out is not None else Path.cwd())
    except OSError as error:
        raise ValueError(f"Could not write {out}: {error.strerror or error}") from error
    profile_path = None
    if args.save_voice is not None:
        try:
            profile_path = result.voice.save(args.save_voice)
        except OSError as error:
            raise ValueError(f"Could not write {args.save_voice}: {error.strerror or error}") from error
    if not args.quiet:
        guesses = ", ".join(
            f"{name} {max(probs, key=probs.get)} ({max(probs.values()):.0%})"
            for name, probs in result.attributes.items()
        )
        timing = ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items())
        print(
            f"Wrote {path}: {result.duration:.2f} s of synthetic speech, {len(result.sentences)} sentence(s), "
            f"seed {result.seed}."
        )
        if guesses:
            print(f"Face attributes the voice was conditioned on: {guesses}.")
        if profile_path is not None:
            print(f"Saved the voice profile to {profile_path} (speak from it with --voice {profile_path}).")
        print(f"Timings: model load {loaded:.2f} s, {timing}.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad input, 1 unexpected failure)."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ValueError as error:  # FaceDetectionError, TextFrontendError and SynthesisError are ValueErrors
        if os.environ.get(DEBUG_ENV):
            raise
        message = " ".join(str(error).split())
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a bug, not the user's input: still one line, with the way to get details
        if os.environ.get(DEBUG_ENV):
            raise
        print(
            f"error: unexpected failure ({type(error).__name__}: {error}); rerun with {DEBUG_ENV}=1 for details.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
