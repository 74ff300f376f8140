"""Interactive translation on held-out pairs: how fast each completion is, and how much typing it saves.

    python benchmarks/interactive_translation.py --model outputs/issue9_model \
        --pairs ../shared/data/bible_en_es/validation.jsonl --max_pairs 200

1. Simulation (one torch thread): on the first `--max_pairs` pairs a simulated translator accepts the
   longest correct word prefix of each proposal and types the next reference word, until the accepted
   words are the reference (`bigmodel_hf.interactive.simulation`). Reported: words typed per sentence
   against the reference's length (typing it all), the word-stroke ratio (typed / reference words),
   completions per sentence. Then, on the first `--keystroke_pairs` pairs, the same person typing
   character by character (the model re-completes after every keystroke; the person accepts as soon as
   it is right): keystrokes against the reference's characters.
2. Latency: on up to `--latency_sentences` pairs whose reference has 25-35 words (the first ones in the
   file), the same simulation, timing every completion, with 1 and with 2 torch threads; at each step also
   one keystroke-level completion, the next word's first two characters typed (a half word to spell).
   The first completion of a sentence also runs the encoder; later ones reuse its output.

Writes benchmarks/results/interactive_translation.md (notes below its marker line are kept on rerun).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from bigmodel_hf.interactive import CompletionEngine
from bigmodel_hf.interactive.simulation import simulate_keystrokes, simulate_sentence, summarize
from results_page import write_keeping_notes  # benchmarks/, on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "interactive_translation.md"
NOTES_MARKER = "<!-- notes below are kept when the benchmark is rerun -->"


def read_pairs(path, source_lang: str, target_lang: str) -> list[tuple[str, str]]:
    pairs = []
    for line in Path(path).read_text("utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            row = row.get("translation", row)
            pairs.append((row[source_lang], row[target_lang]))
    return pairs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def simulate(engine, pairs, log=print, simulator=simulate_sentence) -> dict:
    """The simulated translator on `pairs`; its summary plus the time per completion."""
    sentences, started = [], time.perf_counter()
    for number, (source, reference) in enumerate(pairs, 1):
        engine.clear_cache()  # each sentence pays for its encoder, as it would in use
        sentences.append(simulator(engine, source, reference))
        if number % 25 == 0:
            log(f"  {number}/{len(pairs)} sentences, {time.perf_counter() - started:.0f} s")
    summary = summarize(sentences)
    latencies = [ms for s in sentences for ms in s.latencies_ms]
    summary.update(median_ms=statistics.median(latencies), p90_ms=percentile(latencies, 0.9),
                   seconds=time.perf_counter() - started)
    return summary


def latency(engine, pairs, threads: int) -> dict:
    """Per-completion times (ms) along the simulated steps of `pairs`, with `threads` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    first, word, keystroke = [], [], []
    try:
        for source, reference in pairs:
            engine.clear_cache()
            target = reference.split()

            def timed(prefix: str, ms: float) -> None:
                (word if prefix else first).append(ms)
                typed = len(prefix.split())
                if typed < len(target):  # the person starts typing the next word: two characters of it
                    half = prefix + target[typed][:2]
                    started = time.perf_counter()
                    engine.complete(source, half, num_alternatives=1)
                    keystroke.append((time.perf_counter() - started) * 1000)

            simulate_sentence(engine, source, reference, on_completion=timed)
    finally:
        torch.set_num_threads(before)
    every = first + word + keystroke
    row = {"threads": threads, "completions": len(every)}
    for name, values in (("all", every), ("first", first), ("word", word), ("keystroke", keystroke)):
        if values:
            row[f"{name}_median"], row[f"{name}_p90"] = statistics.median(values), percentile(values, 0.9)
    return row


def describe_model(engine, model_dir) -> str:
    config = engine.model.config
    parameters = sum(p.numel() for p in engine.model.parameters())
    run_config = Path(model_dir) / "run_config.yaml"
    preset = ""
    if run_config.is_file():
        import yaml
        preset = (yaml.safe_load(run_config.read_text("utf-8")) or {}).get("preset") or ""
    named = f"`{model_dir}`" + (f" (preset `{preset}`)" if preset else "")
    return (f"{named}: {config.encoder_layers}+{config.decoder_layers} layers, d_model {config.d_model}, "
            f"{parameters / 1e6:.1f}M parameters, vocabulary {config.vocab_size}; beam {engine.num_beams}, "
            f"length penalty {engine.length_penalty}, at most {engine.max_new_tokens} new tokens")


