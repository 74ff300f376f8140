"""Inference engines side by side: our `generate()`, `MarianMTModel` with our weights copied in, and the
CTranslate2 export in float32 and int8 (issue 17).

    python benchmarks/inference.py --model /work/models/bible_small \
        --pairs ../shared/data/bible_en_es/validation.jsonl

Measured in one process, engines alternating within each round (order reversed every other round):
- throughput, beam 4, batches of 32, at 1 and 2 threads: sentences/s and target tokens/s, over the same
  `--speed_sentences` pairs for every arm (the torch arms are the slow ones: a subset keeps the run short);
- batch-1 latency, beam 4, on `--latency_sentences` pairs whose source has 25-35 words: p50 / p90;
- BLEU / chrF (sacrebleu) of each arm's beam-4 translations of all pairs;
- greedy exactness: float32 CTranslate2 against our `generate()`, sentence for sentence, all pairs;
- peak resident memory of each arm (a fresh subprocess that loads it and translates 64 pairs) and its size
  on disk;
- the interactive engine's time per completion on ~30-word pairs, PyTorch against CTranslate2 (int8),
  with `benchmarks/interactive_translation.py`'s simulated translator.

Times are CPU time of this process (`time.process_time`, every thread counted) and wall-clock: on a shared
machine CPU time is the reliable one at 1 thread; at 2 threads wall-clock is what a user waits, and
is reported with the machine's load.

Writes benchmarks/results/inference.md (notes below its marker line are kept on rerun).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results" / "inference.md"
NOTES_MARKER = "<!-- notes below are kept when the benchmark is rerun -->"
ARMS = ("ours generate()", "Marian generate()", "CT2 float32", "CT2 int8")
BEAM, BATCH = 4, 32


# ---------------------------------------------------------------------------------------------- models


def marian_with_our_weights(model):
    """`MarianMTModel` of the same shape (speed.py's builder) holding `model`'s weights, our sinusoid table
    included (Marian's sinusoids use another frequency schedule), so both compute the same function."""
    import speed

    c = model.config
    marian = speed.marian(speed.Shape(d_model=c.d_model, layers=c.encoder_layers, heads=c.num_attention_heads,
                                      ffn=c.ffn_dim, gated_ffn=c.ffn_dim, kv_heads=c.num_attention_heads,
                                      vocab=c.vocab_size))
    assert c.decoder_layers == c.encoder_layers and c.norm_position == "post" and c.activation == "relu"
    marian.config.pad_token_id, marian.config.eos_token_id = c.pad_token_id, c.eos_token_id
    marian.config.decoder_start_token_id = c.decoder_start_token_id
    marian.generation_config.pad_token_id, marian.generation_config.eos_token_id = c.pad_token_id, c.eos_token_id
    marian.generation_config.decoder_start_token_id = c.decoder_start_token_id
    names = {"self_attn.o_proj": "self_attn.out_proj", "cross_attn.o_proj": "encoder_attn.out_proj",
             "cross_attn.": "encoder_attn.", "self_attn_norm": "self_attn_layer_norm",
             "cross_attn_norm": "encoder_attn_layer_norm", "mlp.up_proj": "fc1", "mlp.down_proj": "fc2",
             "mlp_norm": "final_layer_norm"}
    state = {}
    for key, value in model.state_dict().items():
        for ours, theirs in names.items():
            key = key.replace(ours, theirs)
        state[key] = value
    table = model.model.encoder.embed_inputs._sinusoids(torch.arange(1024).unsqueeze(0))[0]
    for stack in ("encoder", "decoder"):
        state[f"model.{stack}.embed_positions.weight"] = table
    missing, unexpected = marian.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in ("final_logits_bias",) and "embed_tokens" not in k and k != "lm_head.weight"]
    assert not missing and not unexpected, (missing, unexpected)
    marian.tie_weights()
    return marian.eval()


def load_arms(model_dir: Path, ct2_dirs: dict, threads: int):
    """Translate-functions of every arm, `threads` threads each."""
    from transformers import AutoTokenizer

    from bigmodel_hf import BigModelForSeq2SeqLM
    from bigmodel_hf.export.ct2_runtime import CT2Model
    from bigmodel_hf.decoding import translate_texts

    model = BigModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    generation = model.generation_config
    length_penalty = generation.length_penalty if generation.length_penalty is not None else 1.0
    max_new = max((generation.max_length or 129) - 1, 1)

    def torch_arm(m):
        return lambda texts, num_beams=BEAM, batch_size=BATCH: translate_texts(
            m, tokenizer, texts, num_beams=num_beams, length_penalty=length_penalty, max_new_tokens=max_new,
            batch_size=batch_size)

    def ct2_arm(folder):
        ct2 = CT2Model(folder, intra_threads=threads)
        return lambda texts, num_beams=BEAM, batch_size=BATCH: ct2.translate(
            texts, num_beams=num_beams, length_penalty=length_penalty, max_new_tokens=max_new, batch_size=batch_size)

    arms = {"ours generate()": torch_arm(model), "Marian generate()": torch_arm(marian_with_our_weights(model)),
            "CT2 float32": ct2_arm(ct2_dirs["float32"]), "CT2 int8": ct2_arm(ct2_dirs["int8"])}
    return arms, model, tokenizer


# ---------------------------------------------------------------------------------------------- measuring


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def target_tokens(tokenizer, texts) -> int:
    return sum(len(ids) for ids in tokenizer(text_target=list(texts), add_special_tokens=False)["input_ids"])


def throughput(arms, tokenizer, texts, rounds: int, log) -> dict:
    """Median over `rounds` alternating rounds of each arm's CPU and wall seconds on `texts`."""
    times = {name: [] for name in arms}
    outputs = {}
    for round_index in range(rounds):
        order = list(arms) if round_index % 2 == 0 else list(reversed(arms))
        for name in order:
            outputs[name], wall, cpu = timed(arms[name], texts)
            times[name].append((wall, cpu))
            log(f"    round {round_index + 1} {name}: {len(texts) / cpu:.1f} sentences/s CPU, {wall:.1f} s wall")
    rows = {}
    for name, samples in times.items():
        wall, cpu = statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples)
        tokens = target_tokens(tokenizer, outputs[name])
        rows[name] = dict(sent_cpu=len(texts) / cpu, sent_wall=len(texts) / wall, tok_cpu=tokens / cpu,
                          tok_wall=tokens / wall)
    return rows


