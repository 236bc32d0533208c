"""Driving the demo from outside, as a user's browser would: start `python app.py` on a free port, call its
`/synthesize` endpoint (or `/speak`, the button's: streamed sentence by sentence) with gradio_client, and read the
WAV it returns.

Shared by the app's tests (tests/test_app.py, test_cli.py, test_voice_profile.py, test_browser.py) and the app
benchmarks (bench_app.py, bench_app_memory.py), so both start and call the app the same way.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import wave
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_FACES = REPO_ROOT / "examples" / "faces"
FACE = EXAMPLE_FACES / "london_003.jpg"
OTHER_FACE = EXAMPLE_FACES / "london_005.jpg"
START_TIMEOUT_S = 180


class AppStartError(RuntimeError):
    """`python app.py` exited or did not serve in time; the message ends with the tail of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_env(**overrides: str) -> dict[str, str]:
    """The app's environment: offline, one torch thread (2 shared cores), no model unless given."""
    env = {k: v for k, v in os.environ.items() if k not in ("FTV_MODEL", "FTV_ALLOW_UNTRAINED", "GRADIO_SERVER_NAME")}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        GRADIO_ANALYTICS_ENABLED="False",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
    )
    env.update(overrides)
    return env


@contextmanager
def running_app(args: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start `python app.py ARGS` on a free port of 127.0.0.1, wait until it serves, yield its URL, stop it."""
    port = free_port()
    command = [sys.executable, str(REPO_ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port), *args]
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env or app_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    raise AppStartError(f"app.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(url + "config", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise AppStartError(f"app.py did not start in {START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def predict_args(
    photo: Path | None,
    text: str,
    *,
    extra: Sequence[Path] = (),
    voice: Path | None = None,
    consent: bool = True,
    seed: int = 0,
    settings: tuple[float, float, float] = (1.0, 0.667, 0.8),
) -> list[Any]:
    """/synthesize's inputs: photo, extra photos, voice profile, text, consent, speaking rate, noise scales, seed."""
    from gradio_client import handle_file

    photo_file = handle_file(str(photo)) if photo else None
    voice_file = handle_file(str(voice)) if voice else None
    return [photo_file, [handle_file(str(p)) for p in extra] or None, voice_file, text, consent, *settings, seed]


def predict(client, photo: Path | None, text: str, **kwargs: Any):
    """One /synthesize call: (audio, face crops, gender, race, details, voice profile)."""
    return client.predict(*predict_args(photo, text, **kwargs), api_name="/synthesize")


def speak(client, photo: Path | None, text: str, **kwargs: Any) -> tuple[list[tuple[float, bytes]], tuple[Any, ...]]:
    """One /speak call, as the Synthesize button makes it: ([(seconds since the call, WAV bytes), ...] for each
    sentence as it is streamed, the final outputs: /synthesize's six after the live player's)."""
    begin = time.perf_counter()
    job = client.submit(*predict_args(photo, text, **kwargs), api_name="/speak")
    chunks: list[tuple[float, bytes]] = []
    for live, *_ in job:  # each output as it arrives; the last one's live player is left as it was
        if isinstance(live, str) and live.startswith("{"):
            chunks.append((time.perf_counter() - begin, chunk_wav(live)))
    return chunks, tuple(job.result())


def chunk_wav(live: str) -> bytes:
    """The WAV in one streamed sentence (the live player's value: JSON with a data: URL, see app.py's `speak`)."""
    url = json.loads(live)["audio"]
    prefix = "data:audio/wav;base64,"
    if not url.startswith(prefix):
        raise ValueError(f"not a WAV data URL: {url[:40]}")
    return base64.b64decode(url[len(prefix) :])


def wav_info(path: str | Path | bytes) -> dict[str, Any]:
    """Parse a WAV's RIFF chunks independently of the writer: format, sample count and LIST/INFO strings. `path`
    may also be the WAV's bytes."""
    data, name = (path, "the WAV") if isinstance(path, bytes) else (Path(path).read_bytes(), path)
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{name} is not a RIFF/WAVE file")
    if struct.unpack("<I", data[4:8])[0] != len(data) - 8:
        raise ValueError(f"the RIFF size of {name} does not match the file size")
    info: dict[str, str] = {}
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = data[offset : offset + 4], struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        payload = data[offset + 8 : offset + 8 + size]
        if chunk_id == b"LIST" and payload[:4] == b"INFO":
            inner = 4
            while inner + 8 <= len(payload):
                key, length = payload[inner : inner + 4], struct.unpack("<I", payload[inner + 4 : inner + 8])[0]
                info[key.decode("ascii")] = payload[inner + 8 : inner + 8 + length].rstrip(b"\0").decode("utf-8")
                inner += 8 + length + (length % 2)
        offset += 8 + size + (size % 2)
    with wave.open(io.BytesIO(data)) as reader:  # the stdlib reader must accept it too
        frames = reader.readframes(reader.getnframes())
        result = {
            "rate": reader.getframerate(),
            "channels": reader.getnchannels(),
            "width": reader.getsampwidth(),
            "frames": reader.getnframes(),
        }
    result["samples"] = np.frombuffer(frames, dtype="<i2")
    result["info"] = info
    return result
