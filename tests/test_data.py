"""Loading and cleaning (bigmodel_hf.data): every input format, every cleaning rule, every bad input."""

import json
import logging
import unicodedata
from pathlib import Path

import datasets
import pytest

from bigmodel_hf.data import (
    DataError,
    MissingDataFileError,
    clean_translation_dataset,
    load_lm_dataset,
    load_translation_dataset,
    normalize_text,
)
from bigmodel_hf.data import loading

PAIRS = [("Hello there.", "Hola."), ("The cat sleeps.", "El gato duerme."), ("Good night.", "Buenas noches.")]
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def hub_layout(pairs):
    return [{"id": str(i), "translation": {"en": s, "es": t}} for i, (s, t) in enumerate(pairs)]


def as_pairs(ds):
    return list(zip(ds["source"], ds["target"]))


# ---------------------------------------------------------------------------------------- loaders


def test_jsonl_directory_with_hub_layout_keeps_given_splits(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", hub_layout(PAIRS))
    write_jsonl(tmp_path / "dev.jsonl", hub_layout(PAIRS[:1]))
    dd = load_translation_dataset(tmp_path)
    assert list(dd) == ["train", "validation"]
    assert dd["train"].column_names == ["source", "target"]
    assert as_pairs(dd["train"]) == PAIRS and as_pairs(dd["validation"]) == PAIRS[:1]


def test_jsonl_with_named_fields_and_language_keys(tmp_path):
    named = write_jsonl(tmp_path / "named.jsonl", [{"english": s, "spanish": t, "n": 1} for s, t in PAIRS])
    dd = load_translation_dataset(named, source_field="english", target_field="spanish", validation_size=None)
    assert as_pairs(dd["train"]) == PAIRS
    flat = write_jsonl(tmp_path / "flat.jsonl", [{"es": t, "en": s} for s, t in PAIRS])
    assert as_pairs(load_translation_dataset(flat, validation_size=None)["train"]) == PAIRS
    # reversed direction: es -> en from the same Hub-layout file
    hub = write_jsonl(tmp_path / "hub.jsonl", hub_layout(PAIRS))
    reverse = load_translation_dataset(hub, src_lang="es", tgt_lang="en", validation_size=None)
    assert as_pairs(reverse["train"]) == [(t, s) for s, t in PAIRS]


def test_tsv_without_header_keeps_quotes_and_csv_with_header(tmp_path):
    tsv = tmp_path / "train.tsv"
    tsv.write_text('He said "yes".\tDijo "sí".\nGood night.\tBuenas noches.\n', encoding="utf-8")
    assert as_pairs(load_translation_dataset(tsv, validation_size=None)["train"]) == [
        ('He said "yes".', 'Dijo "sí".'), ("Good night.", "Buenas noches.")]
    csv_file = tmp_path / "train.csv"
    csv_file.write_text('target,source\n"Hola, amigo.","Hello, friend."\nAdiós.,Bye.\n', encoding="utf-8")
    assert as_pairs(load_translation_dataset(csv_file, validation_size=None)["train"]) == [
        ("Hello, friend.", "Hola, amigo."), ("Bye.", "Adiós.")]


def test_aligned_text_files_by_prefix_tuple_and_directory(tmp_path):
    # U+2028 inside a sentence must not split it; CRLF endings are accepted.
    (tmp_path / "train.en").write_text("One\u2028line.\r\nTwo.\r\n", encoding="utf-8")
    (tmp_path / "train.es").write_text("Una\u2028línea.\r\nDos.\r\n", encoding="utf-8")
    expected = [("One\u2028line.", "Una\u2028línea."), ("Two.", "Dos.")]
    assert as_pairs(load_translation_dataset(tmp_path / "train", validation_size=None)["train"]) == expected
    pair = (tmp_path / "train.en", tmp_path / "train.es")
    assert as_pairs(load_translation_dataset(pair, validation_size=None)["train"]) == expected
    assert as_pairs(load_translation_dataset(tmp_path, validation_size=None)["train"]) == expected


def test_tsv_and_aligned_readers_write_arrow_files_and_reread_an_edited_file(tmp_path, monkeypatch):
    # rows go to a memory-mapped Arrow file batch by batch, not to Python lists: flat memory at any size
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    tsv = tmp_path / "train.tsv"
    tsv.write_text("a\tb\n", encoding="utf-8")
    (tmp_path / "al.en").write_text("one\n", encoding="utf-8")
    (tmp_path / "al.es").write_text("uno\n", encoding="utf-8")
    for spec, first in ((tsv, [("a", "b")]), (tmp_path / "al", [("one", "uno")])):
        train = load_translation_dataset(spec, validation_size=None)["train"]
        assert as_pairs(train) == first and train.cache_files, spec
    tsv.write_text("a\tb\nc\td\n", encoding="utf-8")  # an edit: new size and time, so read again
    (tmp_path / "al.es").write_text("otro\n", encoding="utf-8")
    assert as_pairs(load_translation_dataset(tsv, validation_size=None)["train"]) == [("a", "b"), ("c", "d")]
    assert as_pairs(load_translation_dataset(tmp_path / "al", validation_size=None)["train"]) == [("one", "otro")]


def test_parquet_with_translation_struct(tmp_path):
    ds = datasets.Dataset.from_list(hub_layout(PAIRS))
    ds.to_parquet(str(tmp_path / "train.parquet"))
    assert as_pairs(load_translation_dataset(tmp_path / "train.parquet", validation_size=None)["train"]) == PAIRS


def test_hub_name_goes_to_load_dataset_with_config(monkeypatch):
    features = datasets.Features({"id": datasets.Value("string"),
                                  "translation": datasets.Translation(languages=["en", "es"])})
    fake = datasets.DatasetDict({
        "train": datasets.Dataset.from_list(hub_layout(PAIRS)[:2], features=features),
        "validation": datasets.Dataset.from_list(hub_layout(PAIRS)[2:], features=features),
    })
    calls = []
    monkeypatch.setattr(loading.datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or fake)
    dd = load_translation_dataset("someorg/opus-en-es", config_name="en-es", revision="main")
    assert calls == [(("someorg/opus-en-es", "en-es"), {"revision": "main"})]
    assert as_pairs(dd["train"]) == PAIRS[:2] and as_pairs(dd["validation"]) == PAIRS[2:]


def test_hub_failure_is_a_data_error(monkeypatch):
    def boom(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(loading.datasets, "load_dataset", boom)
    with pytest.raises(DataError, match="not a local file.*offline"):
        load_translation_dataset("no-such-dataset")


def test_validation_and_test_carved_with_fixed_seed(tmp_path):
    pairs = [(f"sentence {i}", f"frase {i}") for i in range(100)]
    path = write_jsonl(tmp_path / "train.jsonl", hub_layout(pairs))
    a = load_translation_dataset(path, validation_size=0.1, test_size=5, seed=3)
    b = load_translation_dataset(path, validation_size=0.1, test_size=5, seed=3)
    c = load_translation_dataset(path, validation_size=0.1, test_size=5, seed=4)
    assert {k: len(v) for k, v in a.items()} == {"train": 85, "validation": 10, "test": 5}
    assert as_pairs(a["validation"]) == as_pairs(b["validation"]) != as_pairs(c["validation"])
    every = as_pairs(a["train"]) + as_pairs(a["validation"]) + as_pairs(a["test"])
    assert sorted(every) == sorted(pairs)


def test_a_small_file_still_gets_one_validation_row(tmp_path):
    pairs = [(f"sentence {i}", f"frase {i}") for i in range(10)]  # 2% of 10 rounds to none
    split = load_translation_dataset(write_jsonl(tmp_path / "train.jsonl", hub_layout(pairs)), validation_size=0.02)
    assert {k: len(v) for k, v in split.items()} == {"train": 9, "validation": 1}
    one = write_jsonl(tmp_path / "one.jsonl", hub_layout(pairs[:1]))
    with pytest.raises(DataError, match="give a separate validation file"):
        load_translation_dataset(one, validation_size=0.02)


def test_lm_loaders_text_jsonl_parquet(tmp_path):
    txt = tmp_path / "corpus.txt"
    txt.write_text("First doc line one.\nline two.\n\nSecond doc.\n", encoding="utf-8")
    paragraphs = load_lm_dataset(txt, validation_size=None)["train"]["text"]
    assert len(paragraphs) == 2 and paragraphs[1].strip() == "Second doc." and "line two." in paragraphs[0]
    assert len(load_lm_dataset(txt, sample_by="line", validation_size=None)["train"]) >= 3
    docs = write_jsonl(tmp_path / "docs.jsonl", [{"body": "a b c", "id": 1}, {"body": "d e", "id": 2}])
    dd = load_lm_dataset(docs, text_field="body", validation_size=None)
    assert dd["train"].column_names == ["text"] and list(dd["train"]["text"]) == ["a b c", "d e"]
    datasets.Dataset.from_dict({"text": ["x y", "z"]}).to_parquet(str(tmp_path / "train.parquet"))
    assert list(load_lm_dataset(tmp_path / "train.parquet", validation_size=None)["train"]["text"]) == ["x y", "z"]


@pytest.mark.shared_data
def test_shared_corpus_loads_offline():
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present (exists on developer machines and CI)")
    dd = load_translation_dataset(SHARED / "bible_en_es")
    assert len(dd["train"]) == 28627 and len(dd["validation"]) == 1000
    lm = load_lm_dataset(SHARED / "lm_web")
    assert len(lm["train"]) == 1334 and len(lm["validation"]) == 27


# ---------------------------------------------------------------------------------------- bad input


def test_missing_file_and_directory_without_train(tmp_path):
    with pytest.raises(MissingDataFileError, match="nope.jsonl: no such file"):
        load_translation_dataset(tmp_path / "nope.jsonl")
    (tmp_path / "notes.md").write_text("hi")
    with pytest.raises(MissingDataFileError, match="no training file.*notes.md"):
        load_translation_dataset(tmp_path)
    (tmp_path / "train.en").write_text("a\n")
    with pytest.raises(MissingDataFileError, match=r"train\.es: no such file"):
        load_translation_dataset(tmp_path / "train")


def test_missing_columns_and_wrong_languages_are_named(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"foo": "a", "bar": "b"}])
    with pytest.raises(DataError, match=r"x.jsonl: cannot find source/target.*\['foo', 'bar'\]"):
        load_translation_dataset(path)
    with pytest.raises(DataError, match=r"\['english'\] not found"):
        load_translation_dataset(path, source_field="english", target_field="bar")
    hub = write_jsonl(tmp_path / "fr.jsonl", [{"translation": {"en": "a", "fr": "b"}}])
    with pytest.raises(DataError, match=r"languages \['en', 'fr'\], not \['es'\]"):
        load_translation_dataset(hub)
    lm = write_jsonl(tmp_path / "lm.jsonl", [{"content": "a"}])
    with pytest.raises(DataError, match=r"no column 'text'; columns are \['content'\]"):
        load_lm_dataset(lm)


