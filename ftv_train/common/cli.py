"""The command-line pattern of the training-side scripts: the flags are a dataclass, parsed by `HfArgumentParser`.

A script's flags dataclass names each flag once (HfArgumentParser accepts ``--a_b`` and ``--a-b`` for a field
``a_b``; `dataclasses.field` metadata adds ``help``, ``choices`` and ``aliases``) and takes its defaults from the
library's config with `default_of`, so a setting has one owner. Its ``main(argv)`` lives in the library; the
``train/*.py`` file and the ``ftv-*`` console command only call it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["default_of", "parse_arguments"]

Arguments = TypeVar("Arguments")


def default_of(config: type, name: str) -> Any:
    """The default of field `name` of the dataclass `config`: a flag's default stays where the setting lives."""
    for field in dataclasses.fields(config):
        if field.name == name:
            if field.default is not dataclasses.MISSING:
                return field.default
            if field.default_factory is not dataclasses.MISSING:
                return field.default_factory()
            raise ValueError(f"{config.__name__}.{name} has no default.")
    raise AttributeError(f"{config.__name__} has no field {name!r}.")


def parse_arguments(arguments: type[Arguments], argv: list[str] | None, description: str) -> Arguments:
    """Parse `argv` (default: the command line) into the flags dataclass `arguments`.

    An unknown or malformed flag is argparse's usage error (exit status 2), as with a plain `ArgumentParser`; no
    ``.args`` file next to the script is read (HfArgumentParser's `parse_args_into_dataclasses` would look for one).
    """
    from transformers import HfArgumentParser

    parser = HfArgumentParser(arguments, description=description)
    return arguments(**vars(parser.parse_args(argv)))
