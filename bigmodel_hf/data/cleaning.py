"""Clean translation pairs and report, per split and per rule, how many rows were dropped.

Every row goes through `normalize_text` (Unicode normalisation, control characters removed, runs of
whitespace collapsed to one space, ends stripped). Then the first rule that matches drops it, in this
order: `empty`, `too_long`, `length_ratio`, `copy` (source == target), `duplicate` (an exact pair seen
before in the split), `eval_overlap` (a train pair that also occurs in validation/test). So the
per-rule counts add up to the rows dropped. The report goes to the log (one line per split) and to
`<report_dir>/cleaning_report.json`.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from datasets import Dataset, DatasetDict

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
) -> tuple[DatasetDict, dict]:
    """Normalise every split and filter `filter_splits`; return `(cleaned DatasetDict, report dict)`.

    Limits apply to each side separately: `max_chars` characters, `max_words` whitespace words,
    `max_tokens` tokens of `tokenizer` (special tokens included); `None` disables a limit.
    `max_length_ratio` bounds longer/shorter side in characters. Splits outside `filter_splits` are
    normalised and only lose `empty` rows (a pair with an empty side cannot be scored). Raises
    `DataError` if a split ends up empty. The report is `{"settings": ..., "splits": {split:
    {"rows_in", "rows_out", "dropped": {rule: count}, "examples": {rule: [[src, tgt], ...]}}}}`.
    """
    if max_tokens is not None and tokenizer is None:
        raise ValueError("max_tokens needs a tokenizer; pass tokenizer= or use max_chars/max_words.")
    settings = dict(normalization=normalization, max_chars=max_chars, max_words=max_words, max_tokens=max_tokens,
                    tokenizer=getattr(tokenizer, "name_or_path", None) if tokenizer is not None else None,
                    max_length_ratio=max_length_ratio, drop_copies=drop_copies, drop_duplicates=drop_duplicates,
                    drop_eval_overlap=drop_eval_overlap, filter_splits=list(filter_splits))
    normalized = {split: _normalize_split(ds, normalization) for split, ds in dataset.items()}

    eval_pairs: set = set()
    if drop_eval_overlap:
        for split, (src, tgt) in normalized.items():
            if split != "train":
                eval_pairs.update(zip(src, tgt))

    cleaned, report = {}, {"settings": settings, "splits": {}}
    for split, ds in dataset.items():
        src, tgt = normalized[split]
        full = split in filter_splits
        reasons = _drop_reasons(src, tgt, tokenizer if full else None, full,
                                max_chars, max_words, max_tokens, max_length_ratio, drop_copies, drop_duplicates,
                                eval_pairs if (full and split == "train") else set())
        keep = [i for i, reason in enumerate(reasons) if reason is None]
        dropped = {rule: 0 for rule in RULES}
        examples: dict[str, list] = {}
        for i, reason in enumerate(reasons):
            if reason is not None:
                dropped[reason] += 1
                shown = examples.setdefault(reason, [])
                if len(shown) < _EXAMPLES_PER_RULE:
                    shown.append([src[i][:200], tgt[i][:200]])
        stats = {"rows_in": len(src), "rows_out": len(keep), "dropped": dropped, "examples": examples}
        report["splits"][split] = stats
        logger.info("cleaning %s: %d -> %d rows; dropped %s", split, len(src), len(keep),
                    " ".join(f"{rule}={n}" for rule, n in dropped.items()))
        if not keep:
            raise DataError(f"split {split!r} is empty after cleaning ({len(src)} rows in; dropped "
                            f"{_nonzero(dropped)}). Check the data or relax the limits (max_chars, max_words, "
                            "max_tokens, max_length_ratio).")
        out = Dataset.from_dict({"source": [src[i] for i in keep], "target": [tgt[i] for i in keep]})
        extra = [c for c in ds.column_names if c not in ("source", "target")]
        if extra:
            kept = ds.select(keep)
            for column in extra:
                out = out.add_column(column, list(kept[column]), feature=ds.features[column])
        cleaned[split] = out

    if report_dir is not None:
        path = Path(report_dir)
        path.mkdir(parents=True, exist_ok=True)
        (path / REPORT_NAME).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return DatasetDict(cleaned), report


def _nonzero(counts: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items() if v) or "nothing"


def _normalize_split(ds: Dataset, form: str | None) -> tuple[list[str], list[str]]:
    missing = [c for c in ("source", "target") if c not in ds.column_names]
    if missing:
        raise DataError(f"dataset lacks column(s) {missing} (has {ds.column_names}); "
                        "load it with load_translation_dataset.")
    return ([normalize_text(s, form) for s in ds["source"]], [normalize_text(t, form) for t in ds["target"]])


def _token_counts(tokenizer, texts: list[str]) -> list[int]:
    counts: list[int] = []
    for start in range(0, len(texts), 10_000):
        encoded = tokenizer(texts[start : start + 10_000], add_special_tokens=True)["input_ids"]
        counts.extend(len(ids) for ids in encoded)
    return counts


def _drop_reasons(src, tgt, tokenizer, full, max_chars, max_words, max_tokens, max_ratio, drop_copies,
                  drop_duplicates, eval_pairs) -> list[str | None]:
    if full and tokenizer is not None and max_tokens is not None:
        src_tokens, tgt_tokens = _token_counts(tokenizer, src), _token_counts(tokenizer, tgt)
    else:
        src_tokens = tgt_tokens = None
    seen: set = set()
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
        elif drop_copies and s == t:
            reason = "copy"
        elif drop_duplicates and (s, t) in seen:
            reason = "duplicate"
        elif (s, t) in eval_pairs:
            reason = "eval_overlap"
        if full and reason is None:
            seen.add((s, t))
        reasons.append(reason)
    return reasons
