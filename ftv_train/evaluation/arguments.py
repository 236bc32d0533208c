"""What the evaluation's commands share: `HfArgumentParser` over their settings dataclasses, whose flags take either
spelling (``--max_utterances``, ``--max-utterances``), and lists given comma separated as they always were."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from transformers import HfArgumentParser


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The usage text as written, and each flag's default."""


def argument_parser(dataclass_types: Sequence[type], description: str | None) -> HfArgumentParser:
    return HfArgumentParser(list(dataclass_types), description=description, formatter_class=HelpFormatter)


def parse_settings(parser: HfArgumentParser, argv: list[str] | None) -> tuple[Any, ...]:
    """The dataclasses from the command line; a value their checks refuse exits 2 with the usage, as argparse does."""
    try:
        return tuple(parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False))
    except ValueError as error:
        parser.error(str(error))


def comma_separated(values: Sequence[str] | str) -> list[str]:
    """`["a,b", "c"]` -> `["a", "b", "c"]`: a list flag takes `--split a,b` (as always) or `--split a b`."""
    items = [values] if isinstance(values, str) else values
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]
