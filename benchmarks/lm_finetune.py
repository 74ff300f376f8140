"""Fine-tune SmolLM2-135M as `LlamaForCausalLM` and as the converted `BigModelForCausalLM`.

Two measurements:
1. Speed, in this process: both models built from the same checkpoint, training steps (forward, backward,
   AdamW) on the same batches, alternating between the two, median seconds per step -> tokens/s and ratio.
2. Quality in a fixed wall-clock budget: each arm is one run of the text-generation recipe
   (`run_text_generation`) with the same data, settings and seed (the only difference is
   `--convert_to_bigmodel`), stopped after `--train_minutes` of training. The arms run at the same time,
   one torch thread each, each in its own process: on CPU, peak memory is only measurable per process
   (the peak resident set size). Reported per arm: validation perplexity (token-weighted) before and
   after, optimizer steps done, training tokens/s, peak RSS.
Writes `benchmarks/results/lm_finetune.md` (notes below the marker line survive reruns).

    python benchmarks/lm_finetune.py [--train_minutes 20] [--data ../shared/data/lm_web]
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, TrainerCallback

from bigmodel_hf.convert import convert_llama_model
from bigmodel_hf.training import text_generation
from bigmodel_hf.training.text_generation import parse_text_generation_config, run_text_generation
from results_page import write_keeping_notes  # benchmarks/, on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "lm_finetune.md"
NOTES_MARKER = "<!-- notes below are kept when the benchmark is rerun -->"


class StopAfter(TrainerCallback):
    """Stop training once `seconds` have passed since the first step (evaluation is off during training)."""

    def __init__(self, seconds: float):
        self.seconds, self.started = seconds, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self.started >= self.seconds:
            control.should_training_stop = True


def measure_speed(args) -> dict:
    """Median seconds per training step of each model on the same batches, alternating between them.

    `--speed_clock cpu` times with this process's CPU time, which other jobs on a shared machine inflate
    far less than wall-clock time (use it with one thread: CPU time adds up over threads).
    """
    clock = time.process_time if args.speed_clock == "cpu" else time.perf_counter
    if args.speed_threads:
        torch.set_num_threads(args.speed_threads)
    llama = AutoModelForCausalLM.from_pretrained(args.llama_dir, dtype=torch.float32)
    models = {"llama": llama, "bigmodel": convert_llama_model(llama)}
    models["llama"] = AutoModelForCausalLM.from_pretrained(args.llama_dir, dtype=torch.float32)  # unshared copy
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-5) for name, model in models.items()}
    generator = torch.Generator().manual_seed(0)
    vocab = llama.config.vocab_size
    times = {name: [] for name in models}
    for round_ in range(args.speed_rounds + 1):  # round 0 warms up (allocator, AdamW state)
        batch = torch.randint(0, vocab, (args.speed_batch_size, args.block_size), generator=generator)
        for name, model in models.items():
            model.train()
            started = clock()
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            if round_:
                times[name].append(clock() - started)
    tokens = args.speed_batch_size * args.block_size
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {"threads": torch.get_num_threads(), "rounds": args.speed_rounds, "tokens_per_step": tokens,
            "clock": args.speed_clock, "batch": f"{args.speed_batch_size} x {args.block_size}",
            **{f"{name}_tokens_per_s": tokens / median for name, median in medians.items()},
            "ratio": medians["llama"] / medians["bigmodel"]}


def run_arm(name: str, args, output_dir: Path) -> dict:
    flags = {
        "model_name_or_path": args.llama_dir, "train_file": args.data / "train.jsonl",
        "validation_file": args.data / "validation.jsonl", "output_dir": output_dir, "block_size": args.block_size,
        "max_eval_samples": args.eval_blocks,
        "per_device_train_batch_size": args.batch_size, "per_device_eval_batch_size": args.batch_size,
        "max_steps": 100_000, "learning_rate": args.learning_rate, "lr_scheduler_type": "constant_with_warmup",
        "warmup_steps": args.warmup_steps,
        "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": "false", "report_to": "none",
        "num_sample_outputs": 0, "logging_steps": 5, "seed": 0, "disable_tqdm": "true",
        "bf16": "false",  # both arms in float32, whatever the hardware's default
    }
    if args.max_train_samples:
        flags["max_train_samples"] = args.max_train_samples
    argv = [item for key, value in flags.items() for item in (f"--{key}", str(value))]
    argv += ["--convert_to_bigmodel"] if name == "bigmodel" else []
    recipe_callbacks = text_generation.build_callbacks
    # The budget is the benchmark's, not the recipe's: add one callback to the recipe's own list.
    text_generation.build_callbacks = lambda *a, **k: [*recipe_callbacks(*a, **k), StopAfter(args.train_minutes * 60)]
    results = run_text_generation(parse_text_generation_config(argv))["validation"]
    info = json.loads((output_dir / "run_info.json").read_text())
    tokens = info["global_step"] * args.batch_size * args.block_size
    return {"arm": name, "start": results["perplexity_at_start"], "end": results["perplexity"],
            "eval_tokens": results["tokens"], "steps": info["global_step"], "train_tokens": tokens,
            "tokens_per_s": tokens / info["train_runtime_seconds"], "train_s": info["train_runtime_seconds"],
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # Linux: KiB


def report(speed: dict, rows: list[dict], args, wall: float) -> str:
    llama, ours = rows
    same_start = f"{llama['start']:.3g}" == f"{ours['start']:.3g}"
    lines = [
        "# Fine-tuning SmolLM2-135M: LlamaForCausalLM vs converted BigModelForCausalLM",
        "",
        f"`{' '.join(['python benchmarks/lm_finetune.py', *args.argv])}`",
        "",
        f"Checkpoint: SmolLM2-135M-Instruct built by `../shared/scripts/get_smollm2.sh` (float32). Machine: "
        f"{platform.processor() or 'cpu'}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"total wall-clock {wall / 60:.1f} min.",
        "",
        "## Training speed, same process",
        "",
        f"Both models built from the checkpoint in one process; {speed['rounds']} rounds, each one training step "
        f"(forward, backward, AdamW) of {speed['batch']} random tokens per model on the same batch, alternating; "
        f"float32, {speed['threads']} torch thread(s), timed by the {speed['clock']} clock; medians.",
        "",
        "| LlamaForCausalLM tokens/s | BigModelForCausalLM tokens/s | ratio (BigModel / Llama) |",
        "|---|---|---|",
        f"| {speed['llama_tokens_per_s']:.0f} | {speed['bigmodel_tokens_per_s']:.0f} | {speed['ratio']:.3f}x |",
        "",
        f"## Validation perplexity before and after a {args.train_minutes:g}-minute fine-tune",
        "",
        f"Data: `{args.data.name}` ({'all' if not args.max_train_samples else f'the first {args.max_train_samples}'} "
        f"training documents, packed into blocks of {args.block_size}); validation: the first {args.eval_blocks} "
        f"blocks of its validation split ({llama['eval_tokens']:,} scored tokens). Each arm is a run of "
        f"`recipes/generate_text.py` (the BigModel arm with `--convert_to_bigmodel`): batches of {args.batch_size} "
        f"x {args.block_size} tokens, AdamW lr {args.learning_rate:g} constant after {args.warmup_steps} warmup "
        f"steps, seed 0, float32, all weights trained, stopped after {args.train_minutes:g} minutes of training. "
        "The two arms ran at the same time, one torch thread each, each in its own process.",
        "",
        "| model | perplexity before | after | optimizer steps | training tokens | tokens/s | peak RSS of the process (GiB) |",
        "|---|---|---|---|---|---|---|",
        *[f"| {r['arm']} | {r['start']:.3f} | {r['end']:.3f} | {r['steps']} | {r['train_tokens']:,} | "
          f"{r['tokens_per_s']:.0f} | {r['peak_rss_gib']:.2f} |" for r in rows],
        "",
        f"Same starting perplexity to 3 significant digits: **{'yes' if same_start else 'NO'}** "
        f"({llama['start']:.6g} vs {ours['start']:.6g}).",
        "",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--llama_dir", type=Path, default=ROOT / ".cache" / "smollm2-135m")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "lm_web")
    parser.add_argument("--train_minutes", type=float, default=20.0, help="training budget of each arm")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--block_size", type=int, default=256)
    parser.add_argument("--max_train_samples", type=int, default=None, help="training documents (default: all)")
    parser.add_argument("--eval_blocks", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--warmup_steps", type=int, default=5)
    parser.add_argument("--speed_rounds", type=int, default=8, help="alternating training steps per model")
    parser.add_argument("--speed_batch_size", type=int, default=4)
    parser.add_argument("--speed_threads", type=int, default=1, help="torch threads of the speed measurement")
    parser.add_argument("--speed_clock", choices=["cpu", "wall"], default="cpu")
    parser.add_argument("--speed_only", action="store_true", help="measure speed only and print it")
    parser.add_argument("--arm", choices=["llama", "bigmodel"], help=argparse.SUPPRESS)  # internal: one arm
    parser.add_argument("--arm_output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        torch.set_num_threads(1)
        row = run_arm(args.arm, args, args.arm_output / "run")
        (args.arm_output / "row.json").write_text(json.dumps(row))
        return
    args.argv = sys.argv[1:]
    if not (args.llama_dir / "model.safetensors").exists():
        subprocess.run(["bash", str(ROOT.parent / "shared" / "scripts" / "get_smollm2.sh"), str(args.llama_dir)],
                       check=True)
    started = time.perf_counter()
    speed = measure_speed(args)
    print(json.dumps(speed), flush=True)
    if args.speed_only:
        return
    with tempfile.TemporaryDirectory() as scratch:
        arms = {}
        for name in ("llama", "bigmodel"):
            arm_output = Path(scratch) / name
            arm_output.mkdir()
            arms[name] = (arm_output, subprocess.Popen(
                [sys.executable, __file__, *args.argv, "--arm", name, "--arm_output", str(arm_output)],
                env={**os.environ, "OMP_NUM_THREADS": "1"}))
        rows = []
        for name, (arm_output, process) in arms.items():
            if process.wait():
                sys.exit(f"the {name} arm failed (exit {process.returncode})")
            rows.append(json.loads((arm_output / "row.json").read_text()))
    text = report(speed, rows, args, time.perf_counter() - started)
    write_keeping_notes(RESULTS, text, NOTES_MARKER)
    print(text)


if __name__ == "__main__":
    main()
