"""Fine-tuning stock multilingual checkpoints (M2M100, NLLB, mBART-50) on several directions in one run.

These models write the language into the token stream: the encoder input starts with the source-language
token, the labels with the target-language token, and generation forces that token as the first one
(`forced_bos_token_id`). Their tokenizers hold one direction at a time (`src_lang`, `tgt_lang`), which is
why transformers' `run_translation.py` fine-tunes one pair per run. Here each row's own direction sets
them: a batch of rows is tokenised in groups of one direction, and the per-direction evaluation of a
multilingual run (`multilingual.MultilingualTranslationTrainer`) asks `forced_bos_hook` for each direction's
first token, which it hands to `generate()` (transformers 5 reads it from the generation config or the call,
never from the model config). A one-pair run saves its direction in the generation config.

The data's codes (`en`, `pt_BR`, `zh_CN`) become each family's codes through `DATA_CODES`; a code the
checkpoint itself uses (`ron_Latn` for NLLB) is taken as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from datasets import DatasetDict

from .setting_checks import ConfigError

# tokenizer class -> family; the fast/slow spellings of one tokenizer are one family
FAMILIES = {
    "M2M100Tokenizer": "m2m100",
    "NllbTokenizer": "nllb", "NllbTokenizerFast": "nllb",
    "MBart50Tokenizer": "mbart50", "MBart50TokenizerFast": "mbart50",
}
FAMILY_NAMES = {"m2m100": "M2M100", "nllb": "NLLB", "mbart50": "mBART-50"}

# The data's codes (those of ../shared/data/l10n and the usual two-letter ones) -> each family's own.
DATA_CODES = {
    "m2m100": {"en": "en", "es": "es", "de": "de", "fr": "fr", "it": "it", "pt": "pt", "pt_BR": "pt", "ru": "ru",
               "ja": "ja", "zh": "zh", "zh_CN": "zh"},
    "nllb": {"en": "eng_Latn", "es": "spa_Latn", "de": "deu_Latn", "fr": "fra_Latn", "it": "ita_Latn",
             "pt": "por_Latn", "pt_BR": "por_Latn", "ru": "rus_Cyrl", "ja": "jpn_Jpan", "zh": "zho_Hans",
             "zh_CN": "zho_Hans", "zh_TW": "zho_Hant"},
    "mbart50": {"en": "en_XX", "es": "es_XX", "de": "de_DE", "fr": "fr_XX", "it": "it_IT", "pt": "pt_XX",
                "pt_BR": "pt_XX", "ru": "ru_RU", "ja": "ja_XX", "zh": "zh_CN", "zh_CN": "zh_CN"},
}
_NLLB_CODE = re.compile(r"[a-z]{3}_[A-Z][a-z]{3}")


def stock_family(tokenizer) -> str | None:
    """`m2m100`, `nllb` or `mbart50` for those checkpoints' tokenizers; None for any other (ours, Marian...)."""
    return FAMILIES.get(type(tokenizer).__name__)


def checkpoint_family(name: str | None, cache_dir: str | None = None) -> str | None:
    """The family of the checkpoint (or tokenizer) `name`, read from its tokenizer_config.json before anything
    loads; None for any other, or when it cannot be read (loading it then says why)."""
    if not name:
        return None
    from transformers.models.auto.tokenization_auto import get_tokenizer_config

    try:
        return FAMILIES.get(get_tokenizer_config(name, cache_dir=cache_dir).get("tokenizer_class"))
    except (OSError, ValueError):
        return None


def known_codes(tokenizer) -> list[str]:
    """The language codes the checkpoint's tokenizer has a token for, in its own spelling."""
    family = stock_family(tokenizer)
    if family == "nllb":
        return [token for token in tokenizer.all_special_tokens if _NLLB_CODE.fullmatch(token)]
    return list(tokenizer.lang_code_to_id)


def checkpoint_code(tokenizer, code: str) -> str:
    """The data's language `code` in the checkpoint's spelling; one clear error for a language it lacks."""
    family = stock_family(tokenizer)
    known = known_codes(tokenizer)
    mapped = code if code in known else DATA_CODES[family].get(code)
    if mapped not in known:
        raise ConfigError(
            f"language {code!r} is not one of this {FAMILY_NAMES[family]} checkpoint's languages "
            f"({tokenizer.name_or_path or 'its tokenizer'}); it knows {', '.join(known)}: give the language "
            "with one of these codes (--language_pairs, --source_lang/--target_lang)")
    return mapped


def target_token_id(tokenizer, code: str) -> int:
    """The id of the token that makes the decoder write `code` (the data's code): `forced_bos_token_id`."""
    mapped = checkpoint_code(tokenizer, code)
    if stock_family(tokenizer) == "m2m100":  # its language tokens live outside the sentencepiece vocabulary
        return tokenizer.get_lang_id(mapped)
    return tokenizer.convert_tokens_to_ids(mapped)


