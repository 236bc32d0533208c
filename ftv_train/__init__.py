"""Everything that makes an FTV checkpoint: data, corpus, training, evaluation.

Layers, lowest first; a package may import the ones listed under it and `ftv_model`, never one above it, and
`ftv_model` never imports `ftv_train` (``tests/test_layout.py`` checks both):

- `common`: atomic writes, worker pools, audio I/O shared by every stage;
- `data`: talking-face video to a `datasets` dataset (faces, views, audio, pseudo-labels, splits, batches);
- `evaluation.metrics`: the scorers (speaker similarity, CER, DNSMOS, ABX, ...), usable on any audio;
- `corpus`: the offline corpus, synthetic voices mapped to real faces (uses `data`, `evaluation.metrics`);
- `training`: the training loop and its stages (uses `data`);
- `evaluation`: the paper's objective evaluation of a checkpoint (uses `data`, `evaluation.metrics`).
"""
