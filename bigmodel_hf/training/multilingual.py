"""A multilingual translation run (`--language_pairs`): the data of several files routed to the pairs they
serve, one target-language token per target language in the labels, pairs drawn by temperature inside the
token-budget batches, and evaluation one direction at a time.

The rows every step passes on have the columns source, target, source_lang, target_lang
(`languages.route_translations`). Which token starts a direction's output is asked of one hook,
`forced_bos_for(target_lang) -> token id`: for our models it is the language token's id; a stock model family
supplies its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import datasets
from datasets import DatasetDict, concatenate_datasets

from ..data import clean_translation_dataset
from ..data.errors import DataError
from ..data.loading import TRANSLATION_FORMATS, load_translation_rows
from ..language_batches import LanguageMixBatchSampler
from ..languages import (
    LanguagePair, check_pairs_have_data, language_token, pairs_served, parse_language_pairs, route_translations,
    target_languages,
)
from ..batching import column_lengths
from ..multilingual_vocabulary import alphabet_of, balanced_sample, placeholders_in, texts_by_language, tokens_per_unit
from .evaluation import TranslationMetrics
from .setting_checks import ConfigError
from .trainers import TranslationTrainer

logger = logging.getLogger(__name__)

DEFAULT_TEMPERATURE = 5.0  # with several pairs; fairseq's and M2M-100's usual setting
AVERAGED = ("loss", "bleu", "chrf", "gen_len")  # per-direction metrics whose mean is the run's


def data_files(value: str | None) -> list[str]:
    """`--train_file a.jsonl,b.jsonl` -> the files, in order (one file stays one file)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def multilingual_pairs(data) -> list[LanguagePair] | None:
    """The run's pairs, or None for a bilingual run (no `--language_pairs`)."""
    text = getattr(data, "language_pairs", None)
    if not text:
        return None
    try:
        return parse_language_pairs(text)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def column(split, name: str) -> list:
    """A column as a list, read in one go (iterating a `datasets` Column fetches row by row: minutes on 500k rows)."""
    return split[name][:]


def direction_of(row_or_source, target_lang: str | None = None) -> str:
    """"en-de" for a row (its source_lang/target_lang) or for two codes."""
    if target_lang is None:
        return f"{row_or_source['source_lang']}-{row_or_source['target_lang']}"
    return f"{row_or_source}-{target_lang}"


