"""Clean translation pairs and report, per split and per rule, how many rows were dropped.

Every row goes through `normalize_text` (Unicode normalisation, control characters removed, runs of
whitespace collapsed to one space, ends stripped). Then the first rule that matches drops it, in this
order: `empty`, `too_long`, `length_ratio`, `copy` (source == target), `duplicate` (an exact pair seen
before in the split), `eval_overlap` (a train pair that also occurs in validation/test). So the
per-rule counts add up to the rows dropped. The report goes to the log (one line per split) and to
`<report_dir>/cleaning_report.json`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict, Value

from .errors import DataError

logger = logging.getLogger(__name__)

RULES = ("empty", "too_long", "length_ratio", "copy", "duplicate", "eval_overlap")
REPORT_NAME = "cleaning_report.json"
_EXAMPLES_PER_RULE = 3

_WHITESPACE = re.compile(r"\s+")
# C0/C1 control characters other than whitespace, the byte-order mark and zero-width space.
_INVISIBLE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ufeff\u200b]")


def normalize_text(text: str, form: str | None = "NFC") -> str:
    """Unicode-normalise (`form`, or not at all with `None`), drop invisible controls, tidy whitespace."""
    if form:
        text = unicodedata.normalize(form, text)
    return _WHITESPACE.sub(" ", _INVISIBLE.sub("", text)).strip()


def clean_translation_dataset(
    dataset: DatasetDict,
    *,
    report_dir: str | Path | None = None,
    normalization: str | None = "NFC",
    max_chars: int | None = 1000,
    max_words: int | None = None,
    max_tokens: int | None = None,
    tokenizer=None,
    max_length_ratio: float | None = 3.0,
    drop_copies: bool = True,
    drop_duplicates: bool = True,
    drop_eval_overlap: bool = True,
    filter_splits: Sequence[str] = ("train",),
    num_proc: int | None = None,
) -> tuple[DatasetDict, dict]:
    """Normalise every split and filter `filter_splits`; return `(cleaned DatasetDict, report dict)`.

    Limits apply to each side separately: `max_chars` characters, `max_words` whitespace words,
    `max_tokens` tokens of `tokenizer` (special tokens included); `None` disables a limit.
    `max_length_ratio` bounds longer/shorter side in characters. Splits outside `filter_splits` are
    normalised and only lose `empty` rows (a pair with an empty side cannot be scored). Raises
    `DataError` if a split ends up empty. `num_proc` processes do the per-row work (the same result as one). The report is `{"settings": ..., "splits": {split:
    {"rows_in", "rows_out", "dropped": {rule: count}, "examples": {rule: [[src, tgt], ...]}}}}`.
    """
    if max_tokens is not None and tokenizer is None:
        raise ValueError("max_tokens needs a tokenizer; pass tokenizer= or use max_chars/max_words.")
    limits = dict(max_chars=max_chars, max_words=max_words, max_tokens=max_tokens, max_length_ratio=max_length_ratio,
                  drop_copies=drop_copies, drop_duplicates=drop_duplicates)
    settings = cleaning_settings(normalization=normalization, tokenizer=tokenizer, drop_eval_overlap=drop_eval_overlap,
                                 filter_splits=filter_splits, **limits)
    # the per-row work (normalising, the rules that look at one pair, its hash) in parallel, in Arrow...
    checked = {split: _check_rows(ds, split, normalization, split in filter_splits, tokenizer, limits, num_proc)
               for split, ds in dataset.items()}
    eval_hashes: set[int] = set()
    if drop_eval_overlap:
        for split, ds in checked.items():
            if split != "train":
                eval_hashes.update(ds.with_format("arrow")[_HASH].to_numpy().tolist())

    # ... then, in order, what depends on the rows before: duplicates and the overlap with evaluation splits
    cleaned, report = {}, {"settings": settings, "splits": {}}
    for split, ds in checked.items():
        full = split in filter_splits
        rules = PairRules(full=full, eval_hashes=eval_hashes if (full and split == "train") else frozenset(), **limits)
        columns = ds.with_format("arrow")
        reasons = rules.resolve(columns[_REASON].to_pylist(), columns[_HASH].to_numpy().tolist())
        keep = [i for i, reason in enumerate(reasons) if reason is None]
        tally = SplitTally()
        tally.add(ds["source"], ds["target"], reasons)
        report["splits"][split] = tally.finish(split)
        extra = [c for c in dataset[split].column_names if c not in ("source", "target")]
        kept = ds.select(keep) if len(keep) < len(ds) else ds
        cleaned[split] = kept.select_columns(["source", "target", *extra]).flatten_indices()

    if report_dir is not None:
        write_cleaning_report(report, report_dir)
    return DatasetDict(cleaned), report


_REASON, _HASH = "_cleaning_reason", "_cleaning_hash"


def _check_rows(ds: Dataset, split: str, form, full: bool, tokenizer, limits: dict, num_proc) -> Dataset:
    """`ds` normalised, with each row's one-pair verdict (`_REASON`, None if it passes) and `pair_hash`."""
    missing = [c for c in ("source", "target") if c not in ds.column_names]
    if missing:
        raise DataError(f"dataset lacks column(s) {missing} (has {ds.column_names}); "
                        "load it with load_translation_dataset.")
    rules = PairRules(full=full, tokenizer=tokenizer if full else None, **limits)

    def check(batch):
        src, tgt = normalize_pairs(batch["source"], batch["target"], form)
        reasons, keys = rules.row_checks(src, tgt)
        return {"source": src, "target": tgt, _REASON: reasons, _HASH: np.array(keys, dtype=np.uint64)}

    features = ds.features.copy()
    features[_REASON], features[_HASH] = Value("string"), Value("uint64")
    return ds.map(check, batched=True, batch_size=1000, features=features, desc=f"cleaning {split}",
                  num_proc=num_proc if num_proc and num_proc > 1 and len(ds) > 1 else None)


