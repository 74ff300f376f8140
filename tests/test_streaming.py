"""`--streaming` building blocks: the streamed pipeline gives what the map-style one gives on the same data
(rows, cleaning report, tokenizer ids, batches), shares batches between processes fairly, and resumes."""

import copy
import json
from collections import Counter
from pathlib import Path

import pytest

from bigmodel_hf.batching import TokenBudgetBatchSampler, column_lengths
from bigmodel_hf.data import DataError, clean_translation_dataset, load_translation_dataset
from bigmodel_hf.streaming import StreamingBatches, TranslationStream, eval_pair_hashes, sample_pairs
from bigmodel_hf.tokenization import tokenize_translation_dataset, train_translation_tokenizer

WORDS = "the cat dog sees a red blue house near small big river walks sleeps old new".split()
PALABRAS = "el gato perro ve una roja azul casa cerca pequeña grande río camina duerme viejo nuevo".split()


def sentence(words, i, n):
    return " ".join(words[(i * 7 + k * 3) % len(words)] for k in range(n)) + f" {i}."


def corpus(rows=240):
    pairs = [(sentence(WORDS, i, 2 + i % 9), sentence(PALABRAS, i, 2 + (i * 5) % 11)) for i in range(rows)]
    pairs[10] = pairs[3]                      # duplicate
    pairs[20] = ("  ", "vacío")               # empty
    pairs[30] = ("Same text.", "Same text.")  # copy
    pairs[40] = ("a", "una frase mucho más larga que la otra")  # length ratio
    pairs[50] = ("Hello\u00a0 there.", "Hola.")  # normalised: equals the validation pair below
    return pairs


def write_jsonl(path: Path, pairs) -> Path:
    path.write_text("".join(json.dumps({"translation": {"en": s, "es": t}}, ensure_ascii=False) + "\n"
                            for s, t in pairs), encoding="utf-8")
    return path


