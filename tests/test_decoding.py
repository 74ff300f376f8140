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


def test_decoding_settings_fall_back_to_the_models_saved_defaults():
    from transformers import GenerationConfig

    from bigmodel_hf.decoding import FALLBACK_MAX_LENGTH, decoding_settings

    saved = GenerationConfig(num_beams=3, length_penalty=0.6, max_length=8)
    assert decoding_settings(saved) == decoding_settings(saved, None, None, None)
    assert (decoding_settings(saved).num_beams, decoding_settings(saved).length_penalty) == (3, 0.6)
    assert decoding_settings(saved).max_new_tokens == 7  # max_length counts the decoder start token
    given = decoding_settings(saved, num_beams=1, length_penalty=0.0, max_new_tokens=2)
    assert (given.num_beams, given.length_penalty, given.max_new_tokens) == (1, 0.0, 2)  # 0.0 is a value, not unset
    unsaved = GenerationConfig()
    unsaved.max_length = None
    assert decoding_settings(unsaved).max_new_tokens == FALLBACK_MAX_LENGTH - 1


def test_back_translation_decodes_through_the_one_loop_and_cuts_long_inputs(seq2seq, monkeypatch):
    from types import SimpleNamespace

    from bigmodel_hf import decoding
    from bigmodel_hf.training.back_translation import back_translate

    model, tokenizer = seq2seq
    widths = []
    real_encode = decoding._encode
    monkeypatch.setattr(decoding, "_encode", lambda tok, texts, *rest: widths.append(
        real_encode(tok, texts, *rest)["input_ids"].shape[1]) or real_encode(tok, texts, *rest))
    bt = SimpleNamespace(bt_num_beams=1, bt_max_new_tokens=6, bt_batch_size=3, bt_do_sample=False, bt_top_k=0,
                         bt_top_p=1.0, bt_temperature=1.0)
    greedy = back_translate(model, tokenizer, TEXTS, bt, max_source_length=None)
    assert greedy == translate_texts(model, tokenizer, TEXTS, max_new_tokens=6, batch_size=3)
    widths.clear()
    back_translate(model, tokenizer, TEXTS, bt, max_source_length=4)
    assert widths and max(widths) == 4  # the run's max_source_length, not a fixed 128
    sampled = SimpleNamespace(**{**vars(bt), "bt_do_sample": True, "bt_top_k": 5})
    assert back_translate(model, tokenizer, TEXTS, sampled, seed=1) == back_translate(model, tokenizer, TEXTS, sampled,
                                                                                       seed=1)


def test_one_writer_and_one_reader_of_translation_pairs(tmp_path):
    from bigmodel_hf.data import load_translation_dataset
    from bigmodel_hf.data.jsonl import read_json_lines, text_of, translation_line
    from bigmodel_hf.interactive.session import CorrectionLog

    pairs = [("The cat\u2028sleeps.", "El gato duerme."), ("A \"quoted\" word", "Una palabra «citada»")]
    written = tmp_path / "pairs.jsonl"
    written.write_text("".join(translation_line(s, t, "en", "es") for s, t in pairs), "utf-8")
    loaded = load_translation_dataset({"train": str(written)}, src_lang="en", tgt_lang="es", validation_size=None)
    assert list(zip(loaded["train"]["source"], loaded["train"]["target"])) == pairs
    log = CorrectionLog(tmp_path / "corrections.jsonl", "en", "es")
    for source, target in pairs:
        log.append(source, target)
    assert log.path.read_bytes() == written.read_bytes()  # the interactive log writes the same records
    records = read_json_lines(written)
    assert [text_of(r, "en") for r in records] == [s for s, _ in pairs]
    assert text_of({"es": "hola"}, "es") == "hola" and text_of({"source": "x"}, "en", "source") == "x"
    assert text_of({"translation": {"es": "hola"}}, "en") is None and text_of(["no", "object"], "en") is None
