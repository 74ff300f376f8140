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
from .hash_set import HashSet

logger = logging.getLogger(__name__)

RULES = ("empty", "too_long", "length_ratio", "copy", "duplicate", "eval_overlap")
# Verdicts travel as int8 codes (1 byte a pair, in Arrow and numpy): 0 keeps the pair, k drops it by RULES[k - 1].
KEEP = 0
EMPTY, TOO_LONG, LENGTH_RATIO, COPY, DUPLICATE, EVAL_OVERLAP = range(1, len(RULES) + 1)
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
    eval_hashes = HashSet(np.concatenate([ds.with_format("arrow")[_HASH].to_numpy() for split, ds in checked.items()
                                          if split != "train" and drop_eval_overlap] or [np.zeros(0, np.uint64)]))

    # ... then, in order, what depends on the rows before: duplicates and the overlap with evaluation splits
    cleaned, report = {}, {"settings": settings, "splits": {}}
    for split, ds in checked.items():
        full = split in filter_splits
        rules = PairRules(full=full, eval_hashes=eval_hashes if (full and split == "train") else HashSet(), **limits)
        columns = ds.with_format("arrow")
        codes = rules.resolve(columns[_REASON].to_numpy(), columns[_HASH].to_numpy())
        keep = np.flatnonzero(codes == KEEP)
        tally = SplitTally()
        tally.add(ds["source"], ds["target"], codes)
        report["splits"][split] = tally.finish(split)
        extra = [c for c in dataset[split].column_names if c not in ("source", "target")]
        kept = ds.select(keep) if len(keep) < len(ds) else ds
        # the copy of the kept rows runs in the workers too; in the main process alone it is a serial tail
        cleaned[split] = kept.select_columns(["source", "target", *extra]).flatten_indices(
            num_proc=num_proc if num_proc and num_proc > 1 and len(kept) > 1 else None)

    if report_dir is not None:
        write_cleaning_report(report, report_dir)
    return DatasetDict(cleaned), report


_REASON, _HASH = "_cleaning_reason", "_cleaning_hash"


