"""Write a `BigModelForSeq2SeqLM` as a CTranslate2 model, straight from our weights through
`ctranslate2.specs` (no detour through another architecture's converter).

    bigmodel-hf export ct2 MODEL_DIR OUT_DIR --quantization int8

OUT_DIR then holds CTranslate2's `model.bin` and vocabularies, the tokenizer files, and
`decoding.json` (beam size, length penalty, max length, source prefix; a multilingual model's `lang_to_id` and
`language_pairs`, whose language token is then given as `target_prefix=[["__de__"]]`), so that

    ctranslate2.Translator(OUT_DIR).translate_batch([tokenizer.convert_ids_to_tokens(tokenizer(text).input_ids)])

works on a machine that has only `ctranslate2` and `tokenizers`/`transformers`. Every block setting maps
onto CTranslate2 4.x's Transformer: post-/pre-norm, LayerNorm/RMSNorm, sinusoidal/learned/rotary positions
(the encoder's too), ReLU/GELU/SiLU and the gated SwiGLU/GeGLU, grouped-query attention, tied or untied
and scaled or unscaled embeddings, biases on or off. What it cannot express (a decoder-only model, scaled
RoPE variants) is refused with the setting named, before anything is written.
"""

import json
import math
from pathlib import Path

import torch

from ..configuration_bigmodel import BigModelConfig
from . import MissingExtra

QUANTIZATIONS = ("int8", "int8_float32", "bfloat16", "float32")
DECODING_FILE = "decoding.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def require_ctranslate2():
    """The `ctranslate2` module, or an ImportError (one line) that says what to install."""
    try:
        import ctranslate2
    except ImportError:
        raise MissingExtra('CTranslate2 is not installed; install it with `pip install "bigmodel-hf[ct2]"` '
                          "(or `pip install ctranslate2`).") from None
    return ctranslate2


def ct2_refusals(config: BigModelConfig) -> list[str]:
    """Why `config` cannot become a CTranslate2 `TransformerSpec` (empty when it can)."""
    refusals = []
    if not config.is_encoder_decoder:
        refusals.append("is_encoder_decoder=False: only encoder-decoders export to CTranslate2's Transformer (use "
                        "`bigmodel-hf export llama` for a decoder-only model)")
    rope_type = (config.rope_parameters or {}).get("rope_type", "default")
    if config.position_embedding == "rope" and rope_type != "default":
        refusals.append(f"rope_parameters.rope_type={rope_type!r}: only plain rotary positions are exported (the "
                        "scaled variants differ between CTranslate2 and transformers); use rope_type 'default' or "
                        "sinusoidal/learned positions (the vaswani-* presets)")
    return refusals


_ACTIVATIONS = {"relu": "RELU", "gelu": "GELU", "silu": "SWISH", "swiglu": "SWISH", "geglu": "GELU"}


def _array(tensor: torch.Tensor):
    return tensor.detach().to(torch.float32).cpu().numpy()


def _linear(spec, layer: torch.nn.Linear) -> None:
    spec.weight = _array(layer.weight)
    if layer.bias is not None:
        spec.bias = _array(layer.bias)


def _fused_linear(spec, layers) -> None:
    """One linear of several (q, k, v or k, v) stacked along the output dimension, as CTranslate2 keeps them."""
    spec.weight = _array(torch.cat([layer.weight for layer in layers]))
    if layers[0].bias is not None:
        spec.bias = _array(torch.cat([layer.bias for layer in layers]))


def _norm(spec, norm) -> None:
    spec.gamma = _array(norm.weight)
    if getattr(norm, "bias", None) is not None:  # LayerNorm; RMSNorm has a scale only
        spec.beta = _array(norm.bias)


def _attention(spec, attention, self_attention: bool) -> None:
    if self_attention:
        _fused_linear(spec.linear[0], [attention.q_proj, attention.k_proj, attention.v_proj])
    else:  # cross-attention: queries from the decoder, keys and values (fused) from the encoder states
        _linear(spec.linear[0], attention.q_proj)
        _fused_linear(spec.linear[1], [attention.k_proj, attention.v_proj])
    _linear(spec.linear[-1], attention.o_proj)


def _feed_forward(spec, mlp, norm) -> None:
    if mlp.gated:  # CTranslate2 activates linear_0 and multiplies by linear_0_noact
        _linear(spec.linear_0, mlp.gate_proj)
        _linear(spec.linear_0_noact, mlp.up_proj)
    else:
        _linear(spec.linear_0, mlp.up_proj)
    _linear(spec.linear_1, mlp.down_proj)
    _norm(spec.layer_norm, norm)