def _file_languages(path: str) -> list[str]:
    """The language codes of a file's `translation` column, read from its first record (nothing is written)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"{path}: no such file (listed in --train_file/--validation_file, comma-separated).")
    if TRANSLATION_FORMATS.get(file.suffix.lower()) == "parquet":
        import pyarrow.parquet as pq

        field = pq.read_schema(file).field("translation") if "translation" in pq.read_schema(file).names else None
        return [child.name for child in field.type] if field is not None and hasattr(field.type, "__iter__") else []
    with open(file, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    raise DataError(f"{path}: line 1 is not a JSON object; a multilingual file holds JSON Lines "
                                    "{\"translation\": {\"en\": ..., \"de\": ...}}") from None
                translation = record.get("translation") if isinstance(record, dict) else None
                if not isinstance(translation, dict):
                    raise DataError(f"{path}: rows have no 'translation' object; write them as "
                                    "{\"translation\": {\"en\": ..., \"de\": ...}}")
                return list(translation)
    raise DataError(f"{path} is empty (no rows); give a file with rows or leave it out.")


def check_multilingual_settings(data, args) -> list[LanguagePair] | None:
    """Before anything is written: the pairs parse, every listed file exists and serves a pair, and every pair
    has training data. Returns the pairs (None for a bilingual run)."""
    pairs = multilingual_pairs(data)
    if pairs is None:
        return None
    if data.dataset_name or not data.train_file:
        raise ConfigError("--language_pairs reads local files: give --train_file (several comma-separated), "
                          "not --dataset_name")
    if data.streaming:
        raise ConfigError("--language_pairs does not stream yet; leave out --streaming")
    check_pairs_have_data({name: _file_languages(name) for name in data_files(data.train_file)}, pairs)
    for split in ("validation", "test"):
        for name in data_files(getattr(data, f"{split}_file", None)):
            languages = _file_languages(name)
            if not pairs_served(languages, pairs):
                raise DataError(f"{name}: its rows hold {sorted(languages)}, which serves none of language_pairs "
                                f"{','.join(map(str, pairs))}; add a pair it serves or leave the file out")
    if data.language_sampling_temperature is not None and not data.max_tokens:
        raise ConfigError("--language_sampling_temperature draws pairs inside token-budget batches; give "
                          "--max_tokens too (or leave the temperature unset)")
    return pairs


def load_multilingual_data(data, pairs: Sequence[LanguagePair], seed: int, report_dir: str | None) -> DatasetDict:
    """Rows of every split routed to the pairs they serve, cleaned. Without validation files, 2% of each
    training file's rows (before routing, so en-de and de-en of one message stay on one side) validate."""
    parts: dict[str, list] = {"train": [], "validation": [], "test": []}
    for split in parts:
        for name in data_files(getattr(data, f"{split}_file", None)):
            rows, languages = load_translation_rows(name)
            served = [p for p in pairs if p.source in languages and p.target in languages]
            if split == "train" and not data_files(data.validation_file):
                carved = rows.train_test_split(test_size=max(1, round(0.02 * len(rows))), seed=seed)
                rows = carved["train"]
                parts["validation"].append(_route(carved["test"], served))
            parts[split].append(_route(rows, served))
    raw = DatasetDict({split: concatenate_datasets(found) for split, found in parts.items() if found})
    sizes = direction_sizes(raw["train"])
    empty = [str(p) for p in pairs if not sizes.get(str(p))]
    if empty:
        raise DataError(f"language_pairs: no training row holds text in both languages of {','.join(empty)}; "
                        "add data for them or remove the pairs")
    if data.max_train_samples is not None:
        raw["train"] = raw["train"].shuffle(seed=seed).select(range(min(data.max_train_samples, len(raw["train"]))))
    if data.clean_data:
        raw, _ = clean_translation_dataset(raw, report_dir=report_dir, num_proc=data.preprocessing_num_workers)
    return raw


def _route(rows, pairs):
    return rows.map(route_translations, batched=True, fn_kwargs={"pairs": pairs}, remove_columns=rows.column_names,
                    features=datasets.Features({c: datasets.Value("string")
                                                for c in ("source", "target", "source_lang", "target_lang")}))


def direction_sizes(split) -> dict[str, int]:
    """{"en-de": rows} of a routed split."""
    counts: dict[str, int] = {}
    for source, target in zip(column(split, "source_lang"), column(split, "target_lang")):
        key = direction_of(source, target)
        counts[key] = counts.get(key, 0) + 1
    return counts


def language_special_tokens(pairs: Sequence[LanguagePair]) -> list[str]:
    """The tokens a tokenizer trained from scratch gets: one per target language."""
    return [language_token(code) for code in target_languages(pairs)]


def multilingual_tokenizer_inputs(train, seed: int) -> tuple[list[str], dict]:
    """What a tokenizer trained from scratch for several languages learns from: (texts, trainer settings).

    The texts are a sample balanced across languages (`multilingual_vocabulary.balanced_sample`); the
    alphabet is every character of the whole training split; the placeholders found in it are single tokens."""
    by_language = texts_by_language(zip(*(column(train, name) for name in ("source", "target", "source_lang", "target_lang"))))
    sample = balanced_sample(by_language, seed)
    everything = [text for texts in by_language.values() for text in texts]
    settings = {"initial_alphabet": alphabet_of(everything), "placeholders": placeholders_in(everything)}
    logger.info("tokenizer sample: %s texts per language; %d characters; %d placeholders",
                {code: len(texts) for code, texts in sample.items()}, len(settings["initial_alphabet"]),
                len(settings["placeholders"]))
    return [text for texts in sample.values() for text in texts], settings


