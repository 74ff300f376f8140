"""Tiny BigModel configurations shared by the tests: the classic and the modern block, both heads."""

import torch

from bigmodel_hf import BigModelConfig

VOCAB = 64
TINY = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, num_attention_heads=4, ffn_dim=48,
            max_position_embeddings=128, dropout=0.0)
MODERN = dict(norm_type="rmsnorm", norm_position="pre", position_embedding="rope", activation="swiglu",
              num_key_value_heads=2, attention_bias=False, mlp_bias=False, scale_embedding=False)
CLASSIC = dict(norm_type="layernorm", norm_position="post", position_embedding="sinusoidal", activation="relu")
BLOCKS = {"classic": CLASSIC, "modern": MODERN, "learned-gelu": dict(position_embedding="learned", activation="gelu")}


def tiny_config(block: str = "modern", is_encoder_decoder: bool = True, **overrides) -> BigModelConfig:
    return BigModelConfig(**{**TINY, **BLOCKS[block], "is_encoder_decoder": is_encoder_decoder, **overrides})


def random_ids(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    """Token ids that avoid the special tokens (0-3)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(4, VOCAB, (batch, length), generator=generator)
