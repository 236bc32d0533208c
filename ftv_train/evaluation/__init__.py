"""The paper's objective evaluation of a checkpoint on held-out identities, and the face head's calibration.

`metrics/` holds the scorers (a leaf: it imports only `ftv_train.common` and `ftv_model`); the rest runs systems
(model, ground truth, shuffled faces, ...) through them and writes the report. May import `ftv_train.common`,
`ftv_train.data` and `ftv_model`.

Modules, each one subject (lowest first):

- `metrics/`: the scorers, and the report's metrics (`metrics.base.Metric`, listed in `metrics.registry`);
- `arguments`: what the commands share (`HfArgumentParser`, comma-separated lists);
- `data`: a split read lazily, the utterances a run scores, their references, the speakers' ages;
- `cache`: per-utterance records and wavs under OUT, so a run resumes;
- `synthesizer`: the only code that knows the FTVModel / FTVProcessor API;
- `systems`: the report's rows (model, ground truth, shuffled faces, average face, baseline, copy synthesis);
- `config`: `EvalConfig`, the run's settings (saved into metrics.json);
- `suite`: the metric models of a run and the per-utterance record;
- `aggregate`: records to the numbers of metrics.json; `report`: report.md and plots;
- `runner`: the `Evaluator`, stage by stage; `cli`: the `ftv-evaluate` command (`train/evaluate.py`);
- `calibration`: the face head's temperature scaling (`ftv-calibrate-face-head`, `train/calibrate_face_head.py`).

The names below are importable from this package; each module loads on first use, so importing
`ftv_train.evaluation.metrics` (as the corpus does) does not load the runner.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ADULT_AGE": "metrics.age_groups",
    "CalibrationConfig": "calibration",
    "EvalConfig": "config",
    "Evaluator": "runner",
    "FTVSynthesizer": "synthesizer",
    "Metric": "metrics.base",
    "MetricSuite": "suite",
    "ResultCache": "cache",
    "SYSTEMS": "systems",
    "SYSTEM_TITLES": "systems",
    "SplitData": "data",
    "Synthesizer": "synthesizer",
    "System": "systems",
    "Utterance": "data",
    "age_group": "metrics.age_groups",
    "calibrate_face_head": "calibration",
    "digest": "cache",
    "fit_temperature": "calibration",
    "make_system": "systems",
    "reference_utterances": "data",
    "render_report": "report",
    "resolve_device": "config",
    "run_evaluation": "runner",
    "safe_name": "cache",
    "score_records": "aggregate",
    "select_utterances": "data",
    "shuffled_face_donors": "data",
    "speaker_ages": "data",
    "summarize": "aggregate",
    "summarize_system": "aggregate",
    "write_outputs": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
