"""Training speed of `--torch_compile` (torch.compile, inductor) against eager, same process, same batches.

What a user weighs: the recipe's default eager training against `--torch_compile true`. Both arms start from
the same weights and train the same token-budget batches of real data (`bible_en_es`, the recipe's
`max_tokens` 2048, shapes varying as in training, so compilation must handle dynamic shapes); they
alternate round by round (the machine is shared), each round timing forward + backward + AdamW over every
batch in CPU time (`time.process_time`, one thread: busy neighbours do not count). Compilation time is
reported apart, with the number of rounds it takes to pay for itself.

    OMP_NUM_THREADS=1 python benchmarks/compile_speed.py                 # -> benchmarks/results/compile_speed.md
    python benchmarks/compile_speed.py --quick                           # tiny model, synthetic batches, prints only
"""

import argparse
import copy
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from bigmodel_hf import BigModelConfig, BigModelForSeq2SeqLM
from bigmodel_hf.batching import TokenBudgetBatchSampler, make_seq2seq_collator

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "bible_en_es" / "train.jsonl"
TOKENIZER = Path("/work/models/bible_small")  # any tokenizer of a bible_en_es run
MARKER = "<!-- notes below are kept when the page is regenerated -->"


def real_batches(tokenizer, count: int, max_tokens: int, seed: int = 0) -> list[dict]:
    """The first `count` token-budget batches (shuffled, as the recipe draws them) of bible_en_es."""
    rows = [json.loads(line)["translation"] for line in DATA.read_text("utf-8").splitlines()[:4000]]
    features = [{"input_ids": tokenizer(row["en"], truncation=True, max_length=128)["input_ids"],
                 "labels": tokenizer(text_target=row["es"], truncation=True, max_length=128)["input_ids"]}
                for row in rows]
    lengths = [[len(f["input_ids"]), len(f["labels"])] for f in features]
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=max_tokens, seed=seed, num_replicas=1, rank=0)
    collate = make_seq2seq_collator(tokenizer)
    return [dict(collate([features[i] for i in batch])) for batch, _ in zip(sampler, range(count))]


