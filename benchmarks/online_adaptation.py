"""Online adaptation: how much typing it saves on a new domain, what it costs in time and in forgetting.

    OMP_NUM_THREADS=1 python benchmarks/online_adaptation.py --model /work/models/bible_small \
        --document ../shared/data/l10n/en_es/validation.jsonl --bible ../shared/data/bible_en_es/validation.jsonl

The simulated translator of `benchmarks/interactive_translation.py` (accept the longest correct word prefix,
type the next reference word) works through the first `--sentences` pairs of the document in order and
approves each reference; one arm without adaptation, then one per `--arms` setting (which weights move,
learning rate) with `OnlineAdapter` learning from each approval in its background thread while the next
sentence is served, exactly as `serve --adapt` does. All arms run in this one process, one torch thread.

Measured per arm: word-stroke ratio per block of `--block` sentences and over the second half; keystroke
ratio on every `--keystroke_every`-th sentence of the second half (typed character by character; those
sentences are left out of the word-stroke ratios of every arm); time per completion; time from an approval
to the next sentence's first proposal (the update runs meanwhile); the update itself; BLEU (sacreBLEU) on
`--bible_pairs` pairs of the base model's validation data (forgetting) and on the document's pairs after
`--sentences` up to `--heldout_end` (what carries over), before and after. CPU seconds are process time
(all threads); the machine is shared, so wall-clock latencies are noisier than on an idle one.

Writes benchmarks/results/online_adaptation.md (notes below its marker line are kept on rerun).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch

from bigmodel_hf.interactive import CompletionEngine
from bigmodel_hf.interactive.adaptation import AdaptSettings, OnlineAdapter
from bigmodel_hf.interactive.session import model_languages
from bigmodel_hf.interactive.simulation import simulate_keystrokes, simulate_sentence, summarize
from bigmodel_hf.metrics import corpus_translation_scores
from bigmodel_hf.translator import Translator
from interactive_translation import describe_model, percentile, read_pairs  # benchmarks/, on sys.path
from results_page import write_keeping_notes

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "online_adaptation.md"
NOTES_MARKER = "<!-- notes below are kept when the benchmark is rerun -->"


def bleu(engine, pairs, batch_size: int = 32) -> float:
    """Corpus BLEU of the engine's current weights on `pairs`, with its beam settings."""
    translator = Translator(engine.model, engine.tokenizer, engine.model.device, source_prefix=engine.source_prefix)
    outputs = translator([s for s, _ in pairs], num_beams=engine.num_beams, batch_size=batch_size)
    return corpus_translation_scores(outputs, [[t] for _, t in pairs])["bleu"]


def run_arm(args, name: str, settings: AdaptSettings | None, document, bible, heldout, work: Path, log) -> dict:
    engine = CompletionEngine.from_pretrained(args.model, num_beams=args.num_beams, num_alternatives=1)
    source_lang, target_lang = model_languages(args.model)
    adapter = None if settings is None else OnlineAdapter(
        engine.model, engine.tokenizer, args.model, work / f"{name}.jsonl", settings, work / name,
        install=engine.replace_weights, source_lang=source_lang, target_lang=target_lang,
        source_prefix=engine.source_prefix, log=log)
    half = len(document) // 2
    keystroke_rows = set(range(half, len(document), args.keystroke_every)) if args.keystroke_every else set()
    sentences, keystrokes, completion_ms, approval_ms = [], [], [], []
    cpu, wall = time.process_time(), time.perf_counter()
    approved_at = None
    for index, (source, reference) in enumerate(document):
        engine.clear_cache()  # each sentence pays for its encoder, as in interactive_translation.py

        def timed(prefix: str, ms: float) -> None:
            nonlocal approved_at
            completion_ms.append(ms)
            if approved_at is not None:  # the first proposal after an approval
                approval_ms.append((time.perf_counter() - approved_at) * 1000)
                approved_at = None

        simulator = simulate_keystrokes if index in keystroke_rows else simulate_sentence
        result = simulator(engine, source, reference, on_completion=timed)
        (keystrokes if index in keystroke_rows else sentences).append((index, result))
        approved_at = time.perf_counter()
        if adapter is not None:
            adapter.learn(source, " ".join(reference.split()))  # the approved text, as the session saves it
        if (index + 1) % 50 == 0:
            log(f"  {name}: {index + 1}/{len(document)} sentences, {time.perf_counter() - wall:.0f} s")
    if adapter is not None:
        adapter.close()
    row = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
    blocks = []
    for start in range(0, len(document), args.block):
        chosen = [s for i, s in sentences if start <= i < start + args.block]
        blocks.append(summarize(chosen)["word_stroke_ratio"] if chosen else None)
    row["blocks"] = blocks
    row["second_half"] = summarize([s for i, s in sentences if i >= half])
    row["keystrokes"] = summarize([s for _, s in keystrokes]) if keystrokes else None
    row["completion_ms"] = (statistics.median(completion_ms), percentile(completion_ms, 0.9))
    row["approval_ms"] = (statistics.median(approval_ms), percentile(approval_ms, 0.9)) if approval_ms else None
    if adapter is not None:
        updates = [1000 * s for s in adapter.update_seconds]
        row["update_ms"] = (statistics.median(updates), percentile(updates, 0.9))
        row["learned"], row["error"] = adapter.learned, adapter.error
        row["bible_bleu"], row["heldout_bleu"] = bleu(engine, bible), bleu(engine, heldout)
    return row


