"""The BigModel Transformer: an encoder-decoder for translation and a decoder-only LM, one code path.

Classic (Vaswani et al.: post-norm LayerNorm, sinusoidal positions, ReLU) and modern (pre-norm RMSNorm,
RoPE, SwiGLU, grouped-query attention) blocks are settings of `BigModelConfig`, not separate classes.

Structure, bottom-up (as in transformers' Llama, with Bart's encoder-decoder and cross-attention cache):
norm -> positions -> MLP -> attention -> layers -> encoder / decoder stacks -> trunk -> heads.

This file is copied into saved checkpoints for `trust_remote_code=True`, so it may import only
`torch`, `transformers` and, relatively, `.configuration_bigmodel`.
"""

import inspect
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.generation import GenerationMixin
from transformers.loss.loss_utils import fixed_cross_entropy
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPast,
    BaseModelOutputWithPastAndCrossAttentions,
    CausalLMOutputWithPast,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS, dynamic_rope_update
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel, slice_logits_to_keep
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple, logging
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_bigmodel import BigModelConfig

logger = logging.get_logger(__name__)


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs from labels: prepend the start token, drop the last label, turn -100 into padding."""
    if pad_token_id is None or decoder_start_token_id is None:
        raise ValueError("config.pad_token_id and config.decoder_start_token_id must be set to shift labels.")
    shifted = labels.new_empty(labels.shape)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill_(shifted == -100, pad_token_id)


def check_token_ids(input_ids: torch.Tensor, vocab_size: int, name: str = "input_ids") -> None:
    """Fail with a readable message instead of an opaque embedding IndexError (or a CUDA assert).

    Only CPU ids are read back to Python: on an accelerator, `int(ids.max())` would stall the stream once per
    forward, so there the range is checked by an asynchronous device-side assert instead (the recipes and
    `Translator` also check the tokenizer against the vocabulary once, where the ids are made).
    """
    if torch.compiler.is_compiling() or input_ids.numel() == 0:
        return
    if input_ids.device.type != "cpu":
        torch._assert_async(((input_ids >= 0) & (input_ids < vocab_size)).all(), f"{name} outside the vocabulary")
        return
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"{name} contains token ids in [{low}, {high}] but the model's vocabulary is [0, {vocab_size}). "
            "The tokenizer does not match this model: use the tokenizer saved with the checkpoint, or "
            "`model.resize_token_embeddings(len(tokenizer))`."
        )


def dropout_if_training(hidden_states: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """`F.dropout` that is skipped entirely when inactive: in eval, F.dropout is still one dispatched op per
    call, about ten per decoding step."""
    return F.dropout(hidden_states, p=p, training=True) if training and p > 0 else hidden_states


class BigModelRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # Normalise in float32 (as Llama does) so bf16 activations keep their precision.
        normed = F.rms_norm(hidden_states.float(), hidden_states.shape[-1:], eps=self.eps)
        return self.weight * normed.to(hidden_states.dtype)

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, eps={self.eps}"


def make_norm(config: BigModelConfig) -> nn.Module:
    if config.norm_type == "rmsnorm":
        return BigModelRMSNorm(config.d_model, eps=config.norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.norm_eps)


def sinusoidal_positions(position_ids: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """Fixed sin/cos positions of Vaswani et al. (sin half, then cos half) of any positions: no weights."""
    half = dim // 2
    inv_freq = torch.exp(
        torch.arange(half, device=position_ids.device, dtype=torch.float32) * (-math.log(10000.0) / max(half - 1, 1))
    )
    angles = position_ids[..., None].float() * inv_freq  # (batch, seq, half)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).to(dtype)  # (batch, seq, dim)


class BigModelRotaryEmbedding(nn.Module):
    """cos/sin tables for rotary positions, following `rope_parameters` (any transformers RoPE type)."""

    def __init__(self, config: BigModelConfig):
        super().__init__()
        self.config = config
        self.rope_type = config.rope_parameters["rope_type"]
        rope_init_fn = self.compute_default_rope_parameters
        if self.rope_type != "default":
            rope_init_fn = ROPE_INIT_FUNCTIONS[self.rope_type]
        inv_freq, self.attention_scaling = rope_init_fn(config)
        self.max_seq_len_cached = config.max_position_embeddings
        self.original_max_seq_len = config.max_position_embeddings
        self.inv_freq = nn.Buffer(inv_freq, persistent=False)
        self.original_inv_freq = nn.Buffer(inv_freq.clone(), persistent=False)

    @staticmethod
    def compute_default_rope_parameters(config: BigModelConfig, device=None, **kwargs) -> tuple[torch.Tensor, float]:
        base = config.rope_parameters["rope_theta"]
        dim = config.head_dim
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim))
        return inv_freq, 1.0

    @torch.no_grad()
    @dynamic_rope_update
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq.to(x.device)  # (batch, seq, head_dim/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (batch, seq, head_dim)
        return (emb.cos() * self.attention_scaling).to(x.dtype), (emb.sin() * self.attention_scaling).to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over heads: (batch, 1, seq, head_dim)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class BigModelMLP(nn.Module):
    """Feed-forward block: act(x W_up) W_down, or the gated act(x W_gate) * (x W_up) W_down (SwiGLU, GeGLU)."""

    def __init__(self, config: BigModelConfig):
        super().__init__()
        self.gated = config.is_gated_mlp
        if self.gated:
            self.gate_proj = nn.Linear(config.d_model, config.ffn_dim, bias=config.mlp_bias)
        self.up_proj = nn.Linear(config.d_model, config.ffn_dim, bias=config.mlp_bias)
        self.down_proj = nn.Linear(config.ffn_dim, config.d_model, bias=config.mlp_bias)
        self.act_fn = ACT2FN[{"swiglu": "silu", "geglu": "gelu"}.get(config.activation, config.activation)]
        self.activation_dropout = config.activation_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            hidden = self.act_fn(self.gate_proj(x)) * self.up_proj(x)
        else:
            hidden = self.act_fn(self.up_proj(x))
        hidden = dropout_if_training(hidden, p=self.activation_dropout, training=self.training)
        return self.down_proj(hidden)


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(batch, kv_heads, seq, head_dim) -> (batch, kv_heads * n_rep, seq, head_dim) for grouped-query attention."""
    if n_rep == 1:
        return hidden_states
    batch, kv_heads, seq, head_dim = hidden_states.shape
    hidden_states = hidden_states[:, :, None].expand(batch, kv_heads, n_rep, seq, head_dim)
    return hidden_states.reshape(batch, kv_heads * n_rep, seq, head_dim)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
):
    key = repeat_kv(key, module.num_key_value_groups)
    value = repeat_kv(value, module.num_key_value_groups)
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling  # (batch, heads, q_len, kv_len)
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()  # (batch, q_len, heads, head_dim)
    return attn_output, attn_weights


