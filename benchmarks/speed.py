"""Speed of BigModel against transformers' own models of the same architecture and shape, side by side.

One process; implementations are alternated step by step (the machine is shared and noisy), every figure
is a median over repeats, and every row is also given as a ratio to the fastest reference of its group.

Groups (like with like, same width / depth / heads / vocabulary / batch; see `GROUPS` for every setting):
  seq2seq classic   BigModelForSeq2SeqLM (vaswani preset)   vs MarianMTModel, BartForConditionalGeneration
  causal modern     BigModelForCausalLM (modern preset)     vs LlamaForCausalLM
  causal gpt2-style BigModelForCausalLM (pre-LN, learned)   vs GPT2LMHeadModel

Measured per model: training tokens/s (forward + backward + AdamW; float32 and bfloat16 autocast), the
transient memory of one training step (torch's CPU allocator, via the profiler), model FLOPs utilisation
against the float32 / bfloat16 matmul peaks measured at start, greedy and beam-4 generation tokens/s.

    python benchmarks/speed.py                 # small and base shapes -> benchmarks/results/speed.md
    python benchmarks/speed.py --quick         # smoke run: small shape, few repeats, prints only
    python benchmarks/speed.py --shapes small --repeats 7 --output /tmp/speed.md
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MarianConfig,
    MarianMTModel,
)
from transformers.utils import logging as hf_logging

from bigmodel_hf import BigModelConfig, BigModelForCausalLM, BigModelForSeq2SeqLM
from results_page import write_keeping_notes  # benchmarks/, on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
PAD, BOS, EOS = 0, 1, 2
# The clock every timing reads: wall time, or with `--clock cpu` this process's CPU time, which other jobs on a
# shared machine barely change (with `--threads 1` it is the compute time itself).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


@dataclass(frozen=True)
class Shape:
    d_model: int
    layers: int  # per stack: encoder and decoder of the seq2seq models, the whole decoder-only LM
    heads: int
    ffn: int  # plain (ReLU / GELU) feed-forward width
    gated_ffn: int  # SwiGLU width of the modern rows (about 2/3 of ffn: same parameter count)
    kv_heads: int  # grouped-query heads of the modern rows
    vocab: int = 8000
    s2s_batch: int = 32
    src_len: int = 64
    tgt_len: int = 64
    lm_batch: int = 8
    lm_len: int = 256
    gen_batch: int = 16
    gen_prompt: int = 64
    gen_new: int = 64


SHAPES = {
    "small": Shape(d_model=256, layers=3, heads=4, ffn=1024, gated_ffn=704, kv_heads=2),
    "base": Shape(d_model=512, layers=6, heads=8, ffn=2048, gated_ffn=1408, kv_heads=4),
    # For the smoke test only.
    "tiny": Shape(d_model=32, layers=1, heads=2, ffn=64, gated_ffn=48, kv_heads=1, vocab=128, s2s_batch=2,
                  src_len=8, tgt_len=8, lm_batch=2, lm_len=16, gen_batch=2, gen_prompt=4, gen_new=4),
}

# ---------------------------------------------------------------------------------------------------------
# Models. Common to every row: SDPA attention, attention and activation dropout 0, tied input/output
# embeddings (shared source/target vocabulary for the seq2seq models), float32 weights.


def ours_classic_seq2seq(s: Shape):
    # Vaswani et al.: post-norm LayerNorm, sinusoidal positions, ReLU, embeddings scaled by sqrt(d), biases.
    return BigModelForSeq2SeqLM(BigModelConfig.from_preset(
        "vaswani-small", vocab_size=s.vocab, d_model=s.d_model, encoder_layers=s.layers, decoder_layers=s.layers,
        num_attention_heads=s.heads, ffn_dim=s.ffn, dropout=0.1, attn_implementation="sdpa"))


def marian(s: Shape):
    # Marian is the same block: post-norm LayerNorm, fixed sinusoidal positions, scaled embeddings; ReLU set.
    return MarianMTModel(MarianConfig(
        vocab_size=s.vocab, decoder_vocab_size=s.vocab, d_model=s.d_model, encoder_layers=s.layers,
        decoder_layers=s.layers, encoder_attention_heads=s.heads, decoder_attention_heads=s.heads,
        encoder_ffn_dim=s.ffn, decoder_ffn_dim=s.ffn, activation_function="relu", dropout=0.1,
        attention_dropout=0.0, activation_dropout=0.0, scale_embedding=True, max_position_embeddings=1024,
        pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=BOS, forced_eos_token_id=None,
        attn_implementation="sdpa"))


def bart(s: Shape):
    # BART differs in two details it cannot switch off: learned positions and a LayerNorm on the embeddings.
    return BartForConditionalGeneration(BartConfig(
        vocab_size=s.vocab, d_model=s.d_model, encoder_layers=s.layers, decoder_layers=s.layers,
        encoder_attention_heads=s.heads, decoder_attention_heads=s.heads, encoder_ffn_dim=s.ffn,
        decoder_ffn_dim=s.ffn, activation_function="relu", dropout=0.1, attention_dropout=0.0,
        activation_dropout=0.0, scale_embedding=True, max_position_embeddings=1024, pad_token_id=PAD,
        bos_token_id=BOS, eos_token_id=EOS, decoder_start_token_id=BOS, forced_eos_token_id=None,
        forced_bos_token_id=None, attn_implementation="sdpa"))


def ours_modern_lm(s: Shape):
    # Llama block: pre-norm RMSNorm (eps 1e-6), RoPE (theta 10000), SwiGLU, GQA, no biases. Llama has no
    # residual dropout, so neither does this row.
    return BigModelForCausalLM(BigModelConfig.from_preset(
        "modern-small", is_encoder_decoder=False, vocab_size=s.vocab, d_model=s.d_model, decoder_layers=s.layers,
        num_attention_heads=s.heads, num_key_value_heads=s.kv_heads, ffn_dim=s.gated_ffn, dropout=0.0,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, attn_implementation="sdpa"))


def llama(s: Shape):
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=s.vocab, hidden_size=s.d_model, num_hidden_layers=s.layers, num_attention_heads=s.heads,
        num_key_value_heads=s.kv_heads, intermediate_size=s.gated_ffn, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, max_position_embeddings=1024,
        tie_word_embeddings=True, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS,
        attn_implementation="sdpa"))


def ours_gpt2_style_lm(s: Shape):
    # GPT-2's block in our settings: pre-norm LayerNorm (eps 1e-5), learned positions, GELU, biases, no scaling.
    return BigModelForCausalLM(BigModelConfig(
        is_encoder_decoder=False, vocab_size=s.vocab, d_model=s.d_model, decoder_layers=s.layers,
        num_attention_heads=s.heads, ffn_dim=s.ffn, activation="gelu", norm_type="layernorm",
        norm_position="pre", position_embedding="learned", scale_embedding=False, dropout=0.1,
        max_position_embeddings=1024, attn_implementation="sdpa"))


def gpt2(s: Shape):
    # activation "gelu" (exact erf GELU, as ours) instead of GPT-2's default tanh approximation.
    return GPT2LMHeadModel(GPT2Config(
        vocab_size=s.vocab, n_embd=s.d_model, n_layer=s.layers, n_head=s.heads, n_inner=s.ffn,
        activation_function="gelu", resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.0, n_positions=1024,
        layer_norm_epsilon=1e-5, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
        attn_implementation="sdpa"))


# group name -> (kind, [(row name, builder)]); the first row is ours, the rest are references.
GROUPS = {
    "seq2seq classic": ("seq2seq", [("BigModel vaswani", ours_classic_seq2seq), ("Marian", marian),
                                    ("BART", bart)]),
    "causal modern": ("causal", [("BigModel modern", ours_modern_lm), ("Llama", llama)]),
    "causal gpt2-style": ("causal", [("BigModel pre-LN", ours_gpt2_style_lm), ("GPT-2", gpt2)]),
}

# ---------------------------------------------------------------------------------------------------------
# Measurements


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 7) -> float:
    """Best FLOP/s of a square matmul (the hardware's practical peak for this dtype)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        start = clock()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (clock() - start))
    return best


def training_batch(kind: str, s: Shape, generator: torch.Generator) -> dict:
    """Random ids in [3, vocab) (no pad / bos / eos), no padding; `tokens` counts target tokens."""
    def ids(batch, length):
        return torch.randint(3, s.vocab, (batch, length), generator=generator)

    if kind == "seq2seq":
        return {"input_ids": ids(s.s2s_batch, s.src_len), "labels": ids(s.s2s_batch, s.tgt_len)}
    tokens = ids(s.lm_batch, s.lm_len)
    return {"input_ids": tokens, "labels": tokens}


def target_tokens(batch: dict) -> int:
    return batch["labels"].numel()


def make_train_step(model, batch: dict, dtype: torch.dtype):
    """One optimiser step as a closure; float32 weights and AdamW, forward under autocast for bfloat16."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def training_flops(model, batch: dict) -> int:
    """Matmul FLOPs of one forward + backward (eager attention, so the attention products are counted)."""
    implementation = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with FlopCounterMode(display=False) as counter:
            model(**batch).loss.backward()
    finally:
        model.set_attn_implementation(implementation)
        model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def step_memory(step) -> int:
    """Peak bytes allocated by torch on the CPU during one step, above what was allocated before it
    (activations, gradients, optimiser temporaries; the weights and AdamW state exist already)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp:
        trace_path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(trace_path)
        with open(trace_path) as f:
            events = json.load(f)["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
    return max(totals, default=0)


def median_times(fns: dict, repeats: int, warmup: int = 1) -> dict:
    """Median seconds per call of each function, calling them in turn (a, b, c, a, b, c, ...)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def generation_inputs(kind: str, s: Shape, generator: torch.Generator) -> dict:
    ids = torch.randint(3, s.vocab, (s.gen_batch, s.gen_prompt), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def make_generate(model, inputs: dict, s: Shape, num_beams: int):
    """generate() with the cache, exactly `gen_new` new tokens (no EOS stop), no sampling."""
    def run():
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=s.gen_new, num_beams=num_beams, do_sample=False,
                                 eos_token_id=None, pad_token_id=PAD, use_cache=True)
        expected = s.gen_new + (0 if model.config.is_encoder_decoder else s.gen_prompt)
        assert out.shape[1] == expected + model.config.is_encoder_decoder, out.shape
        return out

    return run


def benchmark_group(group: str, s: Shape, repeats: int, peaks: dict, gen_repeats: int | None = None,
                    log=print) -> list[dict]:
    """All measurements for one group at one shape; one dict per row."""
    kind, builders = GROUPS[group]
    gen_repeats = gen_repeats or repeats
    generator = torch.Generator().manual_seed(0)
    batch = training_batch(kind, s, generator)
    prompts = generation_inputs(kind, s, generator)
    rows = {}
    models = {}
    for name, build in builders:
        torch.manual_seed(0)
        model = build(s).train()
        models[name] = model
        rows[name] = {"group": group, "model": name, "params": sum(p.numel() for p in model.parameters()),
                      "flops": training_flops(model, batch)}
    tokens = target_tokens(batch)
    for dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        steps = {name: make_train_step(model, batch, dtype) for name, model in models.items()}
        for name, step in steps.items():
            step()  # AdamW state exists from here on, so the memory figure is the step's own
            rows[name][f"mem_{label}"] = step_memory(step)
        seconds = median_times(steps, repeats)
        for name, sec in seconds.items():
            rows[name][f"train_{label}"] = tokens / sec
            rows[name][f"mfu_{label}"] = rows[name]["flops"] / sec / peaks[label]
        log(f"  {group} train {label}: " + ", ".join(f"{n} {tokens / t:,.0f} tok/s" for n, t in seconds.items()))
    for model in models.values():
        model.eval()
    new_tokens = s.gen_batch * s.gen_new
    for beams, label in ((1, "greedy"), (4, "beam4")):
        runs = {name: make_generate(model, prompts, s, beams) for name, model in models.items()}
        seconds = median_times(runs, gen_repeats)
        for name, sec in seconds.items():
            rows[name][label] = new_tokens / sec
        log(f"  {group} {label}: " + ", ".join(f"{n} {new_tokens / t:,.0f} tok/s" for n, t in seconds.items()))
    return list(rows.values())


# ---------------------------------------------------------------------------------------------------------
# Report

METRICS = [("train_fp32", "train fp32 tok/s"), ("train_bf16", "train bf16 tok/s"), ("greedy", "greedy tok/s"),
           ("beam4", "beam-4 tok/s")]


def ratios(rows: list[dict], key: str, lower_is_better: bool = False) -> dict:
    """Each row's value relative to the best reference (non-BigModel) row of its group."""
    out = {}
    for row in rows:
        refs = [r[key] for r in rows if r["group"] == row["group"] and not r["model"].startswith("BigModel")]
        best = min(refs) if lower_is_better else max(refs)
        out[row["model"]] = row[key] / best
    return out


def markdown_tables(shape_name: str, s: Shape, rows: list[dict]) -> str:
    lines = [f"### {shape_name}: d_model {s.d_model}, {s.layers}+{s.layers} layers (decoder-only: {s.layers}), "
             f"{s.heads} heads, ffn {s.ffn} (SwiGLU {s.gated_ffn}, {s.kv_heads} kv heads), vocab {s.vocab}",
             "",
             f"Training: seq2seq batch {s.s2s_batch} x {s.src_len}+{s.tgt_len}, decoder-only batch {s.lm_batch} x "
             f"{s.lm_len}; tok/s counts target tokens. Generation: batch {s.gen_batch}, prompt {s.gen_prompt}, "
             f"{s.gen_new} new tokens; tok/s counts new tokens per sequence (not per beam). (x) = ratio to the "
             "fastest reference of the group; memory ratio to the smallest.",
             "",
             "| group | model | params | train fp32 tok/s | train bf16 tok/s | MFU fp32 | MFU bf16 | "
             "step mem fp32 MiB | step mem bf16 MiB | greedy tok/s | beam-4 tok/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    rel = {key: ratios(rows, key) for key, _ in METRICS}
    mem = {key: ratios(rows, key, lower_is_better=True) for key in ("mem_fp32", "mem_bf16")}
    for r in rows:
        m = r["model"]

        def cell(key, fmt="{:,.0f}"):
            return f"{fmt.format(r[key])} ({rel[key][m]:.2f}x)"

        lines.append(
            f"| {r['group']} | {m} | {r['params'] / 1e6:.1f}M | {cell('train_fp32')} | {cell('train_bf16')} | "
            f"{r['mfu_fp32']:.0%} | {r['mfu_bf16']:.0%} | {r['mem_fp32'] / 2**20:,.0f} ({mem['mem_fp32'][m]:.2f}x) | "
            f"{r['mem_bf16'] / 2**20:,.0f} ({mem['mem_bf16'][m]:.2f}x) | {cell('greedy')} | {cell('beam4')} |")
    return "\n".join(lines)


NOTES_MARKER = "<!-- notes: kept by speed.py when it rewrites the tables above -->"

ROW_SETTINGS = """## What each row is

Every model: random init (seed 0), float32 weights, SDPA attention, attention and activation dropout 0, tied
input/output embeddings (and shared source/target embeddings for seq2seq), random token ids without padding.
Training: AdamW (lr 1e-4), loss computed by the model from `labels`, bfloat16 rows run the forward and loss
under `torch.autocast("cpu", dtype=torch.bfloat16)` with float32 weights and optimizer. Generation:
`generate(max_new_tokens=64, eos_token_id=None, do_sample=False, use_cache=True)` in eval mode, `num_beams`
1 or 4, so every model emits exactly 64 tokens per sequence.

- **BigModel vaswani** (`vaswani-small` preset resized): post-norm LayerNorm, sinusoidal positions, ReLU,
  embeddings scaled by sqrt(d_model), biases, residual dropout 0.1.
- **Marian**: `MarianMTModel` set to the same block: post-norm, fixed sinusoidal positions, scaled embeddings,
  `activation_function="relu"` (Marian's default is swish), residual dropout 0.1.
- **BART**: `BartForConditionalGeneration`, ReLU, scaled embeddings, residual dropout 0.1; it cannot switch off
  its learned positions and its LayerNorm on the embeddings (one extra LayerNorm per stack).
- **BigModel modern** (`modern-small` preset resized): pre-norm RMSNorm (eps 1e-6), RoPE (theta 10000), SwiGLU
  of width 2/3 x ffn, grouped-query attention, no biases, no dropout (Llama has no residual dropout).
- **Llama**: `LlamaForCausalLM` with the same sizes, eps, RoPE, kv heads, tied embeddings.
- **BigModel pre-LN**: our block set to GPT-2's recipe: pre-norm LayerNorm, learned positions, exact GELU,
  biases, unscaled embeddings, residual and embedding dropout 0.1.
- **GPT-2**: `GPT2LMHeadModel` with `activation_function="gelu"` (exact, instead of its tanh approximation),
  resid/embd dropout 0.1, attention dropout 0.
"""


def machine_conditions() -> str:
    load = os.getloadavg()
    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}; load average "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["small", "base"], choices=list(SHAPES))
    parser.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS))
    parser.add_argument("--repeats", type=int, default=5, help="timed training steps per model (median)")
    parser.add_argument("--gen_repeats", type=int, default=3, help="timed generate() calls per model (median)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="wall: elapsed time; cpu: process CPU time (robust on a loaded machine with --threads 1)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small shape, 2 repeats, no file written")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "speed.md")
    args = parser.parse_args()
    if args.quick:
        args.shapes, args.repeats, args.gen_repeats, args.output = ["small"], 2, 1, None
    hf_logging.set_verbosity_error()
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)

    before = machine_conditions()
    print("machine:", before)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"matmul peaks: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    sections = []
    for shape_name in args.shapes:
        s = SHAPES[shape_name]
        rows = []
        for group in args.groups:
            print(f"[{shape_name}] {group}")
            rows += benchmark_group(group, s, args.repeats, peaks, args.gen_repeats)
        sections.append(markdown_tables(shape_name, s, rows))
        print(sections[-1])
    after = machine_conditions()
    if args.output is None:
        return
    command = "python benchmarks/speed.py " + " ".join(
        [f"--shapes {' '.join(args.shapes)}", f"--repeats {args.repeats}", f"--gen_repeats {args.gen_repeats}",
         f"--threads {args.threads}", f"--clock {args.clock}"])
    text = "\n".join([
        "# Speed: BigModel vs transformers' own models, same architecture and shape",
        "",
        f"Command: `{command}` (one process; models alternate step by step; medians).",
        "",
        f"Machine before: {before}.  ",
        f"Machine after: {after}.  ",
        f"Measured matmul peaks (2048x2048, best of 7): float32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bfloat16 "
        f"{peaks['bf16'] / 1e9:.0f} GFLOP/s. MFU = counted forward+backward matmul FLOPs per step (attention "
        "products included) / step time / peak of the step's dtype.",
        "",
        ROW_SETTINGS,
        *[section + "\n" for section in sections],
    ])
    # Hand-written analysis below the marker (profiles, changes and their measured effect) survives reruns.
    write_keeping_notes(args.output, text, NOTES_MARKER)
    print("wrote", args.output)


if __name__ == "__main__":
    main()
