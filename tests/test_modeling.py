"""Behaviour of the BigModel family beyond transformers' common suite: presets, saving and loading,
remote code, caches, attention backends, padding, activation checkpointing and bad input."""

import copy
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

from bigmodel_hf import BigModelConfig, BigModelForCausalLM, BigModelForSeq2SeqLM, BigModelModel
from tiny_models import random_ids, tiny_config
from without_package import BLOCK_BIGMODEL_HF, offline_env

HEADS = {True: BigModelForSeq2SeqLM, False: BigModelForCausalLM}
BLOCKS = ["classic", "modern", "learned-gelu"]


def build(block="modern", encoder_decoder=True, seed=0, **overrides):
    torch.manual_seed(seed)
    return HEADS[encoder_decoder](tiny_config(block, encoder_decoder, **overrides)).eval()


def forward_inputs(encoder_decoder: bool, batch=3, length=9):
    if encoder_decoder:
        return {"input_ids": random_ids(batch, length), "decoder_input_ids": random_ids(batch, length - 2, seed=1)}
    return {"input_ids": random_ids(batch, length)}


# ---------------------------------------------------------------- configuration


def test_vaswani_base_preset_is_the_paper_model():
    config = BigModelConfig.from_preset("vaswani-base")
    assert (config.encoder_layers, config.decoder_layers, config.d_model, config.ffn_dim) == (6, 6, 512, 2048)
    assert (config.num_attention_heads, config.norm_position, config.position_embedding) == (8, "post", "sinusoidal")
    assert config.activation == "relu" and config.tie_word_embeddings
    # About 44M parameters with a 32k joint vocabulary (the paper's 65M counts a 37k vocabulary and no tying).
    n_params = BigModelForSeq2SeqLM(config).num_parameters()
    assert 40e6 < n_params < 70e6


def test_modern_preset_is_llama_style_with_gqa():
    config = BigModelConfig.from_preset("modern-small")
    assert (config.norm_type, config.norm_position, config.position_embedding, config.activation) == (
        "rmsnorm", "pre", "rope", "swiglu")
    assert config.num_key_value_heads < config.num_attention_heads


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(d_model=100, num_attention_heads=3), "d_model"),
        (dict(num_attention_heads=8, num_key_value_heads=3), "num_key_value_heads"),
        (dict(activation="tanh"), "activation"),
        (dict(norm_type="batchnorm"), "norm_type"),
        (dict(norm_position="sandwich"), "norm_position"),
        (dict(position_embedding="alibi"), "position_embedding"),
        (dict(dropout=1.5), "dropout"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(encoder_layers=0), "encoder_layers"),
        (dict(pad_token_id=70000), "pad_token_id"),
    ],
)
def test_invalid_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        BigModelConfig(**overrides)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="vaswani-small"):
        BigModelConfig.from_preset("gpt-7")


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize("encoder_decoder", [True, False])
def test_save_load_round_trip_through_auto_classes(tmp_path, encoder_decoder):
    model = build("modern", encoder_decoder)
    inputs = forward_inputs(encoder_decoder)
    model.save_pretrained(tmp_path)
    expected = model(**inputs).logits

    auto_head = AutoModelForSeq2SeqLM if encoder_decoder else AutoModelForCausalLM
    for loader in (HEADS[encoder_decoder], auto_head):
        loaded = loader.from_pretrained(tmp_path).eval()
        assert type(loaded) is HEADS[encoder_decoder]
        torch.testing.assert_close(loaded(**inputs).logits, expected, rtol=0, atol=0)

    # AutoModel gives the matching trunk with every saved weight used and none missing.
    trunk, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert type(trunk) is BigModelModel
    assert hasattr(trunk, "encoder") == encoder_decoder
    assert not info["missing_keys"] and not info["unexpected_keys"]
    hidden = trunk.eval()(**inputs).last_hidden_state
    torch.testing.assert_close(model.lm_head(hidden), expected, rtol=0, atol=0)


@pytest.mark.parametrize("encoder_decoder", [True, False])
def test_tied_weights_are_shared_stored_once_and_survive_resize(tmp_path, encoder_decoder):
    model = build("classic", encoder_decoder)
    assert model.lm_head.weight is model.get_input_embeddings().weight
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        stored = list(f.keys())
    embedding_copies = [k for k in stored if k.endswith("embed_tokens.weight") or k.startswith("lm_head")
                        or k.endswith("shared.weight")]
    assert len(embedding_copies) == 1, embedding_copies

    loaded = HEADS[encoder_decoder].from_pretrained(tmp_path)
    assert loaded.lm_head.weight is loaded.get_input_embeddings().weight
    if encoder_decoder:
        assert loaded.model.encoder.embed_tokens.weight is loaded.model.shared.weight
        assert loaded.model.decoder.embed_tokens.weight is loaded.model.shared.weight

    loaded.resize_token_embeddings(80)
    assert loaded.config.vocab_size == 80
    assert loaded.lm_head.weight.shape[0] == 80
    assert loaded.lm_head.weight is loaded.get_input_embeddings().weight
    assert loaded(**forward_inputs(encoder_decoder)).logits.shape[-1] == 80


