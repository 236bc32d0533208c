"""The offline corpus: real faces given synthetic voices by a face-predictable rule (`voice_mapping`), spoken by
offline voice engines, written in the `data` format so every later stage treats it like prepared video.

May import `ftv_train.common`, `ftv_train.data`, `ftv_train.evaluation.metrics` (to score its own audio)
and `ftv_model`.
"""