def markdown(command: str, model: str, pairs_file: str, simulation: dict, keystrokes: dict | None,
             latencies: list[dict], latency_pairs: list[tuple[str, str]], note: str = "") -> str:
    s, k = simulation, keystrokes
    lengths = [len(reference.split()) for _, reference in latency_pairs]
    in_range = all(25 <= n <= 35 for n in lengths)
    lines = [
        "# Interactive translation: typing saved and time per completion", "",
        f"`{command}`", "",
        *([note, ""] if note else []),
        f"Model: {model}. Pairs: `{pairs_file}`. Machine: {platform.machine()}, {os.cpu_count()} cores "
        f"(load average {os.getloadavg()[0]:.1f} at the end), torch {torch.__version__}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", "",
        "## Simulated translator", "",
        f"The first {s['sentences']} pairs, one torch thread. The simulated person accepts the longest correct "
        "prefix of words of each proposal and types the next reference word; the model completes again.", "",
        "| sentences | reference words / sentence | words typed / sentence | word-stroke ratio | "
        "characters typed / reference characters | completions / sentence | first proposal right | "
        "proposal ran on past the reference |",
        "|---|---|---|---|---|---|---|---|",
        f"| {s['sentences']} | {s['reference_words_per_sentence']:.1f} | {s['words_typed_per_sentence']:.1f} | "
        f"{s['word_stroke_ratio']:.3f} | {s['char_ratio']:.3f} | {s['completions_per_sentence']:.1f} | "
        f"{s['first_proposal_right']} | {s['cut_overruns']} |", "",
        f"Typing every reference word would be {s['reference_words_per_sentence']:.1f} words per sentence; with the "
        f"model, {s['words_typed_per_sentence']:.1f} (word-stroke ratio {s['word_stroke_ratio']:.3f}, i.e. "
        f"{100 * (1 - s['word_stroke_ratio']):.0f}% of the words not typed). Time per completion during the "
        f"simulation: median {s['median_ms']:.0f} ms, p90 {s['p90_ms']:.0f} ms "
        f"({s['seconds'] / 60:.1f} min in all).", "",
        *([] if not k else [
            f"Typing character by character instead (the first {k['sentences']} pairs; the model re-completes "
            "after every keystroke and the person accepts as soon as the proposal is right again):", "",
            "| sentences | reference characters / sentence | keystrokes / sentence | keystroke ratio | "
            "completions / sentence | time per completion: median | p90 |",
            "|---|---|---|---|---|---|---|",
            f"| {k['sentences']} | {k['reference_chars'] / k['sentences']:.1f} | "
            f"{k['chars_typed'] / k['sentences']:.1f} | {k['char_ratio']:.3f} | {k['completions_per_sentence']:.1f} | "
            f"{k['median_ms']:.0f} ms | {k['p90_ms']:.0f} ms |", ""]),
        "## Latency per completion" + (", ~30-word sentences" if in_range else ""), "",
        (f"{len(lengths)} pairs with 25-35 reference words" if in_range else
         f"No pair has 25-35 reference words: the {len(lengths)} longest pairs") +
        f" ({statistics.mean(lengths) if lengths else 0:.1f} words on average), simulated as above. "
        "*first*: a sentence's first "
        "proposal (runs the encoder); *word*: after each typed word; *keystroke*: a half-typed next word (its "
        "first two characters) that the model must spell. Milliseconds.", "",
        "| torch threads | completions | all: median | all: p90 | first: median | word: median | word: p90 | "
        "keystroke: median | keystroke: p90 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in latencies:
        cells = [row.get(k) for k in ("all_median", "all_p90", "first_median", "word_median", "word_p90",
                                      "keystroke_median", "keystroke_p90")]
        lines.append(f"| {row['threads']} | {row['completions']} | "
                     + " | ".join("-" if v is None else f"{v:.0f}" for v in cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(text: str, path: Path = RESULTS) -> None:
    """Replace the measured part of `path`, keeping any notes written below the marker."""
    write_keeping_notes(path, text, NOTES_MARKER)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a translation run's output directory")
    parser.add_argument("--pairs", required=True, help="held-out pairs, JSON Lines")
    parser.add_argument("--max_pairs", type=int, default=200, help="pairs simulated (the first ones)")
    parser.add_argument("--keystroke_pairs", type=int, default=10, help="pairs simulated keystroke by keystroke")
    parser.add_argument("--latency_sentences", type=int, default=3, help="~30-word pairs timed per thread count")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--source_lang", default=None)
    parser.add_argument("--target_lang", default=None)
    parser.add_argument("--note", default="", help="a line put at the top of the results (e.g. which model)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    from bigmodel_hf.interactive.session import model_languages

    torch.set_num_threads(1)
    source_lang, target_lang = model_languages(args.model, args.source_lang, args.target_lang)
    pairs = read_pairs(args.pairs, source_lang, target_lang)
    engine = CompletionEngine.from_pretrained(args.model)
    print(describe_model(engine, args.model), flush=True)
    print(f"simulating {min(args.max_pairs, len(pairs))} pairs, 1 thread", flush=True)
    simulation = simulate(engine, pairs[:args.max_pairs], log=lambda m: print(m, flush=True))
    print(json.dumps(simulation), flush=True)
    keystrokes = None
    if args.keystroke_pairs > 0:
        print(f"simulating {min(args.keystroke_pairs, len(pairs))} pairs keystroke by keystroke", flush=True)
        keystrokes = simulate(engine, pairs[:args.keystroke_pairs], lambda m: print(m, flush=True), simulate_keystrokes)
        print(json.dumps(keystrokes), flush=True)
    long_pairs = [pair for pair in pairs if 25 <= len(pair[1].split()) <= 35][:args.latency_sentences]
    if not long_pairs:  # a corpus of short sentences (the toy one): time its longest instead, and say so
        long_pairs = sorted(pairs, key=lambda pair: -len(pair[1].split()))[:args.latency_sentences]
    latencies = []
    for threads in args.threads:
        latencies.append(latency(engine, long_pairs, threads))
        print(json.dumps(latencies[-1]), flush=True)
    shown = list(argv if argv is not None else sys.argv[1:])
    if "--note" in shown:  # the note is printed as text of its own
        del shown[shown.index("--note"):shown.index("--note") + 2]
    command = "python benchmarks/interactive_translation.py " + shlex.join(shown)
    text = markdown(command, describe_model(engine, args.model), args.pairs, simulation, keystrokes, latencies,
                    long_pairs, args.note)
    write_results(text, Path(args.out))
    print(text)


if __name__ == "__main__":
    main()