def check_stock_settings(tokenizer, directions: Iterable[tuple[str, str]], data, tokenizer_args) -> None:
    """Before the model loads: every language of `directions` ((source, target) codes) has a token in the
    checkpoint, and no setting re-encodes text without the language tokens. One error otherwise."""
    for source, target in directions:
        checkpoint_code(tokenizer, source)
        checkpoint_code(tokenizer, target)
    name = FAMILY_NAMES[stock_family(tokenizer)]
    if data.streaming:
        raise ConfigError(f"--streaming tokenises without the language tokens that {name} checkpoints need; "
                          "leave out --streaming to fine-tune one")
    if tokenizer_args.bpe_dropout:
        raise ConfigError(f"--bpe_dropout re-encodes text without the language tokens that {name} checkpoints "
                          "need; leave it at 0 to fine-tune one")


@contextmanager
def tokenizer_direction(tokenizer, source: str, target: str) -> Iterator[None]:
    """The tokenizer set to one direction (the data's codes), and back to what it was afterwards."""
    before = tokenizer.src_lang, tokenizer.tgt_lang
    # src_lang is a property whose setter rewrites the prefix/suffix tokens; tgt_lang is read when labels are made
    tokenizer.src_lang, tokenizer.tgt_lang = checkpoint_code(tokenizer, source), checkpoint_code(tokenizer, target)
    try:
        yield
    finally:
        tokenizer.tgt_lang = before[1]
        if before[0] is not None:
            tokenizer.src_lang = before[0]


def encode_by_direction(batch: dict, tokenizer, max_source_length: int | None = None,
                        max_target_length: int | None = None, direction: tuple[str, str] | None = None) -> dict:
    """Batched `datasets.map` body: rows with source, target, source_lang, target_lang -> input_ids,
    attention_mask, labels, in row order. Rows of one direction are tokenised together, with the tokenizer
    set to that direction, so each row gets its own language tokens. Rows without source_lang/target_lang
    (a bilingual run's) are all of `direction`."""
    size = len(batch["source"])
    languages = zip(batch["source_lang"], batch["target_lang"]) if "target_lang" in batch else [direction] * size
    groups: dict[tuple[str, str], list[int]] = {}
    for row, pair in enumerate(languages):
        groups.setdefault(pair, []).append(row)
    out = {"input_ids": [None] * size, "attention_mask": [None] * size, "labels": [None] * size}
    for (source, target), rows in groups.items():
        with tokenizer_direction(tokenizer, source, target):
            encoded = tokenizer([batch["source"][row] for row in rows], truncation=max_source_length is not None,
                                max_length=max_source_length)
            labels = tokenizer(text_target=[batch["target"][row] for row in rows],
                               truncation=max_target_length is not None, max_length=max_target_length)["input_ids"]
        for position, row in enumerate(rows):
            out["input_ids"][row] = encoded["input_ids"][position]
            out["attention_mask"][row] = encoded["attention_mask"][position]
            out["labels"][row] = labels[position]
    return out


def tokenize_by_direction(dataset, tokenizer, *, max_source_length: int | None = None,
                          max_target_length: int | None = None, num_proc: int | None = None, batch_size: int = 1000,
                          direction: tuple[str, str] | None = None, keep_languages: bool = False):
    """`tokenize_translation_dataset` for stock multilingual checkpoints: a Dataset or DatasetDict of routed
    rows (see `languages.route_translations`), or of plain source/target rows all of `direction` (source,
    target) -> input_ids, attention_mask, labels (other columns dropped; source_lang/target_lang kept with
    `keep_languages`, for batching and evaluating by direction)."""
    columns = next(iter(dataset.values())).column_names if isinstance(dataset, DatasetDict) else dataset.column_names
    columns = [c for c in columns if not (keep_languages and c in ("source_lang", "target_lang"))]
    return dataset.map(encode_by_direction, batched=True, batch_size=batch_size, remove_columns=columns,
                       num_proc=num_proc, fn_kwargs=dict(tokenizer=tokenizer, max_source_length=max_source_length,
                                                         max_target_length=max_target_length, direction=direction))


def set_bilingual_direction(model, tokenizer, source: str, target: str) -> None:
    """A one-pair fine-tune (`--source_lang`/`--target_lang`): the saved tokenizer encodes `source` by default
    and the saved generation config forces `target`'s token, as transformers' run_translation.py leaves them."""
    tokenizer.src_lang, tokenizer.tgt_lang = checkpoint_code(tokenizer, source), checkpoint_code(tokenizer, target)
    model.generation_config.forced_bos_token_id = target_token_id(tokenizer, target)


def forced_bos_hook(tokenizer):
    """`forced_bos_for(target_lang) -> token id` of the per-direction evaluation, for a stock checkpoint."""
    return lambda target_lang: target_token_id(tokenizer, target_lang)