def test_undecodable_bytes_name_line_and_column(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes("good\tbueno\n".encode() + b"caf\xe9\tcaf\xe9\n")
    with pytest.raises(DataError, match=r"train.tsv: line 2, byte column 4: bytes \[e9\] are not valid UTF-8"):
        load_translation_dataset(path)
    (tmp_path / "a.en").write_bytes(b"ok\n\xff\n")
    (tmp_path / "a.es").write_text("ok\nok\n")
    with pytest.raises(DataError, match=r"a.en: line 2, byte column 1"):
        load_translation_dataset(tmp_path / "a")


def test_null_fields_and_bad_json_name_the_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"translation": {"en": "a", "es": "b"}}\n\n{"translation": {"en": null, "es": "c"}}\n')
    with pytest.raises(DataError, match=r"train.jsonl: line 3: field 'translation.en' is missing or null"):
        load_translation_dataset(path)
    path.write_text('{"en": "a", "es": "b"}\n{"en": "a", "es": \n')
    with pytest.raises(DataError, match=r"train.jsonl: line 2, column \d+: not valid JSON"):
        load_translation_dataset(path)
    path.write_text('{"en": 1, "es": "b"}\n')
    with pytest.raises(DataError, match=r"column 'en' holds .*int64.*, not text"):
        load_translation_dataset(path)


def test_wrong_column_count_and_misaligned_files(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("a\tb\nc\td\te\n")
    with pytest.raises(DataError, match=r"train.tsv: line 2: expected 2 tab-separated columns, found 3"):
        load_translation_dataset(path)
    (tmp_path / "t.en").write_text("a\nb\nc\n")
    (tmp_path / "t.es").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"t.en has 3 lines but .*t.es has 2"):
        load_translation_dataset(tmp_path / "t")
    (tmp_path / "t.es").write_text("a\nb\nc\nd\n")  # the longer file second: still counted in full
    with pytest.raises(DataError, match=r"t.en has 3 lines but .*t.es has 4"):
        load_translation_dataset(tmp_path / "t")


def test_unknown_suffix_needs_data_format(tmp_path):
    path = tmp_path / "train.dat"
    path.write_text("a\tb\n")
    with pytest.raises(DataError, match=r"suffix '.dat'.*data_format="):
        load_translation_dataset(path)
    assert as_pairs(load_translation_dataset(path, data_format="tsv", validation_size=None)["train"]) == [("a", "b")]


# ---------------------------------------------------------------------------------------- cleaning


def make_dd(train, validation=None):
    dd = {"train": datasets.Dataset.from_dict({"source": [s for s, _ in train], "target": [t for _, t in train]})}
    if validation is not None:
        dd["validation"] = datasets.Dataset.from_dict(
            {"source": [s for s, _ in validation], "target": [t for _, t in validation]})
    return datasets.DatasetDict(dd)


