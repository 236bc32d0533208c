"""ftv_model: face-to-voice speech synthesis as a transformers-style model (config, model, processor)."""