def markdown(command: str, model: str, args, rows: list[dict], before: dict, note: str) -> str:
    half = args.sentences // 2
    baseline = rows[0]
    blocks = [f"{start + 1}-{min(start + args.block, args.sentences)}" for start in range(0, args.sentences, args.block)]
    lines = [
        "# Online adaptation: typing saved on a new domain, time, forgetting", "",
        f"`{command}`", "",
        *([note, ""] if note else []),
        f"Base model: {model}. Document: the first {args.sentences} pairs of `{args.document}`; held out: its "
        f"pairs {args.heldout_start + 1}-{args.heldout_end}; forgetting: the first {args.bible_pairs} pairs of "
        f"`{args.bible}`. Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs (load "
        f"average {os.getloadavg()[0]:.1f} at the end), one torch thread, torch {torch.__version__}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", "",
        "## Word-stroke ratio (words typed / reference words; lower is better)", "",
        f"Per block of {args.block} sentences, and over sentences {half + 1}-{args.sentences} with its change "
        "relative to no adaptation (target: at least 20% lower). Sentences simulated keystroke by keystroke "
        "are left out of these ratios in every arm.", "",
        "| arm | " + " | ".join(blocks) + f" | {half + 1}-{args.sentences} | vs no adaptation |",
        "|---|" + "---|" * (len(blocks) + 2),
    ]
    for row in rows:
        ratio = row["second_half"]["word_stroke_ratio"]
        change = ratio / baseline["second_half"]["word_stroke_ratio"] - 1
        lines.append(f"| {row['arm']} | " + " | ".join("-" if b is None else f"{b:.3f}" for b in row["blocks"])
                     + f" | {ratio:.3f} | {'-' if row is baseline else f'{100 * change:+.1f}%'} |")
    lines += ["", "## Keystrokes, time, forgetting", "",
              "Keystroke ratio: keystrokes / reference characters on the sentences typed character by character. "
              "Times in ms (wall clock): a completion; from an approval to the next sentence's first proposal "
              "(target p90 < 300 ms); one update (its optimiser steps and the swap), which runs in the background. "
              "BLEU after the document; before it was "
              f"{before['bible_bleu']:.2f} (bible) and {before['heldout_bleu']:.2f} (held-out l10n).", "",
              "| arm | keystroke ratio | completion p50 / p90 | approval → next proposal p50 / p90 | update p50 / p90 | "
              f"bible BLEU (Δ) | held-out {args.heldout_start + 1}-{args.heldout_end} BLEU (Δ) | CPU min |",
              "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        keys = row["keystrokes"]
        pair = lambda values: "-" if not values else f"{values[0]:.0f} / {values[1]:.0f}"  # noqa: E731
        bible_bleu = row.get("bible_bleu", before["bible_bleu"])
        heldout_bleu = row.get("heldout_bleu", before["heldout_bleu"])
        lines.append(
            f"| {row['arm']} | {keys['char_ratio']:.3f} ({keys['sentences']} sentences) | "
            if keys else f"| {row['arm']} | - | ")
        lines[-1] += (f"{pair(row['completion_ms'])} | {pair(row['approval_ms'])} | {pair(row.get('update_ms'))} | "
                      f"{bible_bleu:.2f} ({bible_bleu - before['bible_bleu']:+.2f}) | "
                      f"{heldout_bleu:.2f} ({heldout_bleu - before['heldout_bleu']:+.2f}) | {row['cpu_s'] / 60:.1f} |")
    lines += ["", "Settings of the adapting arms (the rest are `AdaptSettings` defaults): "
              + "; ".join(f"{row['arm']}: `{json.dumps(row['settings'])}`" for row in rows[1:]) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--document", required=True, help="JSON Lines pairs of the new domain, worked through in order")
    parser.add_argument("--bible", required=True, help="the base model's validation pairs (forgetting)")
    parser.add_argument("--sentences", type=int, default=600)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--heldout_start", type=int, default=600, help="held-out document pairs: after this one...")
    parser.add_argument("--heldout_end", type=int, default=1000, help="...up to this one")
    parser.add_argument("--bible_pairs", type=int, default=200)
    parser.add_argument("--keystroke_every", type=int, default=30, help="0: no keystroke simulation")
    parser.add_argument("--num_beams", type=int, default=None, help="default: the model's generation_config")
    parser.add_argument("--arms", nargs="+", default=["decoder:1e-4", "decoder:1e-3", "lora:1e-4", "lora:1e-3"],
                        help="MOVES:LEARNING_RATE[:STEPS_PER_APPROVAL] per adapting arm")
    parser.add_argument("--steps_per_approval", type=int, default=AdaptSettings.steps_per_approval)
    parser.add_argument("--replay_original", type=int, default=AdaptSettings.replay_original)
    parser.add_argument("--note", default="")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if not args.sentences <= args.heldout_start < args.heldout_end:
        parser.error(f"held-out pairs {args.heldout_start + 1}-{args.heldout_end} must come after the "
                     f"{args.sentences} document sentences: set --heldout_start and --heldout_end")

    torch.set_num_threads(1)
    log = lambda message: print(message, flush=True)  # noqa: E731
    source_lang, target_lang = model_languages(args.model)
    everything = read_pairs(args.document, source_lang, target_lang)
    document, heldout = everything[:args.sentences], everything[args.heldout_start:args.heldout_end]
    bible = read_pairs(args.bible, source_lang, target_lang)[:args.bible_pairs]
    engine = CompletionEngine.from_pretrained(args.model, num_beams=args.num_beams, num_alternatives=1)
    model = describe_model(engine, args.model)
    log(model)
    before = {"bible_bleu": bleu(engine, bible), "heldout_bleu": bleu(engine, heldout)}
    log(json.dumps(before))
    rows = []
    with tempfile.TemporaryDirectory(prefix="online_adaptation_") as work:
        arms = [("no adaptation", None)]
        for arm in args.arms:
            moves, rate, *steps = arm.split(":")
            steps = int(steps[0]) if steps else args.steps_per_approval
            label = f"{moves}, lr {rate}" + (f", {steps} steps" if steps != args.steps_per_approval else "")
            arms.append((label, AdaptSettings(moves=moves, learning_rate=float(rate), steps_per_approval=steps,
                                              replay_original=args.replay_original)))
        for name, settings in arms:
            log(f"arm {name}")
            row = run_arm(args, name.replace(" ", "_").replace(",", ""), settings, document, bible, heldout,
                          Path(work), log)
            row["arm"], row["settings"] = name, None if settings is None else asdict(settings)
            rows.append(row)
            log(json.dumps(row, default=str))
            shown = list(argv if argv is not None else sys.argv[1:])
            if "--note" in shown:
                del shown[shown.index("--note"):shown.index("--note") + 2]
            command = "python benchmarks/online_adaptation.py " + shlex.join(shown)
            text = markdown(command, model, args, rows, before, args.note)  # after each arm: a long run
            write_keeping_notes(Path(args.out), text, NOTES_MARKER)        # stopped early still leaves a page
    print(text)


if __name__ == "__main__":
    main()
