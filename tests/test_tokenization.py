"""Tokenizers (bigmodel_hf.tokenization): fixed special ids, EOS appended, identical ids after reload."""

import time
from pathlib import Path

import datasets
import pytest
from transformers import AutoTokenizer

from bigmodel_hf.configuration_bigmodel import BigModelConfig
from bigmodel_hf.data import DataError, load_translation_dataset
from bigmodel_hf.tokenization import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    check_tokenizer_matches_model,
    load_pretrained_tokenizer,
    tokenize_lm_dataset,
    tokenize_translation_dataset,
    train_lm_tokenizer,
    train_translation_tokenizer,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EN = ["the small house is red", "the dog sleeps in the house", "a red dog and a small cat", "the cat is asleep"]
ES = ["la casa pequeña es roja", "el perro duerme en la casa", "un perro rojo y un gato pequeño", "el gato duerme"]
PROBES = ["the red house", "un gato pequeño duerme", "the dog, the cat and the house."]


@pytest.fixture(scope="module")
def pairs():
    return datasets.Dataset.from_dict({"source": EN * 10, "target": ES * 10})


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_translation_tokenizer_ids_eos_and_reload(tmp_path, pairs, model_type):
    tok = train_translation_tokenizer(pairs, vocab_size=120, model_type=model_type, save_dir=tmp_path)
    assert [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    assert [PAD_ID, BOS_ID, EOS_ID, UNK_ID] == [0, 1, 2, 3]
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<pad>", "<s>", "</s>", "<unk>"]
    enc = tok(PROBES[0], text_target=PROBES[1])
    assert enc["input_ids"][-1] == EOS_ID and enc["input_ids"].count(EOS_ID) == 1
    assert enc["labels"][-1] == EOS_ID and enc["labels"][0] != BOS_ID and BOS_ID not in enc["labels"]
    assert tok.decode(enc["labels"], skip_special_tokens=True) == PROBES[1]

    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.get_vocab() == tok.get_vocab() and len(reloaded) == len(tok)
    for text in PROBES:
        assert reloaded(text)["input_ids"] == tok(text)["input_ids"]
    assert [reloaded.pad_token_id, reloaded.bos_token_id, reloaded.eos_token_id, reloaded.unk_token_id] == [0, 1, 2, 3]
    padded = reloaded(PROBES, padding=True)["input_ids"]
    assert padded[0][-1] == PAD_ID  # right padding with id 0


def test_translation_tokenizer_accepts_plain_strings_and_rejects_bad_type(pairs):
    tok = train_translation_tokenizer(EN + ES, vocab_size=100)
    assert tok("the cat")["input_ids"][-1] == EOS_ID
    with pytest.raises(ValueError, match="model_type"):
        train_translation_tokenizer(EN, model_type="wordpiece")
    with pytest.raises(TypeError):
        train_translation_tokenizer("just one string")


def test_lm_tokenizer_is_byte_level(tmp_path):
    tok = train_lm_tokenizer(EN * 5, vocab_size=300, save_dir=tmp_path)
    text = "naïve 🙂 Ωmega"  # characters never seen in training still encode, without <unk>
    ids = tok(text)["input_ids"]
    assert UNK_ID not in ids and ids[-1] == EOS_ID
    assert tok.decode(ids, skip_special_tokens=True) == text
    reloaded = load_pretrained_tokenizer(tmp_path)
    assert reloaded(text)["input_ids"] == ids


def test_tokenize_translation_dataset(pairs):
    tok = train_translation_tokenizer(pairs, vocab_size=120)
    dd = datasets.DatasetDict({"train": pairs, "validation": pairs.select(range(2))})
    out = tokenize_translation_dataset(dd, tok, max_source_length=4, max_target_length=64)
    assert out["train"].column_names == ["input_ids", "attention_mask", "labels"]
    row = out["train"][1]
    assert len(row["input_ids"]) <= 4 and row["input_ids"][-1] == EOS_ID  # truncation keeps EOS
    assert row["labels"] == tok(text_target=ES[1])["input_ids"] and row["labels"][-1] == EOS_ID
    assert len(out["validation"]) == 2


def test_tokenize_lm_dataset_drops_and_counts_empty_docs(caplog):
    tok = train_lm_tokenizer(EN, vocab_size=280)
    docs = datasets.Dataset.from_dict({"text": ["the cat", "  ", "the dog sleeps"]})
    with caplog.at_level("INFO", logger="bigmodel_hf.tokenization"):
        out = tokenize_lm_dataset(datasets.DatasetDict({"train": docs}), tok)
    assert len(out["train"]) == 2 and all(ids[-1] == EOS_ID for ids in out["train"]["input_ids"])
    assert "dropped 1 empty documents of 3" in caplog.text


def test_tokenizer_model_mismatch_is_reported(pairs):
    tok = train_translation_tokenizer(pairs, vocab_size=120)
    check_tokenizer_matches_model(tok, BigModelConfig(vocab_size=len(tok)))
    check_tokenizer_matches_model(tok, BigModelConfig(vocab_size=len(tok) + 8))  # spare rows are fine
    too_small = rf"has {len(tok)} tokens but the model's vocab_size is 50.*vocab_size={len(tok)}"
    with pytest.raises(DataError, match=too_small):
        check_tokenizer_matches_model(tok, BigModelConfig(vocab_size=50))
    with pytest.raises(DataError, match="pad_token_id=0 but model config pad_token_id=5"):
        check_tokenizer_matches_model(tok, BigModelConfig(vocab_size=len(tok), pad_token_id=5))


@pytest.mark.shared_data
def test_training_on_whole_shared_corpus_takes_seconds():
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present (exists on developer machines and CI)")
    train = load_translation_dataset(SHARED / "bible_en_es")["train"]
    start = time.perf_counter()
    tok = train_translation_tokenizer(train, vocab_size=8000)
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"training took {elapsed:.1f}s"
    assert len(tok) == 8000
    # a real subword vocabulary: a common verse needs far fewer tokens than characters
    ids = tok(train[0]["source"])["input_ids"]
    assert len(ids) < len(train[0]["source"]) / 3
