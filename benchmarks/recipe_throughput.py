"""Recipe-level training speed (issue 7): what `recipes/translate.py` gets from its defaults alone.

Non-padding target tokens per second of training on `bible_en_es`, two arms at the same time, each
pinned to its own core with one torch thread, each for `--minutes` of training time:

- `recipe`: `run_translation` given only the data, the `vaswani-small` preset, an 8k vocabulary and the
  wall-clock budget. Every speed setting is the recipe's default: token-budget batches, bf16 autocast
  where the hardware has native bfloat16 (this CPU does), eager attention while training under CPU bf16.
- `stock`: the plain setup of `translation_quality.py`'s baseline arm: `MarianMTModel` of the same
  shape, `Seq2SeqTrainer`, fixed batch of 32, float32, the same data and tokenizer.

Quality is not compared here (see translation_quality.md and small_data_ablation.md): each arm decodes
only 20 validation pairs, to finish. Writes `benchmarks/results/recipe_throughput.md`.

    python benchmarks/recipe_throughput.py [--minutes 5]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "bible_en_es"
RESULTS = ROOT / "benchmarks" / "results" / "recipe_throughput.md"


def run_recipe_arm(args, out: Path) -> dict:
    from bigmodel_hf.training.translation import parse_translation_config, run_translation

    flags = {"train_file": DATA / "train.jsonl", "validation_file": DATA / "validation.jsonl",
             "source_lang": "en", "target_lang": "es", "output_dir": out / "run", "preset": "vaswani-small",
             "vocab_size": 8000, "max_train_minutes": args.minutes, "eval_strategy": "no", "save_strategy": "no",
             "load_best_model_at_end": "false", "report_to": "none", "num_sample_outputs": 0,
             "max_predict_samples": 20, "resume_from_checkpoint": "none", "disable_tqdm": "true"}
    run_config = parse_translation_config([item for k, v in flags.items() for item in (f"--{k}", str(v))])
    training = run_translation(run_config)["training"]
    data, training_args = run_config.data, run_config.training
    return {"arm": "recipe", "target_tokens": training["target_tokens"], "training_s": training["training_minutes"] * 60,
            "steps": training["steps"],
            "settings": f"max_tokens {data.max_tokens}, bf16 {training_args.bf16}, "
                        f"attention while training: {'eager' if training_args.bf16 else 'sdpa'}"}


def run_stock_arm(args, out: Path) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from datasets import load_from_disk

    import translation_quality as quality
    from bigmodel_hf.tokenization import load_pretrained_tokenizer

    prepared = ROOT / "outputs" / "translation_quality"
    if not (prepared / "tokenizer").exists():
        quality.prepare(DATA, prepared)
    raw = load_from_disk(str(prepared / "data"))
    raw["validation"] = raw["validation"].select(range(20))
    tokenizer = load_pretrained_tokenizer(prepared / "tokenizer")
    row = quality.train_arm("baseline", raw, tokenizer, out, args.minutes * 60, name="stock", max_steps=100_000)
    return {"arm": "stock", "target_tokens": row["target_tokens"], "training_s": row["training_s"],
            "steps": row["steps"], "settings": "batch 32, float32"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training time of each arm")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "recipe_throughput")
    parser.add_argument("--arm", choices=["recipe", "stock"], help=argparse.SUPPRESS)  # internal: one arm
    args = parser.parse_args()
    if args.arm:
        import torch

        torch.set_num_threads(1)
        row = (run_recipe_arm if args.arm == "recipe" else run_stock_arm)(args, args.out / args.arm)
        (args.out / args.arm / "row.json").write_text(json.dumps(row))
        return
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    processes = {}
    for core, arm in enumerate(("recipe", "stock")):
        (args.out / arm).mkdir(parents=True, exist_ok=True)
        log = open(args.out / f"{arm}.log", "w")
        processes[arm] = subprocess.Popen(
            ["taskset", "-c", str(core % os.cpu_count()), sys.executable, __file__, "--arm", arm,
             "--minutes", str(args.minutes), "--out", str(args.out)],
            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=log, stderr=subprocess.STDOUT)
    for arm, process in processes.items():
        if process.wait():
            sys.exit(f"the {arm} arm failed; see {args.out / (arm + '.log')}")
    rows = [json.loads((args.out / arm / "row.json").read_text()) for arm in processes]
    for row in rows:
        row["tokens_per_s"] = row["target_tokens"] / row["training_s"]
    ratio = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
    text = "\n".join([
        "# Recipe-level training speed: `recipes/translate.py` defaults vs the plain stock setup",
        "",
        f"`python benchmarks/recipe_throughput.py --minutes {args.minutes:g}`, {started}, {platform.processor() or 'cpu'}, "
        f"{os.cpu_count()} cores. Both arms at once, each pinned to its own core with one torch thread, "
        f"{args.minutes:g} minutes of training each on `bible_en_es` (same cleaning, same joint 8k BPE). "
        "Non-padding target tokens counted from every training batch's labels.",
        "",
        "| arm | speed settings | optimizer steps | non-padding target tokens | tokens/s |",
        "|---|---|---|---|---|",
        *[f"| {r['arm']} | {r['settings']} | {r['steps']:,} | {r['target_tokens']:,} | {r['tokens_per_s']:,.0f} |"
          for r in rows],
        "",
        f"Recipe defaults / stock: **{ratio:.2f}x** (target: at least 2x).",
        "",
    ])
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
