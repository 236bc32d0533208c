"""The settings of one evaluation run: the command line's flags (parsed by `HfArgumentParser`) and metrics.json's
``config`` (saved so that a report says how it was made)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ftv_train.evaluation.arguments import comma_separated
from ftv_train.evaluation.systems import SYSTEMS, make_system


def _help(text: str, **extra: object) -> dict[str, object]:
    return {"help": text, **extra}


@dataclass
class EvalConfig:
    """Everything a run depends on; saved into metrics.json so a report says how it was made."""

    data: Path = field(metadata=_help("prepared dataset (datasets.save_to_disk directory)"))
    out: Path = field(metadata=_help("output directory (reused to resume)"))
    model: Path | None = field(default=None, metadata=_help("save_pretrained directory of FTVModel + FTVProcessor"))
    baseline_model: Path | None = field(
        default=None, metadata=_help("a second model scored as the 'baseline' row (real faces)")
    )
    splits: list[str] = field(
        default_factory=lambda: ["test_unseen"],
        metadata=_help("split(s), comma separated, e.g. test_seen,test_unseen", aliases=["--split"]),
    )
    max_utterances: int | None = field(
        default=None, metadata=_help("per split, round-robin over the speakers in a --seed-ed random order")
    )
    recognizer: str = field(default="whisper", metadata=_help("whisper (bundled tiny.en) or wav2vec2 (the paper's)"))
    recognizer_path: str | None = field(
        default=None, metadata=_help("local model directory for the recogniser (offline wav2vec2)")
    )
    naturalness: str = field(default="auto", metadata=_help("auto, dnsmos, utmos, or a UTMOS hub dir / checkpoint"))
    utmos_path: str | None = field(
        default=None, metadata=_help("local clone of tarepan/SpeechMOS (hubconf.py, optionally a *.pt)")
    )
    comb_hz: float | None = field(
        default=None,
        metadata=_help("frame rate whose comb is measured (default: --model's sampling_rate / hop_length, else 86.13)"),
    )
    batch_size: int = 8
    device: str = field(default="auto", metadata=_help("auto, cpu, cuda, cuda:1, ..."))
    seed: int = 0
    noise_scale: float | None = field(
        default=None, metadata=_help("prior sampling noise (default: the model config's own)")
    )
    noise_scale_duration: float | None = field(
        default=None, metadata=_help("duration noise (default: the model config's own)")
    )
    speaking_rate: float | None = field(default=None, metadata=_help("> 1 speaks faster (default: the model's own)"))
    abx_k: int = field(default=3, metadata=_help("other speakers per ABX trial (chance 1/(k+1))"))
    refs_per_speaker: int = field(default=5, metadata=_help("real recordings per speaker as its reference"))
    gender_classifier: Path | None = field(
        default=None, metadata=_help("saved voice-gender classifier (JSON); else fitted")
    )
    gender_fit_split: str = field(default="train", metadata=_help("split with real labelled speech to fit it on"))
    gender_fit_max: int = field(default=400, metadata=_help("utterances it is fitted on, at most"))
    systems: list[str] = field(
        default_factory=lambda: list(SYSTEMS), metadata=_help("rows to evaluate, comma separated")
    )
    tsne_max_speakers: int = field(default=20, metadata=_help("speakers shown in the t-SNE figures, at most"))
    plots: bool = field(default=True, metadata=_help("write plots/ (--no-plots: skip them)"))

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        self.model = Path(self.model) if self.model else None
        self.baseline_model = Path(self.baseline_model) if self.baseline_model else None
        self.gender_classifier = Path(self.gender_classifier) if self.gender_classifier else None
        if self.comb_hz is None:
            self.comb_hz = decoder_frame_rate(self.model or self.baseline_model)
        self.splits, self.systems = comma_separated(self.splits), comma_separated(self.systems)
        unknown = [s for s in self.systems if s not in SYSTEMS]
        if unknown:
            raise ValueError(f"Unknown systems {unknown}; choose from {list(SYSTEMS)}")
        self.systems = [
            s
            for s in self.systems
            if (checkpoint := make_system(s).checkpoint) is None or self.checkpoints[checkpoint] is not None
        ]
        if not self.systems:
            raise ValueError("Nothing to evaluate: give --model or --baseline-model, or keep the ground_truth row.")
        if self.gender_classifier is None and self.gender_fit_split in self.splits:
            raise ValueError(
                f"The voice-gender classifier would be fitted on {self.gender_fit_split!r}, which is also scored: "
                "its agreement there would be measured on the speech it learnt from. Fit it on a training split "
                "(--gender-fit-split train) or score other splits."
            )

    @property
    def checkpoints(self) -> dict[str, Path | None]:
        """The models that speak the rows (`System.checkpoint` names one): --model and --baseline-model."""
        return {"model": self.model, "baseline": self.baseline_model}


def decoder_frame_rate(model_dir: Path | None) -> float:
    """sampling_rate / hop_length of a saved model's config.json: the rate of its decoder's frames (VITS's 86.13 Hz
    when there is no model or it does not say)."""
    config_path = Path(model_dir) / "config.json" if model_dir else None
    saved = json.loads(config_path.read_text()) if config_path is not None and config_path.is_file() else {}
    return float(saved.get("sampling_rate", 22050)) / float(saved.get("hop_length", 256))


def resolve_device(device: str) -> str:
    """`auto` -> cuda when present, else cpu."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
