"""From cached records to the numbers of metrics.json: per split, and over all splits for each system's overall row.

Each registered metric adds its items (per-utterance values scored against the split's references and the
voice-gender classifier) and its summary keys; the overall row pools the items of every split, so SECS and ABX stay
measured against each split's own speakers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftv_train.evaluation.metrics.base import Metric, Record, SplitContext, mean_or_none
from ftv_train.evaluation.metrics.gender import VoiceGenderClassifier
from ftv_train.evaluation.metrics.registry import registered_metrics
from ftv_train.evaluation.metrics.speaker import SpeakerReferences


def split_items(
    recs: Sequence[Record], context: SplitContext, metrics: Sequence[Metric] | None = None
) -> dict[str, list]:
    """Every metric's per-utterance items of one split, in one dict (later metrics may read earlier ones')."""
    items: dict[str, list] = {}
    for metric in registered_metrics() if metrics is None else metrics:
        items.update(metric.split_items(recs, context))
    return items


def summarize(
    recs: Sequence[Record], items: dict[str, list], metrics: Sequence[Metric] | None = None
) -> dict[str, Any]:
    """The summary of a set of records (a split's, or all splits' with their items pooled)."""
    summary: dict[str, Any] = {
        "num_utterances": len(recs),
        "num_speakers": len({r["speaker"] for r in recs}),
        "mean_duration_s": mean_or_none([r["duration_s"] for r in recs]),
    }
    for metric in registered_metrics() if metrics is None else metrics:
        summary.update(metric.summarize(recs, items))
    return summary


def score_records(
    recs: Sequence[Record],
    references: SpeakerReferences,
    classifier: VoiceGenderClassifier | None,
    k: int,
    seed: int,
    metrics: Sequence[Metric] | None = None,
) -> dict[str, Any]:
    """Scores that need the references or the classifier (SECS, ABX, gender agreement), per utterance + summary."""
    items = split_items(recs, SplitContext(references, classifier, k, seed), metrics)
    return {"items": items, "summary": summarize(recs, items, metrics)}


def summarize_system(
    by_split: dict[str, list[Record]],
    references: dict[str, SpeakerReferences],
    classifier: VoiceGenderClassifier | None,
    labels: dict[str, list[str]],
    k: int,
    seed: int,
    metrics: Sequence[Metric] | None = None,
) -> dict[str, Any] | None:
    """{"overall", "splits"} of one system's records (None when it has none): each split scored against its own
    references, the overall row over the pooled items, plus the overall-only keys (Table 7's subgroups)."""
    metrics = registered_metrics() if metrics is None else metrics
    pooled: dict[str, list] = {}
    per_split = {}
    for split, recs in by_split.items():
        if not recs:
            continue
        scores = score_records(recs, references[split], classifier, k, seed, metrics)
        per_split[split] = scores["summary"]
        for key, values in scores["items"].items():
            pooled.setdefault(key, []).extend(values)
    if not per_split:
        return None
    all_recs = [r for recs in by_split.values() for r in recs]
    overall = summarize(all_recs, pooled, metrics)
    for metric in metrics:
        overall.update(metric.summarize_overall(all_recs, pooled, labels))
    return {"overall": overall, "splits": per_split}