@pytest.fixture()
def data(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", corpus())
    validation = write_jsonl(tmp_path / "valid.jsonl", [("Hello there.", "Hola."), ("The end.", "El fin.")])
    raw = load_translation_dataset({"train": train, "validation": validation})
    cleaned, report = clean_translation_dataset(raw)
    tokenizer = train_translation_tokenizer(cleaned["train"], vocab_size=120, min_frequency=1)
    return train, cleaned, report, tokenizer


def one_epoch(batches: StreamingBatches) -> list[list[dict]]:
    """The batches of epoch 0 (the iterable itself never ends)."""
    out = []
    for batch in batches:
        if batches.state_dict()["epoch"] > 0:
            break
        out.append(batch)
    return out


def example_key(feature) -> tuple:
    return tuple(feature["input_ids"]), tuple(feature["labels"])


def batch_multiset(batches) -> Counter:
    return Counter(tuple(sorted(example_key(f) for f in batch)) for batch in batches)


def test_streamed_rows_report_and_tokenizer_equal_map_style(data):
    train, cleaned, report, tokenizer = data
    hashes = eval_pair_hashes(cleaned)
    assert report["splits"]["train"]["dropped"]["eval_overlap"] == 1  # the fixture exercises every rule
    assert all(report["splits"]["train"]["dropped"][rule] >= 1 for rule in ("duplicate", "empty", "copy", "length_ratio"))

    sample = sample_pairs(TranslationStream(train), 10_000, hashes)
    assert list(zip(sample["source"], sample["target"])) == list(zip(cleaned["train"]["source"], cleaned["train"]["target"]))
    streamed_tokenizer = train_translation_tokenizer(sample, vocab_size=120, min_frequency=1)
    assert streamed_tokenizer.get_vocab() == tokenizer.get_vocab()

    stream = StreamingBatches(TranslationStream(train), tokenizer, max_tokens=64, buffer_size=10_000, eval_hashes=hashes)
    epoch = one_epoch(stream)
    report_streamed = stream.cleaning_report()
    assert report_streamed["complete"] is True
    assert report_streamed["splits"]["train"] == report["splits"]["train"]

    # one chunk holds all the data: the batches are the map-style sampler's, in another order
    tokenized = tokenize_translation_dataset(cleaned, tokenizer)["train"]
    sampler = TokenBudgetBatchSampler(column_lengths(tokenized), 64, seed=0, num_replicas=1, rank=0)
    mapped = [[tokenized[i] for i in batch] for batch in sampler]
    assert batch_multiset(epoch) == batch_multiset(mapped)
    assert len(epoch) > 3


def test_small_buffer_keeps_every_row_once_per_epoch_within_the_budget(data):
    train, cleaned, _report, tokenizer = data
    hashes = eval_pair_hashes(cleaned)
    stream = StreamingBatches(TranslationStream(train), tokenizer, max_tokens=48, buffer_size=50, eval_hashes=hashes)
    first = one_epoch(stream)
    tokenized = tokenize_translation_dataset(cleaned, tokenizer)["train"]
    expected = Counter(example_key(f) for f in tokenized)
    assert Counter(example_key(f) for batch in first for f in batch) == expected
    for batch in first:
        longest = max(max(len(f["input_ids"]), len(f["labels"])) for f in batch)
        assert longest * len(batch) <= 48


def test_two_ranks_get_disjoint_shares_with_equal_step_counts(data):
    train, cleaned, _report, tokenizer = data
    hashes = eval_pair_hashes(cleaned)
    ranks = [StreamingBatches(TranslationStream(train), tokenizer, max_tokens=48, buffer_size=70, eval_hashes=hashes,
                              rank=r, world_size=2, seed=3) for r in (0, 1)]
    shares = [one_epoch(r) for r in ranks]
    assert len(shares[0]) == len(shares[1]) > 2
    seen = [Counter(example_key(f) for batch in share for f in batch) for share in shares]
    assert not set(seen[0]) & set(seen[1])
    tokenized = tokenize_translation_dataset(cleaned, tokenizer)["train"]
    assert seen[0] + seen[1] == Counter(example_key(f) for f in tokenized)


def test_a_resumed_stream_continues_with_the_next_batch(data):
    train, cleaned, _report, tokenizer = data
    hashes = eval_pair_hashes(cleaned)

    def make():
        return StreamingBatches(TranslationStream(train), tokenizer, max_tokens=48, buffer_size=60, eval_hashes=hashes)

    per_epoch = len(one_epoch(make()))
    total = per_epoch + 20  # into the second epoch
    whole = make()
    iterator = iter(whole)
    expected = [next(iterator) for _ in range(total)]
    assert whole.state_dict()["epoch"] == 1

    for stop in (1, per_epoch // 2, per_epoch + 5):  # inside the first chunk, inside a later one, in epoch 2
        killed = make()
        iterator = iter(killed)
        got = [next(iterator) for _ in range(stop)]
        assert (stop == 1) == (killed.state_dict()["chunk"] == 0 and killed.state_dict()["epoch"] == 0)
        saved = json.loads(json.dumps(copy.deepcopy(killed.state_dict()), default=lambda a: a.tolist()))
        resumed = make()
        resumed.load_state_dict(saved)
        iterator = iter(resumed)
        got += [next(iterator) for _ in range(total - stop)]
        assert [[example_key(f) for f in b] for b in got] == [[example_key(f) for f in b] for b in expected], stop
    assert resumed.cleaning_report()["complete"] is True


def test_bad_record_in_a_stream_is_named_by_line(tmp_path, data):
    _train, cleaned, _report, tokenizer = data
    lines = [json.dumps({"translation": {"en": f"s {i}", "es": f"t {i}"}}) for i in range(2500)]
    lines[2100] = json.dumps({"translation": {"en": "only one side"}})
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl: line 2101: field 'translation.es'"):
        one_epoch(StreamingBatches(TranslationStream(bad), tokenizer, max_tokens=64))
    lines[2100] = '{"translation": {"en": "broken'
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl: line 2101, column \d+: not valid JSON"):
        one_epoch(StreamingBatches(TranslationStream(bad), tokenizer, max_tokens=64))
