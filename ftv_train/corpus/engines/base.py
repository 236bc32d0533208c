"""What a voice engine is to the offline corpus: a name, what it needs installed, and text -> speech.

An engine is one small object in one file (`ftv_train.corpus.engines.flite`, ...), listed once in the registry
(`ftv_train.corpus.engines.ENGINES`); the build checks and calls engines only through that registry, and
``scripts/setup.sh`` installs every engine's Debian packages (``tests/test_corpus_engines.py`` checks both).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

__all__ = ["EngineUnavailableError", "VoiceEngine", "synthesize_with_command"]


class EngineUnavailableError(RuntimeError):
    """A voice engine binary or voice is missing; the message names the package that provides it."""


class VoiceEngine(ABC):
    """An offline text-to-speech engine whose voices the corpus re-shapes into its speakers' voices."""

    name: ClassVar[str]  # as `BaseVoice.engine` names it
    binaries: ClassVar[tuple[str, ...]] = ()  # programs it runs
    debian_packages: ClassVar[tuple[str, ...]] = ()  # apt packages for the binaries (the first) and its voices
    pip_packages: ClassVar[tuple[str, ...]] = ()  # Python packages it imports (in requirements-train.txt)

    @abstractmethod
    def synthesize(self, text: str, voice: str) -> tuple[np.ndarray, int]:
        """Speak `text` with the engine's voice `voice`: (mono float32 samples, the engine's native sample rate).

        The output depends on the text and voice alone (no sampling noise), so the corpus depends only on its seed.
        """

    def problems(self, voices: Sequence[str]) -> list[str]:
        """What is missing to speak with `voices`, each naming the package that provides it (default: binaries)."""
        return [
            f"`{binary}` not found (apt-get install {self.debian_packages[0]})"
            for binary in self.binaries
            if shutil.which(binary) is None
        ]


def synthesize_with_command(command_for: Callable[[Path, Path], list[str]]) -> tuple[np.ndarray, int]:
    """Run an engine's command line in a fresh folder: ``command_for(folder, out)`` writes a WAV to ``out``;
    returns its samples (channels averaged, float32) and sample rate."""
    import soundfile

    with tempfile.TemporaryDirectory(prefix="ftv-voice-") as folder:
        out = Path(folder) / "out.wav"
        command = command_for(Path(folder), out)
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=60)
        except FileNotFoundError as error:
            raise EngineUnavailableError(f"{command[0]} is not installed: {error}") from error
        wave, rate = soundfile.read(out, dtype="float32", always_2d=True)
    return wave.mean(axis=1), int(rate)