def latency(arms, texts, rounds: int) -> dict:
    """Batch-1 beam-4 milliseconds per sentence (CPU and wall), every arm on every sentence, alternating."""
    samples = {name: ([], []) for name in arms}
    for round_index in range(rounds):
        for text in texts:
            order = list(arms) if round_index % 2 == 0 else list(reversed(arms))
            for name in order:
                _, wall, cpu = timed(arms[name], [text], batch_size=1)
                samples[name][0].append(1000 * cpu)
                samples[name][1].append(1000 * wall)
    return {name: dict(cpu_p50=statistics.median(c), cpu_p90=percentile(c, 0.9), wall_p50=statistics.median(w),
                       wall_p90=percentile(w, 0.9)) for name, (c, w) in samples.items()}


def single_arm_memory(arm: str, model_dir: str, ct2_dir: str | None, texts: list[str]) -> int:
    """Peak resident set (bytes, VmHWM) of a fresh process that loads only `arm` and translates `texts`."""
    loader = {
        "ours generate()": "model = BigModelForSeq2SeqLM.from_pretrained(d).eval(); f = lambda t: translate_texts(model, tok, t, num_beams=4)",
        "Marian generate()": "import inference; model = inference.marian_with_our_weights(BigModelForSeq2SeqLM.from_pretrained(d).eval()); f = lambda t: translate_texts(model, tok, t, num_beams=4)",
        "CT2 float32": "from bigmodel_hf.export.ct2_runtime import CT2Model; m = CT2Model(c, intra_threads=1); f = lambda t: m.translate(t, 4, m.defaults['length_penalty'], m.defaults['max_decoding_length'])",
        "CT2 int8": "from bigmodel_hf.export.ct2_runtime import CT2Model; m = CT2Model(c, intra_threads=1); f = lambda t: m.translate(t, 4, m.defaults['length_penalty'], m.defaults['max_decoding_length'])",
    }[arm]
    script = "\n".join([
        "import sys, json, torch",
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r})",
        "torch.set_num_threads(1)",
        "from transformers import AutoTokenizer",
        "from bigmodel_hf import BigModelForSeq2SeqLM",
        "from bigmodel_hf.decoding import translate_texts",
        f"d, c = {model_dir!r}, {ct2_dir!r}",
        "tok = AutoTokenizer.from_pretrained(d)",
        loader,
        f"f(json.loads({json.dumps(json.dumps(texts))}))",
    ])
    return peak_memory_of(script)


