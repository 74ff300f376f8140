"""Write a decoder-only `BigModelForCausalLM` in the modern block as a plain `LlamaForCausalLM` checkpoint:
the reverse of `convert.py`, so every tool that takes Llama checkpoints (llama.cpp/GGUF, vLLM, Optimum)
takes ours.

    bigmodel-hf export llama MODEL_DIR OUT_DIR

The modern block is a Llama block (pre-norm RMSNorm, RoPE, SwiGLU, grouped-query attention), so the
export is a config mapping plus a key rename; settings Llama has no field for are refused by name.
"""

import json
from pathlib import Path

from transformers import LlamaConfig, LlamaForCausalLM

from ..configuration_bigmodel import BigModelConfig
from ..convert import key_renames, rebuild_with_weights


def llama_refusals(config: BigModelConfig) -> list[str]:
    """The settings of `config` a `LlamaConfig` cannot express (empty when it can)."""
    wanted = {"norm_type": "rmsnorm", "norm_position": "pre", "position_embedding": "rope", "activation": "swiglu",
              "scale_embedding": False}
    refusals = [] if not config.is_encoder_decoder else [
        "is_encoder_decoder=True: Llama is decoder-only (export an encoder-decoder with `bigmodel-hf export ct2`)"]
    refusals += [f"{field}={getattr(config, field)!r} (Llama needs {value!r})"
                 for field, value in wanted.items() if getattr(config, field) != value]
    return refusals


def llama_config_from(config: BigModelConfig) -> LlamaConfig:
    refusals = llama_refusals(config)
    if refusals:
        raise ValueError(f"this model cannot be written as a Llama checkpoint: {'; '.join(refusals)}; export a "
                         "decoder-only model of the modern-* presets.")
    return LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.ffn_dim,
        num_hidden_layers=config.decoder_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        head_dim=config.head_dim,
        hidden_act="silu",
        max_position_embeddings=config.max_position_embeddings,
        rms_norm_eps=config.norm_eps,
        rope_parameters=dict(config.rope_parameters),
        attention_bias=config.attention_bias,
        mlp_bias=config.mlp_bias,
        attention_dropout=config.attention_dropout,
        initializer_range=config.initializer_range,
        tie_word_embeddings=config.tie_word_embeddings,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
    )


def to_llama_model(model) -> LlamaForCausalLM:
    """A `LlamaForCausalLM` with `model`'s weights (same dtype, shared storage) and generation config."""
    return rebuild_with_weights(model, LlamaForCausalLM, llama_config_from(model.config), key_renames(to_llama=True))


def export_llama(model_dir, output_dir, force: bool = False) -> Path:
    """Load the BigModel checkpoint in `model_dir`, save it as a Llama checkpoint (+ tokenizer) in `output_dir`."""
    from transformers import AutoTokenizer

    from ..modeling_bigmodel import BigModelForCausalLM
    from ..pretrained import check_model_location, one_line_load_errors

    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not force:
        raise ValueError(f"{output_dir} exists and is not empty; choose a new folder or pass --force to replace it.")
    check_model_location(model_dir)
    if Path(model_dir).is_dir():
        model_type = json.loads((Path(model_dir) / "config.json").read_text("utf-8")).get("model_type")
        if model_type != "bigmodel":
            raise ValueError(f"{model_dir} holds a {model_type!r} model; only BigModel checkpoints export here.")
    with one_line_load_errors(model_dir):
        # our own classes, never code shipped with the folder
        config = BigModelConfig.from_pretrained(model_dir, trust_remote_code=False)
        llama_config_from(config)  # refuse before any weights load
        model = BigModelForCausalLM.from_pretrained(model_dir, use_safetensors=True, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    to_llama_model(model).save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir
