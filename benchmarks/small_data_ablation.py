"""Quality on small data (issue 10): what each remedy against overfitting buys, at equal wall-clock.

Every row is a run of the translation recipe (`recipes/translate.py`, through `run_translation`) on
`bible_en_es`, from `recipes/configs/bible_en_es_small.yaml` (vaswani-small, joint BPE 8k, token-budget
batches, inverse-sqrt schedule, bf16 autocast), stopped by `max_train_minutes` (evaluation time excluded),
then scored by the recipe's final evaluation on the validation split (beam 4, sacreBLEU and chrF).
Rows add one remedy at a time:

    plain          no label smoothing, no BPE-dropout, no checkpoint averaging
    ls             + label smoothing 0.1
    bpe            + BPE-dropout 0.1 (training side only)
    avg            + average of the last 5 checkpoints (kept only if not worse on validation)
    lowres_plain   the `avg` settings on the simulated low-resource split (a quarter of the verses as pairs)
    lowres_bt      the same + back-translation of the Spanish of the other verses (`recipes/back_translate.py`)

    python benchmarks/small_data_ablation.py --prepare               # the low-resource split
    OMP_NUM_THREADS=1 nohup taskset -c 0 python benchmarks/small_data_ablation.py --row plain > outputs/x.log &
    python benchmarks/small_data_ablation.py --report                # -> benchmarks/results/small_data_ablation.md

`--smoke` runs a row on the toy corpus with a tiny model for a few seconds (tests/test_small_data_ablation_smoke.py).
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import yaml
from results_page import write_keeping_notes  # benchmarks/, on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT.parent / "shared" / "data" / "bible_en_es"
BASE_CONFIG = ROOT / "recipes" / "configs" / "bible_en_es_small.yaml"
RESULTS_MD = ROOT / "benchmarks" / "results" / "small_data_ablation.md"
OUT = ROOT / "outputs" / "small_data_ablation"
PARALLEL_FRACTION = 0.25

PLAIN = dict(label_smoothing_factor=0.0, bpe_dropout=0.0, average_last_checkpoints=0)
ROWS = {
    "plain": PLAIN,
    "ls": {**PLAIN, "label_smoothing_factor": 0.1},
    "bpe": {**PLAIN, "label_smoothing_factor": 0.1, "bpe_dropout": 0.1},
    "avg": {**PLAIN, "label_smoothing_factor": 0.1, "bpe_dropout": 0.1, "average_last_checkpoints": 5},
}
ROWS["lowres_plain"] = {**ROWS["avg"], "low_resource": True}
ROWS["lowres_bt"] = {**ROWS["avg"], "low_resource": True, "back_translation": True}
LABELS = {"plain": "plain recipe", "ls": "+ label smoothing 0.1", "bpe": "+ BPE-dropout 0.1",
          "avg": "+ checkpoint averaging (last 5)", "lowres_plain": "low-resource (25% of pairs), `avg` settings",
          "lowres_bt": "low-resource + back-translation (tagged, 1:1)"}

# Shared by every row: evaluate (greedy, 200 pairs) and save every 50 steps, so averaging has close
# checkpoints and the best-checkpoint choice sees the same evaluations in every row.
COMMON = dict(max_steps=100_000, eval_steps=50, save_steps=50, save_total_limit=6, logging_steps=25,
              max_eval_samples=200, num_sample_outputs=0, report_to="none", resume_from_checkpoint="none",
              disable_tqdm=True, bf16=True, use_cpu=True)  # bf16 autocast on CPU needs use_cpu
# The low-resource pair (and its reverse model) evaluates half as often on half as many pairs, to fit the
# back-translation chain into the session; both rows of the pair share it, training time is unaffected.
LOW_RESOURCE = dict(eval_steps=100, save_steps=100, max_eval_samples=100)
BACK_TRANSLATION = dict(synthetic_ratio=1.0, bt_tag="<bt>", bt_num_beams=1, bt_batch_size=64)
SMOKE = dict(config_overrides="d_model=32,ffn_dim=64,encoder_layers=1,decoder_layers=1,num_attention_heads=2",
             vocab_size=200, tokenizer_min_frequency=1, max_tokens=256, warmup_steps=2, max_steps=12, eval_steps=4,
             save_steps=4, logging_steps=2, max_eval_samples=8, generation_max_length=16, bf16=False,
             max_predict_samples=8, bt_max_new_tokens=12)


def smoke_data(out: Path) -> Path:
    from bigmodel_hf.toy_data import write_toy_translation_corpus

    data_dir = out / "toy_data"
    if not (data_dir / "train.jsonl").is_file():
        write_toy_translation_corpus(data_dir, train=120, validation=8, test=1, seed=0)
    return data_dir


def prepare(out: Path, data_dir: Path) -> dict:
    """The simulated low-resource split of the training data (validation untouched)."""
    from bigmodel_hf.training.back_translation import simulate_low_resource

    info = simulate_low_resource(data_dir / "train.jsonl", out / "low_resource", PARALLEL_FRACTION, seed=0)
    (out / "low_resource" / "split.json").write_text(json.dumps(info, indent=1))
    return info


def row_settings(name: str, out: Path, data_dir: Path, minutes: float, smoke: bool = False) -> dict:
    """The flat recipe settings (YAML keys) of one row."""
    row = dict(ROWS[name])
    low_resource, back_translation = row.pop("low_resource", False), row.pop("back_translation", False)
    settings = {**yaml.safe_load(BASE_CONFIG.read_text()), **COMMON, **row, "max_train_minutes": minutes,
                "output_dir": str(out / name), "validation_file": str(data_dir / "validation.jsonl"),
                "train_file": str(out / "low_resource" / "parallel.jsonl") if low_resource
                else str(data_dir / "train.jsonl")}
    if low_resource:
        settings.update(LOW_RESOURCE)
    if back_translation:
        settings.update(BACK_TRANSLATION, monolingual_file=str(out / "low_resource" / "monolingual.es.txt"))
    if smoke:
        settings.update(SMOKE)
        if not back_translation:
            settings.pop("bt_max_new_tokens")
    return settings


def run_row(name: str, out: Path, data_dir: Path, minutes: float, smoke: bool = False) -> dict:
    """Run one row in this process; writes and returns `<out>/<name>/result.json`."""
    from bigmodel_hf.training.back_translation import parse_back_translation_config, run_back_translation
    from bigmodel_hf.training.translation import parse_translation_config, run_translation

    settings = row_settings(name, out, data_dir, minutes, smoke)
    row_dir = Path(settings["output_dir"])
    row_dir.mkdir(parents=True, exist_ok=True)
    config = row_dir.parent / f"{name}.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=True, allow_unicode=True))
    loads, started = [os.getloadavg()[0]], time.perf_counter()
    if "monolingual_file" in settings:
        summary = run_back_translation(parse_back_translation_config(["--config", str(config)]))
        results, run_dir = summary["forward"], row_dir / "forward"
    else:
        summary, results, run_dir = None, run_translation(parse_translation_config(["--config", str(config)])), row_dir
    loads.append(os.getloadavg()[0])
    run_info = json.loads((run_dir / "run_info.json").read_text())
    validation, training = results["validation"], results["training"]
    result = {
        "row": name, "label": LABELS[name], "settings": {k: v for k, v in ROWS[name].items()},
        "bleu": validation["bleu"], "chrf": validation["chrf"], "validation_pairs": validation["num_samples"],
        "num_beams": validation["num_beams"], "bleu_signature": validation["bleu_signature"],
        "chrf_signature": validation["chrf_signature"], "training": training,
        "checkpoint_averaging": results.get("checkpoint_averaging"),
        "train_pairs": train_pairs(run_dir), "wall_clock_minutes": (time.perf_counter() - started) / 60,
        "run_wall_clock_minutes": run_info["wall_clock_seconds"] / 60, "budget_minutes": minutes,
        "machine": {"threads": torch.get_num_threads(), "affinity": sorted(os.sched_getaffinity(0)),
                    "cpu": platform.processor() or platform.machine(), "loadavg_start_end": loads,
                    "torch": torch.__version__},
    }
    if summary is not None:
        result["back_translation"] = {
            "mix": summary["mix"], "generation": summary["generation"], "decoding": summary["decoding"],
            "reverse_bleu": summary["reverse"]["validation"]["bleu"],
            "reverse_training": summary["reverse"]["training"],
            "reverse_wall_clock_minutes": json.loads((row_dir / "reverse" / "run_info.json").read_text())
            ["wall_clock_seconds"] / 60,
        }
    (row_dir / "result.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    return result


def train_pairs(run_dir: Path) -> int | None:
    report = run_dir / "cleaning_report.json"
    if not report.is_file():
        return None
    return json.loads(report.read_text())["splits"]["train"]["rows_out"]


NOTES_MARKER = "<!-- notes: kept when --report rewrites the tables above -->"


def write_report(out: Path, path: Path) -> str:
    """The results page from `<out>/<row>/result.json` (rows that have one); notes below the marker are kept."""
    rows = [json.loads(p.read_text()) for name in ROWS if (p := out / name / "result.json").is_file()]
    if not rows:
        raise SystemExit(f"no result.json under {out}")
    first = rows[0]
    lines = [
        "# Quality on small data: the recipe's remedies against overfitting, at equal wall-clock",
        "",
        f"Validation split of `bible_en_es` ({first['validation_pairs']} pairs), the recipe's final evaluation "
        f"(beam {first['num_beams']}), sacreBLEU. Each row: `recipes/configs/bible_en_es_small.yaml` with the "
        f"row's settings, {first['budget_minutes']:g} minutes of training time (evaluations excluded), "
        "1 torch thread, at most two rows at a time, each pinned to its own core. "
        "Training tokens: non-padding source + target tokens of the training batches (BPE-dropout "
        "segmentations included).",
        "",
        "| row | train pairs | steps | epochs | training tokens | training min | BLEU | chrF | averaging |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, averaging = r["training"], r.get("checkpoint_averaging")
        kept = (f"{averaging['kept']} ({averaging['bleu_before']:.1f} → {averaging['bleu_averaged']:.1f} greedy)"
                if averaging and "bleu_before" in averaging else (averaging or {}).get("note", "off"))
        pairs = f"{r['train_pairs']:,}" if r.get("train_pairs") else "?"
        lines.append(f"| {r['label']} | {pairs} | {t['steps']:,} | {t['epochs']:.2f} | {t['tokens']:,} | "
                     f"{t.get('training_minutes', float('nan')):.1f} | **{r['bleu']:.2f}** | {r['chrf']:.2f} | {kept} |")
    lines += ["", f"BLEU signature: `{first['bleu_signature']}`  ", f"chrF signature: `{first['chrf_signature']}`", ""]
    bt_rows = [r for r in rows if "back_translation" in r]
    for r in bt_rows:
        b = r["back_translation"]
        gen = b["generation"] or {}
        lines += [
            "## Back-translation row: the extra time it took",
            "",
            f"- Reverse model (es→en, same settings, real pairs only): {b['reverse_training']['training_minutes']:.1f} "
            f"min of training, {b['reverse_wall_clock_minutes']:.1f} min wall-clock with its evaluations, validation "
            f"BLEU {b['reverse_bleu']:.2f} (es→en).",
            f"- Back-translating {gen.get('sentences', '?'):,} Spanish sentences ({'sampling' if b['decoding']['do_sample'] else 'beam ' + str(b['decoding']['num_beams'])}): "
            f"{gen.get('seconds', float('nan')) / 60:.1f} min wall-clock, {gen.get('processes', 1)} process(es) of "
            f"{gen.get('threads', '?')} thread.",
            f"- Mix: {b['mix']['real_pairs']:,} real + {b['mix']['synthetic_pairs']:,} tagged synthetic pairs.",
            "- None of this counts toward the row's training budget, which is the forward model's alone.",
            "",
        ]
    lines += ["## Settings of each row", ""]
    for r in rows:
        loads = r["machine"]["loadavg_start_end"]
        lines.append(f"- **{r['row']}**: {', '.join(f'{k}={v}' for k, v in r['settings'].items())}; core "
                     f"{r['machine']['affinity']}, load average at start/end {loads[0]:.1f}/{loads[1]:.1f}; "
                     f"{r['run_wall_clock_minutes']:.1f} min wall-clock for the run.")
    text = "\n".join(lines) + "\n"
    return write_keeping_notes(path, text, NOTES_MARKER)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--row", choices=list(ROWS))
    parser.add_argument("--prepare", action="store_true", help="write the simulated low-resource split")
    parser.add_argument("--report", action="store_true", help=f"write {RESULTS_MD.relative_to(ROOT)}")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per row")
    parser.add_argument("--smoke", action="store_true", help="toy corpus, tiny model, seconds")
    parser.add_argument("--out", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else (OUT.parent / "small_data_ablation_smoke" if args.smoke else OUT)
    data_dir = smoke_data(out) if args.smoke else DATA_DIR
    minutes = 0.05 if args.smoke else args.minutes
    if args.prepare or (args.row and ROWS[args.row].get("low_resource") and not (out / "low_resource").is_dir()):
        print(json.dumps(prepare(out, data_dir), indent=1))
    if args.row:
        result = run_row(args.row, out, data_dir, minutes, smoke=args.smoke)
        print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1, ensure_ascii=False))
    if args.report:
        print(write_report(out, out / "report.md" if args.smoke else RESULTS_MD))


if __name__ == "__main__":
    main()
