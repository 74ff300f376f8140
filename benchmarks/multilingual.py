"""One multilingual model against one bilingual model per language, at the same total CPU time.

    python benchmarks/multilingual.py train-bilingual --minutes 7.5 --cpu 0
    python benchmarks/multilingual.py train-multilingual --minutes 60 --cpu 1

Arms, on `../shared/data/l10n` (software messages, English -> es, de, fr, it, pt_BR, ru, ja, zh_CN):
(a) `train-bilingual`: eight en->X models, one after the other, each `--minutes` of CPU time;
(b) `train-multilingual`: one model on all sixteen directions en<->X for eight times that.
Both run the recipe as a user runs it (`python recipes/translate.py`, the same preset and defaults),
one torch thread, training time counted in this process's CPU seconds (`--train_clock cpu`), so a shared
machine changes how long the arms take, not how much computation each gets. `--cpu N` pins an arm to
one core. Models go to `--work_dir`; a finished model is kept and not retrained on rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "l10n"
LANGUAGES = ["es", "de", "fr", "it", "pt_BR", "ru", "ja", "zh_CN"]
# The same model and recipe settings for every arm; only data (and the multilingual flags) differ.
COMMON_FLAGS = ["--preset", "vaswani-small", "--max_tokens", "2048", "--train_clock", "cpu",
                "--max_eval_samples", "200", "--eval_steps", "500", "--save_steps", "500", "--plot", "false"]


def run_recipe(flags: list[str], output_dir: Path, cpu: int | None, log: Path) -> float:
    """One recipe run in its own process; returns its wall-clock seconds (training budget is CPU time)."""
    command = [sys.executable, str(ROOT / "recipes" / "translate.py"), *COMMON_FLAGS, *flags,
               "--output_dir", str(output_dir)]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                   "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    with open(log, "w") as handle:
        subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT, env=environment, cwd=ROOT)
    return time.perf_counter() - started


def train_bilingual(args) -> None:
    for language in args.languages:
        output_dir = args.work_dir / f"bilingual_en_{language}"
        if (output_dir / "eval_results.json").exists():
            print(f"en-{language}: kept ({output_dir})", flush=True)
            continue
        flags = ["--train_file", str(DATA / f"en_{language}" / "train.jsonl"),
                 "--validation_file", str(DATA / f"en_{language}" / "validation.jsonl"),
                 "--source_lang", "en", "--target_lang", language,
                 "--max_train_minutes", str(args.minutes), "--vocab_size", str(args.vocab_size)]
        seconds = run_recipe(flags, output_dir, args.cpu, args.work_dir / f"bilingual_en_{language}.log")
        print(f"en-{language}: trained in {seconds / 60:.1f} wall-clock minutes", flush=True)
        (output_dir / "benchmark_arm.json").write_text(json.dumps(
            {"arm": "bilingual", "language_pair": f"en-{language}", "cpu_minutes": args.minutes,
             "wall_minutes": seconds / 60, "flags": flags}, indent=2))


def multilingual_flags(languages: list[str], split_files: bool = True) -> list[str]:
    """The recipe flags of arm (b): every en_X file feeds en-X and X-en."""
    pairs = [f"{a}-{b}" for language in languages for a, b in (("en", language), (language, "en"))]
    flags = ["--language_pairs", ",".join(pairs)]
    for split in ("train", "validation"):
        flags += [f"--{split}_file", ",".join(str(DATA / f"en_{language}" / f"{split}.jsonl") for language in languages)]
    return flags


def train_multilingual(args) -> None:
    output_dir = args.work_dir / "multilingual"
    if (output_dir / "eval_results.json").exists():
        print(f"multilingual: kept ({output_dir})", flush=True)
        return
    # The recipe's own final evaluation decodes 100 rows per direction (16 directions at beam 4 in full would
    # take as long as training); `score` decodes every validation row of every model alike.
    flags = [*multilingual_flags(args.languages), "--max_train_minutes", str(args.minutes),
             "--vocab_size", str(args.vocab_size), "--max_predict_samples", "100", *args.extra]
    seconds = run_recipe(flags, output_dir, args.cpu, args.work_dir / "multilingual.log")
    print(f"multilingual: trained in {seconds / 60:.1f} wall-clock minutes", flush=True)
    (output_dir / "benchmark_arm.json").write_text(json.dumps(
        {"arm": "multilingual", "language_pairs": flags[1].split(","), "cpu_minutes": args.minutes,
         "wall_minutes": seconds / 60, "flags": flags}, indent=2))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="phase", required=True)
    bilingual = sub.add_parser("train-bilingual", help="arm (a): one en->X model per language")
    bilingual.add_argument("--minutes", type=float, default=7.5, help="CPU minutes of training per model")
    bilingual.add_argument("--languages", nargs="+", default=LANGUAGES)
    bilingual.add_argument("--vocab_size", type=int, default=8000)
    multilingual = sub.add_parser("train-multilingual", help="arm (b): one model on all sixteen directions en<->X")
    multilingual.add_argument("--minutes", type=float, default=60.0,
                              help="CPU minutes of training (8x arm (a)'s 7.5 per model)")
    multilingual.add_argument("--languages", nargs="+", default=LANGUAGES)
    # Eight languages share one vocabulary, two of them (ja, zh_CN) written with thousands of distinct
    # characters: twice a bilingual model's 8000, so each language keeps about as many subwords as a
    # bilingual model's side while the output softmax (the largest matrix a CPU step multiplies) only doubles.
    multilingual.add_argument("--vocab_size", type=int, default=16000)
    multilingual.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                              help="further recipe flags, after everything else (smoke runs: --extra --max_steps 5)")
    for phase in (bilingual, multilingual):
        phase.add_argument("--work_dir", type=Path, default=ROOT / "outputs" / "benchmark_multilingual")
        phase.add_argument("--cpu", type=int, default=None, help="pin the arm to this core (taskset)")
    args = parser.parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if args.phase == "train-bilingual":
        train_bilingual(args)
    elif args.phase == "train-multilingual":
        train_multilingual(args)


if __name__ == "__main__":
    main()
