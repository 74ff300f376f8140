"""GPU code paths checked on CPU: no host-device synchronisation in a training forward or a decoding step.

A Python conversion of a tensor (`int(ids.max())`, `.item()`) breaks a `torch.compile(fullgraph=True)` graph
and, on a GPU, stalls the stream; so the training forward and one cached decoding step must compile as one
graph. `aot_eager` traces forward and backward through dynamo and AOTAutograd exactly as inductor would
(graph breaks are found there) without spending a minute generating C++ on 2 shared cores.
"""

import pytest
import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from bigmodel_hf import BigModelForCausalLM, BigModelForSeq2SeqLM
from bigmodel_hf.modeling_bigmodel import check_token_ids
from tiny_models import random_ids, tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("block", ["classic", "modern"])
def test_seq2seq_training_forward_compiles_as_one_graph(block):
    torch.manual_seed(0)
    model = BigModelForSeq2SeqLM(tiny_config(block)).train()
    ids, labels = random_ids(2, 7), random_ids(2, 5, seed=1)
    ids[1, 5:] = model.config.pad_token_id
    mask = (ids != model.config.pad_token_id).long()
    compiled = torch.compile(lambda i, m, l: model(input_ids=i, attention_mask=m, labels=l).loss,
                             fullgraph=True, backend="aot_eager")
    torch.manual_seed(1)
    loss = compiled(ids, mask, labels)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(1)
    eager = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    eager.backward()
    torch.testing.assert_close(loss, eager, rtol=1e-5, atol=1e-6)  # float32 reassociation only
    for compiled_grad, p in zip(grads, model.parameters()):
        torch.testing.assert_close(compiled_grad, p.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("block", ["classic", "modern"])
@torch.no_grad()
def test_seq2seq_cached_decoding_step_compiles_as_one_graph(block):
    torch.manual_seed(0)
    model = BigModelForSeq2SeqLM(tiny_config(block)).eval()
    encoder_outputs = model.get_encoder()(input_ids=random_ids(2, 7))
    cache = EncoderDecoderCache(DynamicCache(config=model.config), DynamicCache(config=model.config))
    start = torch.full((2, 1), model.config.decoder_start_token_id)
    first = model(encoder_outputs=encoder_outputs, decoder_input_ids=start, cache=cache, use_cache=True)
    next_ids = first.logits[:, -1].argmax(-1, keepdim=True)  # [batch, 1]

    def step(ids):
        return model(encoder_outputs=encoder_outputs, decoder_input_ids=ids, cache=first.past_key_values,
                     use_cache=True).logits

    eager_cache = EncoderDecoderCache(DynamicCache(config=model.config), DynamicCache(config=model.config))
    model(encoder_outputs=encoder_outputs, decoder_input_ids=start, cache=eager_cache, use_cache=True)
    eager = model(encoder_outputs=encoder_outputs, decoder_input_ids=next_ids, cache=eager_cache, use_cache=True).logits
    compiled = torch.compile(step, fullgraph=True, backend="eager")(next_ids)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_causal_lm_cached_decoding_step_compiles_as_one_graph():
    torch.manual_seed(0)
    model = BigModelForCausalLM(tiny_config("modern", is_encoder_decoder=False)).eval()
    prompt = random_ids(2, 6)
    first = model(input_ids=prompt, use_cache=True)
    next_ids = first.logits[:, -1].argmax(-1, keepdim=True)
    compiled = torch.compile(lambda ids: model(input_ids=ids, cache=first.past_key_values, use_cache=True).logits,
                             fullgraph=True, backend="eager")(next_ids)
    full = model(input_ids=torch.cat([prompt, next_ids], 1)).logits[:, -1:]
    torch.testing.assert_close(compiled, full, rtol=1e-4, atol=1e-5)


def test_token_id_check_reads_back_only_cpu_ids():
    """On any other device the check must not convert to Python (a stream stall per forward on a GPU): meta
    tensors have no values, so any read-back raises."""
    check_token_ids(torch.tensor([[4, 5]], device="meta"), vocab_size=64)
    with pytest.raises(ValueError, match=r"token ids in \[4, 70\].*vocabulary is \[0, 64\)"):
        check_token_ids(torch.tensor([[4, 70]]), vocab_size=64)


def test_recipe_trains_with_torch_compile_like_eager(toy_translation_jsonl, tmp_path):
    """`--torch_compile true` through the Trainer (Accelerate compiles the training model; dynamic shapes from
    the token-budget batches). The `aot_eager` backend keeps this test in seconds and goes through the same
    graph capture as inductor (the recipe default, measured in benchmarks/compile_speed.py); losses equal
    eager's within float32 reassociation."""
    import json

    from bigmodel_hf.training.translation import parse_translation_config, run_translation
    from tiny_runs import flags

    def run(output_dir, **extra):
        run_translation(parse_translation_config(flags(
            train_file=toy_translation_jsonl, validation_file=toy_translation_jsonl, clean_data="false",
            output_dir=output_dir, config_overrides="d_model=32,ffn_dim=48,encoder_layers=1,decoder_layers=1,"
            "num_attention_heads=2,dropout=0.0", vocab_size=120, tokenizer_min_frequency=1, max_steps=4,
            warmup_steps=1, learning_rate=5e-3, label_smoothing_factor=0.0, max_tokens=160, eval_steps=4,
            save_steps=4, logging_steps=1, num_beams=1, generation_max_length=12, num_sample_outputs=0,
            report_to="none", use_cpu="true", seed=0, **extra)))
        history = json.loads((output_dir / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
        return [entry["loss"] for entry in history if "loss" in entry]

    from torch._dynamo.utils import counters

    counters.clear()
    eager = run(tmp_path / "eager")
    assert counters["stats"]["unique_graphs"] == 0  # nothing compiled without the flag
    compiled = run(tmp_path / "compiled", torch_compile="true", torch_compile_backend="aot_eager")
    assert counters["stats"]["unique_graphs"] >= 1  # the model's forward was captured
    assert len(compiled) == 4 and compiled == pytest.approx(eager, rel=1e-4)
    assert (tmp_path / "compiled" / "model.safetensors").is_file()
    assert not any(key.startswith("_orig_mod") for key in BigModelForSeq2SeqLM.from_pretrained(
        tmp_path / "compiled").state_dict())