def report_tokens_per_word(tokenizer, raw) -> dict:
    """Tokens per word (per character for ja/zh) of each language on the validation split (training split
    without one), printed and returned for run_info.json."""
    split = raw["validation"] if "validation" in raw else raw["train"]
    by_language = texts_by_language(zip(*(column(split, name) for name in ("source", "target", "source_lang", "target_lang"))))
    report = tokens_per_unit(tokenizer, by_language)
    print("tokens per word (ja/zh: per character): " + ", ".join(
        f"{code} {next(v for k, v in numbers.items() if k.startswith('tokens_per'))}" for code, numbers in report.items()))
    return report


def language_token_ids(tokenizer, pairs: Sequence[LanguagePair]) -> dict[str, int]:
    """{code: id of its language token} for every target language; one clear error if one is missing."""
    vocab = tokenizer.get_vocab()
    missing = [language_token(code) for code in target_languages(pairs) if language_token(code) not in vocab]
    if missing:
        raise ConfigError(f"the tokenizer lacks the language tokens {missing}; train it from scratch with "
                          "--language_pairs (or continue from a multilingual checkpoint trained on these targets)")
    return {code: vocab[language_token(code)] for code in target_languages(pairs)}


def record_languages(model, lang_to_id: dict[str, int], pairs: Sequence[LanguagePair]) -> None:
    """The checkpoint contract: `config.lang_to_id`, `config.language_pairs`, `generation_config.lang_to_id`
    (transformers 5 `generate()` reads the generation config). `forced_bos_token_id` stays unset: the caller
    picks the direction."""
    model.config.lang_to_id = dict(lang_to_id)
    model.config.language_pairs = [str(pair) for pair in pairs]
    model.generation_config.lang_to_id = dict(lang_to_id)


def language_start_tokens(model, tokenizer, pairs: Sequence[LanguagePair]) -> Callable[[str], int]:
    """The run's `forced_bos_for(target_lang) -> token id` hook, after recording the languages in the model
    (`record_languages`). Ours: the id of the target language's `__xx__` token. A model family with its own
    language codes (M2M100, NLLB, mBART-50) supplies its own hook here."""
    lang_to_id = language_token_ids(tokenizer, pairs)
    record_languages(model, lang_to_id, pairs)
    return lang_to_id.__getitem__


def tokenize_multilingual(raw: DatasetDict, tokenizer, data, forced_bos_for: Callable[[str], int]) -> DatasetDict:
    """input_ids/attention_mask/labels, labels = [target-language token] + target + [eos] (at most
    `max_target_length` in all); source_lang/target_lang kept for batching and evaluation by direction."""
    target_length = data.max_target_length - 1 if data.max_target_length else None
    starts: dict[str, int] = {}

    def encode(batch):
        sources = tokenizer(batch["source"], truncation=data.max_source_length is not None,
                            max_length=data.max_source_length)
        targets = tokenizer(text_target=batch["target"], truncation=target_length is not None,
                            max_length=target_length)["input_ids"]
        for code in batch["target_lang"]:
            if code not in starts:
                starts[code] = forced_bos_for(code)
        return {"input_ids": sources["input_ids"], "attention_mask": sources["attention_mask"],
                "labels": [[starts[code], *ids] for code, ids in zip(batch["target_lang"], targets)]}

    return DatasetDict({split: rows.map(encode, batched=True, batch_size=1000, remove_columns=["source", "target"],
                                        num_proc=data.preprocessing_num_workers, desc=f"tokenizing {split}")
                        for split, rows in raw.items()})


