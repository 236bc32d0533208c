"""The WORLD vocoder transform that turns a base voice into a speaker's voice, and the F0 estimate it relies on.

WORLD (``pyworld``) analyses speech into F0 (DIO + StoneMask), spectral envelope (CheapTrick) and aperiodicity (D4C)
and re-synthesises it: `transform_voice` scales the F0 contour to the target median (intonation kept), warps the
envelope along frequency (vocal-tract length) and plays the frames at another period (speaking rate).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ftv_train.common.audio import SAMPLE_RATE
from ftv_train.corpus.voices import VoiceParams

__all__ = ["DIO_ALLOWED_RANGE", "FRAME_PERIOD_MS", "estimate_f0", "load_pyworld", "transform_voice"]

FRAME_PERIOD_MS = 5.0
DIO_ALLOWED_RANGE = 0.2


def load_pyworld() -> Any:
    """The WORLD vocoder. pyworld 0.3.5's ``__init__`` imports ``pkg_resources``, which setuptools >= 81 no longer
    ships; its compiled module holds all of the API, so load that directly when the package import fails."""
    try:
        import pyworld

        return pyworld
    except ModuleNotFoundError as error:
        if error.name != "pkg_resources":
            raise ImportError("The offline corpus needs the WORLD vocoder: `pip install pyworld`.") from error
    import importlib.util

    spec = importlib.util.find_spec("pyworld")
    folder = Path(spec.origin).parent if spec and spec.origin else None
    compiled = next(folder.glob("pyworld*.so"), None) or next(folder.glob("pyworld*.pyd"), None) if folder else None
    if compiled is None:
        raise ImportError("pyworld is installed without its compiled module: `pip install --force-reinstall pyworld`.")
    module_spec = importlib.util.spec_from_file_location("pyworld", compiled)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _world_f0(wave: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    pyworld = load_pyworld()
    x = wave.astype(np.float64)
    # allowed_range 0.2 (DIO's default is 0.1): with the default DIO leaves half of Piper joe's voiced frames
    # unvoiced, which WORLD re-synthesises as noise (DNSMOS 3.2 -> 2.5; with 0.2: 3.0; other voices unchanged)
    f0, times = pyworld.dio(
        x, rate, f0_floor=60.0, f0_ceil=500.0, frame_period=FRAME_PERIOD_MS, allowed_range=DIO_ALLOWED_RANGE
    )
    return pyworld.stonemask(x, f0, times, rate), times


def estimate_f0(wave: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Median F0 (Hz) of the voiced frames (WORLD DIO + StoneMask); nan when nothing is voiced."""
    f0, _ = _world_f0(wave, rate)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if voiced.size else float("nan")


def transform_voice(wave: np.ndarray, params: VoiceParams, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Re-synthesise with WORLD: F0 contour scaled to the target median, envelope warped, tempo changed."""
    pyworld = load_pyworld()

    x = wave.astype(np.float64)
    f0, times = _world_f0(wave, rate)
    envelope = pyworld.cheaptrick(x, f0, times, rate)
    aperiodicity = pyworld.d4c(x, f0, times, rate)
    voiced = f0 > 0
    if voiced.any():
        f0 = f0 * (params.f0 / float(np.median(f0[voiced])))
    # envelope warp: new(f) = old(f / warp), so warp > 1 moves formants up (a shorter vocal tract)
    bins = np.arange(envelope.shape[1], dtype=np.float64)
    source = np.clip(bins / params.warp, 0, envelope.shape[1] - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, envelope.shape[1] - 1)
    weight = source - low
    envelope = np.ascontiguousarray(envelope[:, low] * (1 - weight) + envelope[:, high] * weight)
    aperiodicity = np.ascontiguousarray(aperiodicity[:, low] * (1 - weight) + aperiodicity[:, high] * weight)
    # speaking rate: the same frames played with a shorter (faster) or longer (slower) period
    out = pyworld.synthesize(f0, envelope, aperiodicity, rate, frame_period=FRAME_PERIOD_MS / params.rate)
    return out.astype(np.float32)
