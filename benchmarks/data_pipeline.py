"""Benchmark the data pipeline on the shared English-Spanish corpus (../shared/data/bible_en_es).

Measures, per repeat: load, clean, train a joint BPE tokenizer, tokenize train+validation; then the
padding fraction of token-budget batches vs fixed-size batches on the tokenized train split. Padding
is counted per side, as the model sees it: each batch's sources padded to its longest source and its
targets to its longest target. Writes benchmarks/results/data_pipeline.md.

    python benchmarks/data_pipeline.py [--repeats 3] [--vocab-size 8000] [--max-tokens 4096]

The first repeat reads JSON Lines into a fresh `datasets` cache (cold); later repeats reuse it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="bench_hf_cache_"))

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import torch  # noqa: E402

from bigmodel_hf.batching import TokenBudgetBatchSampler, column_lengths, example_lengths  # noqa: E402
from bigmodel_hf.data import clean_translation_dataset, load_translation_dataset  # noqa: E402
from bigmodel_hf.tokenization import tokenize_translation_dataset, train_translation_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "bible_en_es"


def side_lengths(ds, column):
    return pc.list_value_length(ds.with_format("arrow")[column]).to_numpy(zero_copy_only=False)


def padding_fraction(src, tgt, batches) -> float:
    real = padded = 0
    for b in batches:
        real += int(src[b].sum() + tgt[b].sum())
        padded += len(b) * int(src[b].max() + tgt[b].max())
    return 1 - real / padded


def one_repeat(vocab_size: int, report_dir: str) -> tuple[dict, object]:
    times = {}
    start = time.perf_counter()
    raw = load_translation_dataset(CORPUS)
    times["load"] = time.perf_counter() - start
    t = time.perf_counter()
    clean, _ = clean_translation_dataset(raw, report_dir=report_dir)
    times["clean"] = time.perf_counter() - t
    t = time.perf_counter()
    tokenizer = train_translation_tokenizer(clean, vocab_size=vocab_size)
    times["train_tokenizer"] = time.perf_counter() - t
    t = time.perf_counter()
    tokenized = tokenize_translation_dataset(clean, tokenizer)
    times["tokenize"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - start
    return times, tokenized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "data_pipeline.md"))
    args = parser.parse_args()
    if not CORPUS.is_dir():
        raise SystemExit(f"{CORPUS} not found: this benchmark needs ../shared/data beside the checkout")
    datasets.disable_progress_bars()

    load_before = os.getloadavg()
    runs, tokenized = [], None
    with tempfile.TemporaryDirectory() as report_dir:
        for i in range(args.repeats):
            times, tokenized = one_repeat(args.vocab_size, report_dir)
            runs.append(times)
            print(f"repeat {i + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in times.items()), flush=True)
    load_after = os.getloadavg()

    train = tokenized["train"]
    src, tgt = side_lengths(train, "input_ids"), side_lengths(train, "labels")
    budget_batches = TokenBudgetBatchSampler(column_lengths(train), args.max_tokens, seed=0).batches
    max_only = TokenBudgetBatchSampler(example_lengths(train), args.max_tokens, seed=0).batches
    mean_batch = len(train) / len(budget_batches)
    order = np.random.default_rng(0).permutation(len(train))
    rows = [("token budget (what the Trainer uses)", f"max_tokens={args.max_tokens}", len(budget_batches),
             mean_batch, padding_fraction(src, tgt, budget_batches)),
            ("token budget, sorted by max(src, tgt) only", f"max_tokens={args.max_tokens}", len(max_only),
             len(train) / len(max_only), padding_fraction(src, tgt, max_only))]
    for size in (32, int(round(mean_batch))):
        fixed = [order[i : i + size] for i in range(0, len(order), size)]
        rows.append(("fixed size, shuffled", f"batch_size={size}", len(fixed), len(train) / len(fixed),
                     padding_fraction(src, tgt, fixed)))

    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    lines = [
        "# Data pipeline benchmark: shared English-Spanish corpus",
        "",
        f"Command: `python benchmarks/data_pipeline.py --repeats {args.repeats} --vocab-size {args.vocab_size} "
        f"--max-tokens {args.max_tokens}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU; "
        f"Python {platform.python_version()}, torch {torch.__version__}, datasets {datasets.__version__}. "
        f"Shared machine: load average {load_before[0]:.1f} before, {load_after[0]:.1f} after (other jobs ran "
        "alongside, so treat times as rough).",
        "",
        f"Corpus: bible_en_es, {len(train):,} train pairs after cleaning + {len(tokenized['validation']):,} "
        f"validation. Tokenizer: joint BPE, {args.vocab_size} tokens.",
        "",
        "## Time (seconds; median of the repeats, then each repeat; repeat 1 reads into a cold `datasets` cache)",
        "",
        "| step | median | " + " | ".join(f"repeat {i + 1}" for i in range(len(runs))) + " |",
        "|---|---|" + "---|" * len(runs),
    ]
    for key in runs[0]:
        lines.append(f"| {key} | {med[key]:.2f} | " + " | ".join(f"{r[key]:.2f}" for r in runs) + " |")
    lines += [
        "",
        "## Padding on the tokenized train split (source and target each padded to the batch's longest)",
        "",
        "| batching | setting | batches | mean pairs/batch | padding fraction |",
        "|---|---|---|---|---|",
    ]
    for name, setting, count, mean, frac in rows:
        lines.append(f"| {name} | {setting} | {count} | {mean:.1f} | {frac:.1%} |")
    lines.append("")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