class BigModelAttention(nn.Module):
    """Multi-head attention with grouped key/value heads. Serves encoder self-attention (bidirectional),
    decoder self-attention (causal, cached) and cross-attention (keys/values from the encoder, computed once
    per sequence and kept in the `EncoderDecoderCache`)."""

    def __init__(self, config: BigModelConfig, layer_idx: int, is_causal: bool, is_cross_attention: bool = False):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.is_causal = is_causal  # read by the SDPA backend
        self.is_cross_attention = is_cross_attention
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        q_dim, kv_dim = config.num_attention_heads * self.head_dim, config.num_key_value_heads * self.head_dim
        self.q_proj = nn.Linear(config.d_model, q_dim, bias=config.attention_bias)
        self.k_proj = nn.Linear(config.d_model, kv_dim, bias=config.attention_bias)
        self.v_proj = nn.Linear(config.d_model, kv_dim, bias=config.attention_bias)
        self.o_proj = nn.Linear(q_dim, config.d_model, bias=config.attention_bias)

    def _project_kv(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kv_shape = (*states.shape[:-1], -1, self.head_dim)
        key = self.k_proj(states).view(kv_shape).transpose(1, 2)  # (batch, kv_heads, kv_len, head_dim)
        value = self.v_proj(states).view(kv_shape).transpose(1, 2)
        return key, value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        query = self.q_proj(hidden_states).view(*input_shape, -1, self.head_dim).transpose(1, 2)  # (b, h, q, d)

        if self.is_cross_attention:
            cross_cache = cache.cross_attention_cache if isinstance(cache, EncoderDecoderCache) else None
            if cross_cache is not None and cache.is_updated.get(self.layer_idx):
                key, value = cross_cache.layers[self.layer_idx].keys, cross_cache.layers[self.layer_idx].values
            else:
                key, value = self._project_kv(key_value_states)
                if cross_cache is not None:
                    key, value = cross_cache.update(key, value, self.layer_idx)
                    cache.is_updated[self.layer_idx] = True
        else:
            key, value = self._project_kv(hidden_states)
            if position_embeddings is not None:
                query, key = apply_rotary_pos_emb(query, key, *position_embeddings)
            if cache is not None:
                self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
                key, value = self_cache.update(key, value, self.layer_idx)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()  # (batch, q_len, heads * head_dim)
        return self.o_proj(attn_output), attn_weights


class BigModelLayerBase(GradientCheckpointingLayer):
    """Residual wiring shared by encoder and decoder layers.

    pre-norm:  x + dropout(f(norm(x)))      post-norm (Vaswani et al.):  norm(x + dropout(f(x)))
    """

    def __init__(self, config: BigModelConfig):
        super().__init__()
        self.pre_norm = config.norm_position == "pre"
        self.dropout = config.dropout

    def _sublayer_input(self, hidden_states: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        return norm(hidden_states) if self.pre_norm else hidden_states

    def _sublayer_output(self, residual: torch.Tensor, output: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        hidden_states = residual + dropout_if_training(output, p=self.dropout, training=self.training)
        return hidden_states if self.pre_norm else norm(hidden_states)


class BigModelEncoderLayer(BigModelLayerBase):
    def __init__(self, config: BigModelConfig, layer_idx: int):
        super().__init__(config)
        self.self_attn = BigModelAttention(config, layer_idx, is_causal=False)
        self.self_attn_norm = make_norm(config)
        self.mlp = BigModelMLP(config)
        self.mlp_norm = make_norm(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        attn_output, _ = self.self_attn(
            self._sublayer_input(hidden_states, self.self_attn_norm),
            attention_mask=attention_mask,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        hidden_states = self._sublayer_output(hidden_states, attn_output, self.self_attn_norm)
        mlp_output = self.mlp(self._sublayer_input(hidden_states, self.mlp_norm))
        return self._sublayer_output(hidden_states, mlp_output, self.mlp_norm)


class BigModelDecoderLayer(BigModelLayerBase):
    """Causal self-attention, cross-attention (encoder-decoder only), feed-forward."""

    def __init__(self, config: BigModelConfig, layer_idx: int):
        super().__init__(config)
        self.self_attn = BigModelAttention(config, layer_idx, is_causal=True)
        self.self_attn_norm = make_norm(config)
        if config.is_encoder_decoder:
            self.cross_attn = BigModelAttention(config, layer_idx, is_causal=False, is_cross_attention=True)
            self.cross_attn_norm = make_norm(config)
        self.mlp = BigModelMLP(config)
        self.mlp_norm = make_norm(config)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        attn_output, _ = self.self_attn(
            self._sublayer_input(hidden_states, self.self_attn_norm),
            attention_mask=attention_mask,
            position_embeddings=position_embeddings,
            cache=cache,
            **kwargs,
        )
        hidden_states = self._sublayer_output(hidden_states, attn_output, self.self_attn_norm)
        if encoder_hidden_states is not None:
            cross_output, _ = self.cross_attn(
                self._sublayer_input(hidden_states, self.cross_attn_norm),
                key_value_states=encoder_hidden_states,
                attention_mask=encoder_attention_mask,
                cache=cache,
                **kwargs,
            )
            hidden_states = self._sublayer_output(hidden_states, cross_output, self.cross_attn_norm)
        mlp_output = self.mlp(self._sublayer_input(hidden_states, self.mlp_norm))
        return self._sublayer_output(hidden_states, mlp_output, self.mlp_norm)


class BigModelPreTrainedModel(PreTrainedModel):
    config: BigModelConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["BigModelEncoderLayer", "BigModelDecoderLayer"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _can_compile_fullgraph = True
    _supports_attention_backend = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        # transformers records only the saving class in `auto_map`; add the trunk and the matching head so
        # that `AutoModel` and the task Auto class both load the folder with `trust_remote_code=True`.
        if self._auto_class is not None:
            module = type(self).__module__.rsplit(".", 1)[-1]
            head = ("AutoModelForSeq2SeqLM", "BigModelForSeq2SeqLM") if self.config.is_encoder_decoder else (
                "AutoModelForCausalLM", "BigModelForCausalLM")
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoModel": f"{module}.BigModelModel",
                head[0]: f"{module}.{head[1]}",
            }
        return super().save_pretrained(save_directory, *args, **kwargs)


class BigModelInputEmbedding(nn.Module):
    """Token embeddings -> (scaled) + absolute positions -> dropout; rotary tables when positions are RoPE.

    Returns `(hidden_states, position_embeddings)`, the latter `(cos, sin)` for RoPE and `None` otherwise.
    """

    def __init__(self, config: BigModelConfig):
        super().__init__()
        self.kind = config.position_embedding
        self.d_model = config.d_model
        self.embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.dropout = config.dropout
        self.max_positions = config.max_position_embeddings
        if self.kind == "learned":
            self.embed_positions = nn.Embedding(config.max_position_embeddings, config.d_model)
        elif self.kind == "rope":
            self.rotary_emb = BigModelRotaryEmbedding(config)
        self._sinusoid_table = None  # float32 (positions, d_model), built on first use; not a weight or buffer

    def _sinusoids(self, position_ids: torch.Tensor) -> torch.Tensor:
        """Sinusoidal positions looked up in a table (2 us) instead of recomputed every decoding step (40 us).
        The table grows when positions pass its end, so any position still works."""
        if torch.compiler.is_compiling():
            return sinusoidal_positions(position_ids, self.d_model, torch.float32)
        table, needed = self._sinusoid_table, int(position_ids.max()) + 1
        if table is None or table.device != position_ids.device or table.shape[0] < needed:
            positions = torch.arange(max(needed, self.max_positions), device=position_ids.device)
            table = self._sinusoid_table = sinusoidal_positions(positions, self.d_model, torch.float32)
        return F.embedding(position_ids, table)

    def forward(self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor):
        hidden_states = inputs_embeds * self.embed_scale if self.embed_scale != 1.0 else inputs_embeds
        position_embeddings = None
        if self.kind == "sinusoidal":
            hidden_states = hidden_states + self._sinusoids(position_ids).to(hidden_states.dtype)
        elif self.kind == "learned":
            if not torch.compiler.is_compiling() and int(position_ids.max()) >= self.max_positions:
                raise ValueError(
                    f"Sequence positions reach {int(position_ids.max())} but learned position embeddings only "
                    f"cover {self.max_positions}; truncate inputs to max_position_embeddings."
                )
            hidden_states = hidden_states + self.embed_positions(position_ids)
        else:
            position_embeddings = self.rotary_emb(hidden_states, position_ids)
        return dropout_if_training(hidden_states, p=self.dropout, training=self.training), position_embeddings


def _positions(inputs_embeds: torch.Tensor, past_length: int = 0) -> torch.Tensor:
    return (torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_length).unsqueeze(0)


class BigModelEncoder(BigModelPreTrainedModel):
    _can_record_outputs = {"hidden_states": BigModelEncoderLayer, "attentions": BigModelAttention}

    def __init__(self, config: BigModelConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.embed_inputs = BigModelInputEmbedding(config)
        self.layers = nn.ModuleList([BigModelEncoderLayer(config, i) for i in range(config.encoder_layers)])
        # Post-norm layers end normalised already; pre-norm stacks need a final norm.
        self.norm = make_norm(config) if config.norm_position == "pre" else nn.Identity()
        self.post_init()

    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutput:
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            check_token_ids(input_ids, self.config.vocab_size)
            inputs_embeds = self.embed_tokens(input_ids)  # (batch, src_len, d_model)
        if attention_mask is not None and attention_mask.ndim == 2 and attention_mask.shape != inputs_embeds.shape[:2]:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but the inputs are "
                f"{tuple(inputs_embeds.shape[:2])} (batch, length)."
            )
        hidden_states, position_embeddings = self.embed_inputs(inputs_embeds, _positions(inputs_embeds))
        attention_mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=inputs_embeds, attention_mask=attention_mask
        )
        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_mask, position_embeddings=position_embeddings, **kwargs)
        return BaseModelOutput(last_hidden_state=self.norm(hidden_states))


class BigModelDecoder(BigModelPreTrainedModel):
    """The decoder stack: the target side of the encoder-decoder, or the whole decoder-only LM."""

    _can_record_outputs = {
        "hidden_states": BigModelDecoderLayer,
        "attentions": OutputRecorder(BigModelAttention, index=1, layer_name="self_attn"),
        "cross_attentions": OutputRecorder(BigModelAttention, index=1, layer_name="cross_attn"),
    }

    def __init__(self, config: BigModelConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.embed_inputs = BigModelInputEmbedding(config)
        self.layers = nn.ModuleList([BigModelDecoderLayer(config, i) for i in range(config.decoder_layers)])
        self.norm = make_norm(config) if config.norm_position == "pre" else nn.Identity()
        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            check_token_ids(input_ids, self.config.vocab_size)
            inputs_embeds = self.embed_tokens(input_ids)  # (batch, tgt_len, d_model)
        self_attn_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        if position_ids is None:
            position_ids = _positions(inputs_embeds, self_attn_cache.get_seq_length() if cache is not None else 0)

        # The mask is built against the caller's cache, before a fresh one is made below: masking_utils reads
        # packed documents from position ids that restart (block-diagonal causal attention, as for
        # `DataCollatorWithFlattening`) only when there is no cache and no 2D mask, and an empty new cache
        # would otherwise switch that off in every training forward (config.use_cache defaults to True).
        # Without packing, an empty cache and no cache give the same mask.
        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=self_attn_cache,
            position_ids=position_ids,
        )
        if use_cache and cache is None:
            cache = (
                EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
                if encoder_hidden_states is not None
                else DynamicCache(config=self.config)
            )
        if encoder_hidden_states is not None:
            encoder_attention_mask = create_bidirectional_mask(
                config=self.config,
                inputs_embeds=inputs_embeds,
                attention_mask=encoder_attention_mask,
                encoder_hidden_states=encoder_hidden_states,
            )

        hidden_states, position_embeddings = self.embed_inputs(inputs_embeds, position_ids)
        for layer in self.layers:
            hidden_states = layer(
                hidden_states,
                causal_mask,
                encoder_hidden_states,  # positional, for re-entrant activation checkpointing
                encoder_attention_mask=encoder_attention_mask,
                position_embeddings=position_embeddings,
                cache=cache,
                use_cache=use_cache,
                **kwargs,
            )
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=self.norm(hidden_states), cache=cache)


class BigModelModel(BigModelPreTrainedModel):
    """The bare trunk. Encoder-decoder configs get `shared`, `encoder` and `decoder`; decoder-only configs get
    `decoder` alone, so `AutoModel` loads either kind of checkpoint without missing or unexpected weights."""

    def __init__(self, config: BigModelConfig):
        super().__init__(config)
        if config.is_encoder_decoder:
            self.shared = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
            self.encoder = BigModelEncoder(config)
            self._tied_weights_keys = {
                "encoder.embed_tokens.weight": "shared.weight",
                "decoder.embed_tokens.weight": "shared.weight",
            }
        self.decoder = BigModelDecoder(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.shared if self.config.is_encoder_decoder else self.decoder.embed_tokens

    def set_input_embeddings(self, value):
        if self.config.is_encoder_decoder:
            self.shared = self.encoder.embed_tokens = value
        self.decoder.embed_tokens = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        decoder_position_ids: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> Seq2SeqModelOutput | BaseModelOutputWithPast:
        if not self.config.is_encoder_decoder:
            outputs = self.decoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                cache=cache,
                inputs_embeds=inputs_embeds,
                use_cache=use_cache,
                **kwargs,
            )
            return BaseModelOutputWithPast(
                last_hidden_state=outputs.last_hidden_state,
                cache=outputs.cache,
                hidden_states=outputs.hidden_states,
                attentions=outputs.attentions,
            )

        if decoder_input_ids is None and decoder_inputs_embeds is None:
            raise ValueError(
                "BigModelModel is an encoder-decoder: pass decoder_input_ids (or use BigModelForSeq2SeqLM with "
                "labels, which builds them by shifting the labels right)."
            )
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(
                last_hidden_state=encoder_outputs[0],
                hidden_states=encoder_outputs[1] if len(encoder_outputs) > 1 else None,
                attentions=encoder_outputs[2] if len(encoder_outputs) > 2 else None,
            )
        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            position_ids=decoder_position_ids,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        return Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            cache=decoder_outputs.cache,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )


def _set_generation_defaults(model: PreTrainedModel) -> None:
    # Without a max_length, generate() silently stops after 20 new tokens; default to the model's capacity.
    if model.generation_config.max_length is None and model.generation_config.max_new_tokens is None:
        model.generation_config.max_length = model.config.max_position_embeddings


def _check_head_matches_config(model: PreTrainedModel, encoder_decoder: bool) -> None:
    if model.config.is_encoder_decoder != encoder_decoder:
        kind, head = ("an encoder-decoder", "BigModelForSeq2SeqLM") if model.config.is_encoder_decoder else (
            "a decoder-only", "BigModelForCausalLM")
        raise ValueError(
            f"This config describes {kind} model (is_encoder_decoder={model.config.is_encoder_decoder}); "
            f"load it with {head} (or AutoModelForSeq2SeqLM / AutoModelForCausalLM accordingly) "
            f"instead of {type(model).__name__}."
        )


class BigModelForSeq2SeqLM(BigModelPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.shared.weight"}

    def __init__(self, config: BigModelConfig):
        super().__init__(config)
        _check_head_matches_config(self, encoder_decoder=True)
        self.model = BigModelModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()
        _set_generation_defaults(self)

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        decoder_position_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> Seq2SeqLMOutput:
        r"""labels (`torch.LongTensor` of shape `(batch, tgt_len)`): target ids, -100 where ignored. Decoder inputs
        are the labels shifted right (start token first) unless given, so the loss is NOT shifted again."""
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        outputs: Seq2SeqModelOutput = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            decoder_position_ids=decoder_position_ids,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.lm_head(outputs.last_hidden_state)  # (batch, tgt_len, vocab)

        loss = None
        if labels is not None:
            if labels.shape != logits.shape[:2]:
                raise ValueError(f"labels {tuple(labels.shape)} must match decoder inputs {tuple(logits.shape[:2])}.")
            # Sum / num_items_in_batch under gradient accumulation, mean otherwise (see Trainer).
            loss = fixed_cross_entropy(
                logits.float().view(-1, logits.shape[-1]),
                labels.to(logits.device).view(-1),
                num_items_in_batch=kwargs.get("num_items_in_batch"),
            )
        return Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
        )


class BigModelForCausalLM(BigModelPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.decoder.embed_tokens.weight"}

    def __init__(self, config: BigModelConfig):
        super().__init__(config)
        _check_head_matches_config(self, encoder_decoder=False)
        self.model = BigModelModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()
        _set_generation_defaults(self)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CausalLMOutputWithPast:
        r"""labels (`torch.LongTensor` of shape `(batch, seq_len)`): usually the input ids; shifted inside the loss."""
        outputs = self.model.decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        logits = self.lm_head(hidden_states)  # (batch, kept positions, vocab)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


# For models registered with `register_for_auto_class` (ours are, so that checkpoints carry their code),
# generate() calls `inspect.signature(model.forward)` at every decoding step (a back-compat check for remote
# code). A precomputed `__signature__` answers it at once instead of in 16-19 us (benchmarks/results/speed.md).
for _head in (BigModelForSeq2SeqLM, BigModelForCausalLM):
    _head.forward.__signature__ = inspect.signature(_head.forward)
del _head

__all__ = [
    "BigModelPreTrainedModel",
    "BigModelEncoder",
    "BigModelDecoder",
    "BigModelModel",
    "BigModelForSeq2SeqLM",
    "BigModelForCausalLM",
    "shift_tokens_right",
]
