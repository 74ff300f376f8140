"""Data for both recipes: load, clean, report. Tokenizers live in `bigmodel_hf.tokenization`, batching
in `bigmodel_hf.batching`.

Public API
----------
load_translation_dataset(path_or_name, *, src_lang="en", tgt_lang="es", config_name=None,
        source_field=None, target_field=None, data_format=None, validation_size=0.02, test_size=None,
        seed=0, **hub_kwargs) -> datasets.DatasetDict
    Splits train[/validation/test], string columns `source`, `target`. Accepts a file (.jsonl/.json,
    .tsv, .csv, .parquet), a directory of train.<ext>/validation.<ext>/test.<ext> (or aligned
    train.en + train.es), a prefix `dir/train` of aligned files, a (src_file, tgt_file) tuple, a dict
    {split: any of these}, or a Hub dataset name (+ `config_name`).
load_lm_dataset(path_or_name, *, text_field="text", config_name=None, data_format=None,
        sample_by="paragraph", validation_size=0.02, test_size=None, seed=0, **hub_kwargs)
        -> datasets.DatasetDict
    One string column `text`; .txt/.jsonl/.json/.parquet files, directories, dicts or Hub names.
clean_translation_dataset(dataset, *, report_dir=None, normalization="NFC", max_chars=1000,
        max_words=None, max_tokens=None, tokenizer=None, max_length_ratio=3.0, drop_copies=True,
        drop_duplicates=True, drop_eval_overlap=True, filter_splits=("train",))
        -> tuple[datasets.DatasetDict, dict]
    Writes `<report_dir>/cleaning_report.json` and logs one line per split with per-rule counts.
normalize_text(text, form="NFC") -> str
DataError(ValueError); MissingDataFileError(DataError, FileNotFoundError)
    Raised for bad input, naming file / line / column and the fix.
"""

from .cleaning import RULES, clean_translation_dataset, normalize_text
from .errors import DataError
from .loading import MissingDataFileError, load_lm_dataset, load_translation_dataset

__all__ = [
    "DataError",
    "MissingDataFileError",
    "RULES",
    "clean_translation_dataset",
    "load_lm_dataset",
    "load_translation_dataset",
    "normalize_text",
]
