"""Flite (CMU's small synthesiser): the kal16, awb, rms and slt voices, 16 kHz."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

import numpy as np

from ftv_train.corpus.engines.base import VoiceEngine, synthesize_with_command

__all__ = ["Flite"]


class Flite(VoiceEngine):
    name = "flite"
    binaries = ("flite",)
    debian_packages = ("flite",)

    def synthesize(self, text: str, voice: str) -> tuple[np.ndarray, int]:
        return synthesize_with_command(lambda folder, out: ["flite", "-voice", voice, "-t", text, "-o", str(out)])

    def problems(self, voices: Sequence[str]) -> list[str]:
        found = super().problems(voices)
        if shutil.which("flite"):  # the voices are compiled in: ask the binary which it has
            listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split()
            found += [f"flite has no voice {voice} (apt-get install flite)" for voice in voices if voice not in listed]
        return found
