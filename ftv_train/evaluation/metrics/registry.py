"""The report's metrics, in the order the report shows their columns and sections: adding a metric is its module
and one line here."""

from __future__ import annotations

from .abx import AbxMatching
from .age_groups import AgeGroups
from .base import Metric
from .cer import CharacterErrorRate
from .comb import FrameRateComb
from .diversity import VoiceDiversity
from .face_reading import FaceGenderReading
from .gender import GenderAgreement
from .naturalness import Naturalness
from .speaker import SpeakerSimilarity
from .subgroups import Subgroups

METRICS: list[type[Metric]] = [
    SpeakerSimilarity,
    CharacterErrorRate,
    Naturalness,
    FrameRateComb,
    AbxMatching,
    VoiceDiversity,
    FaceGenderReading,
    AgeGroups,
    Subgroups,
    GenderAgreement,
]


def registered_metrics() -> list[Metric]:
    """One instance of each registered metric (cheap: models load in `Metric.load`)."""
    return [metric() for metric in METRICS]
