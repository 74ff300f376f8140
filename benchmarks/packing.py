"""Packing LM documents with and without crosstalk: `--packing documents` against `--packing concat`.

`concat` is `run_clm.py`'s grouping (a token attends to the end of the previous, unrelated document);
`documents` restarts position ids at each document and keeps attention inside it (issue 19).

Two measurements, one torch thread, CPU time (`time.process_time`: the machine is shared, so wall-clock
would measure the neighbours):
1. Quality at equal steps: each arm is one run of `recipes/generate_text.py` (`run_text_generation`, in
   its own process) from scratch on the same data, tokenizer (trained once here), model and seed; the
   only difference is `--packing`. Arms alternate (documents, concat, documents, concat, ...) so that a
   change in the machine's load falls on both. Every final model is then scored here on the validation
   split both ways: `documents` (each document piece alone: what a user's prompt gets) and `concat`
   (today's blocks). The recipe's own figure must equal the matching view (a check of the recipe).
2. Throughput: training steps (forward, backward, AdamW) of one model on the same real blocks packed
   both ways, alternating, median CPU seconds per step -> tokens/s.
Writes `benchmarks/results/packing.md` (notes below the marker line survive reruns).

    python benchmarks/packing.py [--steps 600] [--seeds 0 1] [--data ../shared/data/lm_web]
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from bigmodel_hf import BigModelConfig, BigModelForCausalLM
from bigmodel_hf.batching import LMBlockCollator, pack_lm_blocks
from bigmodel_hf.tokenization import tokenize_lm_dataset, train_lm_tokenizer
from bigmodel_hf.training import text_generation
from bigmodel_hf.training.text_generation import parse_text_generation_config, run_text_generation
from results_page import write_keeping_notes  # benchmarks/, on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "packing.md"
NOTES_MARKER = "<!-- notes below are kept when the benchmark is rerun -->"
MODES = ("documents", "concat")
MODEL = "d_model=128,ffn_dim=352,decoder_layers=2,num_attention_heads=4,num_key_value_heads=2,dropout=0.0"


class TrainingClock(TrainerCallback):
    """CPU seconds of this process between the start and the end of `Trainer.train()`."""

    seconds = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.process_time()

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds = time.process_time() - self.started


def model_overrides(args) -> str:
    return f"{MODEL},max_position_embeddings={args.block_size}"


def tokenized_split(tokenizer, path: Path):
    """The documents of a JSON Lines split, tokenised as the recipe does (EOS at each end)."""
    return tokenize_lm_dataset(datasets.load_dataset("json", data_files=str(path), split="train"), tokenizer)


@torch.no_grad()
def score(model, documents, tokenizer, block_size: int, packing: str) -> dict:
    """Token-weighted validation perplexity of `documents` packed as `packing` (all blocks, the last one short)."""
    blocks = pack_lm_blocks(documents, block_size, eos_token_id=tokenizer.eos_token_id, drop_remainder=False,
                            packing=packing)
    collate = LMBlockCollator(tokenizer.pad_token_id)
    model.eval()
    nll, count = 0.0, 0
    for start in range(0, len(blocks), 8):
        batch = collate([blocks[i] for i in range(start, min(start + 8, len(blocks)))])
        labels = batch.pop("labels")
        logits = model(**batch).logits[:, :-1].float()
        targets = labels[:, 1:]
        nll += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100,
                               reduction="sum").item()
        count += int((targets != -100).sum())
    return {"perplexity": math.exp(nll / count), "tokens": count}


def run_arm(args, packing: str, seed: int, output_dir: Path) -> dict:
    flags = {
        "train_file": args.data / "train.jsonl", "validation_file": args.data / "validation.jsonl",
        "tokenizer_name": args.tokenizer, "output_dir": output_dir, "config_overrides": model_overrides(args),
        "block_size": args.block_size, "packing": packing, "per_device_train_batch_size": args.batch_size,
        "per_device_eval_batch_size": args.batch_size, "max_steps": args.steps, "learning_rate": args.learning_rate,
        "warmup_steps": args.warmup_steps, "eval_strategy": "no", "save_strategy": "no",
        "load_best_model_at_end": "false", "report_to": "none", "num_sample_outputs": 0, "logging_steps": 50,
        "seed": seed, "disable_tqdm": "true", "bf16": "false", "plot": "false",
    }
    argv = [item for key, value in flags.items() for item in (f"--{key}", str(value))]
    clock = TrainingClock()
    recipe_callbacks = text_generation.build_callbacks
    text_generation.build_callbacks = lambda *a, **k: [*recipe_callbacks(*a, **k), clock]
    recipe = run_text_generation(parse_text_generation_config(argv))["validation"]
    model = AutoModelForCausalLM.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    documents = tokenized_split(tokenizer, args.data / "validation.jsonl")
    views = {view: score(model, documents, tokenizer, args.block_size, view) for view in MODES}
    tokens = args.steps * args.batch_size * args.block_size
    return {"packing": packing, "seed": seed, "steps": args.steps, "train_cpu_s": clock.seconds,
            "train_tokens_per_cpu_s": tokens / clock.seconds, "recipe_perplexity": recipe["perplexity"],
            "recipe_start": recipe.get("perplexity_at_start"),
            **{f"{view}_perplexity": views[view]["perplexity"] for view in MODES},
            **{f"{view}_tokens": views[view]["tokens"] for view in MODES}}


def measure_throughput(args) -> dict:
    """Median CPU seconds of one training step on the same real blocks, packed both ways, alternating."""
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    documents = tokenized_split(tokenizer, args.data / "validation.jsonl")
    collate = LMBlockCollator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    batches = {}
    for mode in MODES:
        blocks = pack_lm_blocks(documents, args.block_size, eos_token_id=tokenizer.eos_token_id, packing=mode)
        batches[mode] = [collate([blocks[i] for i in range(start, start + args.batch_size)])
                         for start in range(0, len(blocks) - args.batch_size + 1, args.batch_size)]
    overrides = dict(item.split("=") for item in model_overrides(args).split(","))
    config = BigModelConfig.from_preset("modern-small", is_encoder_decoder=False, vocab_size=len(tokenizer),
                                        **{k: int(v) if v.isdigit() else
                                                                              float(v) for k, v in overrides.items()})
    torch.manual_seed(0)
    model = BigModelForCausalLM(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = {mode: [] for mode in MODES}
    documents_per_row = []
    for round_ in range(args.speed_rounds + 1):  # round 0 warms up (allocator, AdamW state)
        for mode in MODES:
            batch = dict(batches[mode][round_ % len(batches[mode])])
            if mode == "documents":
                documents_per_row.append(float((batch["position_ids"] == 0).sum()) / batch["input_ids"].shape[0])
            started = time.process_time()
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if round_:
                times[mode].append(time.process_time() - started)
    tokens = args.batch_size * args.block_size
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    return {"rounds": args.speed_rounds, "batch": f"{args.batch_size} x {args.block_size}",
            "pieces_per_row": statistics.mean(documents_per_row),
            **{f"{mode}_tokens_per_s": tokens / medians[mode] for mode in MODES},
            "ratio": medians["concat"] / medians["documents"]}


def report(rows: list[dict], speed: dict, args, wall: float) -> str:
    def mean(mode, key):
        return statistics.mean(r[key] for r in rows if r["packing"] == mode)

    recipe_gap = max(abs(r["recipe_perplexity"] / r[f"{r['packing']}_perplexity"] - 1) for r in rows)
    lines = [
        "# Packing documents without crosstalk (`--packing documents` vs `--packing concat`)",
        "",
        f"`{' '.join(['python benchmarks/packing.py', *args.argv])}`",
        "",
        f"Machine: {platform.processor() or 'cpu'}, {os.cpu_count()} cores (shared with other jobs), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; one torch thread; times are CPU time of the "
        f"process (`time.process_time`); whole benchmark {wall / 60:.1f} min wall-clock.",
        "",
        f"## Validation perplexity at equal steps ({rows[0]['steps']} steps)",
        "",
        f"Data: `{args.data.name}` (its training split; its validation split scored in full). "
        f"Byte-level BPE of {args.vocab_size} trained once on the training split and shared by every arm. Model: "
        f"decoder-only BigModel, modern block (`{model_overrides(args)}`). Each arm: `recipes/generate_text.py` "
        f"from scratch, {rows[0]['steps']} steps of {args.batch_size} x {args.block_size} tokens, lr "
        f"{args.learning_rate:g} (cosine, {args.warmup_steps} warmup steps), float32; arms alternate. "
        "Columns `documents view` / `concat view`: the final model scored on the validation split packed each way "
        "(documents: every document piece alone, its first token unscored; concat: run_clm's blocks).",
        "",
        "| packing in training | seed | documents view ppl | concat view ppl | training CPU s | training tokens / CPU s |",
        "|---|---|---|---|---|---|",
        *[f"| {r['packing']} | {r['seed']} | {r['documents_perplexity']:.2f} | {r['concat_perplexity']:.2f} | "
          f"{r['train_cpu_s']:.0f} | {r['train_tokens_per_cpu_s']:.0f} |" for r in rows],
        *[f"| **{mode}, mean** | | **{mean(mode, 'documents_perplexity'):.2f}** | "
          f"**{mean(mode, 'concat_perplexity'):.2f}** | {mean(mode, 'train_cpu_s'):.0f} | "
          f"{mean(mode, 'train_tokens_per_cpu_s'):.0f} |" for mode in MODES],
        "",
        f"Scored tokens: documents view {rows[0]['documents_tokens']:,}, concat view {rows[0]['concat_tokens']:,}. "
        f"The recipe's own validation perplexity equals this script's figure for the arm's own view to "
        f"{recipe_gap:.1e} (relative).",
        "",
        "## Training throughput, same process",
        "",
        f"One model, {speed['rounds']} rounds each of one training step (forward, backward, AdamW) per packing on "
        f"real validation blocks of {speed['batch']} tokens (documents packing: {speed['pieces_per_row']:.2f} "
        "document pieces per row on average), alternating; CPU time, medians.",
        "",
        "| documents tokens / CPU s | concat tokens / CPU s | documents speed relative to concat |",
        "|---|---|---|",
        f"| {speed['documents_tokens_per_s']:.0f} | {speed['concat_tokens_per_s']:.0f} | {speed['ratio']:.3f}x |",
        "",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "lm_web")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--block_size", type=int, default=256)
    parser.add_argument("--vocab_size", type=int, default=4000)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--warmup_steps", type=int, default=30)
    parser.add_argument("--speed_rounds", type=int, default=10, help="alternating training steps per packing")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--rows", type=Path,
                        help="a file of the arms' JSON rows (as printed by an earlier run, one a line): write the "
                             "page from them, measuring only the throughput again")
    parser.add_argument("--arm", choices=MODES, help=argparse.SUPPRESS)  # internal: one arm, in its own process
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--arm_output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.arm:
        row = run_arm(args, args.arm, args.seed, args.arm_output / "run")
        (args.arm_output / "row.json").write_text(json.dumps(row))
        return
    args.argv = sys.argv[1:]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        args.tokenizer = Path(scratch) / "tokenizer"
        train = datasets.load_dataset("json", data_files=str(args.data / "train.jsonl"), split="train")
        train_lm_tokenizer(train, vocab_size=args.vocab_size, min_frequency=2, save_dir=args.tokenizer)
        rows = [json.loads(line) for line in args.rows.read_text().splitlines()] if args.rows else []
        for seed in [] if args.rows else args.seeds:
            for packing in MODES:  # alternating arms
                arm_output = Path(scratch) / f"{packing}-{seed}"
                arm_output.mkdir()
                subprocess.run([sys.executable, __file__, "--arm", packing, "--seed", str(seed), "--tokenizer",
                                str(args.tokenizer), "--arm_output", str(arm_output),
                                *[item for key in ("data", "steps", "batch_size", "block_size", "learning_rate",
                                                   "warmup_steps") for item in (f"--{key}", str(getattr(args, key)))]],
                               check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                rows.append(json.loads((arm_output / "row.json").read_text()))
                print(json.dumps(rows[-1]), flush=True)
        speed = measure_throughput(args)
        print(json.dumps(speed), flush=True)
    print(write_keeping_notes(args.output, report(rows, speed, args, time.perf_counter() - started), NOTES_MARKER))


if __name__ == "__main__":
    main()