def ct2_alone_memory(ct2_dir: str, texts: list[str]) -> int:
    """Peak resident set (bytes, VmHWM) of a deployment's process: `ctranslate2` and `tokenizers` only (no
    torch, no transformers, no bigmodel_hf), the int8 export translating `texts` with beam 4."""
    script = "\n".join([
        "import json, ctranslate2",
        "from tokenizers import Tokenizer",
        f"d = {ct2_dir!r}",
        "tok = Tokenizer.from_file(d + '/tokenizer.json')",
        "translator = ctranslate2.Translator(d, intra_threads=1)",
        f"texts = json.loads({json.dumps(json.dumps(texts))})",
        "translator.translate_batch([tok.encode(t, add_special_tokens=False).tokens for t in texts], beam_size=4)",
    ])
    return peak_memory_of(script)


def peak_memory_of(script: str) -> int:
    """Peak resident set (bytes) of a fresh one-thread Python process running `script`. VmHWM, not
    ru_maxrss: Linux carries ru_maxrss over from the parent across exec (this benchmark's own peak), while
    the high-water mark of the new address space is the new process's alone."""
    script += "\nprint([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    if run.returncode:
        raise RuntimeError(run.stderr[-2000:])
    return int(run.stdout.strip().splitlines()[-1]) * 1024


def thirty_words(pairs, side: int, count: int):
    """The first `count` pairs whose source (side 0) or reference (1) has 25-35 words; the longest pairs
    when there are none (a toy corpus)."""
    chosen = [p for p in pairs if 25 <= len(p[side].split()) <= 35][:count]
    return chosen or sorted(pairs, key=lambda p: -len(p[side].split()))[:count]


def folder_size(paths) -> int:
    return sum(Path(p).stat().st_size for p in paths)


def interactive_latency(model_dir: Path, ct2_dir: Path, pairs, threads: int, log) -> dict:
    """Per-completion milliseconds of the interactive engine on torch and on CTranslate2."""
    from interactive_translation import latency as completion_latency

    from bigmodel_hf.interactive import CompletionEngine
    from bigmodel_hf.interactive.ct2_engine import CT2CompletionEngine

    engines = {"torch": CompletionEngine.from_pretrained(model_dir),
               "ct2 int8": CT2CompletionEngine.from_pretrained(ct2_dir, intra_threads=threads)}
    rows = {}
    for name, engine in engines.items():
        started = time.perf_counter()
        rows[name] = completion_latency(engine, pairs, threads)
        log(f"    interactive {name}: p50 {rows[name]['all_median']:.0f} ms, p90 {rows[name]['all_p90']:.0f} ms "
            f"({time.perf_counter() - started:.0f} s)")
    return rows


# ---------------------------------------------------------------------------------------------- the page