def _position_table(stack, config: BigModelConfig):
    """Absolute positions as a table CTranslate2 adds to the embeddings (position 0 first): our own sinusoids
    or learned rows, so both engines add the very same numbers."""
    embed = stack.embed_inputs
    if config.position_embedding == "learned":
        return _array(embed.embed_positions.weight)
    # CTranslate2's own sinusoids space their frequencies differently; ours, for at least 1024 positions
    positions = torch.arange(sinusoid_positions(config))
    return _array(embed._sinusoids(positions.unsqueeze(0))[0])


def sinusoid_positions(config: BigModelConfig) -> int:
    """Positions the export covers: a learned table's, or (sinusoids, which have no end) at least 1024."""
    if config.position_embedding == "learned":
        return config.max_position_embeddings
    return max(config.max_position_embeddings, 1024)


def _stack_common(spec, stack, config: BigModelConfig, embeddings) -> None:
    embeddings.weight = _array(stack.embed_tokens.weight)
    spec.scale_embeddings = math.sqrt(config.d_model) if config.scale_embedding else 1.0
    if config.position_embedding == "rope":
        # rotary positions live in the attention layers; without this CTranslate2 would add sinusoids
        if hasattr(spec, "position_encodings"):
            delattr(spec, "position_encodings")
    else:
        spec.position_encodings.encodings = _position_table(stack, config)
    if config.norm_position == "pre":
        _norm(spec.layer_norm, stack.norm)


def build_transformer_spec(model, tokenizer):
    """A `ctranslate2.specs.TransformerSpec` holding `model`'s weights and `tokenizer`'s vocabulary."""
    require_ctranslate2()
    from ctranslate2.specs import transformer_spec
    from ctranslate2.specs.common_spec import Activation

    config = model.config
    refusals = ct2_refusals(config)
    if refusals:
        raise ValueError(f"this model cannot be exported to CTranslate2: {'; '.join(refusals)}.")
    block = dict(pre_norm=config.norm_position == "pre", activation=getattr(Activation, _ACTIVATIONS[config.activation]),
                 ffn_glu=config.is_gated_mlp, rms_norm=config.norm_type == "rmsnorm",
                 num_heads_kv=config.num_key_value_heads, head_dim=config.head_dim)
    if config.position_embedding == "rope":
        # rotate_half as transformers does (halves, not interleaved pairs), over the whole head
        block.update(rotary_dim=0, rotary_interleave=False, rotary_base=float(config.rope_parameters["rope_theta"]))
    encoder_spec = transformer_spec.TransformerEncoderSpec(config.encoder_layers, config.num_attention_heads, **block)
    decoder_spec = transformer_spec.TransformerDecoderSpec(config.decoder_layers, config.num_attention_heads, **block)
    spec = transformer_spec.TransformerSpec(encoder_spec, decoder_spec)

    encoder, decoder = model.model.encoder, model.model.decoder
    _stack_common(spec.encoder, encoder, config, spec.encoder.embeddings[0])
    for layer_spec, layer in zip(spec.encoder.layer, encoder.layers):
        _attention(layer_spec.self_attention, layer.self_attn, self_attention=True)
        _norm(layer_spec.self_attention.layer_norm, layer.self_attn_norm)
        _feed_forward(layer_spec.ffn, layer.mlp, layer.mlp_norm)
    _stack_common(spec.decoder, decoder, config, spec.decoder.embeddings)
    for layer_spec, layer in zip(spec.decoder.layer, decoder.layers):
        _attention(layer_spec.self_attention, layer.self_attn, self_attention=True)
        _norm(layer_spec.self_attention.layer_norm, layer.self_attn_norm)
        _attention(layer_spec.attention, layer.cross_attn, self_attention=False)
        _norm(layer_spec.attention.layer_norm, layer.cross_attn_norm)
        _feed_forward(layer_spec.ffn, layer.mlp, layer.mlp_norm)
    _linear(spec.decoder.projection, model.lm_head)

    tokens = vocabulary(tokenizer, config.vocab_size)
    spec.register_source_vocabulary(tokens)
    spec.register_target_vocabulary(tokens)
    add_bos, add_eos = source_specials(tokenizer)
    spec.config.add_source_bos, spec.config.add_source_eos = add_bos, add_eos
    spec.config.bos_token = tokens[config.bos_token_id] if config.bos_token_id is not None else tokenizer.bos_token
    spec.config.eos_token = tokenizer.eos_token
    spec.config.unk_token = tokenizer.unk_token or tokenizer.eos_token
    spec.config.decoder_start_token = tokens[config.decoder_start_token_id]
    spec.config.layer_norm_epsilon = config.norm_eps
    return spec


