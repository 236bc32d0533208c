"""Attribute label sets shared by pseudo-labelling, the attribute heads and evaluation.

The order is DeepFace's (the paper's pseudo-labeller), so its predictions map to ids without a table.
Missing labels are stored as -1 in datasets and become IGNORE_INDEX in batches.
"""

GENDER_LABELS: tuple[str, ...] = ("male", "female")
ADULT_AGE = 18.0  # age labels at or above it count as adults wherever results are split by age
RACE_LABELS: tuple[str, ...] = ("asian", "indian", "black", "white", "middle eastern", "latino hispanic")
MISSING_LABEL = -1
IGNORE_INDEX = -100

# DeepFace's own strings -> our names.
DEEPFACE_GENDER = {"Man": "male", "Woman": "female"}
DEEPFACE_RACE = {name: name for name in RACE_LABELS}
