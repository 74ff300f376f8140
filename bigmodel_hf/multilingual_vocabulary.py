"""What a tokenizer shared by many languages learns from: a sample balanced across languages, every character
of the training data, and the format placeholders of software messages; and how well it then cuts each
language (tokens per word, per character for Japanese and Chinese).

A tokenizer trained on all rows of a multilingual corpus spends its vocabulary where the text is: English,
the source of every en-X file, would take most merges. Here each language gives the same number of distinct
texts (as many as the smallest has). The sample may miss rare characters, so the alphabet is taken from all
the training text: no character seen in training encodes as `<unk>`.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping

# printf conversions (%s, %d, %1$s, %-10.3f, %.*s, %lu, %%) and Python/.NET/ICU positional or named fields ({0}, {name})
PLACEHOLDER = re.compile(
    r"%(?:\d+\$)?[-+ #0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|z|j|t|q|I64)?[diouxXeEfFgGaAcsSpn@%]"
    r"|\{\d+\}|\{[A-Za-z_]\w*\}"
)
SCRIPT_WITHOUT_SPACES = ("ja", "zh")  # counted per character, not per word


def texts_by_language(rows: Iterable[tuple[str, str, str, str]]) -> dict[str, list[str]]:
    """(source, target, source_lang, target_lang) rows -> {code: its distinct texts, in first-seen order}."""
    found: dict[str, dict[str, None]] = {}
    for source, target, source_lang, target_lang in rows:
        found.setdefault(source_lang, {})[source] = None
        found.setdefault(target_lang, {})[target] = None
    return {code: list(texts) for code, texts in found.items()}


def balanced_sample(by_language: Mapping[str, list[str]], seed: int = 0, per_language: int | None = None) -> dict[str, list[str]]:
    """The same number of texts from each language: `per_language`, or as many as the smallest has."""
    quota = per_language or min(len(texts) for texts in by_language.values())
    rng = random.Random(seed)
    return {code: (rng.sample(texts, quota) if len(texts) > quota else list(texts))
            for code, texts in by_language.items()}


def alphabet_of(texts: Iterable[str]) -> set[str]:
    """Every character of the texts."""
    chars: set[str] = set()
    for text in texts:
        chars.update(text)
    return chars


def placeholders_in(texts: Iterable[str], min_count: int = 2, limit: int = 200) -> list[str]:
    """The placeholders that occur at least `min_count` times, most frequent first, at most `limit`."""
    counts = Counter(match for text in texts for match in PLACEHOLDER.findall(text))
    return [text for text, count in counts.most_common(limit) if count >= min_count]


def is_spaceless(code: str) -> bool:
    return code.lower().split("_")[0] in SCRIPT_WITHOUT_SPACES


def tokens_per_unit(tokenizer, by_language: Mapping[str, list[str]], limit: int = 2000) -> dict[str, dict]:
    """{code: {"tokens_per_word" or "tokens_per_char": x, "texts": n}} on up to `limit` texts each; EOS not
    counted. Fewer is better: a language cut into many pieces costs more compute and context per sentence."""
    out = {}
    for code, texts in by_language.items():
        texts = texts[:limit]
        if not texts:
            continue
        tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
        spaceless = is_spaceless(code)
        units = sum(len(text.replace(" ", "")) if spaceless else len(text.split()) for text in texts)
        key = "tokens_per_char" if spaceless else "tokens_per_word"
        out[code] = {key: round(tokens / max(units, 1), 3), "texts": len(texts)}
    return out