def vocabulary(tokenizer, vocab_size: int) -> list[str]:
    """Token strings by id; embedding rows past the tokenizer (a padded vocabulary) get placeholder names."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), vocab_size))))
    return tokens + [f"<unused_{i}>" for i in range(len(tokens), vocab_size)]


def source_specials(tokenizer) -> tuple[bool, bool]:
    """Whether the tokenizer puts BOS / EOS around a source, so CTranslate2 adds them to bare tokens too."""
    plain = tokenizer("a b", add_special_tokens=False)["input_ids"]
    full = tokenizer("a b")["input_ids"]
    add_bos = tokenizer.bos_token_id is not None and full[:1] == [tokenizer.bos_token_id] and plain[:1] != full[:1]
    add_eos = tokenizer.eos_token_id is not None and full[-1:] == [tokenizer.eos_token_id] and plain[-1:] != full[-1:]
    if full != [tokenizer.bos_token_id] * add_bos + plain + [tokenizer.eos_token_id] * add_eos:
        raise ValueError("the tokenizer adds special tokens other than BOS/EOS around a source; CTranslate2 "
                         "cannot reproduce that: export with a tokenizer whose post-processor adds only BOS/EOS.")
    return add_bos, add_eos


def decoding_defaults(model, source_prefix: str) -> dict:
    """The generation settings the checkpoint carries, in CTranslate2's names (translate_batch arguments),
    and the longest input and output the position table covers (rotary positions: no limit)."""
    from ..decoding import max_new_tokens_of

    generation = model.generation_config
    limit = sinusoid_positions(model.config) if model.config.position_embedding != "rope" else 0
    defaults = {
        "beam_size": int(generation.num_beams or 1),
        "length_penalty": float(generation.length_penalty if generation.length_penalty is not None else 1.0),
        # generate's max_length counts the start token, CTranslate2's max_decoding_length does not
        "max_decoding_length": max_new_tokens_of(generation),
        "source_prefix": source_prefix,
        "max_positions": limit,
    }
    # a multilingual model: its language tokens go first in CTranslate2's target_prefix (ct2_runtime.py)
    for field in ("lang_to_id", "language_pairs"):
        if getattr(model.config, field, None):
            defaults[field] = getattr(model.config, field)
    return defaults


def export_ct2(model_dir, output_dir, quantization: str = "int8", force: bool = False) -> Path:
    """Export the checkpoint in `model_dir` to a CTranslate2 model folder `output_dir` (see the module doc)."""
    ctranslate2 = require_ctranslate2()
    from transformers import AutoTokenizer

    from ..modeling_bigmodel import BigModelForSeq2SeqLM
    from ..pretrained import check_model_location, one_line_load_errors, source_prefix_of

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"--quantization {quantization!r} is not supported; use one of {list(QUANTIZATIONS)}.")
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not force:
        raise ValueError(f"{output_dir} exists and is not empty; choose a new folder or pass --force to replace it.")
    check_model_location(model_dir)
    model_type = json.loads((Path(model_dir) / "config.json").read_text("utf-8")).get("model_type") \
        if Path(model_dir).is_dir() else None
    if Path(model_dir).is_dir() and model_type != "bigmodel":
        raise ValueError(f"{model_dir} holds a {model_type!r} model; only BigModel checkpoints export here.")
    with one_line_load_errors(model_dir):
        # our own classes, never code shipped with the folder
        config = BigModelConfig.from_pretrained(model_dir, trust_remote_code=False)
        refusals = ct2_refusals(config)
        if refusals:  # before loading any weights
            raise ValueError(f"{model_dir} cannot be exported to CTranslate2: {'; '.join(refusals)}.")
        model = BigModelForSeq2SeqLM.from_pretrained(model_dir, use_safetensors=True, dtype=torch.float32,
                                                     trust_remote_code=False).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    spec = build_transformer_spec(model, tokenizer)

    class _Loaded(ctranslate2.converters.Converter):
        def _load(self):
            return spec

    _Loaded().convert(str(output_dir), quantization=quantization, force=True)
    tokenizer.save_pretrained(output_dir)
    defaults = decoding_defaults(model, source_prefix_of(model.config, model_dir))
    (output_dir / DECODING_FILE).write_text(json.dumps(defaults, indent=2) + "\n", "utf-8")
    return output_dir


def find_ct2_export(model_dir) -> Path | None:
    """The CTranslate2 export of a model folder: the folder itself, or its `ct2/` subfolder; None if neither."""
    for candidate in (Path(model_dir), Path(model_dir) / "ct2"):
        if (candidate / "model.bin").is_file() and (candidate / DECODING_FILE).is_file():
            return candidate
    return None
