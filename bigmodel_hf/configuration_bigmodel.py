"""Configuration of the BigModel Transformer family.

One config describes both heads: an encoder-decoder (`is_encoder_decoder=True`, translation) and a
decoder-only LM (`is_encoder_decoder=False`, text generation). The classic Transformer of Vaswani et al.
and the modern pre-norm / RMSNorm / RoPE / SwiGLU / GQA variant are just different field values; see
`PRESETS` and `BigModelConfig.from_preset`.

This file travels with saved checkpoints as remote code, so it imports only `transformers`.
"""

from transformers import PreTrainedConfig

ACTIVATIONS = ("relu", "gelu", "silu", "swiglu", "geglu")
NORM_TYPES = ("layernorm", "rmsnorm")
NORM_POSITIONS = ("post", "pre")
POSITION_EMBEDDINGS = ("sinusoidal", "learned", "rope")

# Architecture presets. Token ids and `is_encoder_decoder` are left to the caller.
PRESETS: dict[str, dict] = {
    # "Attention Is All You Need", base model: post-norm, sinusoidal positions, ReLU, scaled embeddings.
    "vaswani-base": dict(
        d_model=512, encoder_layers=6, decoder_layers=6, num_attention_heads=8, ffn_dim=2048,
        activation="relu", norm_type="layernorm", norm_position="post", position_embedding="sinusoidal",
        scale_embedding=True, attention_bias=True, mlp_bias=True, dropout=0.1,
    ),
    # The same recipe at a size that trains in minutes on a 2-core CPU.
    "vaswani-small": dict(
        d_model=256, encoder_layers=3, decoder_layers=3, num_attention_heads=4, ffn_dim=1024,
        activation="relu", norm_type="layernorm", norm_position="post", position_embedding="sinusoidal",
        scale_embedding=True, attention_bias=True, mlp_bias=True, dropout=0.1,
    ),
    # Llama-style blocks: pre-norm RMSNorm, rotary positions, SwiGLU, grouped-query attention, no biases.
    "modern-small": dict(
        d_model=256, encoder_layers=3, decoder_layers=3, num_attention_heads=4, num_key_value_heads=2,
        ffn_dim=704, activation="swiglu", norm_type="rmsnorm", norm_position="pre", position_embedding="rope",
        scale_embedding=False, attention_bias=False, mlp_bias=False, dropout=0.1, norm_eps=1e-6,
    ),
    "modern-base": dict(
        d_model=512, encoder_layers=6, decoder_layers=6, num_attention_heads=8, num_key_value_heads=4,
        ffn_dim=1408, activation="swiglu", norm_type="rmsnorm", norm_position="pre", position_embedding="rope",
        scale_embedding=False, attention_bias=False, mlp_bias=False, dropout=0.1, norm_eps=1e-6,
    ),
}


class BigModelConfig(PreTrainedConfig):
    r"""Configuration for [`BigModelModel`], [`BigModelForSeq2SeqLM`] and [`BigModelForCausalLM`].

    The defaults are the base Transformer of Vaswani et al. (2017) as an encoder-decoder. For a
    decoder-only LM set `is_encoder_decoder=False`; `decoder_layers` is then the depth of the stack and
    the encoder fields are unused.

    Args:
        vocab_size: size of the (joint) vocabulary.
        d_model: width of the residual stream (`hidden_size`).
        encoder_layers / decoder_layers: number of layers in each stack.
        num_attention_heads: query heads per attention layer.
        num_key_value_heads: key/value heads (grouped-query attention); defaults to `num_attention_heads`.
        head_dim: width of one head; defaults to `d_model // num_attention_heads`.
        ffn_dim: inner width of the feed-forward block (`intermediate_size`).
        activation: `relu`, `gelu`, `silu`, or the gated `swiglu` / `geglu`.
        norm_type / norm_position: `layernorm` or `rmsnorm`; `post` (Vaswani) or `pre` (modern).
        position_embedding: `sinusoidal`, `learned` or `rope`.
        rope_parameters: RoPE settings (`rope_type`, `rope_theta`), used when `position_embedding="rope"`.
        scale_embedding: multiply token embeddings by `sqrt(d_model)` (Vaswani et al.).
        dropout / attention_dropout / activation_dropout: residual, attention-probability and FFN dropout.
        initializer_range: std of the normal init of linear and embedding weights.
        tie_word_embeddings: share the input embeddings (source, target) and the output projection.
        lang_to_id: a multilingual model's target-language tokens, {code: token id}; generation starts with
            one of them (`generate(..., forced_bos_token_id=config.lang_to_id["de"])`).
        language_pairs: the directions a multilingual model was trained on, as "source-target" strings.
    """

    model_type = "bigmodel"
    keys_to_ignore_at_inference = ["cache"]
    attribute_map = {
        "hidden_size": "d_model",
        "num_hidden_layers": "decoder_layers",
        "intermediate_size": "ffn_dim",
        "hidden_act": "activation",
    }

    vocab_size: int = 32000
    d_model: int = 512
    encoder_layers: int = 6
    decoder_layers: int = 6
    num_attention_heads: int = 8
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    ffn_dim: int = 2048
    activation: str = "relu"
    norm_type: str = "layernorm"
    norm_position: str = "post"
    norm_eps: float = 1e-5
    position_embedding: str = "sinusoidal"
    rope_parameters: dict | None = None
    max_position_embeddings: int = 1024
    scale_embedding: bool = True
    attention_bias: bool = True
    mlp_bias: bool = True
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    initializer_range: float = 0.02
    use_cache: bool = True
    tie_word_embeddings: bool = True
    is_encoder_decoder: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    decoder_start_token_id: int | None = None
    # A multilingual model: {language code: id of its target-language token} and the directions trained
    # ("en-de"). None = a bilingual model.
    lang_to_id: dict[str, int] | None = None
    language_pairs: list[str] | None = None

    def __post_init__(self, **kwargs):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.decoder_start_token_id is None and self.is_encoder_decoder:
            # Decoder inputs start with BOS: `shift_tokens_right(labels)` puts it in front of the target.
            self.decoder_start_token_id = self.bos_token_id
        self._validate()
        if self.head_dim is None:
            self.head_dim = self.d_model // self.num_attention_heads
        super().__post_init__(**kwargs)

    def _validate(self):
        """Reject combinations that would build a broken model, naming the field and the fix."""

        def check_choice(field, choices):
            value = getattr(self, field)
            if value not in choices:
                raise ValueError(f"BigModelConfig.{field}={value!r} is not supported; use one of {list(choices)}.")

        check_choice("activation", ACTIVATIONS)
        check_choice("norm_type", NORM_TYPES)
        check_choice("norm_position", NORM_POSITIONS)
        check_choice("position_embedding", POSITION_EMBEDDINGS)
        for field in ("vocab_size", "d_model", "num_attention_heads", "num_key_value_heads", "ffn_dim",
                      "max_position_embeddings"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) <= 0:
                raise ValueError(f"BigModelConfig.{field} must be a positive integer, got {getattr(self, field)!r}.")
        if self.decoder_layers < 1:
            raise ValueError(f"BigModelConfig.decoder_layers must be >= 1, got {self.decoder_layers}.")
        if self.is_encoder_decoder and self.encoder_layers < 1:
            raise ValueError(
                f"BigModelConfig.encoder_layers must be >= 1 for an encoder-decoder, got {self.encoder_layers}; "
                "set is_encoder_decoder=False for a decoder-only model."
            )
        if self.head_dim is None and self.d_model % self.num_attention_heads != 0:
            raise ValueError(
                f"BigModelConfig.d_model ({self.d_model}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads}); change one of them or set head_dim explicitly."
            )
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"BigModelConfig.num_attention_heads ({self.num_attention_heads}) must be divisible by "
                f"num_key_value_heads ({self.num_key_value_heads}); pick num_key_value_heads among "
                f"{[n for n in range(1, self.num_attention_heads + 1) if self.num_attention_heads % n == 0]}."
            )
        head_dim = self.head_dim or self.d_model // self.num_attention_heads
        if self.position_embedding == "rope" and head_dim % 2 != 0:
            raise ValueError(f"Rotary positions need an even head_dim, got {head_dim}; change d_model or heads.")
        if self.position_embedding == "sinusoidal" and self.d_model % 2 != 0:
            raise ValueError(f"Sinusoidal positions need an even d_model, got {self.d_model}.")
        for field in ("dropout", "attention_dropout", "activation_dropout"):
            if not 0.0 <= getattr(self, field) < 1.0:
                raise ValueError(f"BigModelConfig.{field} must be in [0, 1), got {getattr(self, field)}.")
        for field in ("pad_token_id", "bos_token_id", "decoder_start_token_id"):
            token_id = getattr(self, field)
            if token_id is not None and not 0 <= token_id < self.vocab_size:
                raise ValueError(
                    f"BigModelConfig.{field}={token_id} is outside the vocabulary [0, {self.vocab_size}); "
                    "set it from the tokenizer."
                )

    @property
    def is_gated_mlp(self) -> bool:
        return self.activation in ("swiglu", "geglu")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "BigModelConfig":
        """Build a config from a named preset in `PRESETS`, with field overrides."""
        if name not in PRESETS:
            raise ValueError(f"Unknown BigModel preset {name!r}; available presets: {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})


__all__ = ["BigModelConfig", "PRESETS"]