def synthetic_batches(config, count: int, seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for i in range(count):
        batch, src, tgt = 4, 6 + 2 * i, 5 + i
        batches.append({"input_ids": torch.randint(4, config.vocab_size, (batch, src), generator=generator),
                        "attention_mask": torch.ones(batch, src, dtype=torch.long),
                        "labels": torch.randint(4, config.vocab_size, (batch, tgt), generator=generator)})
    return batches


class Arm:
    """A model, its optimizer and a way to run it (eager or compiled)."""

    def __init__(self, model, compiled: bool):
        self.model = model.train()
        self.step_fn = torch.compile(model) if compiled else model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step(self, batch) -> float:
        loss = self.step_fn(**batch).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def round(self, batches) -> tuple[float, list[float]]:
        """CPU seconds for one pass over `batches`, and the losses."""
        started = time.process_time()
        losses = [self.train_step(batch) for batch in batches]
        return time.process_time() - started, losses


def measure(model, batches, rounds: int, log=print) -> dict:
    tokens = sum(int((b["labels"] != -100).sum()) + int(b["attention_mask"].sum()) for b in batches)
    eager, compiled = Arm(model, compiled=False), Arm(copy.deepcopy(model), compiled=True)
    started, wall = time.process_time(), time.perf_counter()
    _, compiled_losses = compiled.round(batches)  # compiles every shape (then dynamic ones) once
    compile_s, compile_wall_s = time.process_time() - started, time.perf_counter() - wall
    _, eager_losses = eager.round(batches)
    first_loss_gap = max(abs(a - b) for a, b in zip(eager_losses, compiled_losses))
    times = {"eager": [], "compiled": []}
    for r in range(rounds):
        for name, arm in (("eager", eager), ("compiled", compiled)) if r % 2 == 0 else (("compiled", compiled), ("eager", eager)):
            seconds, _ = arm.round(batches)
            times[name].append(seconds)
        log(f"round {r + 1}/{rounds}: eager {times['eager'][-1]:.2f} s, compiled {times['compiled'][-1]:.2f} s")
    eager_s, compiled_s = statistics.median(times["eager"]), statistics.median(times["compiled"])
    return {"tokens_per_round": tokens, "batches": len(batches), "rounds": rounds,
            "shapes": sorted({tuple(b["input_ids"].shape) + tuple(b["labels"].shape) for b in batches}),
            "eager_tok_s": tokens / eager_s, "compiled_tok_s": tokens / compiled_s, "ratio": eager_s / compiled_s,
            "eager_round_s": times["eager"], "compiled_round_s": times["compiled"],
            "first_round_compiled_s": compile_s, "first_round_compiled_wall_s": compile_wall_s,
            "first_round_loss_gap": first_loss_gap,
            "rounds_to_break_even": (compile_s - compiled_s) / max(eager_s - compiled_s, 1e-9)}


def page(result: dict, config: BigModelConfig) -> str:
    r = result
    lines = [
        "# `--torch_compile` against eager training (CPU)",
        "",
        f"Measured {datetime.date.today().isoformat()} by `benchmarks/compile_speed.py`: torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, 1 thread, CPU time (`time.process_time`) on a machine shared "
        "with other jobs. Model: vaswani-small shape (3+3 layers, d_model 256, ffn 1024, 4 heads, vocabulary "
        f"{config.vocab_size}), float32, AdamW. Data: the first {r['batches']} token-budget batches (max_tokens 2048) "
        f"of `bible_en_es` train, {len(r['shapes'])} distinct shapes, {r['tokens_per_round']} non-padding tokens "
        f"(source + target) per round; {r['rounds']} alternating rounds per arm, medians.",
        "",
        "| arm | tokens/s | ratio to eager |",
        "|---|---|---|",
        f"| eager (the recipe's default) | {r['eager_tok_s']:.0f} | 1.00 |",
        f"| `--torch_compile true` (inductor) | {r['compiled_tok_s']:.0f} | {r['ratio']:.2f} |",
        "",
        f"First compiled round, compilation included: {r['first_round_compiled_s']:.1f} CPU s in this process, "
        f"{r['first_round_compiled_wall_s']:.0f} s wall-clock (inductor also compiles C++ in worker processes, "
        "which process_time does not count) "
        f"(a compiled round afterwards: {statistics.median(r['compiled_round_s']):.2f} s); "
        + (f"compiling pays for itself after about {max(r['rounds_to_break_even'], 0):.0f} rounds of these "
           f"{r['batches']} batches." if r["ratio"] > 1 else "at a ratio below 1 it never pays for itself."),
        f"Largest loss difference between the arms in their first round: {r['first_round_loss_gap']:.2e}.",
        "",
        "Round times (CPU s): eager " + ", ".join(f"{s:.2f}" for s in r["eager_round_s"])
        + "; compiled " + ", ".join(f"{s:.2f}" for s in r["compiled_round_s"]) + ".",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, synthetic batches, print only")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "compile_speed.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.quick:
        config = BigModelConfig.from_preset("vaswani-small", vocab_size=64, d_model=32, ffn_dim=48,
                                            encoder_layers=1, decoder_layers=1, num_attention_heads=2, dropout=0.0)
        result = measure(BigModelForSeq2SeqLM(config), synthetic_batches(config, 2), rounds=2)
        print(json.dumps({k: v for k, v in result.items() if k != "shapes"}, indent=1))
        return
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    config = BigModelConfig.from_preset("vaswani-small", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                        dropout=0.0)  # dropout off: both arms then compute the same thing
    result = measure(BigModelForSeq2SeqLM(config), real_batches(tokenizer, args.batches, 2048), args.rounds)
    from results_page import write_keeping_notes

    print(write_keeping_notes(args.output, page(result, config), MARKER))


if __name__ == "__main__":
    main()