def evaluation_subset(tokenized_split, max_samples: int | None, length_sorted_subset):
    """At most `max_samples` rows in all, shared evenly among the directions, each direction length-sorted
    (so each direction's scores are comparable across steps)."""
    by_direction = split_by_direction(tokenized_split)
    each = None if max_samples is None else max(1, max_samples // max(1, len(by_direction)))
    return concatenate_datasets([length_sorted_subset(subset, each) for subset in by_direction.values()])


def split_by_direction(split) -> dict[str, "datasets.Dataset"]:
    """{"en-de": the rows of that direction}, in order of first appearance."""
    keys = [direction_of(s, t) for s, t in zip(column(split, "source_lang"), column(split, "target_lang"))]
    order = list(dict.fromkeys(keys))
    return {key: split.select([i for i, k in enumerate(keys) if k == key]) for key in order}


def average_over_directions(metrics: dict, prefix: str, directions: Sequence[str]) -> dict:
    """`{prefix}_{name}` = the mean of `{prefix}_{direction}_{name}` over the directions that have it."""
    out = {}
    for name in AVERAGED:
        values = [metrics[f"{prefix}_{d}_{name}"] for d in directions if f"{prefix}_{d}_{name}" in metrics]
        if values:
            out[f"{prefix}_{name}"] = sum(values) / len(values)
    return out


class MultilingualTranslationTrainer(TranslationTrainer):
    """`TranslationTrainer` for a multilingual run: training batches drawn by `LanguageMixBatchSampler` with
    `probabilities` ({"en-de": p}), and `evaluate` one direction at a time, each decoded from its own
    `forced_bos_for(target_lang)` token and scored with its own BLEU tokenisation; the run's `eval_bleu`
    (what picks the best checkpoint) is the mean over directions. One log line and one `on_evaluate` per
    evaluation, with every direction's numbers and the means."""

    def __init__(self, *args, forced_bos_for: Callable[[str], int], probabilities: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.forced_bos_for, self.probabilities = forced_bos_for, probabilities
        self.language_sampler: LanguageMixBatchSampler | None = None

    def train_batch_sampler(self, dataset):
        if not self.probabilities or "target_lang" not in dataset.column_names:
            return super().train_batch_sampler(dataset)
        args = self.args
        groups = [direction_of(s, t) for s, t in zip(column(dataset, "source_lang"), column(dataset, "target_lang"))]
        self.language_sampler = LanguageMixBatchSampler(
            column_lengths(dataset, self.length_columns, self.length_multiple), groups, self.max_tokens,
            self.probabilities, max_sentences=self.max_sentences, seed=args.data_seed if args.data_seed is not None else args.seed,
            num_replicas=max(1, args.world_size), rank=args.process_index if args.world_size > 1 else 0,
        )
        return self.language_sampler

    def language_mix(self) -> dict | None:
        return self.language_sampler.mix() if self.language_sampler is not None else None

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval", **gen_kwargs):
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        if not isinstance(dataset, datasets.Dataset) or "target_lang" not in dataset.column_names:
            return super().evaluate(dataset, ignore_keys, metric_key_prefix, **gen_kwargs)
        metrics: dict = {}
        by_direction = split_by_direction(dataset)
        with self._one_report():
            for direction, subset in by_direction.items():
                target = subset[0]["target_lang"]
                with self._scored_for(target):
                    metrics.update(super().evaluate(
                        subset, ignore_keys, f"{metric_key_prefix}_{direction}",
                        **{**gen_kwargs, "forced_bos_token_id": self.forced_bos_for(target)}))
        metrics.update(average_over_directions(metrics, metric_key_prefix, list(by_direction)))
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    @contextmanager
    def _one_report(self):
        # each direction's `evaluate` would log and call on_evaluate (early stopping, plots) on its own
        self.log = lambda *args, **kwargs: None  # instance attributes shadow the methods until deleted
        self.callback_handler.on_evaluate = lambda args, state, control, metrics: control
        try:
            yield
        finally:
            del self.log, self.callback_handler.on_evaluate

    @contextmanager
    def _scored_for(self, target_lang: str):
        metrics = self.compute_metrics
        if isinstance(metrics, TranslationMetrics):
            self.compute_metrics = TranslationMetrics(metrics.tokenizer, target_lang)
        try:
            yield
        finally:
            self.compute_metrics = metrics


def temperature_of(data, pairs: Sequence[LanguagePair]) -> float:
    if data.language_sampling_temperature is not None:
        return data.language_sampling_temperature
    return DEFAULT_TEMPERATURE if len(pairs) > 1 else 1.0
