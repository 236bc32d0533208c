"""Training an FTVModel: the config, the Accelerate loop (GAN step, checkpoints, logging), warm starts, the face
branch's pretraining, posterior distillation and the model card of an export.

May import `ftv_train.common`, `ftv_train.data` and `ftv_model`.
"""
