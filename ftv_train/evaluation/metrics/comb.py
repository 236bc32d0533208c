"""The frame-rate comb: the buzz a listener hears and DNSMOS averages away.

A HiFi-GAN-style decoder turns one latent frame into `hop_length` samples. Early in training (or when its
discriminator is too weak) each frame leaves the same small imprint, so the output carries a steady tone at the frame
rate (22,050 / 256 = 86.1 Hz for VITS) and its multiples: horizontal lines across a spectrogram, even in pauses, and a
pitch tracker that locks onto 86 Hz in male voices.

The measure, per utterance: the long-term spectrum (Welch, Hann windows of about 2 Hz resolution, 75% overlap), and at
each multiple k x f (k = 2..20) the level of the strongest bin within one bin of it over the median level of its
neighbourhood (+-30 Hz, the peak's own +-3 bins left out), in dB, averaged over k. Speech harmonics move with the
voice's pitch and smear over the neighbourhood; a frame-rate comb stays put and stands out. Real recordings score about
0-1 dB, a clean neural vocoder 2-3 dB, an audible buzz 5 dB and more. k = 1 is left out because it falls under the
pitch of most male voices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ftv_train.common.audio import SAMPLE_RATE

from .base import Column, Metric, MetricSettings, Record, Results, UtteranceText, fmt_ci, mean_or_none
from .intervals import mean_interval

VITS_FRAME_RATE_HZ = 22050 / 256
HARMONICS = range(2, 21)
NEIGHBOURHOOD_HZ = 30.0
RESOLUTION_HZ = 2.0


def comb_levels_db(
    wav: np.ndarray,
    sample_rate: int,
    frame_rate_hz: float = VITS_FRAME_RATE_HZ,
    harmonics: Sequence[int] = HARMONICS,
    neighbourhood_hz: float = NEIGHBOURHOOD_HZ,
    resolution_hz: float = RESOLUTION_HZ,
) -> np.ndarray:
    """dB of each harmonic k x `frame_rate_hz` over the median of its neighbourhood (NaN where a clip is silent or
    the harmonic lies above Nyquist)."""
    from scipy import signal  # imported on use: importing the metrics stays cheap

    wav = np.asarray(wav, dtype=np.float64).reshape(-1)
    levels = np.full(len(harmonics), np.nan)
    if wav.size < 64 or not np.any(wav):
        return levels
    segment = min(int(2 ** np.ceil(np.log2(sample_rate / resolution_hz))), wav.size)
    freqs, power = signal.welch(wav, sample_rate, window="hann", nperseg=segment, noverlap=segment * 3 // 4)
    spectrum_db = 10.0 * np.log10(power + 1e-20)
    bin_hz = freqs[1] - freqs[0]
    for i, k in enumerate(harmonics):
        centre = k * frame_rate_hz
        if centre + neighbourhood_hz >= sample_rate / 2:
            continue
        distance = np.abs(freqs - centre)
        neighbours = (distance <= neighbourhood_hz) & (distance > 3 * bin_hz)
        if neighbours.sum() < 4:  # too coarse a spectrum (very short clip) to tell a line from its surroundings
            continue
        levels[i] = spectrum_db[distance <= bin_hz * 1.01].max() - np.median(spectrum_db[neighbours])
    return levels


def comb_level_db(wav: np.ndarray, sample_rate: int, frame_rate_hz: float = VITS_FRAME_RATE_HZ) -> float:
    """The utterance's comb: the mean over k of `comb_levels_db` (NaN when none could be measured)."""
    levels = comb_levels_db(wav, sample_rate, frame_rate_hz)
    return float(np.nanmean(levels)) if np.any(np.isfinite(levels)) else float("nan")


@dataclass(frozen=True)
class CombMeter:
    """The comb measure at one frame rate; its `name` goes into each record, so another rate re-scores the audio."""

    frame_rate_hz: float = VITS_FRAME_RATE_HZ

    @property
    def name(self) -> str:
        return (
            f"comb at k x {self.frame_rate_hz:.2f} Hz (k={HARMONICS.start}-{HARMONICS.stop - 1}, "
            f"+-{NEIGHBOURHOOD_HZ:g} Hz, {RESOLUTION_HZ:g} Hz bins)"
        )

    def score(self, wavs: Sequence[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[float]:
        return [comb_level_db(wav, sample_rate, self.frame_rate_hz) for wav in wavs]


class FrameRateComb(Metric):
    """Mean frame-rate comb level (dB) with a bootstrap interval over utterances."""

    name = "comb"
    backend = "comb"
    backend_title = "frame-rate comb"

    def load(self, settings: MetricSettings) -> CombMeter:
        return CombMeter(settings.comb_hz)

    def score(self, model: CombMeter, wavs: Sequence[np.ndarray], utterances: Sequence[UtteranceText]) -> list[Record]:
        return [{"comb_db": value if np.isfinite(value) else None} for value in model.score(wavs)]

    def summarize(self, records: Sequence[Record], items: dict[str, list]) -> dict[str, float | list[float] | None]:
        values = [r["comb_db"] for r in records if r.get("comb_db") is not None]
        return {"comb_db": mean_or_none(values), "comb_db_ci95": mean_interval(values)}

    def columns(self, results: Results) -> list[Column]:
        return [
            Column(
                "Frame-rate comb (dB)",
                lambda row: fmt_ci(row["overall"]["comb_db"], row["overall"].get("comb_db_ci95"), ".1f"),
            )
        ]

    def split_columns(self, results: Results) -> list[Column]:
        return [Column("Comb (dB)", lambda summary: fmt_ci(summary["comb_db"], summary.get("comb_db_ci95"), ".1f"))]

    def note(self, results: Results) -> str:
        meter = results["backends"].get("comb", "the frame-rate comb")
        return (
            f"Frame-rate comb: {meter}; the level of the decoder's frame-rate lines over their neighbourhood, the buzz "
            "a listener hears (real recordings about 0-1 dB, audible above about 3 dB; evaluation.metrics.comb). "
            "In brackets: 95% bootstrap intervals over utterances."
        )