def test_untied_config_keeps_separate_output_projection(tmp_path):
    model = build("modern", False, tie_word_embeddings=False)
    assert model.lm_head.weight is not model.get_input_embeddings().weight
    model.save_pretrained(tmp_path)
    loaded = BigModelForCausalLM.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.lm_head.weight, model.lm_head.weight, rtol=0, atol=0)


def test_saved_folder_has_remote_code_and_real_generation_defaults(tmp_path):
    build("modern", True).save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert {"config.json", "model.safetensors", "generation_config.json",
            "modeling_bigmodel.py", "configuration_bigmodel.py"} <= files
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_bigmodel.BigModelConfig",
        "AutoModel": "modeling_bigmodel.BigModelModel",
        "AutoModelForSeq2SeqLM": "modeling_bigmodel.BigModelForSeq2SeqLM",
    }
    generation = json.loads((tmp_path / "generation_config.json").read_text())
    assert generation["max_length"] == 128  # the model's capacity, not transformers' silent 20-token default
    assert generation["decoder_start_token_id"] == 1 and generation["eos_token_id"] == 2


@pytest.mark.parametrize("encoder_decoder", [True, False])
def test_checkpoint_loaded_into_the_wrong_head_fails_clearly(tmp_path, encoder_decoder):
    build("modern", encoder_decoder).save_pretrained(tmp_path)
    wrong = BigModelForCausalLM if encoder_decoder else BigModelForSeq2SeqLM
    wrong_auto = AutoModelForCausalLM if encoder_decoder else AutoModelForSeq2SeqLM
    for loader in (wrong, wrong_auto):
        with pytest.raises(ValueError, match="is_encoder_decoder"):
            loader.from_pretrained(tmp_path)


REMOTE_CODE_RUN = textwrap.dedent("""
    import sys

    import torch
    from transformers import AutoModel, {head}
    folder, inputs_file, out_file, remote = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "remote"
    if not remote:
        import bigmodel_hf  # noqa: F401  (registers the Auto classes)
    inputs = torch.load(inputs_file)
    model = {head}.from_pretrained(folder, trust_remote_code=remote).eval()
    trunk = AutoModel.from_pretrained(folder, trust_remote_code=remote).eval()
    assert type(model).__module__.startswith("transformers_modules" if remote else "bigmodel_hf"), type(model).__module__
    with torch.no_grad():
        torch.save({{"logits": model(**inputs).logits,
                    "generated": model.generate(inputs["input_ids"], max_new_tokens=6, do_sample=False),
                    "trunk": trunk(**inputs).last_hidden_state}}, out_file)
""")