def _check_rows(ds: Dataset, split: str, form, full: bool, tokenizer, limits: dict, num_proc) -> Dataset:
    """`ds` normalised, with each row's one-pair verdict (`_REASON`, a code: KEEP if it passes) and `pair_hash`."""
    missing = [c for c in ("source", "target") if c not in ds.column_names]
    if missing:
        raise DataError(f"dataset lacks column(s) {missing} (has {ds.column_names}); "
                        "load it with load_translation_dataset.")
    rules = PairRules(full=full, tokenizer=tokenizer if full else None, **limits)

    def check(batch):
        src, tgt = normalize_pairs(batch["source"], batch["target"], form)
        codes, keys = rules.row_checks(src, tgt)
        return {"source": src, "target": tgt, _REASON: codes, _HASH: keys}

    features = ds.features.copy()
    features[_REASON], features[_HASH] = Value("int8"), Value("uint64")
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

    def add(self, src, tgt, codes: np.ndarray) -> None:
        """Count a batch's verdict codes; keep the first few dropped pairs of each rule (read from `src`/`tgt`,
        which may be lazy `datasets` columns: only those rows are read)."""
        codes = np.asarray(codes)
        counts = np.bincount(codes, minlength=len(RULES) + 1)
        self.rows_in += len(codes)
        self.rows_out += int(counts[KEEP])
        for code, rule in enumerate(RULES, 1):
            if not counts[code]:
                continue
            self.dropped[rule] += int(counts[code])
            shown = self.examples.setdefault(rule, [])
            for i in np.flatnonzero(codes == code)[: _EXAMPLES_PER_RULE - len(shown)].tolist():
                shown.append([src[i][:200], tgt[i][:200]])

    def as_dict(self) -> dict:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, "dropped": dict(self.dropped),
                "examples": {rule: list(self.examples[rule]) for rule in RULES if rule in self.examples}}

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
    matches names the drop (as a code; see RULES). Remembers the pairs kept so far (as `pair_hash`es, 8 bytes
    each) so `duplicate` spans batches.

    `full=False` (evaluation splits) applies only `empty`.
    """

    def __init__(self, *, full: bool = True, tokenizer=None, max_chars: int | None = 1000, max_words: int | None = None,
                 max_tokens: int | None = None, max_length_ratio: float | None = 3.0, drop_copies: bool = True,
                 drop_duplicates: bool = True, eval_hashes=(), seen=()):
        self.full, self.tokenizer = full, tokenizer
        self.max_chars, self.max_words, self.max_tokens, self.max_ratio = max_chars, max_words, max_tokens, max_length_ratio
        self.drop_copies, self.drop_duplicates = drop_copies, drop_duplicates
        self.eval_hashes = eval_hashes if isinstance(eval_hashes, HashSet) else HashSet(eval_hashes)
        self.seen = HashSet(seen)

    def codes(self, src: list[str], tgt: list[str]) -> np.ndarray:
        """Every rule's verdict on a batch of pairs: an int8 code per pair (KEEP, or the rule that drops it)."""
        return self.resolve(*self.row_checks(src, tgt))

    def row_checks(self, src: list[str], tgt: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The rules that look at one pair only (a code per row, KEEP = passes) and each pair's hash."""
        full, max_chars, max_words, max_tokens, max_ratio = (self.full, self.max_chars, self.max_words,
                                                             self.max_tokens, self.max_ratio)
        if full and self.tokenizer is not None and max_tokens is not None:
            src_tokens, tgt_tokens = _token_counts(self.tokenizer, src), _token_counts(self.tokenizer, tgt)
        else:
            src_tokens = tgt_tokens = None
        codes = np.zeros(len(src), dtype=np.int8)
        for i, (s, t) in enumerate(zip(src, tgt)):
            if not s or not t:
                codes[i] = EMPTY
            elif not full:
                pass
            elif ((max_chars is not None and max(len(s), len(t)) > max_chars)
                  or (max_words is not None and max(len(s.split()), len(t.split())) > max_words)
                  or (src_tokens is not None and max(src_tokens[i], tgt_tokens[i]) > max_tokens)):
                codes[i] = TOO_LONG
            elif max_ratio is not None and max(len(s), len(t)) > max_ratio * min(len(s), len(t)):
                codes[i] = LENGTH_RATIO
            elif self.drop_copies and s == t:
                codes[i] = COPY
        return codes, np.fromiter((pair_hash(s, t) for s, t in zip(src, tgt)), dtype=np.uint64, count=len(src))

    def resolve(self, codes: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Complete `row_checks`' codes as if row by row in order: a passing pair whose hash was kept before (in
        this or an earlier batch) is a `duplicate`; else one that occurs in an evaluation split is an
        `eval_overlap`; else it is kept and remembered. Vectorised: no Python object per row."""
        codes = np.array(codes, dtype=np.int8)  # a copy: the caller's array stays as it was
        if not self.full:
            return codes
        rows = np.flatnonzero(codes == KEEP)
        hashes = np.asarray(keys, dtype=np.uint64)[rows]
        if self.drop_duplicates:
            kept_before = self.seen.contains(hashes)
            codes[rows[kept_before]] = DUPLICATE
            rows, hashes = rows[~kept_before], hashes[~kept_before]
        in_eval = self.eval_hashes.contains(hashes)
        codes[rows[in_eval]] = EVAL_OVERLAP
        rows, hashes = rows[~in_eval], hashes[~in_eval]
        if self.drop_duplicates:  # within the batch, every copy after a hash's first row
            _, first = np.unique(hashes, return_index=True)
            later = np.ones(len(rows), dtype=bool)
            later[first] = False
            codes[rows[later]] = DUPLICATE
            hashes = hashes[first]
        self.seen.add(hashes)
        return codes
