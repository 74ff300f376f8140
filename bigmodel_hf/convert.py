"""Convert Llama-family checkpoints (`LlamaForCausalLM`: Llama, SmolLM2, ...) into `BigModelForCausalLM`.

The modern BigModel block is a Llama block: pre-norm RMSNorm, RoPE, SwiGLU, grouped-query attention with
no biases. Only the module names differ, so conversion is a config mapping plus a key rename.

    bigmodel-hf convert-llama LLAMA_DIR OUTPUT_DIR
"""

import re
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from .configuration_bigmodel import BigModelConfig
from .modeling_bigmodel import BigModelForCausalLM
from .pretrained import check_model_location, one_line_load_errors

# Llama parameter-name prefixes and ours ({layer}: the layer number); the rest, q/k/v/o_proj and
# gate/up/down_proj, are shared names. One table for both directions (`key_renames`).
LLAMA_AND_BIGMODEL_NAMES = [
    ("model.embed_tokens.", "model.decoder.embed_tokens."),
    ("model.norm.", "model.decoder.norm."),
    ("model.layers.{layer}.input_layernorm.", "model.decoder.layers.{layer}.self_attn_norm."),
    ("model.layers.{layer}.post_attention_layernorm.", "model.decoder.layers.{layer}.mlp_norm."),
    ("model.layers.", "model.decoder.layers."),
]


def key_renames(to_llama: bool = False) -> list[tuple[str, str]]:
    """(regex, replacement) pairs for `rename_key`: Llama -> BigModel, or BigModel -> Llama."""
    renames = []
    for llama_name, our_name in LLAMA_AND_BIGMODEL_NAMES:
        source, target = (our_name, llama_name) if to_llama else (llama_name, our_name)
        renames.append(("^" + re.escape(source).replace(re.escape("{layer}"), r"(\d+)"),
                        target.replace("{layer}", r"\1")))
    return renames


def config_from_llama(llama_config) -> BigModelConfig:
    if llama_config.hidden_act != "silu":
        raise ValueError(f"Only SiLU-gated (SwiGLU) Llama MLPs convert; this one uses {llama_config.hidden_act!r}.")
    if getattr(llama_config, "attention_bias", False) != getattr(llama_config, "mlp_bias", False):
        raise ValueError("attention_bias and mlp_bias differ in this Llama config; BigModel expects them equal.")
    return BigModelConfig(
        is_encoder_decoder=False,
        vocab_size=llama_config.vocab_size,
        d_model=llama_config.hidden_size,
        decoder_layers=llama_config.num_hidden_layers,
        encoder_layers=0,
        num_attention_heads=llama_config.num_attention_heads,
        num_key_value_heads=llama_config.num_key_value_heads,
        head_dim=getattr(llama_config, "head_dim", None) or llama_config.hidden_size // llama_config.num_attention_heads,
        ffn_dim=llama_config.intermediate_size,
        activation="swiglu",
        norm_type="rmsnorm",
        norm_position="pre",
        norm_eps=llama_config.rms_norm_eps,
        position_embedding="rope",
        rope_parameters=dict(llama_config.rope_parameters),
        max_position_embeddings=llama_config.max_position_embeddings,
        scale_embedding=False,
        attention_bias=getattr(llama_config, "attention_bias", False),
        mlp_bias=getattr(llama_config, "mlp_bias", False),
        dropout=0.0,
        attention_dropout=float(getattr(llama_config, "attention_dropout", 0.0)),
        initializer_range=llama_config.initializer_range,
        tie_word_embeddings=bool(getattr(llama_config, "tie_word_embeddings", False)),
        pad_token_id=llama_config.pad_token_id,
        bos_token_id=llama_config.bos_token_id,
        eos_token_id=llama_config.eos_token_id,
    )


def rename_key(key: str, renames) -> str:
    """`key` under the first (pattern, replacement) of `renames` that matches it; unchanged if none does."""
    for pattern, replacement in renames:
        new_key, count = re.subn(pattern, replacement, key)
        if count:
            return new_key
    return key


def rebuild_with_weights(source: PreTrainedModel, target_class, target_config, renames) -> PreTrainedModel:
    """`target_class(target_config)` holding `source`'s weights under renamed keys (same dtype, shared storage),
    tied as `target_config` says, with `source`'s generation config. The one copy of the move both ways
    (Llama -> BigModel here, BigModel -> Llama in `export/llama.py`)."""
    with torch.device("meta"):
        target = target_class(target_config)
    state_dict = {rename_key(k, renames): v for k, v in source.state_dict().items()}
    tied = target_config.tie_word_embeddings
    if tied:
        state_dict.pop("lm_head.weight", None)
    missing, unexpected = target.load_state_dict(state_dict, strict=False, assign=True)
    missing = [k for k in missing if not (tied and k == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"{type(source).__name__} -> {target_class.__name__} key mismatch: missing {missing}, "
                         f"unexpected {unexpected}.")
    target.tie_weights()
    # Non-persistent buffers (rotary frequencies) are not in the state dict: build them on a real device.
    device = next(source.parameters()).device
    for module in target.modules():
        if hasattr(module, "inv_freq"):
            fresh = type(module)(target_config).to(device)
            module.inv_freq, module.original_inv_freq = fresh.inv_freq, fresh.original_inv_freq
    target.generation_config = source.generation_config
    return target.eval()


def convert_llama_model(llama: PreTrainedModel) -> BigModelForCausalLM:
    """A `BigModelForCausalLM` with the same weights (same dtype) and generation config as `llama`."""
    return rebuild_with_weights(llama, BigModelForCausalLM, config_from_llama(llama.config), key_renames())


def convert_llama_checkpoint(source: str | Path, output_dir: str | Path, dtype: torch.dtype = torch.float32,
                             trust_remote_code: bool = False, load_legacy_bin: bool = False) -> Path:
    """Load a Llama-family checkpoint folder (or Hub id), convert it, save model + tokenizer to `output_dir`.

    The config is checked to be a Llama one before any weights load; weights come from safetensors only
    unless `load_legacy_bin` (a pickled `pytorch_model.bin`); code shipped with the checkpoint runs only
    with `trust_remote_code`.
    """
    check_model_location(source)
    with one_line_load_errors(source):
        config = AutoConfig.from_pretrained(source, trust_remote_code=bool(trust_remote_code))
        if config.model_type != "llama":
            raise ValueError(f"{source} is a {config.model_type!r} checkpoint; only Llama-family ones convert.")
        try:
            llama = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, trust_remote_code=bool(trust_remote_code),
                                                         use_safetensors=None if load_legacy_bin else True)
        except OSError as error:
            if load_legacy_bin:
                raise
            raise OSError(f"{source} has no safetensors weights ({' '.join(str(error).split())[:200]}); pickled "
                          "pytorch_model.bin weights load only with --load_legacy_bin (they can run code: use "
                          "it only for a checkpoint you trust).") from None
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=bool(trust_remote_code))
    model = convert_llama_model(llama)
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir
