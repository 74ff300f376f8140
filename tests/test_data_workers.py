"""`--preprocessing_num_workers`: cleaning and tokenising with 2 processes give exactly what 1 gives."""

import pytest
from datasets import Dataset, DatasetDict

from bigmodel_hf.data import clean_translation_dataset
from bigmodel_hf.data.stages import StageLog
from bigmodel_hf.tokenization import tokenize_translation_dataset, train_translation_tokenizer


def pairs(rows: int):
    out = [(f"sentence {i} of the book .", f"frase {i} del libro .") for i in range(rows)]
    for i in range(0, rows, 97):
        out[i] = out[i // 3]           # duplicates, some across the 1000-row batches and the workers' shards
    out[5], out[1500], out[2100] = ("", "vacía"), ("Same.", "Same."), ("a", "una frase demasiado larga para a")
    out[2600] = ("the held out pair .", "el par apartado .")  # also in validation
    return out


@pytest.fixture(scope="module")
def raw():
    train = pairs(3000)
    validation = [("the held out pair .", "el par apartado ."), ("one more .", "uno más .")]
    return DatasetDict({split: Dataset.from_dict({"source": [s for s, _ in rows], "target": [t for _, t in rows]})
                        for split, rows in (("train", train), ("validation", validation))})


def test_two_workers_clean_and_tokenise_exactly_like_one(raw, tmp_path):
    one, report_one = clean_translation_dataset(raw, num_proc=None)
    two, report_two = clean_translation_dataset(raw, num_proc=2)
    assert report_one == report_two
    dropped = report_one["splits"]["train"]["dropped"]
    assert dropped["duplicate"] >= 20 and dropped["eval_overlap"] == 1 and dropped["empty"] == dropped["copy"] == 1
    for split in one:
        assert one[split]["source"][:] == two[split]["source"][:] and one[split]["target"][:] == two[split]["target"][:]
    tokenizer = train_translation_tokenizer(one["train"], vocab_size=150, min_frequency=1)
    tok_one = tokenize_translation_dataset(one, tokenizer, num_proc=None)
    tok_two = tokenize_translation_dataset(two, tokenizer, num_proc=2)
    for split in tok_one:
        assert tok_one[split].to_dict() == tok_two[split].to_dict()


def test_a_stage_reports_rows_seconds_and_rate(caplog):
    stages = StageLog()
    with caplog.at_level("INFO", logger="bigmodel_hf.data.stages"):
        with stages.stage("clean", rows_in=1000, workers=2) as record:
            record["rows_out"] = 990
    (only,) = stages.as_list()
    assert only["rows_in"] == 1000 and only["rows_out"] == 990 and only["workers"] == 2
    assert only["seconds"] >= 0 and (only["rows_per_second"] is None or only["rows_per_second"] > 0)
    assert "data stage clean: 1000 -> 990 rows" in caplog.text
