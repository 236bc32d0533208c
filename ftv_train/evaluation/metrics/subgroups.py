"""Per-subgroup SECS (the paper's Table 7): mean speaker similarity by gender and by race label.

Labels are the dataset's pseudo-labels (ClassLabel ints, -1 missing); missing ones are counted, not guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import Metric, Record, Results, fmt

ATTRIBUTES = ("gender", "race")
SHOWN_SYSTEMS = ("model", "ground_truth")  # the table's SECS columns, when the run has them


def subgroup_means(values: Sequence[float], groups: Sequence[int], names: Sequence[str]) -> list[dict]:
    """One row per category name (mean, count; mean is None when the split has none), then `missing`."""
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(groups, dtype=np.int64)
    rows = []
    for idx, name in enumerate(names):
        m = g == idx
        rows.append({"category": name, "mean": float(v[m].mean()) if m.any() else None, "count": int(m.sum())})
    missing = (g < 0) | (g >= len(names))
    if missing.any():
        rows.append({"category": "missing", "mean": float(v[missing].mean()), "count": int(missing.sum())})
    return rows


def subgroup_table(
    values: Sequence[float],
    genders: Sequence[int],
    races: Sequence[int],
    gender_names: Sequence[str],
    race_names: Sequence[str],
) -> dict[str, list[dict]]:
    """Table-7 layout: {"gender": rows, "race": rows}."""
    return {
        "gender": subgroup_means(values, genders, gender_names),
        "race": subgroup_means(values, races, race_names),
    }


class Subgroups(Metric):
    """Table 7: the overall row's SECS by gender and race label (reads the SECS items of `SpeakerSimilarity`)."""

    name = "subgroups"

    def summarize_overall(
        self, records: Sequence[Record], items: dict[str, list], labels: dict[str, list[str]]
    ) -> dict[str, dict[str, list[dict]]]:
        genders = [int(r.get("gender", -1)) for r in records]
        races = [int(r.get("race", -1)) for r in records]
        return {"subgroups": subgroup_table(items["secs"], genders, races, labels["gender"], labels["race"])}

    def section(self, results: Results) -> list[str]:
        systems = results["systems"]
        shown = [s for s in SHOWN_SYSTEMS if s in systems] or list(systems)[:1]
        lines = ["## Speaker similarity across gender and race (Table 7 layout)", ""]
        lines.append("| Attribute | Category | n | " + " | ".join(f"SECS, {systems[s]['title']}" for s in shown) + " |")
        lines.append("|---|---|---|" + "---|" * len(shown))
        for attribute in ATTRIBUTES:
            for i, row in enumerate(systems[shown[0]]["overall"]["subgroups"][attribute]):
                cells = [fmt(systems[s]["overall"]["subgroups"][attribute][i]["mean"]) for s in shown]
                lines.append(
                    f"| {attribute.title()} | {row['category']} | {row['count']} | " + " | ".join(cells) + " |"
                )
        return lines + [
            "",
            "Labels are the dataset's pseudo-labels (face attributes); `missing` counts unlabelled items.",
            "",
        ]

    def plots(self, results: Results, records: dict[str, dict[str, list[Record]]], folder: Path) -> list[Path]:
        """SECS by gender and by race of the model's row (else the first row)."""
        from .plots import bar_chart

        systems = results["systems"]
        main = "model" if "model" in systems else next(iter(systems))
        files = []
        for attribute in ATTRIBUTES:
            rows = [r for r in systems[main]["overall"]["subgroups"][attribute] if r["count"]]
            if rows:
                files.append(
                    bar_chart(
                        [r["category"] for r in rows],
                        [r["mean"] for r in rows],
                        folder / f"secs_by_{attribute}.png",
                        f"SECS by {attribute} ({systems[main]['title']})",
                        "SECS (0-100)",
                        counts=[r["count"] for r in rows],
                    )
                )
        return files
