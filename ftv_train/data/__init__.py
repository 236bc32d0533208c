"""From talking-face video to a `datasets` dataset: sources, face detection and five views, 16 kHz audio checks,
pseudo-labels, duplicate photos, the five held-out splits, the on-disk format and batching.

May import `ftv_train.common` and `ftv_model`.
"""
