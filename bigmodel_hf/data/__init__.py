"""Data for both recipes, up to the tokenizer: load what a user points at (files of many layouts, folders,
Hub names) into the same columns, clean translation pairs with a report of what each rule dropped, and fail
on bad input with one line naming the file, line and fix. Tokenizers are `bigmodel_hf.tokenization`'s job,
batches `bigmodel_hf.batching`'s.
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
