"""Naturalness: UTMOS (the paper's choice) when its torch-hub code and weights are available locally, otherwise
DNSMOS, whose ONNX models ship inside the `speechmos` PyPI package. The two are different scales trained on
different listening tests, so every result carries the scorer's name and the report never mixes them.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ftv_train.common.audio import SAMPLE_RATE, prepare_batch
from ftv_train.evaluation.metrics.base import (
    Column,
    Metric,
    MetricSettings,
    Record,
    Results,
    UtteranceText,
    fmt,
    mean_or_none,
)

UTMOS_HUB_REPO = "tarepan/SpeechMOS:v1.2.0"
UTMOS_ENTRY = "utmos22_strong"


class NaturalnessScorer(Protocol):
    """Anything that gives one MOS-like score per 16 kHz waveform."""

    name: str

    def score(self, wavs: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[float]: ...


class DnsmosScorer:
    """DNSMOS P.835 OVRL (speechmos's bundled ONNX models), batched over all 9 s windows of all clips.

    speechmos scores one clip at a time; here the windowing and calibration are speechmos's own methods
    (`audio_melspec`, `get_polyfit_val`) but every window of a batch goes through each network in one call.
    """

    name = "DNSMOS OVRL"
    _WINDOW_S = 9.01  # the networks' fixed input length (speechmos.dnsmos.INPUT_LENGTH)

    def __init__(self, personalized: bool = False, window_batch_size: int = 4) -> None:
        from speechmos import dnsmos

        root = Path(dnsmos.__file__).parent
        primary = root / ("pdnsmos_models" if personalized else "dnsmos_models") / "sig_bak_ovr.onnx"
        self._dnsmos = dnsmos.DNSMOS(str(primary), str(root / "dnsmos_models" / "model_v8.onnx"))
        self.personalized = personalized
        self.window_batch_size = window_batch_size
        if personalized:
            self.name = "DNSMOS OVRL (personalized)"

    def _windows(self, wav: np.ndarray) -> list[np.ndarray]:
        """speechmos's segmentation: repeat short clips to one window, then 9.01 s windows with a 1 s hop."""
        need = int(self._WINDOW_S * SAMPLE_RATE)
        if len(wav) == 0:
            wav = np.zeros(need, dtype=np.float32)
        while len(wav) < need:
            wav = np.concatenate([wav, wav])
        hops = int(np.floor(len(wav) / SAMPLE_RATE) - self._WINDOW_S) + 1
        return [wav[i * SAMPLE_RATE : i * SAMPLE_RATE + need] for i in range(max(hops, 1))]

    def score_detailed(self, wavs: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[dict[str, float]]:
        """Per clip: ovrl, sig, bak (P.835) and p808 MOS, each averaged over the clip's windows."""
        windows: list[np.ndarray] = []
        owners: list[int] = []
        for i, wav in enumerate(prepare_batch(wavs, sample_rate)):
            segs = self._windows(wav)
            windows += segs
            owners += [i] * len(segs)
        raw = np.zeros((len(windows), 3), dtype=np.float64)
        p808 = np.zeros(len(windows), dtype=np.float64)
        for start in range(0, len(windows), self.window_batch_size):
            chunk = windows[start : start + self.window_batch_size]
            audio = np.stack(chunk).astype(np.float32)
            mels = np.stack([self._dnsmos.audio_melspec(audio=w[:-160]) for w in chunk]).astype(np.float32)
            raw[start : start + len(chunk)] = self._dnsmos.onnx_sess.run(None, {"input_1": audio})[0]
            p808[start : start + len(chunk)] = self._dnsmos.p808_onnx_sess.run(None, {"input_1": mels})[0][:, 0]
        sig, bak, ovr = self._dnsmos.get_polyfit_val(raw[:, 0], raw[:, 1], raw[:, 2], self.personalized)
        owners_arr = np.asarray(owners)
        results = []
        for i in range(len(wavs)):
            m = owners_arr == i
            results.append(
                {
                    "ovrl": float(np.mean(ovr[m])),
                    "sig": float(np.mean(sig[m])),
                    "bak": float(np.mean(bak[m])),
                    "p808": float(np.mean(p808[m])),
                }
            )
        return results

    def score(self, wavs: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[float]:
        return [r["ovrl"] for r in self.score_detailed(wavs, sample_rate)]


@contextlib.contextmanager
def _hide_module(prefix: str) -> Iterator[None]:
    """SpeechMOS's hub code is a top-level package named `speechmos`, like the PyPI package that ships DNSMOS;
    hide an already imported one while torch.hub imports the other, then put it back."""
    hidden = {k: sys.modules.pop(k) for k in list(sys.modules) if k == prefix or k.startswith(prefix + ".")}
    try:
        yield
    finally:
        for k in [k for k in sys.modules if k == prefix or k.startswith(prefix + ".")]:
            sys.modules.pop(k)
        sys.modules.update(hidden)


class UtmosScorer:
    """UTMOS22 strong learner through torch.hub (tarepan/SpeechMOS, as used for the paper's Table 2).

    `source` is a local clone of the hub repo (a directory with hubconf.py; a *.pt checkpoint inside it is
    loaded instead of the release download), a checkpoint file (the repo code then comes from the hub cache
    or the network), or None for the plain hub download.
    """

    name = "UTMOS22 strong"

    def __init__(self, source: str | Path | None = None, device: str = "cpu", checkpoint: str | Path | None = None):
        self.device = torch.device(device)
        source_path = Path(source) if source is not None else None
        if source_path is not None and source_path.is_file():
            checkpoint, source_path = source_path, None
        if source_path is not None and checkpoint is None:
            found = sorted(source_path.glob("*.pt")) + sorted(source_path.glob("*.pth"))
            checkpoint = found[0] if found else None
        with _hide_module("speechmos"):
            if source_path is not None:
                if not (source_path / "hubconf.py").is_file():
                    raise FileNotFoundError(f"{source_path} has no hubconf.py: give a local clone of {UTMOS_HUB_REPO}")
                model = torch.hub.load(
                    str(source_path), UTMOS_ENTRY, source="local", trust_repo=True, pretrained=checkpoint is None
                )
            else:
                model = torch.hub.load(UTMOS_HUB_REPO, UTMOS_ENTRY, trust_repo=True, pretrained=checkpoint is None)
        if checkpoint is not None:
            state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
            model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        self.model = model.to(self.device).eval()

    def score(self, wavs: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[float]:
        # One clip per forward: padding would change the score (UTMOS pools over every frame it is given).
        scores = []
        with torch.inference_mode():
            for wav in prepare_batch(wavs, sample_rate):
                x = torch.from_numpy(wav).unsqueeze(0).to(self.device)
                scores.append(float(self.model(x, SAMPLE_RATE).reshape(-1)[0]))
        return scores


def load_naturalness(
    spec: str = "auto", device: str = "cpu", utmos_path: str | Path | None = None
) -> NaturalnessScorer:
    """`dnsmos`; `utmos` (hub download unless `utmos_path`); a path (-> UTMOS from it); or `auto`: UTMOS when
    `utmos_path` is given, else DNSMOS."""
    if spec == "auto":
        spec = "utmos" if utmos_path else "dnsmos"
    if spec == "dnsmos":
        return DnsmosScorer()
    if spec == "utmos":
        return UtmosScorer(utmos_path, device=device)
    if Path(spec).exists():
        return UtmosScorer(spec, device=device)
    raise ValueError(
        f"Unknown naturalness scorer {spec!r}: use 'auto', 'dnsmos', 'utmos' or a UTMOS hub dir/checkpoint."
    )


class Naturalness(Metric):
    """Mean naturalness score; its column is headed by the scorer's name, since the scales differ."""

    name = "naturalness"
    backend = "naturalness"
    backend_title = "naturalness"

    def load(self, settings: MetricSettings) -> NaturalnessScorer:
        return load_naturalness(settings.naturalness, device=settings.device, utmos_path=settings.utmos_path)

    def score(
        self, model: NaturalnessScorer, wavs: Sequence[np.ndarray], utterances: Sequence[UtteranceText]
    ) -> list[Record]:
        return [{"naturalness": float(value)} for value in model.score(wavs)]

    def summarize(self, records: Sequence[Record], items: dict[str, list]) -> dict[str, float | None]:
        return {"naturalness": mean_or_none([r["naturalness"] for r in records])}

    def columns(self, results: Results) -> list[Column]:
        scorer = results["backends"]["naturalness"]
        return [Column(scorer, lambda row: fmt(row["overall"]["naturalness"], ".3f"))]

    def split_columns(self, results: Results) -> list[Column]:
        scorer = results["backends"]["naturalness"]
        return [Column(scorer, lambda summary: fmt(summary["naturalness"], ".3f"))]
