"""Objective metrics of the paper's evaluation protocol (section 4.1), one module per metric.

- speaker: SECS, Resemblyzer cosine x100 (Table 2, 4, 5)
- cer: character error rate through an ASR model (Table 2)
- naturalness: UTMOS or DNSMOS (Table 2)
- abx: objective 1-of-(k+1) speaker matching, stand-in for ABX / F2V listening tests
- gender: voice-gender classifier, stand-in for the gender listening task (Figure 2)
- face_reading: the face head's gender reading, its calibration, and the voice following it
- age_groups: gender agreement and the face reading for adults and children apart
- diversity: one voice per person (within-gender and same-speaker similarity)
- subgroups: SECS by gender and race (Table 7)
- calibration: the face head's expected calibration error (ECE) and reliability bins
- intervals: 95% confidence intervals of the rates (Wilson; bootstrap for CER)
- plots: t-SNE of speaker embeddings (Figures 3, 6) and bar charts (Figure 4)

Each report metric is a `base.Metric` (its record fields, summary and report cells) defined beside its scorer;
`registry.METRICS` lists them in the report's order. Heavy models load only when their class is instantiated (or
`Metric.load` runs), so importing this package is cheap.
"""

from .abx import AbxResult, abx_accuracy
from .base import Column, Metric, MetricSettings, SplitContext
from .calibration import expected_calibration_error, reliability_bins
from .cer import CerResult, corpus_cer, load_recognizer, normalize_text
from .gender import VoiceGenderClassifier, held_out_speaker_accuracy
from .naturalness import DnsmosScorer, UtmosScorer, load_naturalness
from .registry import METRICS, registered_metrics
from .speaker import SpeakerEncoder, SpeakerReferences, secs, secs_to_references
from .subgroups import subgroup_table

__all__ = [
    "METRICS",
    "AbxResult",
    "CerResult",
    "Column",
    "DnsmosScorer",
    "Metric",
    "MetricSettings",
    "SpeakerEncoder",
    "SpeakerReferences",
    "SplitContext",
    "UtmosScorer",
    "VoiceGenderClassifier",
    "abx_accuracy",
    "corpus_cer",
    "expected_calibration_error",
    "held_out_speaker_accuracy",
    "load_naturalness",
    "load_recognizer",
    "normalize_text",
    "registered_metrics",
    "reliability_bins",
    "secs",
    "secs_to_references",
    "subgroup_table",
]