def test_normalize_text_nfc_and_whitespace():
    decomposed = "Cafe\u0301\u00a0 \t del\u200b  pueblo\x07 "
    assert normalize_text(decomposed) == "Café del pueblo"
    assert unicodedata.is_normalized("NFC", normalize_text(decomposed))
    assert normalize_text("Cafe\u0301", form=None) == "Cafe\u0301"


def test_each_rule_is_counted_and_reported(tmp_path, caplog):
    train = [
        ("Good morning.", "Buenos días."),        # kept
        ("  ", "vacío"),                          # empty (after whitespace clean-up)
        ("x" * 60, "y" * 60),                     # too_long (max_chars=50)
        ("Yes.", "Sí, claro que sí, por supuesto que sí."),  # length_ratio
        ("Amen.", "Amen."),                       # copy
        ("Good morning.", "Buenos  días."),       # duplicate (identical after whitespace clean-up)
        ("See you.", "Hasta luego."),             # eval_overlap
        ("Cafe\u0301 time.", "Hora del cafe\u0301."),  # kept, NFC-composed
    ]
    validation = [("See you.", "Hasta luego."), ("", "")]
    with caplog.at_level(logging.INFO, logger="bigmodel_hf.data"):
        cleaned, report = clean_translation_dataset(make_dd(train, validation), report_dir=tmp_path / "out",
                                                    max_chars=50, max_length_ratio=3.0)
    dropped = report["splits"]["train"]["dropped"]
    assert dropped == {"empty": 1, "too_long": 1, "length_ratio": 1, "copy": 1, "duplicate": 1, "eval_overlap": 1}
    assert as_pairs(cleaned["train"]) == [("Good morning.", "Buenos días."), ("Café time.", "Hora del café.")]
    # validation only loses empty pairs
    assert report["splits"]["validation"]["dropped"]["empty"] == 1
    assert as_pairs(cleaned["validation"]) == [("See you.", "Hasta luego.")]
    on_disk = json.loads((tmp_path / "out" / "cleaning_report.json").read_text(encoding="utf-8"))
    assert on_disk == report
    assert on_disk["splits"]["train"]["rows_in"] == 8 and on_disk["splits"]["train"]["rows_out"] == 2
    assert on_disk["splits"]["train"]["examples"]["copy"] == [["Amen.", "Amen."]]
    line = next(r.getMessage() for r in caplog.records if "cleaning train" in r.getMessage())
    assert "8 -> 2 rows" in line and "duplicate=1" in line and "length_ratio=1" in line


def test_word_and_token_limits_and_disabled_rules():
    train = [("one two three", "uno dos tres"), ("a b c d e f", "a b c d e f g h"), ("same", "same")]
    _, report = clean_translation_dataset(make_dd(train), max_words=5, drop_copies=False)
    assert report["splits"]["train"]["dropped"]["too_long"] == 1 and report["splits"]["train"]["rows_out"] == 2

    class CharTokenizer:  # one token per character plus EOS, like a real tokenizer's call signature
        def __call__(self, texts, add_special_tokens=True):
            return {"input_ids": [[0] * (len(t) + add_special_tokens) for t in texts]}

    _, report = clean_translation_dataset(make_dd(train), max_tokens=14, tokenizer=CharTokenizer())
    assert report["splits"]["train"]["dropped"]["too_long"] == 1  # 15 chars + EOS > 14 >= 13 chars + EOS
    with pytest.raises(ValueError, match="max_tokens needs a tokenizer"):
        clean_translation_dataset(make_dd(train), max_tokens=5)


def test_empty_after_cleaning_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"split 'train' is empty after cleaning .*copy=2.*relax the limits"):
        clean_translation_dataset(make_dd([("a", "a"), ("b", "b")]), report_dir=tmp_path)


def test_extra_columns_survive_cleaning():
    dd = make_dd([("a b", "c d"), ("a b", "c d")])
    dd["train"] = dd["train"].add_column("id", ["x", "y"])
    cleaned, _ = clean_translation_dataset(dd)
    assert cleaned["train"].column_names == ["source", "target", "id"] and list(cleaned["train"]["id"]) == ["x"]
