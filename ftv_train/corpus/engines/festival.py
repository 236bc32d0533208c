"""Festival through its ``text2wave`` script: the kal and ked diphone voices (16 kHz) and CMU ARCTIC slt as an HTS
voice (32 kHz), each from its own Debian package."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ftv_train.corpus.engines.base import VoiceEngine, synthesize_with_command

__all__ = ["Festival"]

VOICE_PACKAGES = {
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
}
VOICE_ROOTS = (Path("/usr/share/festival/voices"), Path("/usr/local/share/festival/voices"))


class Festival(VoiceEngine):
    name = "festival"
    binaries = ("text2wave",)
    debian_packages = ("festival", *VOICE_PACKAGES.values())

    def synthesize(self, text: str, voice: str) -> tuple[np.ndarray, int]:
        def command(folder: Path, out: Path) -> list[str]:
            (folder / "text.txt").write_text(text)
            return ["text2wave", "-eval", f"(voice_{voice})", str(folder / "text.txt"), "-o", str(out)]

        return synthesize_with_command(command)

    def problems(self, voices: Sequence[str]) -> list[str]:
        return super().problems(voices) + [
            f"festival voice {voice} missing (apt-get install {VOICE_PACKAGES[voice]})"
            for voice in voices
            if not any(any(root.glob(f"*/{voice}")) for root in VOICE_ROOTS)
        ]
