"""Language pairs of a multilingual model: the `--language_pairs` setting, which rows serve which pair,
the target-language tokens, and how often each pair is drawn.

A pair is written `source-target` with the codes the data uses as keys of its `translation` column
(`en-pt_BR`, `de-en`), so the codes themselves never contain `-`. A row `{"translation": {"en": ..,
"de": ..}}` serves every listed pair whose two languages it holds: one file feeds both en-de and de-en.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .data.errors import DataError

_CODE = re.compile(r"[A-Za-z]{2,3}(_[A-Za-z0-9]{2,4})?")


@dataclass(frozen=True)
class LanguagePair:
    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.source}-{self.target}"


def parse_language_pairs(text: str | Sequence[str]) -> list[LanguagePair]:
    """`"en-es,en-de,es-en"` (or a list of such items) -> pairs in the order given; one clear error otherwise."""
    items = text.split(",") if isinstance(text, str) else [part for item in text for part in str(item).split(",")]
    pairs: list[LanguagePair] = []
    for item in (item.strip() for item in items):
        source, dash, target = item.partition("-")
        if not dash or not _CODE.fullmatch(source) or not _CODE.fullmatch(target):
            raise ValueError(f"language_pairs: {item!r} is not a pair; write source-target with the codes the "
                             "data uses, comma-separated, e.g. en-es,en-pt_BR,de-en")
        if source == target:
            raise ValueError(f"language_pairs: {item!r} translates a language into itself; remove it")
        pair = LanguagePair(source, target)
        if pair in pairs:
            raise ValueError(f"language_pairs: {item!r} is listed twice; list each pair once")
        pairs.append(pair)
    if not pairs:
        raise ValueError("language_pairs is empty; list at least one pair, e.g. en-es")
    return pairs


def languages_of(pairs: Iterable[LanguagePair]) -> list[str]:
    """Every language of the pairs, in order of first appearance."""
    return list(dict.fromkeys(code for pair in pairs for code in (pair.source, pair.target)))


def target_languages(pairs: Iterable[LanguagePair]) -> list[str]:
    """The languages some pair translates into: each gets its own token."""
    return list(dict.fromkeys(pair.target for pair in pairs))


def language_token(code: str) -> str:
    """The token that makes the decoder write `code`, spelled as M2M100 spells its own (`__de__`)."""
    return f"__{code}__"


def pairs_served(file_languages: Iterable[str], pairs: Sequence[LanguagePair]) -> list[LanguagePair]:
    """The listed pairs whose two languages a file's `translation` column holds."""
    held = set(file_languages)
    return [pair for pair in pairs if pair.source in held and pair.target in held]


def check_pairs_have_data(files: Mapping[str, Iterable[str]], pairs: Sequence[LanguagePair]) -> dict[str, list[LanguagePair]]:
    """{file: the languages of its `translation` column} -> {file: pairs it serves}.

    Raises one `DataError` for a file that serves no listed pair (it would be read for nothing) and for a
    pair that no file serves (it would never be trained), before anything is written.
    """
    served = {name: pairs_served(languages, pairs) for name, languages in files.items()}
    for name, languages in files.items():
        if not served[name]:
            raise DataError(f"{name}: its rows hold {sorted(languages)}, which serves none of language_pairs "
                            f"{','.join(map(str, pairs))}; add a pair it serves or leave the file out")
    unserved = [pair for pair in pairs if not any(pair in found for found in served.values())]
    if unserved:
        raise DataError(f"language_pairs: no file holds data for {','.join(map(str, unserved))} (files: "
                        f"{', '.join(files)}); add a file with both languages or remove the pair")
    return served


def route_translations(batch: Mapping[str, list], pairs: Sequence[LanguagePair]) -> dict[str, list[str]]:
    """Batched `datasets.map` body: each row of `translation` dicts becomes one row per pair it serves.

    Output columns: source, target, source_lang, target_lang. Rows come out in input order, and within a row
    in the order of `pairs`; a language missing or empty in a row (None in Arrow) serves no pair there.
    """
    out: dict[str, list[str]] = {"source": [], "target": [], "source_lang": [], "target_lang": []}
    for translation in batch["translation"]:
        for pair in pairs:
            source, target = translation.get(pair.source), translation.get(pair.target)
            if source and target:
                out["source"].append(source)
                out["target"].append(target)
                out["source_lang"].append(pair.source)
                out["target_lang"].append(pair.target)
    return out


def sampling_probabilities(sizes: Mapping[str, int], temperature: float) -> dict[str, float]:
    """Temperature sampling across pairs: p ∝ (n / N) ** (1 / T). T=1 keeps the data's proportions; a larger T
    flattens them toward uniform, so a small pair is seen more often than its share (T=5 is the usual
    multilingual default)."""
    if temperature <= 0:
        raise ValueError(f"language_sampling_temperature must be positive, got {temperature!r}")
    total = sum(sizes.values())
    if total <= 0:
        raise ValueError("no training pairs to sample from")
    weights = {name: (count / total) ** (1.0 / temperature) if count else 0.0 for name, count in sizes.items()}
    norm = sum(weights.values())
    return {name: weight / norm for name, weight in weights.items()}