def cleaning_settings(*, normalization="NFC", max_chars=1000, max_words=None, max_tokens=None, tokenizer=None,
                      max_length_ratio=3.0, drop_copies=True, drop_duplicates=True, drop_eval_overlap=True,
                      filter_splits=("train",)) -> dict:
    """The settings block of a cleaning report."""
    return dict(normalization=normalization, max_chars=max_chars, max_words=max_words, max_tokens=max_tokens,
                tokenizer=getattr(tokenizer, "name_or_path", None) if tokenizer is not None else None,
                max_length_ratio=max_length_ratio, drop_copies=drop_copies, drop_duplicates=drop_duplicates,
                drop_eval_overlap=drop_eval_overlap, filter_splits=list(filter_splits))


def write_cleaning_report(report: dict, report_dir: str | Path) -> None:
    path = Path(report_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / REPORT_NAME).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def pair_hash(source: str, target: str) -> int:
    """An 8-byte hash of a normalised pair: duplicates are found by it, so memory grows by bytes per pair."""
    # "\0" cannot occur in normalised text (normalize_text removes it), so the join is unambiguous
    return int.from_bytes(hashlib.blake2b(f"{source}\0{target}".encode(), digest_size=8).digest(), "little")


def normalize_pairs(sources, targets, form: str | None = "NFC") -> tuple[list[str], list[str]]:
    return [normalize_text(s, form) for s in sources], [normalize_text(t, form) for t in targets]


class SplitTally:
    """Rows in/out, drops per rule and a few examples of each, added batch by batch."""

    def __init__(self, state: dict | None = None):
        state = state or {}
        self.rows_in, self.rows_out = state.get("rows_in", 0), state.get("rows_out", 0)
        self.dropped = dict(state.get("dropped") or {rule: 0 for rule in RULES})
        self.examples = {rule: list(shown) for rule, shown in (state.get("examples") or {}).items()}

    def add(self, src, tgt, reasons) -> None:
        self.rows_in += len(reasons)
        for i, reason in enumerate(reasons):
            if reason is None:
                self.rows_out += 1
                continue
            self.dropped[reason] += 1
            shown = self.examples.setdefault(reason, [])
            if len(shown) < _EXAMPLES_PER_RULE:
                shown.append([src[i][:200], tgt[i][:200]])

    def as_dict(self) -> dict:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, "dropped": dict(self.dropped),
                "examples": {rule: list(shown) for rule, shown in self.examples.items()}}

    def finish(self, split: str) -> dict:
        """Log the split's line; `DataError` if nothing is left."""
        logger.info("cleaning %s: %d -> %d rows; dropped %s", split, self.rows_in, self.rows_out,
                    " ".join(f"{rule}={n}" for rule, n in self.dropped.items()))
        if not self.rows_out:
            raise DataError(f"split {split!r} is empty after cleaning ({self.rows_in} rows in; dropped "
                            f"{_nonzero(self.dropped)}). Check the data or relax the limits (max_chars, max_words, "
                            "max_tokens, max_length_ratio).")
        return self.as_dict()


