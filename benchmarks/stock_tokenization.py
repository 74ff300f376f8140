"""Tokenising routed multilingual rows for a stock checkpoint (issue 20): grouped by direction, as the recipe
does (`stock_multilingual.encode_by_direction`), against one row at a time through the tokenizer's
`src_lang`/`tgt_lang` state. Both give the same ids (asserted); the CPU time (`time.process_time`, one
thread) is compared.

No real M2M100/NLLB tokenizer can be downloaded here: the tokenizers are the tests' tiny ones
(`tests/stock_checkpoints.py`, the real classes with an 80-piece sentencepiece BPE and a character
vocabulary), so the absolute times are those of small vocabularies. Data: the first `--rows` validation
messages of six `../shared/data/l10n` sets, routed to the 12 directions en<->X.

    python benchmarks/stock_tokenization.py [--rows 500]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "l10n"
RESULTS = ROOT / "benchmarks" / "results" / "stock_tokenization.md"
TARGETS = ("de", "es", "fr", "ja", "pt_BR", "zh_CN")


def routed_rows(rows_per_file: int) -> dict:
    from datasets import Dataset

    from bigmodel_hf.languages import parse_language_pairs, route_translations

    rows = []
    for target in TARGETS:
        with open(DATA / f"en_{target}" / "validation.jsonl", encoding="utf-8") as handle:
            rows += [json.loads(line)["translation"] for line in handle if line.strip()][:rows_per_file]
    pairs = parse_language_pairs(",".join(f"en-{t},{t}-en" for t in TARGETS))
    return Dataset.from_dict({"translation": rows}).map(
        route_translations, batched=True, fn_kwargs={"pairs": pairs}, remove_columns=["translation"])[:]


def measure(tokenizer, rows: dict, batch_size: int = 1000) -> dict:
    from bigmodel_hf.training.stock_multilingual import encode_by_direction, tokenizer_direction

    started = time.process_time()
    grouped = {"input_ids": [], "labels": []}
    for start in range(0, len(rows["source"]), batch_size):
        out = encode_by_direction({k: v[start:start + batch_size] for k, v in rows.items()}, tokenizer, 128, 128)
        for key in grouped:
            grouped[key] += out[key]
    grouped_seconds = time.process_time() - started
    started = time.process_time()
    one_by_one = {"input_ids": [], "labels": []}
    for source, target, source_lang, target_lang in zip(rows["source"], rows["target"], rows["source_lang"],
                                                        rows["target_lang"]):
        with tokenizer_direction(tokenizer, source_lang, target_lang):
            one_by_one["input_ids"].append(tokenizer(source, truncation=True, max_length=128)["input_ids"])
            one_by_one["labels"].append(tokenizer(text_target=target, truncation=True, max_length=128)["input_ids"])
    row_seconds = time.process_time() - started
    assert one_by_one == grouped, "grouped and row-by-row tokenisation disagree"
    return {"rows": len(rows["source"]), "grouped_s": grouped_seconds, "row_by_row_s": row_seconds}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500, help="validation messages read from each l10n set")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(ROOT)}")
    options = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from stock_checkpoints import m2m100_tokenizer, nllb_tokenizer

    rows = routed_rows(options.rows)
    results = []
    for name, make in [("M2M100Tokenizer (sentencepiece, Python)", lambda: m2m100_tokenizer(Path(tempfile.mkdtemp()))),
                       ("NllbTokenizer (tokenizers, Rust)", nllb_tokenizer)]:
        results.append({"tokenizer": name, **measure(make(), rows)})
        r = results[-1]
        print(f"{name}: {r['rows']} rows, grouped {r['grouped_s']:.2f} s, row by row {r['row_by_row_s']:.2f} s CPU")
    if options.write:
        table = "\n".join(f"| {r['tokenizer']} | {r['rows']:,} | {r['grouped_s']:.2f} | {r['row_by_row_s']:.2f} | "
                          f"{r['row_by_row_s'] / r['grouped_s']:.1f}x |" for r in results)
        RESULTS.write_text(RESULTS_PAGE.format(table=table, threads=os.environ.get("OMP_NUM_THREADS", "unset")),
                           "utf-8")
    return results


RESULTS_PAGE = """# Tokenising several directions for a stock multilingual checkpoint

`python benchmarks/stock_tokenization.py --write` (OMP_NUM_THREADS={threads}, 2 shared CPU cores, CPU time by
`time.process_time`). Rows: the first 500 validation messages of each of six `l10n` sets (de, es, fr, ja,
pt_BR, zh_CN), routed to the 12 directions en<->X. Both ways give identical `input_ids` and `labels`
(asserted by the script).

| tokenizer | rows | grouped by direction (s CPU) | row by row (s CPU) | row by row / grouped |
|---|---|---|---|---|
{table}

The tokenizers are the tests' tiny ones (real classes, 80-piece sentencepiece BPE / character vocabulary),
since no published tokenizer can be downloaded here; with a 128k/256k vocabulary the per-call work grows,
the per-row overhead of switching the tokenizer's direction (a new post-processor for the Rust NLLB
tokenizer) stays. Not measured: the published tokenizers themselves.
"""


if __name__ == "__main__":
    main()
