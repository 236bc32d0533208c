"""The paper's objective evaluation of a checkpoint on held-out identities, and the face head's calibration.

`metrics/` holds the scorers (a leaf: it imports only `ftv_train.common` and `ftv_model`); the rest runs systems
(model, ground truth, shuffled faces, ...) through them and writes the report. May import `ftv_train.common`,
`ftv_train.data` and `ftv_model`.
"""
