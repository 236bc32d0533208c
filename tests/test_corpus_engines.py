"""The offline corpus's voice engines: one registry that the build uses, and every package an engine needs installed
by what CI runs (``scripts/setup.sh``, which the README's test command and ``.ci/run`` call) and pinned in the
training requirements. No engine is run here: tests/test_offline_corpus.py builds a corpus with all of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ftv_train.corpus import speech, voices
from ftv_train.corpus.engines import ENGINES, EngineUnavailableError, VoiceEngine, apt_packages, get_engine
from ftv_train.corpus.engines.base import synthesize_with_command
from ftv_train.corpus.voices import BASE_VOICES, KOKORO_VOICES, BaseVoice, check_engines, synthesize_base

REPO_ROOT = Path(__file__).resolve().parents[1]


def setup_apt_names() -> set[str]:
    """Every Debian package name scripts/setup.sh may install: the words of its ``apt_groups`` entries (an entry
    names one package under the names different releases give it)."""
    text = (REPO_ROOT / "scripts" / "setup.sh").read_text()
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())  # comments hold parentheses
    names: set[str] = set()
    for body in re.findall(r"apt_groups\+?=\(([^)]*)\)", code):
        for entry in re.findall(r'"([^"]*)"', body):
            names.update(entry.split())
    return names


def requirement_names(path: Path) -> set[str]:
    """Package names of a requirements file, following ``-r`` includes."""
    names: set[str] = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r"):
            names |= requirement_names(path.parent / line[2:].strip())
        elif line:
            names.add(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_setup_script_is_read_as_ci_installs_it() -> None:
    """The parser above sees the base list and the corpus engines' list (a guard for the tests below)."""
    names = setup_apt_names()
    assert {"espeak-ng", "libsndfile1", "flite", "festival"} <= names
    assert "libavcodec59" in names and "chromium" in names


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_engine_is_installed_by_setup_and_requirements(name: str) -> None:
    engine = ENGINES[name]
    assert engine.name == name and isinstance(engine, VoiceEngine)
    assert set(engine.debian_packages) <= setup_apt_names(), "add them to scripts/setup.sh's apt_groups (--train)"
    assert engine.binaries == () or engine.debian_packages, "a binary needs the Debian package that provides it"
    pinned = requirement_names(REPO_ROOT / "requirements-train.txt")
    assert {p.lower() for p in engine.pip_packages} <= pinned, "pin them in requirements-train.txt"


def test_packages_txt_stays_within_what_setup_installs() -> None:
    """packages.txt is the Hugging Face Space's apt list (the demo only: no corpus engines); setup.sh covers it."""
    space = {line.strip() for line in (REPO_ROOT / "packages.txt").read_text().splitlines() if line.strip()}
    assert space <= setup_apt_names()


def test_every_base_voice_uses_a_registered_engine() -> None:
    designs = BASE_VOICES + KOKORO_VOICES  # the world design's base voices and the kokoro design's engine
    assert {voice.engine for voice in designs} <= set(ENGINES)
    assert set(ENGINES) == {voice.engine for voice in designs}, "an engine without voices is never used"
    assert apt_packages() == (
        "flite",
        "festival",
        "festvox-us-slt-hts",
        "festvox-kallpc16k",
        "festvox-kdlpc16k",
        "espeak-ng",
    )
    with pytest.raises(ValueError, match="Unknown voice engine"):
        get_engine("say")


class _Tone(VoiceEngine):
    """A stand-in engine: a tone whose pitch is the voice name, at 8 kHz."""

    name = "tone"
    debian_packages = ("tone-package",)

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def synthesize(self, text: str, voice: str) -> tuple[np.ndarray, int]:
        self.calls.append((text, voice))
        t = np.arange(8000) / 8000
        return (0.3 * np.sin(2 * np.pi * float(voice) * t)).astype(np.float32), 8000

    def problems(self, voices: list[str]) -> list[str]:
        return [f"tone voice {v} missing (apt-get install tone-package)" for v in voices if float(v) > 1000]


def test_the_build_speaks_and_checks_through_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new engine is one registry entry: synthesis, the engine check and the apt hint all follow it."""
    tone = _Tone()
    monkeypatch.setitem(ENGINES, "tone", tone)
    voice = BaseVoice("tone:220", "tone", "220", "male", 220.0)
    wave, rate = synthesize_base(voice, "hello")
    assert rate == 8000 and tone.calls == [("hello", "220")]
    monkeypatch.setattr(voices, "BASE_VOICES", (*BASE_VOICES, voice))
    before, native = speech.base_speech("tone:220", "hi")  # the corpus's path: resampled to 16 kHz, levelled
    assert native == 8000 and abs(len(before) - 16000) <= 3200
    check_engines((voice,))
    with pytest.raises(EngineUnavailableError, match="tone-package") as caught:
        check_engines((BaseVoice("tone:2000", "tone", "2000", "female", 2000.0),))
    assert "tone-package" in caught.value.args[0].split("All apt packages:")[1]
    assert "tone-package" in apt_packages()


def test_a_missing_engine_binary_is_an_engine_error() -> None:
    with pytest.raises(EngineUnavailableError, match="no-such-tts-binary is not installed"):
        synthesize_with_command(lambda folder, out: ["no-such-tts-binary", str(out)])
