"""eSpeak NG (formant synthesis, 22.05 kHz): also the text front end's phonemizer, so always installed."""

from __future__ import annotations

import numpy as np

from ftv_train.corpus.engines.base import VoiceEngine, synthesize_with_command

__all__ = ["EspeakNg"]


class EspeakNg(VoiceEngine):
    name = "espeak-ng"
    binaries = ("espeak-ng",)
    debian_packages = ("espeak-ng",)

    def synthesize(self, text: str, voice: str) -> tuple[np.ndarray, int]:
        return synthesize_with_command(lambda folder, out: ["espeak-ng", "-v", voice, "-w", str(out), "--", text])
