"""Fine-tune SmolLM2-135M as `LlamaForCausalLM` and as the converted `BigModelForCausalLM`.

Each arm is one run of the text-generation recipe (`run_text_generation`) with the same data, settings
and seed; the only difference is `--convert_to_bigmodel`. The arms run one after the other, each in a
fresh Python process started by this one: on CPU, peak memory is only measurable per process (the peak
resident set size), and a second arm in the same process would inherit the first one's allocator.
Reported per arm: validation perplexity (token-weighted) before and after the fine-tune, training
tokens/s, peak RSS. Writes `benchmarks/results/lm_finetune.md` (notes below the marker line survive reruns).

    python benchmarks/lm_finetune.py [--max_steps 200] [--threads 2] [--data ../shared/data/lm_web]
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bigmodel_hf.training.text_generation import parse_text_generation_config, run_text_generation

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "lm_finetune.md"
NOTES_MARKER = "<!-- notes below are kept when the benchmark is rerun -->"


def run_arm(name: str, args, output_dir: Path) -> dict:
    flags = {
        "model_name_or_path": args.llama_dir, "train_file": args.data / "train.jsonl",
        "validation_file": args.data / "validation.jsonl", "output_dir": output_dir, "block_size": args.block_size,
        "max_train_samples": args.max_train_samples, "max_eval_samples": args.eval_blocks,
        "per_device_train_batch_size": args.batch_size, "per_device_eval_batch_size": args.batch_size,
        "max_steps": args.max_steps, "learning_rate": args.learning_rate, "warmup_steps": 0.1,
        "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": "false", "report_to": "none",
        "num_sample_outputs": 0, "logging_steps": 10, "seed": 0, "disable_tqdm": "true",
    }
    argv = [item for key, value in flags.items() for item in (f"--{key}", str(value))]
    argv += ["--convert_to_bigmodel"] if name == "bigmodel" else []
    results = run_text_generation(parse_text_generation_config(argv))["validation"]
    info = json.loads((output_dir / "run_info.json").read_text())
    tokens = info["global_step"] * args.batch_size * args.block_size
    return {"arm": name, "start": results["perplexity_at_start"], "end": results["perplexity"],
            "eval_tokens": results["tokens"], "steps": info["global_step"],
            "tokens_per_s": tokens / info["train_runtime_seconds"], "train_s": info["train_runtime_seconds"],
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # Linux: KiB


def report(rows: list[dict], args, wall: float) -> str:
    llama, ours = rows
    same_start = f"{llama['start']:.3g}" == f"{ours['start']:.3g}"
    lines = [
        "# Fine-tuning SmolLM2-135M: LlamaForCausalLM vs converted BigModelForCausalLM",
        "",
        f"`{' '.join(['python benchmarks/lm_finetune.py', *args.argv])}`",
        "",
        f"Checkpoint: SmolLM2-135M-Instruct built by `../shared/scripts/get_smollm2.sh` (float32). Data: "
        f"`{args.data.name}` (first {args.max_train_samples} training documents; validation: the first "
        f"{args.eval_blocks} blocks of {args.block_size} tokens of its validation split, {llama['eval_tokens']:,} "
        f"scored tokens). Both arms: {args.max_steps} optimizer steps of {args.batch_size} x {args.block_size} tokens, "
        f"AdamW lr {args.learning_rate:g}, cosine with 10% warmup, seed 0, float32, all weights trained, one after "
        f"the other, each in its own process. Machine: {platform.processor() or 'cpu'}, {os.cpu_count()} cores, torch "
        f"threads {torch.get_num_threads()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; total wall-clock "
        f"{wall / 60:.1f} min.",
        "",
        "| model | validation perplexity before | after | training tokens/s | peak RSS of the process (GiB) |",
        "|---|---|---|---|---|",
        *[f"| {r['arm']} | {r['start']:.3f} | {r['end']:.3f} | {r['tokens_per_s']:.0f} | {r['peak_rss_gib']:.2f} |"
          for r in rows],
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
    parser.add_argument("--max_steps", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--block_size", type=int, default=256)
    parser.add_argument("--max_train_samples", type=int, default=200)
    parser.add_argument("--eval_blocks", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--arm", choices=["llama", "bigmodel"], help=argparse.SUPPRESS)  # internal: one arm
    parser.add_argument("--arm_output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.arm:
        row = run_arm(args.arm, args, args.arm_output / "run")
        (args.arm_output / "row.json").write_text(json.dumps(row))
        return
    args.argv = sys.argv[1:]
    if not (args.llama_dir / "model.safetensors").exists():
        subprocess.run(["bash", str(ROOT.parent / "shared" / "scripts" / "get_smollm2.sh"), str(args.llama_dir)],
                       check=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        rows = []
        for name in ("llama", "bigmodel"):
            arm_output = Path(scratch) / name
            arm_output.mkdir()
            subprocess.run([sys.executable, __file__, *args.argv, "--arm", name, "--arm_output", str(arm_output)],
                           check=True)
            rows.append(json.loads((arm_output / "row.json").read_text()))
    text = report(rows, args, time.perf_counter() - started)
    notes = RESULTS.read_text().split(NOTES_MARKER, 1)[1] if RESULTS.is_file() and NOTES_MARKER in RESULTS.read_text() else "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n" + NOTES_MARKER + notes)
    print(text)


if __name__ == "__main__":
    main()
