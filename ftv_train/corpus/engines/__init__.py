"""The offline corpus's voice engines, one file each, and the registry the build uses to check and call them.

A new engine: one file with a `VoiceEngine` subclass (its name, binaries, Debian and pip packages, `synthesize`),
one line in `ENGINES`, and its Debian packages in ``scripts/setup.sh``'s apt list (``tests/test_corpus_engines.py``
fails until they are there). Its voices join the corpus's pools in `ftv_train.corpus.voices.BASE_VOICES`.
`float_conv` is not an engine: it is the graph rewrite that makes Kokoro's int8 ONNX model 2.8x faster on CPU.
"""

from __future__ import annotations

from ftv_train.corpus.engines.base import EngineUnavailableError, VoiceEngine
from ftv_train.corpus.engines.espeak_ng import EspeakNg
from ftv_train.corpus.engines.festival import Festival
from ftv_train.corpus.engines.flite import Flite
from ftv_train.corpus.engines.kokoro import Kokoro
from ftv_train.corpus.engines.piper import Piper

__all__ = ["ENGINES", "EngineUnavailableError", "VoiceEngine", "apt_packages", "get_engine"]

# The registry, in the order problems are reported: name -> engine.
ENGINES: dict[str, VoiceEngine] = {
    engine.name: engine
    for engine in (
        Flite(),
        Festival(),
        EspeakNg(),
        Piper(),
        Kokoro(),
    )
}


def get_engine(name: str) -> VoiceEngine:
    """The registered engine called `name`."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"Unknown voice engine {name!r}") from None


def apt_packages() -> tuple[str, ...]:
    """Every registered engine's Debian packages, each once, in registry order."""
    return tuple(dict.fromkeys(package for engine in ENGINES.values() for package in engine.debian_packages))
