"""One command that checks the model and the translation recipe on a CUDA GPU and writes the results page.

    python benchmarks/gpu_check.py                       # on a GPU machine -> benchmarks/results/gpu.md
    python benchmarks/gpu_check.py --out DIR --data D    # page into DIR, bible_en_es from D
    python benchmarks/gpu_check.py --cpu_fallback        # what CI runs: every section at toy sizes on the CPU

Sections, each in its own try block so one failure never loses the others, the page rewritten after each:
  1. the tests marked `gpu` (tests/test_gpu.py: cached vs uncached decoding, eager vs SDPA, padding, bf16 step);
  2. `torch.cuda.set_sync_debug_mode("error")` around one training step and one cached decoding step: any
     host-device synchronisation raises, and the page records where;
  3. training tokens/s and peak memory of BigModel vs MarianMTModel of the same shape, fp32 and bf16 autocast,
     same process, alternating, medians; greedy and beam-4 generation tokens/s;
  4. the translation recipe on bible_en_es for a few hundred steps with the defaults it picks on that GPU.
Made to finish in under 8 minutes on one H200 (the recipe gets what is left of `--budget_minutes`).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from speed import SHAPES, Shape, marian, ours_classic_seq2seq  # noqa: E402  (benchmarks/ sibling)

START = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - START:6.1f}s] {message}", flush=True)


class Page:
    """The results page, rewritten after each section so a timeout still leaves what was measured."""

    def __init__(self, path: Path, header: str):
        self.path, self.sections = path, [header]

    def add(self, title: str, body: str) -> None:
        self.sections.append(f"## {title}\n\n{body.rstrip()}\n")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(self.sections), "utf-8")
        log(f"wrote section '{title}' to {self.path}")


def environment(device: str) -> str:
    import transformers

    lines = [f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"- python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}"]
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        lines += [f"- GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability "
                  f"{props.major}.{props.minor}, CUDA {torch.version.cuda}",
                  f"- bf16 supported: {torch.cuda.is_bf16_supported()}"]
    else:
        lines.append(f"- CPU fallback ({os.cpu_count()} cores): toy sizes, the figures say nothing about speed")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# 1. The gpu-marked tests


def gpu_tests(timeout: int) -> str:
    command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "-o", "addopts=-ra",
               "tests/test_gpu.py"]  # relative to cwd=ROOT: no machine path on the page
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
    return f"`{' '.join(command[1:])}` exited {result.returncode}.\n\n```\n{tail}\n```"


# ---------------------------------------------------------------------------------------------------------
# 2. Host-device synchronisation


def sync_check(device: str, shape: Shape) -> str:
    if device != "cuda":
        return "Skipped: synchronisation debugging exists only on CUDA."
    torch.manual_seed(0)
    model = ours_classic_seq2seq(shape).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    batch = {"input_ids": torch.randint(3, shape.vocab, (8, 32), device=device),
             "labels": torch.randint(3, shape.vocab, (8, 24), device=device)}
    rows = []

    def train_step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def decode_step():
        # One cached decoding step: the encoder ran and the cache holds the first target token.
        from transformers import EncoderDecoderCache, DynamicCache

        model.eval()
        with torch.inference_mode():
            encoder_out = model.get_encoder()(input_ids=batch["input_ids"])
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
            start = torch.full((8, 1), model.config.decoder_start_token_id, device=device)
            out = model(encoder_outputs=encoder_out, decoder_input_ids=start, past_key_values=cache, use_cache=True)
            next_ids = out.logits[:, -1].argmax(-1, keepdim=True)
            torch.cuda.set_sync_debug_mode("error")
            try:
                model(encoder_outputs=encoder_out, decoder_input_ids=next_ids, past_key_values=out.past_key_values,
                      use_cache=True)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        model.train()

    def guarded_train_step():
        train_step()  # warm-up outside the guard: first-call allocations and lazy initialisation may sync
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            train_step()
        finally:
            torch.cuda.set_sync_debug_mode("default")

    for name, step in (("training step (forward, backward, fused AdamW, bf16 autocast)", guarded_train_step),
                       ("cached decoding step", decode_step)):
        try:
            step()
            rows.append(f"- {name}: no synchronisation")
        except Exception as error:  # noqa: BLE001 - recorded, not hidden
            frames = [line for line in traceback.format_exc().splitlines() if "bigmodel_hf" in line][-3:]
            rows.append(f"- {name}: **synchronised**: {str(error).splitlines()[0]}\n  "
                        + "\n  ".join(f"`{f.strip()}`" for f in frames))
        torch.cuda.set_sync_debug_mode("default")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------------------
# 3. Training and generation speed against MarianMTModel of the same shape


def timed(device: str):
    def measure(fn):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start
    return measure


def speed(device: str, shape: Shape, repeats: int) -> str:
    measure = timed(device)
    generator = torch.Generator().manual_seed(0)
    batch = {"input_ids": torch.randint(3, shape.vocab, (shape.s2s_batch, shape.src_len), generator=generator),
             "labels": torch.randint(3, shape.vocab, (shape.s2s_batch, shape.tgt_len), generator=generator)}
    batch = {k: v.to(device) for k, v in batch.items()}
    prompts = torch.randint(3, shape.vocab, (shape.gen_batch, shape.gen_prompt), generator=generator).to(device)
    models = {}
    for name, build in (("BigModelForSeq2SeqLM", ours_classic_seq2seq), ("MarianMTModel", marian)):
        torch.manual_seed(0)
        models[name] = build(shape).to(device)
    rows = {name: {} for name in models}
    tokens = batch["labels"].numel()
    for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        steps = {}
        for name, model in models.items():
            model.train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

            def step(model=model, optimizer=optimizer):
                with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
                    loss = model(**batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            steps[name] = step
            step()  # optimizer state exists from here on
        times = {name: [] for name in steps}
        for name in steps:
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
                steps[name]()
                rows[name][f"mem_{label}"] = torch.cuda.max_memory_allocated() / 2**20
        for _ in range(repeats):
            for name, step in steps.items():
                times[name].append(measure(step))
        for name in steps:
            rows[name][f"train_{label}"] = tokens / statistics.median(times[name])
        log(f"train {label}: " + ", ".join(f"{n} {rows[n][f'train_{label}']:,.0f} tok/s" for n in rows))
    new_tokens = shape.gen_batch * shape.gen_new
    for label, beams in (("greedy", 1), ("beam4", 4)):
        runs = {}
        for name, model in models.items():
            model.eval()

            def run(model=model, beams=beams):
                with torch.inference_mode():
                    model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=shape.gen_new,
                                   num_beams=beams, do_sample=False, eos_token_id=None, pad_token_id=0)
            runs[name] = run
            run()
        times = {name: [] for name in runs}
        for _ in range(max(3, repeats // 2)):
            for name, run in runs.items():
                times[name].append(measure(run))
        for name in runs:
            rows[name][label] = new_tokens / statistics.median(times[name])
        log(f"{label}: " + ", ".join(f"{n} {rows[n][label]:,.0f} tok/s" for n in rows))
    ref = rows["MarianMTModel"]
    lines = [f"Shape: d_model {shape.d_model}, {shape.layers}+{shape.layers} layers, {shape.heads} heads, ffn "
             f"{shape.ffn}, vocab {shape.vocab}; training batch {shape.s2s_batch} x {shape.src_len}+{shape.tgt_len} "
             f"(tok/s counts target tokens); generation batch {shape.gen_batch}, prompt {shape.gen_prompt}, "
             f"{shape.gen_new} new tokens. SDPA, float32 weights, AdamW; bf16 = autocast. Medians of {repeats} "
             "alternating rounds; (x) = ratio to Marian.", "",
             "| model | train fp32 tok/s | train bf16 tok/s | peak mem fp32 MiB | peak mem bf16 MiB | greedy tok/s | "
             "beam-4 tok/s |", "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        def cell(key):
            return f"{row[key]:,.0f} ({row[key] / ref[key]:.2f}x)" if key in row else "n/a"
        lines.append(f"| {name} | {cell('train_fp32')} | {cell('train_bf16')} | {cell('mem_fp32')} | "
                     f"{cell('mem_bf16')} | {cell('greedy')} | {cell('beam4')} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# 4. The translation recipe with the defaults it picks


def recipe(device: str, data: Path, minutes: float, work: Path) -> str:
    output = work / "gpu_recipe"
    if device == "cuda":  # the shipped bible_en_es run, as a user starts it, cut to the time left
        flags = ["--config", str(ROOT / "recipes" / "configs" / "bible_en_es_small.yaml"),
                 "--train_file", str(data / "train.jsonl"), "--validation_file", str(data / "validation.jsonl"),
                 "--max_steps", "20000", "--eval_steps", "1000", "--save_steps", "1000",
                 "--max_train_minutes", f"{max(minutes, 0.5):.2f}"]
    else:  # the embedded toy corpus, a few steps
        flags = ["--config", str(ROOT / "recipes" / "configs" / "translate_toy_en_es.yaml"), "--max_steps", "4",
                 "--warmup_steps", "0", "--eval_steps", "4", "--save_steps", "4"]
    command = [sys.executable, str(ROOT / "recipes" / "translate.py"), *flags, "--output_dir", str(output)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env,
                            timeout=int(minutes * 60) + 240)
    seconds = time.perf_counter() - start
    (work / "recipe_log.txt").write_text(result.stdout + result.stderr, "utf-8")
    shown = " ".join(flags).replace(str(ROOT) + os.sep, "")  # no absolute paths of the machine on the page
    body = [f"`python recipes/translate.py {shown}` exited {result.returncode} after {seconds:.0f} s "
            f"(log: {work / 'recipe_log.txt'})."]
    results_file = output / "eval_results.json"
    if results_file.is_file():
        results = json.loads(results_file.read_text("utf-8"))
        training = results.get("training", {})
        validation = results.get("validation", {})
        body.append(f"- steps {training.get('steps')}, epochs {training.get('epochs', 0):.2f}, training minutes "
                    f"{training.get('training_minutes', 0):.2f}, tokens {training.get('tokens', 0):,}")
        if training.get("training_minutes"):
            body.append(f"- training tokens/s (source + target, non-padding): "
                        f"{training['tokens'] / (training['training_minutes'] * 60):,.0f}")
        body.append(f"- validation BLEU {validation.get('bleu', float('nan')):.2f}, chrF "
                    f"{validation.get('chrf', float('nan')):.2f} ({validation.get('num_samples')} pairs, beam "
                    f"{validation.get('num_beams')})")
    config_file = output / "run_config.yaml"
    if config_file.is_file():
        picked = [line for line in config_file.read_text("utf-8").splitlines()
                  if line.split(":")[0].strip() in ("bf16", "fp16", "attn_implementation", "max_tokens",
                                                    "per_device_train_batch_size", "torch_compile")]
        body.append("- defaults it picked: " + ", ".join(f"`{line.strip()}`" for line in picked))
    if result.returncode != 0:
        body.append("```\n" + "\n".join((result.stdout + result.stderr).splitlines()[-20:]) + "\n```")
    return "\n".join(body)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for gpu.md")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "bible_en_es")
    parser.add_argument("--budget_minutes", type=float, default=7.0, help="the whole run; the recipe gets the rest")
    parser.add_argument("--cpu_fallback", action="store_true", help="run on the CPU at toy sizes even with a GPU")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() and not args.cpu_fallback else "cpu"
    shape = SHAPES["base"] if device == "cuda" else SHAPES["tiny"]
    repeats = 10 if device == "cuda" else 2
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))  # the recipe's output folder: large, not a result
    page = Page(args.out / ("gpu.md" if device == "cuda" else "gpu_cpu_fallback.md"),
                "# GPU check\n\nWritten by `python benchmarks/gpu_check.py`; each section below is what that run "
                "measured or raised.\n")
    failures = 0
    sections = [("Environment", lambda: environment(device)),
                ("Tests marked gpu", lambda: gpu_tests(timeout=240)),
                ("Host-device synchronisation", lambda: sync_check(device, shape)),
                ("Speed against MarianMTModel", lambda: speed(device, shape, repeats))]
    for title, run in sections:
        log(f"section: {title}")
        try:
            page.add(title, run())
        except Exception:  # noqa: BLE001 - one section's failure must not lose the others
            failures += 1
            page.add(title, "**Failed:**\n\n```\n" + traceback.format_exc()[-3000:] + "\n```")
    minutes_left = args.budget_minutes - (time.monotonic() - START) / 60 - 1.5  # start-up, final evaluation
    log(f"section: translation recipe ({minutes_left:.1f} training minutes)")
    try:
        page.add("Translation recipe on bible_en_es, defaults", recipe(device, args.data, minutes_left, work))
    except Exception:  # noqa: BLE001
        failures += 1
        page.add("Translation recipe on bible_en_es, defaults",
                 "**Failed:**\n\n```\n" + traceback.format_exc()[-3000:] + "\n```")
    log(f"done in {time.monotonic() - START:.0f} s, {failures} section(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
