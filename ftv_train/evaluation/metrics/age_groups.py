"""Gender agreement and the face head's reading for adults and children apart.

Children's faces and voices carry less gender, so a rate pooled over both hides where it is lost. Ages come from the
corpus's ``report.json`` (the offline corpus writes them); records of unknown age count in neither group.
"""

from __future__ import annotations

from collections.abc import Sequence

from ftv_model.attributes import ADULT_AGE

from .base import Metric, Record, Results, SplitContext, embeddings_of, fmt_ci, mean_or_none
from .face_reading import face_readings
from .intervals import proportion_interval

AGE_GROUPS = ("adults", "children")
RATES = (("gender_agreement", "agree"), ("face_gender_accuracy", "face_correct"))  # summary name, item name


def age_group(age: float | None) -> str | None:
    """The age group of a label: adults (18 and over), children (under 18), None when the age is unknown."""
    if age is None:
        return None
    return "adults" if age >= ADULT_AGE else "children"


class AgeGroups(Metric):
    """Per age group: the voice-gender classifier and the face head against the gender label."""

    name = "age_groups"

    def split_items(self, records: Sequence[Record], context: SplitContext) -> dict[str, list]:
        genders, readings, read = face_readings(records)
        groups = [age_group(r.get("age")) for r in records]
        predicted = None if context.classifier is None else context.classifier.predict(embeddings_of(records))
        items: dict[str, list] = {}
        for group in AGE_GROUPS:
            labelled = [i for i, (g, a) in enumerate(zip(genders, groups)) if g >= 0 and a == group]
            items[f"face_correct_{group}"] = [float(readings[i] == genders[i]) for i in labelled if read[i]]
            if predicted is not None:
                items[f"agree_{group}"] = [float(predicted[i] == genders[i]) for i in labelled]
        return items

    def summarize(self, records: Sequence[Record], items: dict[str, list]) -> dict[str, object]:
        return {
            f"{name}_{group}{suffix}": value
            for group in AGE_GROUPS
            for name, key in RATES
            for suffix, value in (
                ("", mean_or_none(items.get(f"{key}_{group}", []))),
                ("_ci95", proportion_interval(items.get(f"{key}_{group}", []))),
                ("_n", len(items.get(f"{key}_{group}", []))),
            )
        }

    def section(self, results: Results) -> list[str]:
        aged = {k: v for k, v in results["systems"].items() if v["overall"].get("gender_agreement_adults_n")}
        if not aged:
            return []
        lines = [
            "## Adults and children",
            "",
            "| System | Face reading, adults | Gender agreement, adults | Face reading, children | "
            "Gender agreement, children |",
            "|---|---|---|---|---|",
        ]
        for row in aged.values():
            o = row["overall"]
            cells = [
                f"{fmt_ci(o.get(f'{name}_{group}'), o.get(f'{name}_{group}_ci95'))} (n={o.get(f'{name}_{group}_n')})"
                for group in AGE_GROUPS
                for name in ("face_gender_accuracy", "gender_agreement")
            ]
            lines.append(f"| {row['title']} | " + " | ".join(cells) + " |")
        return lines + [
            "",
            f"By the speakers' age labels (the corpus's report.json; adults: {ADULT_AGE:g} and over). Children's "
            "faces and voices carry less gender, and the corpus gives young children one child voice region.",
            "",
        ]