def markdown(a, command: str) -> str:
    base = {t: a["speed"][t]["ours generate()"] for t in a["speed"]}
    lines = [
        "# Inference engines: our generate(), Marian, CTranslate2 float32 and int8", "",
        f"`{command}`", "",
        f"Model: {a['model_desc']}. Pairs: `{a['pairs']}` ({a['n_pairs']} pairs). Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores shared with other jobs (load average {a['load']:.1f} at the end), torch "
        f"{torch.__version__}, ctranslate2 {a['ct2_version']}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"Whole run: {a['minutes']:.1f} min.", "",
        "All arms decode with beam 4, the checkpoint's length penalty and max length; Marian is `MarianMTModel` "
        "of the same shape with our weights copied in (its translations are ours: "
        f"{a['marian_same']}/{a['quality_n']} identical), the reference a user of transformers would pick.", "",
        "## Throughput (batches of 32, beam 4)", "",
        f"The first {a['speed_n']} pairs for every arm, median of {a['rounds']} alternating rounds. *CPU*: "
        "sentences per CPU-second of this process (all its threads), the figure a shared machine leaves "
        "reliable; *wall*: per second of wall-clock.", "",
        "| threads | engine | sentences/s (CPU) | × ours | target tokens/s (CPU) | sentences/s (wall) | "
        "× ours (wall) | target tokens/s (wall) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for threads, rows in a["speed"].items():
        for name in ARMS:
            r = rows[name]
            lines.append(f"| {threads} | {name} | {r['sent_cpu']:.1f} | {r['sent_cpu'] / base[threads]['sent_cpu']:.2f} | "
                         f"{r['tok_cpu']:.0f} | {r['sent_wall']:.1f} | {r['sent_wall'] / base[threads]['sent_wall']:.2f} | "
                         f"{r['tok_wall']:.0f} |")
    lines += [
        "", f"## Latency per sentence (batch 1, beam 4), {a['latency_n']} pairs of 25-35 source words "
        f"({a['latency_words']:.1f} on average)", "",
        "| threads | engine | p50 ms (CPU) | p90 ms (CPU) | p50 ms (wall) | p90 ms (wall) |", "|---|---|---|---|---|---|",
    ]
    for threads, rows in a["latency"].items():
        for name in ARMS:
            r = rows[name]
            lines.append(f"| {threads} | {name} | {r['cpu_p50']:.0f} | {r['cpu_p90']:.0f} | {r['wall_p50']:.0f} | "
                         f"{r['wall_p90']:.0f} |")
    lines += [
        "", f"## Quality, memory, size (BLEU/chrF on the first {a['quality_n']} pairs, beam 4)", "",
        "| engine | BLEU | chrF | peak memory (RSS, MiB) | size on disk (MiB) |", "|---|---|---|---|---|",
    ]
    for name in ARMS:
        q = a["quality"][name]
        lines.append(f"| {name} | {q['bleu']:.2f} | {q['chrf']:.2f} | {a['memory'][name] / 2**20:.0f} | "
                     f"{a['size'][name] / 2**20:.1f} |")
    lines += [
        "", "Peak memory: a fresh process (one thread) that imports torch and transformers, loads only that "
        "arm and translates "
        f"{a['memory_n']} pairs; the CTranslate2 arms load torch too (the package imports it), so their "
        "figure is mostly the interpreter's. A deployment's process with `ctranslate2` and `tokenizers` only "
        f"(no torch, no transformers) running the int8 export: **{a['memory_ct2_alone'] / 2**20:.0f} MiB**.", "",
        "## Exactness (greedy)", "",
        f"Float32 CTranslate2 against our `generate()`, greedy, the first {a['quality_n']} pairs: "
        f"**{a['greedy_same']}** identical translations, {a['quality_n'] - a['greedy_same']} different. "
        f"int8 BLEU minus our BLEU (beam 4): {a['quality']['CT2 int8']['bleu'] - a['quality']['ours generate()']['bleu']:+.2f}.",
        "",
        f"## Interactive engine, time per completion, {a['interactive_n']} pairs of ~30 words, "
        f"{a['interactive_threads']} thread", "",
        "`benchmarks/interactive_translation.py`'s simulated translator (accept the right words, type the next; "
        "at each step also a half-typed next word). Milliseconds, wall-clock.", "",
        "| engine | completions | all: p50 | all: p90 | first: p50 | word: p50 | word: p90 | keystroke: p50 | "
        "keystroke: p90 |", "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in a["interactive"].items():
        cells = [r.get(k) for k in ("all_median", "all_p90", "first_median", "word_median", "word_p90",
                                    "keystroke_median", "keystroke_p90")]
        lines.append(f"| {name} | {r['completions']} | " + " | ".join("-" if v is None else f"{v:.0f}" for v in cells)
                     + " |")
    speedup = a["speed"][1]["CT2 int8"]["sent_cpu"] / base[1]["sent_cpu"]
    p90 = a["latency"][1]["CT2 int8"]["cpu_p90"]
    interactive_p90 = a["interactive"]["ct2 int8"]["all_p90"]
    lines += [
        "", "## Targets", "",
        f"- CTranslate2 int8 at least 3x our `generate()` sentences/s at one thread: **{speedup:.1f}x** (CPU time) "
        f"- {'met' if speedup >= 3 else 'missed'}.",
        f"- Batch-1 p90 latency under 60 ms on a ~30-word sentence (int8, one thread): **{p90:.0f} ms** (CPU time) - "
        f"{'met' if p90 < 60 else 'missed'}.",
        f"- Interactive p90 completion under 100 ms: **{interactive_p90:.0f} ms** (CTranslate2 int8, wall) - "
        f"{'met' if interactive_p90 < 100 else 'missed'}.",
        f"- int8 loses at most 0.5 BLEU: {a['quality']['CT2 int8']['bleu'] - a['quality']['CT2 float32']['bleu']:+.2f} "
        "against float32 CTranslate2 - "
        f"{'met' if a['quality']['CT2 int8']['bleu'] - a['quality']['ours generate()']['bleu'] >= -0.5 else 'missed'} "
        "(against ours).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--source_lang", default="en")
    parser.add_argument("--target_lang", default="es")
    parser.add_argument("--max_pairs", type=int, default=1000)
    parser.add_argument("--speed_sentences", type=int, default=200, help="pairs timed per round for throughput")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency_sentences", type=int, default=10)
    parser.add_argument("--interactive_sentences", type=int, default=2)
    parser.add_argument("--quality_pairs", type=int, default=1000, help="pairs translated by every arm for BLEU/chrF "
                        "and the greedy exactness count (the first ones)")
    parser.add_argument("--memory_pairs", type=int, default=64, help="pairs each memory probe translates")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    started = time.perf_counter()

    import ctranslate2
    import sacrebleu

    from bigmodel_hf.export.ct2 import export_ct2
    from interactive_translation import read_pairs
    from results_page import write_keeping_notes

    def log(message):
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    model_dir = Path(args.model)
    pairs = read_pairs(args.pairs, args.source_lang, args.target_lang)[:args.max_pairs]
    sources, references = [s for s, _ in pairs], [r for _, r in pairs]
    work = Path(tempfile.mkdtemp(prefix="inference-bench-"))
    ct2_dirs = {q: str(export_ct2(model_dir, work / f"ct2-{q}", quantization=q)) for q in ("float32", "int8")}
    log(f"exported to {work}")

    a = dict(pairs=args.pairs, n_pairs=len(pairs), rounds=args.rounds, ct2_version=ctranslate2.__version__,
             speed={}, latency={})
    long_pairs = thirty_words(pairs, 0, args.latency_sentences)
    a["latency_n"] = len(long_pairs)
    a["latency_words"] = statistics.mean(len(s.split()) for s, _ in long_pairs)
    speed_texts = sources[:args.speed_sentences]
    a["speed_n"] = len(speed_texts)
    for threads in args.threads:
        torch.set_num_threads(threads)
        arms, model, tokenizer = load_arms(model_dir, ct2_dirs, threads)
        for arm in arms.values():  # warm-up
            arm(sources[:4])
        log(f"{threads} thread(s): throughput")
        a["speed"][threads] = throughput(arms, tokenizer, speed_texts, args.rounds, log)
        log(f"{threads} thread(s): batch-1 latency")
        a["latency"][threads] = latency(arms, [s for s, _ in long_pairs], rounds=1)
        if threads == args.threads[-1]:
            log("quality: every arm on every pair")
            quality_sources, quality_references = sources[:args.quality_pairs], references[:args.quality_pairs]
            a["quality_n"] = len(quality_sources)
            outputs = {name: arm(quality_sources) for name, arm in arms.items()}
            a["quality"] = {name: dict(bleu=sacrebleu.corpus_bleu(out, [quality_references]).score,
                                       chrf=sacrebleu.corpus_chrf(out, [quality_references]).score)
                            for name, out in outputs.items()}
            a["marian_same"] = sum(x == y for x, y in zip(outputs["ours generate()"], outputs["Marian generate()"]))
            log("greedy exactness")
            ours = arms["ours generate()"](quality_sources, num_beams=1)
            ct2 = arms["CT2 float32"](quality_sources, num_beams=1)
            a["greedy_same"] = sum(x == y for x, y in zip(ours, ct2))
            c = model.config
            a["model_desc"] = (f"`{model_dir}`: {c.encoder_layers}+{c.decoder_layers} layers, d_model {c.d_model}, "
                               f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, vocabulary "
                               f"{c.vocab_size}")
            marian_dir = work / "marian"
            marian_with_our_weights(model).save_pretrained(marian_dir)
    torch.set_num_threads(1)
    log("memory and size")
    a["memory"] = {name: single_arm_memory(name, str(model_dir), ct2_dirs.get(name.split()[-1]),
                                     sources[:args.memory_pairs])
                   for name in ARMS}
    a["memory_ct2_alone"] = ct2_alone_memory(ct2_dirs["int8"], sources[:args.memory_pairs])
    a["size"] = {"ours generate()": folder_size([model_dir / "model.safetensors"]),
                 "Marian generate()": folder_size([marian_dir / "model.safetensors"]),
                 "CT2 float32": folder_size([Path(ct2_dirs["float32"]) / "model.bin"]),
                 "CT2 int8": folder_size([Path(ct2_dirs["int8"]) / "model.bin"])}
    log("interactive engine")
    interactive_pairs = thirty_words(pairs, 1, args.interactive_sentences)
    a["interactive_n"], a["interactive_threads"] = len(interactive_pairs), 1
    a["interactive"] = interactive_latency(model_dir, Path(ct2_dirs["int8"]), interactive_pairs, 1, log)
    a["memory_n"] = args.memory_pairs
    a["load"] = os.getloadavg()[0]
    a["minutes"] = (time.perf_counter() - started) / 60
    command = "python benchmarks/inference.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out)
    write_keeping_notes(out, markdown(a, command), NOTES_MARKER)
    (out.with_suffix(".json")).write_text(json.dumps(a, indent=1, default=str) + "\n", "utf-8")
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
