"""The paper's architecture at toy widths: every module present, a forward pass in milliseconds. Shared by the
tests (tests/model_fixtures.py) and the benchmarks that need a model without a checkpoint."""

TINY_MODEL = dict(
    hidden_size=32,
    ffn_dim=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    flow_size=16,
    prior_encoder_num_flows=2,
    prior_encoder_num_wavenet_layers=2,
    posterior_encoder_num_wavenet_layers=2,
    duration_predictor_filter_channels=32,
    duration_predictor_num_flows=2,
    upsample_initial_channel=32,
    resblock_kernel_sizes=(3,),
    resblock_dilation_sizes=((1, 3),),
    face_embed_dims=(16, 32, 64),
    face_num_heads=(1, 2, 2),
    face_depths=(1, 1, 1),
    face_embedding_size=32,
    global_conditioning_size=32,
    attribute_hidden_size=16,
    audio_attribute_length=256,
)
