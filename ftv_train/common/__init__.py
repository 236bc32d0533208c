"""Helpers every training-side stage shares: atomic file writes, worker pools, audio loading and resampling.

Imports nothing from `ftv_train`; only the standard library, numpy/torch/torchaudio and `ftv_model`.
"""
