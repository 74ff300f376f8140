"""Batched generation from strings: input order kept, left padding for decoder-only, mode restored."""

import pytest
import torch
from tiny_models import tiny_config

from bigmodel_hf import BigModelForCausalLM, BigModelForSeq2SeqLM
from bigmodel_hf.tokenization import train_lm_tokenizer, train_translation_tokenizer
from bigmodel_hf.decoding import continue_texts, translate_texts

TEXTS = ["a b", "the cat sat on the mat and then slept", "one", "dogs run fast in the park today"]




@pytest.fixture(scope="module")
def seq2seq():
    tokenizer = train_translation_tokenizer(TEXTS * 5, vocab_size=60, min_frequency=1)
    torch.manual_seed(0)
    model = BigModelForSeq2SeqLM(tiny_config("classic", vocab_size=len(tokenizer)))
    return model, tokenizer


def test_batched_translations_equal_one_by_one_in_input_order(seq2seq):
    model, tokenizer = seq2seq
    model.train()
    batched = translate_texts(model, tokenizer, TEXTS, max_new_tokens=6, batch_size=3)
    assert model.training  # restored: the sample callback runs in the middle of training
    single = [translate_texts(model, tokenizer, [text], max_new_tokens=6)[0] for text in TEXTS]
    assert batched == single


def test_source_prefix_is_put_before_every_input(seq2seq):
    model, tokenizer = seq2seq
    prefixed = translate_texts(model, tokenizer, TEXTS, max_new_tokens=6, source_prefix="translate: ")
    assert prefixed == translate_texts(model, tokenizer, ["translate: " + t for t in TEXTS], max_new_tokens=6)


def test_causal_continuations_are_left_padded_and_exclude_the_prompt():
    tokenizer = train_lm_tokenizer(TEXTS * 5, vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    model = BigModelForCausalLM(tiny_config("modern", is_encoder_decoder=False, vocab_size=len(tokenizer)))
    batched = continue_texts(model, tokenizer, TEXTS, max_new_tokens=5, batch_size=4)
    single = [continue_texts(model, tokenizer, [text], max_new_tokens=5)[0] for text in TEXTS]
    assert batched == single and tokenizer.padding_side == "right"
    # only the new tokens come back, not the prompt; the prompt does not end with the tokenizer's EOS
    ids = tokenizer(TEXTS[1], return_tensors="pt")["input_ids"]
    assert ids[0, -1] == tokenizer.eos_token_id
    ids = ids[:, :-1]
    new_tokens = model.generate(ids, max_new_tokens=5)[0, ids.shape[1]:]
    assert batched[1] == tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


def test_max_new_tokens_bounds_the_generated_tokens(seq2seq, monkeypatch):
    model, tokenizer = seq2seq
    lengths = []
    generate = model.generate

    def spy(**kwargs):
        out = generate(**kwargs)
        lengths.append(out.shape[1])
        return out

    monkeypatch.setattr(model, "generate", spy)
    translate_texts(model, tokenizer, TEXTS, max_new_tokens=3, batch_size=2)
    assert lengths and max(lengths) == 1 + 3  # decoder start token + 3 new tokens (this model never stops early)