def _nonzero(counts: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items() if v) or "nothing"


def _token_counts(tokenizer, texts: list[str]) -> list[int]:
    counts: list[int] = []
    for start in range(0, len(texts), 10_000):
        encoded = tokenizer(texts[start : start + 10_000], add_special_tokens=True)["input_ids"]
        counts.extend(len(ids) for ids in encoded)
    return counts


class PairRules:
    """The rules of one split applied to normalised pairs, batch after batch in order: the first rule that
    matches names the drop. Remembers the pairs kept so far (as `pair_hash`es) so `duplicate` spans batches.

    `full=False` (evaluation splits) applies only `empty`.
    """

    def __init__(self, *, full: bool = True, tokenizer=None, max_chars: int | None = 1000, max_words: int | None = None,
                 max_tokens: int | None = None, max_length_ratio: float | None = 3.0, drop_copies: bool = True,
                 drop_duplicates: bool = True, eval_hashes=frozenset(), seen=()):
        self.full, self.tokenizer = full, tokenizer
        self.max_chars, self.max_words, self.max_tokens, self.max_ratio = max_chars, max_words, max_tokens, max_length_ratio
        self.drop_copies, self.drop_duplicates, self.eval_hashes = drop_copies, drop_duplicates, eval_hashes
        self.seen: set[int] = set(seen)

    def reasons(self, src: list[str], tgt: list[str]) -> list[str | None]:
        return self.resolve(*self.row_checks(src, tgt))

    def row_checks(self, src: list[str], tgt: list[str]) -> tuple[list[str | None], list[int]]:
        """The rules that look at one pair only (a verdict per row, None = passes) and each pair's hash."""
        full, max_chars, max_words, max_tokens, max_ratio = (self.full, self.max_chars, self.max_words,
                                                             self.max_tokens, self.max_ratio)
        if full and self.tokenizer is not None and max_tokens is not None:
            src_tokens, tgt_tokens = _token_counts(self.tokenizer, src), _token_counts(self.tokenizer, tgt)
        else:
            src_tokens = tgt_tokens = None
        reasons: list[str | None] = []
        for i, (s, t) in enumerate(zip(src, tgt)):
            reason = None
            if not s or not t:
                reason = "empty"
            elif not full:
                pass
            elif ((max_chars is not None and max(len(s), len(t)) > max_chars)
                  or (max_words is not None and max(len(s.split()), len(t.split())) > max_words)
                  or (src_tokens is not None and max(src_tokens[i], tgt_tokens[i]) > max_tokens)):
                reason = "too_long"
            elif max_ratio is not None and max(len(s), len(t)) > max_ratio * min(len(s), len(t)):
                reason = "length_ratio"
            elif self.drop_copies and s == t:
                reason = "copy"
            reasons.append(reason)
        return reasons, [pair_hash(s, t) for s, t in zip(src, tgt)]

    def resolve(self, reasons: list[str | None], keys: list[int]) -> list[str | None]:
        """Complete `row_checks`' verdicts, in row order: `duplicate` (a pair kept before, in this or an earlier
        batch) and `eval_overlap`. Remembers the pairs it keeps."""
        if not self.full:
            return list(reasons)
        out: list[str | None] = []
        seen, eval_hashes = self.seen, self.eval_hashes
        for reason, key in zip(reasons, keys):
            if reason is None:
                if self.drop_duplicates and key in seen:
                    reason = "duplicate"
                elif key in eval_hashes:
                    reason = "eval_overlap"
                else:
                    seen.add(key)
            out.append(reason)
        return out
