"""Per-subgroup SECS (the paper's Table 7): mean speaker similarity by gender and by race label.

Labels are the dataset's pseudo-labels (ClassLabel ints, -1 missing); missing ones are counted, not guessed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
