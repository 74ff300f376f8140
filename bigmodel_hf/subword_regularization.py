"""BPE-dropout (Provilkov et al., 2020) on the training side only.

Dropout lives in a copy of the tokenizer that only the training collator uses: the collator re-encodes
each pair's text every time the pair is batched, so every epoch sees a fresh segmentation. The saved
tokenizer, validation, test and every decode keep the deterministic tokenizer (dropout off).

Batching: the token budget (`max_tokens`) and the length buckets are computed once from the
deterministic encoding. Dropout only ever splits pieces, so re-encoded pairs are a little longer
(measured on bible_en_es at p=0.1: see benchmarks/results/small_data_ablation.md) and a batch can exceed
`max_tokens` by that much; they are truncated to the same `max_source_length` / `max_target_length`.

`tokenizers` draws the dropout from its own unseeded random generator, so a run with BPE-dropout is not
bit-reproducible (the crash-safety guarantee of identical weights after a resume holds with it off).

Public API
----------
dropout_tokenizer(tokenizer, p) -> PreTrainedTokenizerFast      (a copy; `tokenizer` is left unchanged)
with_text_columns(tokenized, raw) -> Dataset                    (adds `source`/`target` for the collator)
SubwordDropoutCollator(collator, tokenizer, max_source_length=None, max_target_length=None)
"""

from __future__ import annotations

from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

TEXT_COLUMNS = ("source", "target")


def dropout_tokenizer(tokenizer: PreTrainedTokenizerFast, p: float) -> PreTrainedTokenizerFast:
    """A copy of a fast BPE tokenizer whose merges are each skipped with probability `p`."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"BPE-dropout must be in (0, 1), got {p}")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not isinstance(backend.model, models.BPE):
        kind = type(backend.model).__name__ if backend is not None else type(tokenizer).__name__
        raise ValueError(f"BPE-dropout needs a fast tokenizer with a BPE model; this one is {kind}. "
                         "Train a BPE tokenizer (tokenizer_type bpe) or set bpe_dropout to 0.")
    copy = Tokenizer.from_str(backend.to_str())  # same vocabulary, merges, added tokens, post-processor
    copy.model.dropout = p
    return PreTrainedTokenizerFast(
        tokenizer_object=copy, pad_token=tokenizer.pad_token, bos_token=tokenizer.bos_token,
        eos_token=tokenizer.eos_token, unk_token=tokenizer.unk_token, padding_side=tokenizer.padding_side,
        model_max_length=tokenizer.model_max_length,
    )


def with_text_columns(tokenized, raw):
    """The tokenized training split with the raw `source`/`target` text beside it, row for row."""
    if len(tokenized) != len(raw):
        raise ValueError(f"tokenized ({len(tokenized)}) and raw ({len(raw)}) splits differ in length")
    for column in TEXT_COLUMNS:
        tokenized = tokenized.add_column(column, list(raw[column]))
    return tokenized


class SubwordDropoutCollator:
    """Re-encode features that carry `source`/`target` text with the dropout tokenizer, then pad with
    `collator`. Features without text (validation, test) pass through unchanged."""

    def __init__(self, collator, tokenizer, max_source_length: int | None = None,
                 max_target_length: int | None = None):
        self.collator, self.tokenizer = collator, tokenizer
        self.max_source_length, self.max_target_length = max_source_length, max_target_length

    def encode(self, sources: list[str], targets: list[str]) -> tuple[list[list[int]], list[list[int]]]:
        source_ids = self.tokenizer(sources, truncation=self.max_source_length is not None,
                                    max_length=self.max_source_length)["input_ids"]
        target_ids = self.tokenizer(text_target=targets, truncation=self.max_target_length is not None,
                                    max_length=self.max_target_length)["input_ids"]
        return source_ids, target_ids

    def __call__(self, features):
        if not features or "source" not in features[0]:
            return self.collator(features)
        source_ids, target_ids = self.encode([f["source"] for f in features], [f["target"] for f in features])
        fresh = [{"input_ids": s, "attention_mask": [1] * len(s), "labels": t} for s, t in zip(source_ids, target_ids)]
        return self.collator(fresh)
