"""Video and audio decoding for data preparation, through PyAV (FFmpeg's libraries, bundled in its wheels).

PyAV opens every container the corpora use (LRS3 .mp4, GRID .mpg/.mp4, .wav/.flac), tells apart "no audio track"
from "corrupt file", and resamples with libswresample in the same pass, so nothing here shells out to ffmpeg.
Frames are decoded sequentially and only the sampled ones are converted to RGB, which keeps long clips cheap.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ftv_train.common.audio import SAMPLE_RATE

__all__ = ["MediaError", "VideoInfo", "probe_video", "read_audio_track", "read_frames", "sample_frame_indices"]


class MediaError(RuntimeError):
    """A media file that cannot be used; `reason` is a short code for reports (corrupt_media, no_audio, ...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _av():
    try:
        import av
    except ImportError as error:  # pragma: no cover - av is a pinned requirement
        raise ImportError("Video decoding needs PyAV: `pip install av`.") from error
    av.logging.set_level(av.logging.PANIC)  # corrupt inputs are expected and reported per item; keep stderr quiet
    return av


def _open(path: str | os.PathLike[str]):
    av = _av()
    if not Path(path).is_file():
        raise MediaError("missing_file", f"no such file: {path}")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OSError) as error:
        raise MediaError("corrupt_media", f"cannot open {Path(path).name}: {error}") from error


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video."""

    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    has_audio: bool


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read the container: frame count (from the header, else by counting packets), size, audio presence."""
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError("no_video", f"{Path(path).name} has no video track")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        frames = int(stream.frames or 0)
        if frames <= 0:  # the header has no count (MPEG-PS, some .avi): count packets, no decoding needed
            try:
                frames = sum(1 for packet in container.demux(stream) if packet.size)
            except (_av().error.FFmpegError, ValueError, OSError):
                frames = int(round(duration * float(rate)))
        return VideoInfo(
            num_frames=frames,
            fps=float(rate),
            duration=duration,
            width=int(stream.codec_context.width or 0),
            height=int(stream.codec_context.height or 0),
            has_audio=bool(container.streams.audio),
        )


def sample_frame_indices(num_frames: int, count: int, rng: random.Random) -> list[int]:
    """`count` distinct frame indices in random order (Algorithm 1 shuffles the frames before taking views)."""
    if num_frames <= 0 or count <= 0:
        return []
    return rng.sample(range(num_frames), min(count, num_frames))


def read_frames(path: str | os.PathLike[str], indices: list[int] | set[int]) -> dict[int, np.ndarray]:
    """Decode the frames at `indices` as HxWx3 uint8 RGB arrays, keyed by index.

    Lenient on purpose: a truncated video still gives the frames before the damage (only faces are needed from
    it), and indices past the real end (frame counts can be estimates) are simply absent from the result.
    Raises `MediaError` only when no frame at all can be decoded.
    """
    av = _av()
    wanted = set(indices)
    frames: dict[int, np.ndarray] = {}
    if not wanted:
        return frames
    last = max(wanted)
    error: Exception | None = None
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError("no_video", f"{Path(path).name} has no video track")
        try:
            for index, frame in enumerate(container.decode(video=0)):
                if index in wanted:
                    frames[index] = frame.to_ndarray(format="rgb24")
                if index >= last:
                    break
        except (av.error.FFmpegError, ValueError, OSError) as caught:
            error = caught
    if not frames:
        detail = f": {error}" if error else ""
        raise MediaError("corrupt_media", f"no video frame could be decoded from {Path(path).name}{detail}")
    return frames


def read_audio_track(path: str | os.PathLike[str], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio track of a video or audio file as mono float32 at `sample_rate` (channels averaged).

    Not `ftv_train.common.audio.load_audio` (soundfile + torchaudio, for audio files and bytes): this one opens any
    container FFmpeg does, resamples with libswresample, and raises `MediaError` codes for the report; prepared
    datasets were made with it, so it stays their decoder.

    Strict on purpose, unlike `read_frames`: a partly decodable track would pair the full transcript with part of
    the speech, so any decoding error raises `MediaError("corrupt_media")`; no track raises ``no_audio``.
    """
    av = _av()
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaError("no_audio", f"{Path(path).name} has no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler count samples itself; broken timestamps must not drop audio
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
        except (av.error.FFmpegError, ValueError, OSError) as error:
            raise MediaError("corrupt_media", f"audio of {Path(path).name} cannot be decoded: {error}") from error
    if not chunks:
        raise MediaError("no_audio", f"the audio track of {Path(path).name} is empty")
    return np.concatenate(chunks).astype(np.float32, copy=False)
