"""What training shows besides numbers: log-mel images of the last training segment, and speech synthesized for a
few fixed validation faces (audio + mel images), written to TensorBoard (or any tracker that takes images) and, if
asked, as WAV/PNG files under OUTPUT/samples.

Synthesis runs under a forked RNG, so logging never changes the training random stream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator

from ftv_model import FTVModel, FTVProcessor


def mel_figure(panels: list[tuple[str, np.ndarray]]):
    """A matplotlib figure with one log-mel image per panel (title, (mels, frames))."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 2.4 * len(panels)), squeeze=False)
    for axis, (title, mel) in zip(axes[:, 0], panels):
        image = axis.imshow(mel, aspect="auto", origin="lower", interpolation="none")
        axis.set_title(title, fontsize=9)
        figure.colorbar(image, ax=axis)
    figure.tight_layout()
    return figure


def figure_array(figure) -> np.ndarray:
    figure.canvas.draw()
    array = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    return array


def rng_devices(device: torch.device) -> list[torch.device]:
    """The devices whose RNG `torch.random.fork_rng` must save besides the CPU's."""
    return [device] if device.type == "cuda" else []


class MediaLogger:
    """Mel images and synthesized samples at a logging step. `samples` are fixed validation items (phonemes, face,
    real waveform, id); the real recordings are logged once, beside the first synthesis."""

    def __init__(
        self,
        accelerator: Accelerator,
        processor: FTVProcessor,
        samples: list[dict[str, Any]],
        sampling_rate: int,
        sample_folder: Path | None,
    ) -> None:
        self.accelerator = accelerator
        self.processor = processor
        self.samples = samples
        self.sampling_rate = sampling_rate
        self.sample_folder = sample_folder  # OUTPUT/samples, or None: no WAV/PNG files
        self.logged_references = False

    @torch.no_grad()
    def log(self, step: int, model: FTVModel, last_mels: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        """Mel images of the last training segment (`last_mels`: generated, real) and synthesized audio + mels for
        the fixed validation faces."""
        features = model.audio_features
        audio: dict[str, np.ndarray] = {}
        figures: dict[str, Any] = {}
        if last_mels is not None:
            predicted, target = (mel.cpu().numpy() for mel in last_mels)
            figures["mel/train_segment"] = mel_figure([("generated segment", predicted), ("real segment", target)])
        if self.samples:
            device = self.accelerator.device
            inputs = self.processor(
                phonemes=[s["phonemes"] for s in self.samples],
                images=[s["face"] for s in self.samples],
                do_crop_face=False,
            )
            inputs = {key: value.to(device) for key, value in inputs.items()}
            model.eval()
            try:
                with torch.random.fork_rng(devices=rng_devices(device)):
                    output = model(**inputs, seed=0)
            finally:
                model.train()
            for i, sample in enumerate(self.samples):
                length = int(output.sequence_lengths[i])
                wave = output.waveform[i, :length].float().cpu()
                real = torch.from_numpy(sample["waveform"])
                tag = f"sample_{i}"
                audio[f"audio/{tag}"] = wave.numpy()
                if not self.logged_references:
                    audio[f"audio_reference/{tag}"] = real.numpy()
                mels = [
                    (f"synthesized ({sample['id']})", features.mel_spectrogram(wave[None])[0].numpy()),
                    ("real recording", features.mel_spectrogram(real[None])[0].numpy()),
                ]
                figures[f"mel/{tag}"] = mel_figure(mels)
            self.logged_references = True
        self.write(step, audio, figures)

    def write(self, step: int, audio: dict[str, np.ndarray], figures: dict[str, Any]) -> None:
        """To every tracker that takes them, and as files when there is a sample folder; closes the figures."""
        from matplotlib import pyplot as plt

        rate = self.sampling_rate
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                writer = tracker.tracker
                for tag, figure in figures.items():
                    writer.add_figure(tag, figure, global_step=step, close=False)
                for tag, wave in audio.items():
                    peak = float(np.abs(wave).max()) if wave.size else 0.0
                    writer.add_audio(tag, wave / max(peak, 1.0), global_step=step, sample_rate=rate)
                writer.flush()
            elif hasattr(tracker, "log_images") and figures:
                tracker.log_images({tag: [figure_array(fig)] for tag, fig in figures.items()}, step=step)
        if self.sample_folder is not None:
            import soundfile

            folder = self.sample_folder / f"step-{step:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for tag, wave in audio.items():
                soundfile.write(str(folder / (tag.replace("/", "_") + ".wav")), np.clip(wave, -1, 1), rate)
            for tag, figure in figures.items():
                figure.savefig(str(folder / (tag.replace("/", "_") + ".png")))
        for figure in figures.values():
            plt.close(figure)
