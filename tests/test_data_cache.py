"""`--data_cache_dir`: a second run on the same data and settings reuses the cleaned pairs, the tokenizer and
the tokenised splits (logged as hits); a change of data content or of a setting is a miss."""

import json
import logging

import pytest

from bigmodel_hf.toy_data import toy_translation_pairs
from bigmodel_hf.training.arguments import TokenizerArguments, TranslationDataArguments, ModelArguments
from bigmodel_hf.training.data_cache import DataCache
from bigmodel_hf.training.translation import build_tokenizer, load_parallel_data, tokenize_parallel_data


class Args:  # the TrainingArguments fields tokenizer_for_run reads
    def __init__(self, output_dir):
        self.output_dir, self.should_save, self.world_size = str(output_dir), True, 1

    def main_process_first(self, desc=""):
        import contextlib
        return contextlib.nullcontext()


def write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def prepare(data, output_dir, seed=0):
    """What run_translation does before building the model; returns (raw, tokenizer, tokenized, cache hits)."""
    cache = DataCache.for_run(data, seed)
    raw = load_parallel_data(data, str(output_dir), seed, cache=cache)
    tokenizer = build_tokenizer(ModelArguments(), TokenizerArguments(vocab_size=120, tokenizer_min_frequency=1), raw,
                                Args(output_dir), resuming=False, cache=cache)
    tokenized = tokenize_parallel_data(raw, tokenizer, data, cache)
    return raw, tokenizer, tokenized, dict(cache.hits)


@pytest.fixture()
def files(tmp_path):
    rows = toy_translation_pairs(60, seed=1)
    return write(tmp_path / "train.jsonl", rows), write(tmp_path / "valid.jsonl", rows[:5]), rows


def test_a_second_run_hits_and_any_change_misses(files, tmp_path, caplog):
    train, valid, rows = files
    data = TranslationDataArguments(train_file=str(train), validation_file=str(valid),
                                    data_cache_dir=str(tmp_path / "cache"))
    raw, tokenizer, tokenized, hits = prepare(data, tmp_path / "run1")
    assert hits == {"cleaned pairs": False, "cleaning report": False, "tokenizer": False, "tokenized": False}

    with caplog.at_level(logging.INFO, logger="bigmodel_hf.training.data_cache"):
        raw2, tokenizer2, tokenized2, hits = prepare(data, tmp_path / "run2")
    assert set(hits.values()) == {True}
    assert "data cache: hit, reused for tokenized" in caplog.text
    assert raw2["train"].to_dict() == raw["train"].to_dict()
    assert tokenizer2.get_vocab() == tokenizer.get_vocab()
    assert tokenized2["train"].to_dict() == tokenized["train"].to_dict()
    assert json.loads((tmp_path / "run2" / "cleaning_report.json").read_text("utf-8")) == \
        json.loads((tmp_path / "run1" / "cleaning_report.json").read_text("utf-8"))

    # a setting that changes the tokenised splits only: the earlier stages still hit
    data.max_target_length = 7
    *_, hits = prepare(data, tmp_path / "run3")
    assert hits == {"cleaned pairs": True, "cleaning report": True, "tokenizer": True, "tokenized": False}

    # a setting that changes the pairs: everything misses
    data.source_prefix = "translate: "
    *_, hits = prepare(data, tmp_path / "run4")
    assert not any(hits.values())

    # the same file name with other content: a miss
    data.source_prefix = None
    data.max_target_length = 128
    write(train, rows[:-1])
    raw5, *_, hits = prepare(data, tmp_path / "run5")
    assert not any(hits.values()) and len(raw5["train"]) < len(raw["train"])


def test_without_a_cache_dir_nothing_is_cached(files, tmp_path):
    train, valid, _ = files
    assert DataCache.for_run(TranslationDataArguments(train_file=str(train), validation_file=str(valid)), 0) is None
