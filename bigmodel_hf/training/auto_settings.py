"""`--preset auto`: a from-scratch translation run's model size, vocabulary, token budget per batch and
learning rate, chosen from the size of its training corpus and from the device.

The rules are `AUTO_RULES`, the first whose bounds the run fits. Each says where its numbers come from:
measured on this project's benchmark (benchmarks/results/auto_preset.md) or, where nothing here could
measure it (corpora of millions of pairs, a GPU), taken from the published recipes and marked as such.
Settings the user gives (file or flag) are never replaced; the chosen ones are logged and recorded in
`run_config.yaml`, so a rerun builds the same model whatever the corpus has become.
"""

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

AUTO = "auto"
LINE_COUNTED_SUFFIXES = (".jsonl", ".json", ".tsv", ".csv", ".txt")


@dataclass(frozen=True)
class AutoRule:
    max_pairs: float  # corpora of up to this many training pairs (inclusive)
    needs_gpu: bool  # only where a CUDA device trains the run
    settings: Mapping
    evidence: str


# The measured model, token budget and learning rate; the rules for CPU-sized models differ in vocabulary only.
# The budget does not change the model: a wider one (d_model 384) scored 4.4 BLEU lower at 60 CPU-minutes on
# bible_en_es, with half the steps. 1e-3 led 7e-4 by 1.3 to 4.4 BLEU at 30 and 60 CPU-minutes on both corpora;
# 1.2e-3 still trained, 1.4e-3 got stuck on both (benchmarks/results/auto_preset.md), so 1e-3 keeps a margin
# at these token budgets; with 512-token batches 1e-3 got stuck on one l10n pair in eight (multilingual.md).
# 2,048 tokens: 1,024 led at 10 and 30 CPU-minutes in fp32, but on the Bible not by the margin set before the
# runs; 4,096 stalled at 30.
SMALL_MODEL = {"preset": "vaswani-small", "max_tokens": 2048, "learning_rate": 1e-3}

AUTO_RULES = (
    AutoRule(50_000, False, {**SMALL_MODEL, "vocab_size": 4000},
             "measured on bible_en_es (28.6k pairs) and l10n/en_es (38.5k): 4,000 pieces against 8,000 scored "
             "+6.4 and +15.2 BLEU at 10 CPU-minutes, +1.6 and +2.9 at 30, "
             "and +0.8 at 60 on bible_en_es"),
    AutoRule(200_000, False, {**SMALL_MODEL, "vocab_size": 8000},
             "measured on the same two corpora at 10, 30 and 60 CPU-minutes (the 8,000-piece runs); the corpus "
             "sizes of this rule were not measured"),
    AutoRule(math.inf, True, {"preset": "vaswani-base", "vocab_size": 32000, "max_tokens": 4096, "learning_rate": 5e-4},
             "not measured here: the base Transformer of Vaswani et al. (2017) and fairseq's WMT recipes, for corpora "
             "of hundreds of thousands of pairs and more on a GPU"),
    AutoRule(math.inf, False, {**SMALL_MODEL, "vocab_size": 16000},
             "the measured size, with a vocabulary grown for the larger corpus (not measured here): a CPU cannot "
             "train the base model on such a corpus in hours"),
)
# A corpus not counted before loading (Parquet, a Hub dataset) gets the 8,000-piece rule: measured on both
# corpora, and safer than 4,000 pieces if the corpus turns out large.
UNKNOWN_SIZE_RULE = AUTO_RULES[1]


def count_training_pairs(train_file: str | None) -> int | None:
    """Training pairs in the local file(s) (comma-separated with --language_pairs), counted as lines (less a
    TSV/CSV header) at disk speed; None where lines are not pairs or the data is elsewhere (Parquet, a Hub
    dataset, the built-in corpus)."""
    if not train_file:
        return None
    total = 0
    for path in (part.strip() for part in str(train_file).split(",") if part.strip()):
        if not path.endswith(LINE_COUNTED_SUFFIXES) or not os.path.isfile(path):
            return None
        lines, last = 0, b"\n"
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                lines, last = lines + chunk.count(b"\n"), chunk[-1:]
        lines += last != b"\n"  # a last line without its newline
        total += max(lines - path.endswith((".tsv", ".csv")), 0)
    return total


def choose_rule(pairs: int | None, gpu: bool) -> AutoRule:
    """The first rule of `AUTO_RULES` that a corpus of `pairs` fits (None, unknown: `UNKNOWN_SIZE_RULE`)."""
    if pairs is None:
        return UNKNOWN_SIZE_RULE
    for rule in AUTO_RULES:
        if pairs <= rule.max_pairs and (gpu or not rule.needs_gpu):
            return rule
    raise AssertionError("the last rule of AUTO_RULES takes every corpus")


def settle_auto_preset(values: dict, user_keys: set, gpu: bool | None = None) -> None:
    """With `preset: auto` from scratch, fill the rule's settings into the parsed flat `values`, except those in
    `user_keys`; a run that fine-tunes a checkpoint keeps its own model and leaves `auto` unused."""
    if values.get("preset") != AUTO or values.get("model_name_or_path"):
        return
    gpu = torch.cuda.is_available() if gpu is None else gpu
    pairs = count_training_pairs(values.get("train_file"))
    rule = choose_rule(pairs, gpu)
    given = set(user_keys) - {"preset"}
    if "per_device_train_batch_size" in given:  # a batch size asked for replaces the token budget (settle_defaults)
        given.add("max_tokens")
    chosen = {key: value for key, value in rule.settings.items() if key not in given}
    values.update(chosen)
    corpus = f"{pairs:,} training pairs" if pairs is not None else "a corpus of unknown size"
    logger.info("preset auto: %s%s -> %s (%s; benchmarks/results/auto_preset.md)", corpus, " on a GPU" if gpu else "",
                ", ".join(f"{key}={value}" for key, value in chosen.items()), rule.evidence)