@pytest.mark.parametrize("encoder_decoder", [True, False])
def test_trust_remote_code_load_without_the_package(tmp_path, encoder_decoder):
    """The checkpoint's own code, in a process where `bigmodel_hf` cannot be imported, gives exactly the
    outputs of the package's classes. Both sides run in fresh processes with the same environment (one
    thread): in this test process another library may already have loaded its own OpenMP runtime
    (ctranslate2 does), which changes the order of float sums, not the model."""
    model = build("modern", encoder_decoder)
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    torch.save(forward_inputs(encoder_decoder), tmp_path / "inputs.pt")
    head = "AutoModelForSeq2SeqLM" if encoder_decoder else "AutoModelForCausalLM"
    outputs = {}
    for side, opening in (("remote", BLOCK_BIGMODEL_HF), ("package", "")):
        script = tmp_path / f"load_{side}.py"
        script.write_text(opening + REMOTE_CODE_RUN.format(head=head))
        result = subprocess.run(
            [sys.executable, str(script), str(folder), str(tmp_path / "inputs.pt"), str(tmp_path / f"{side}.pt"), side],
            cwd=tmp_path, env=offline_env(tmp_path), capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[side] = torch.load(tmp_path / f"{side}.pt")
    remote, package = outputs["remote"], outputs["package"]
    torch.testing.assert_close(remote["logits"], package["logits"], rtol=0, atol=0)
    torch.testing.assert_close(remote["trunk"], package["trunk"], rtol=0, atol=0)
    assert torch.equal(remote["generated"], package["generated"])
    # and the package in a fresh process is the model of this test (not a stale or default checkpoint)
    with torch.no_grad():
        torch.testing.assert_close(package["logits"], model(**torch.load(tmp_path / "inputs.pt")).logits,
                                   rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- caches and generation


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("encoder_decoder", [True, False])
def test_cached_and_uncached_greedy_decoding_agree(block, encoder_decoder):
    model = build(block, encoder_decoder)
    prompt = random_ids(3, 6)
    kwargs = dict(max_new_tokens=12, do_sample=False, min_new_tokens=12)
    cached = model.generate(prompt, use_cache=True, **kwargs)
    uncached = model.generate(prompt, use_cache=False, **kwargs)
    assert cached.shape[1] == (13 if encoder_decoder else 18)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("encoder_decoder", [True, False])
def test_stepwise_cached_logits_equal_full_pass(block, encoder_decoder):
    model = build(block, encoder_decoder)
    tokens = random_ids(2, 10, seed=3)
    with torch.no_grad():
        if encoder_decoder:
            source = random_ids(2, 7)
            encoder_outputs = model.get_encoder()(input_ids=source)
            full = model(encoder_outputs=encoder_outputs, decoder_input_ids=tokens).logits
            step = lambda ids, cache: model(encoder_outputs=encoder_outputs, decoder_input_ids=ids, cache=cache,
                                            use_cache=True)
        else:
            full = model(input_ids=tokens).logits
            step = lambda ids, cache: model(input_ids=ids, cache=cache, use_cache=True)
        out = step(tokens[:, :4], None)  # a prefix in one go, then one token at a time
        pieces = [out.logits]
        for t in range(4, tokens.shape[1]):
            out = step(tokens[:, t : t + 1], out.cache)
            pieces.append(out.logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=0, atol=1e-5)


def test_cross_attention_keys_are_computed_once_per_sequence():
    model = build("modern", True)
    calls = []
    hook = model.model.decoder.layers[0].cross_attn.k_proj.register_forward_hook(lambda *a: calls.append(1))
    model.generate(random_ids(2, 5), max_new_tokens=8, min_new_tokens=8, do_sample=False)
    hook.remove()
    assert len(calls) == 1


@pytest.mark.parametrize("encoder_decoder", [True, False])
def test_beam_search_and_sampling_with_cache(encoder_decoder):
    model = build("modern", encoder_decoder)
    prompt = random_ids(2, 5)
    beams = model.generate(prompt, num_beams=4, max_new_tokens=8, num_return_sequences=2, use_cache=True)
    beams_uncached = model.generate(prompt, num_beams=4, max_new_tokens=8, num_return_sequences=2, use_cache=False)
    assert beams.shape[0] == 4
    assert torch.equal(beams, beams_uncached)
    torch.manual_seed(0)
    sampled = model.generate(prompt, do_sample=True, top_k=10, max_new_tokens=8, use_cache=True)
    torch.manual_seed(0)
    sampled_again = model.generate(prompt, do_sample=True, top_k=10, max_new_tokens=8, use_cache=True)
    assert torch.equal(sampled, sampled_again)


# ---------------------------------------------------------------- attention backends and padding


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("encoder_decoder", [True, False])
def test_eager_and_sdpa_attention_agree_with_padding(block, encoder_decoder):
    torch.manual_seed(0)
    config = tiny_config(block, encoder_decoder)
    eager = HEADS[encoder_decoder]._from_config(copy.deepcopy(config), attn_implementation="eager").eval()
    sdpa = HEADS[encoder_decoder]._from_config(copy.deepcopy(config), attn_implementation="sdpa").eval()
    sdpa.load_state_dict(eager.state_dict())
    assert sdpa.config._attn_implementation == "sdpa" and eager.config._attn_implementation == "eager"
    inputs = forward_inputs(encoder_decoder)
    mask = torch.ones_like(inputs["input_ids"])
    if encoder_decoder:
        mask[0, -3:] = 0  # right-padded source
    else:
        mask[0, :3] = 0  # left-padded prompt
    inputs["attention_mask"] = mask
    with torch.no_grad():
        sdpa_logits, eager_logits = sdpa(**inputs).logits, eager(**inputs).logits
    # Padded query positions of a decoder-only batch carry no meaning; compare the real ones.
    keep = slice(None) if encoder_decoder else mask.bool()
    torch.testing.assert_close(sdpa_logits[keep], eager_logits[keep], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("block", BLOCKS)
def test_right_padding_of_sources_does_not_change_translations(block):
    model = build(block, True)
    long, short = random_ids(1, 9, seed=1), random_ids(1, 5, seed=2)
    batch = torch.full((2, 9), model.config.pad_token_id)
    batch[0], batch[1, :5] = long[0], short[0]
    mask = batch.ne(model.config.pad_token_id).long()
    decoder_input_ids = random_ids(2, 6, seed=4)
    with torch.no_grad():
        batched = model(input_ids=batch, attention_mask=mask, decoder_input_ids=decoder_input_ids).logits
        alone = model(input_ids=short, decoder_input_ids=decoder_input_ids[1:]).logits
    torch.testing.assert_close(batched[1:], alone, rtol=1e-5, atol=1e-5)
    generated = model.generate(batch, attention_mask=mask, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    generated_alone = model.generate(short, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    assert torch.equal(generated[1:], generated_alone)


@pytest.mark.parametrize("block", BLOCKS)
def test_left_padded_batch_generation_equals_one_prompt_at_a_time(block):
    model = build(block, False)
    prompts = [random_ids(1, n, seed=n) for n in (7, 4, 2)]
    pad = model.config.pad_token_id
    batch = torch.full((3, 7), pad)
    mask = torch.zeros((3, 7), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        batch[i, 7 - prompt.shape[1]:] = prompt[0]
        mask[i, 7 - prompt.shape[1]:] = 1
    kwargs = dict(max_new_tokens=10, min_new_tokens=10, do_sample=False, pad_token_id=pad)
    batched = model.generate(batch, attention_mask=mask, **kwargs)
    for i, prompt in enumerate(prompts):
        alone = model.generate(prompt, **kwargs)
        assert torch.equal(batched[i, 7:], alone[0, prompt.shape[1]:]), f"prompt {i} diverged"


# ---------------------------------------------------------------- training behaviour


@pytest.mark.parametrize("block", ["classic", "modern"])
@pytest.mark.parametrize("encoder_decoder", [True, False])
def test_activation_checkpointing_gives_the_same_gradients(block, encoder_decoder):
    def gradients(checkpointing: bool):
        model = build(block, encoder_decoder).train()
        if checkpointing:
            model.activation_checkpointing_enable()
        inputs = forward_inputs(encoder_decoder)
        labels = inputs.pop("decoder_input_ids", inputs["input_ids"])
        model(**inputs, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys() and len(plain) > 10
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)


def test_seq2seq_loss_ignores_minus_100_and_honours_num_items_in_batch():
    model = build("modern", True)
    source, labels = random_ids(2, 6), random_ids(2, 5, seed=7)
    padded = labels.clone()
    padded[1, 3:] = -100
    logits = model(input_ids=source, labels=padded).logits
    per_token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), padded, reduction="none", ignore_index=-100)
    mean_loss = model(input_ids=source, labels=padded).loss
    torch.testing.assert_close(mean_loss, per_token.sum() / 8)  # 10 labels, 2 ignored
    summed = model(input_ids=source, labels=padded, num_items_in_batch=torch.tensor(16)).loss
    torch.testing.assert_close(summed, per_token.sum() / 16)
    # The decoder saw the labels shifted right once, with the start token first.
    decoder_inputs = model.prepare_decoder_input_ids_from_labels(padded)
    assert decoder_inputs[:, 0].eq(model.config.decoder_start_token_id).all()
    assert torch.equal(decoder_inputs[0, 1:], labels[0, :-1])
    assert decoder_inputs[1, 4] == model.config.pad_token_id


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("encoder_decoder", [True, False])
def test_out_of_range_token_ids_raise_a_clear_error(encoder_decoder):
    model = build("modern", encoder_decoder)
    inputs = forward_inputs(encoder_decoder)
    inputs["input_ids"][0, 0] = 500
    with pytest.raises(ValueError, match="vocabulary"):
        model(**inputs)


def test_mismatched_attention_mask_raises():
    model = build("modern", True)
    with pytest.raises(ValueError, match="attention_mask"):
        model(input_ids=random_ids(2, 6), attention_mask=torch.ones(2, 4), decoder_input_ids=random_ids(2, 3))


def test_trunk_without_decoder_inputs_explains_what_to_pass():
    trunk = BigModelModel(tiny_config("modern", True))
    with pytest.raises(ValueError, match="decoder_input_ids"):
        trunk(input_ids=random_ids(2, 6))


def test_labels_shape_mismatch_raises():
    model = build("modern", True)
    with pytest.raises(ValueError, match="labels"):
        model(input_ids=random_ids(2, 6), decoder_input_ids=random_ids(2, 4), labels=random_ids(2, 5))


def test_learned_positions_beyond_capacity_raise():
    model = build("learned-gelu", False, max_position_embeddings=8)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(input_ids=random_ids(1, 12))


def test_auto_config_round_trip(tmp_path):
    config = tiny_config("classic", True)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is BigModelConfig
    ignore = {"_name_or_path", "transformers_version"}
    assert {k: v for k, v in loaded.to_dict().items() if k not in ignore} == {
        k: v for k, v in config.to_dict().items() if k not in ignore}
