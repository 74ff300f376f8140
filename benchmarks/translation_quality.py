"""Quality at a fixed training budget (issues 4 and 21): our translation recipe vs. the plain transformers
baseline and vs. eole.

`recipe` (issue 21) is ours as a user runs it: `recipes/translate.py` with its defaults, in a child process
(`benchmarks/recipe_arm.py`); the arms below rebuild its pieces in this process.

Two arms, each trained for the same training-time budget on `bible_en_es` and scored on its validation
split with the same decoding (beam 4, same maximum length), sacreBLEU BLEU and chrF:

- `ours`: `BigModelForSeq2SeqLM` from the `vaswani-small` preset with the recipe's training pieces
  (`TranslationTrainer`: token-budget batches; label smoothing 0.1; inverse-sqrt schedule with warmup;
  bf16 autocast).
- `baseline`: transformers' `MarianMTModel` of the same shape (d_model 256, 3+3 layers, 4 heads, ffn
  1024) with a plain `Seq2SeqTrainer` (fixed batch size, linear schedule, no label smoothing, float32).

Both use the same cleaned data and the same joint BPE tokenizer (trained once by `--arm prepare`), and
stop by `WallClockStop` once `--budget_minutes` of training CPU time have passed (no evaluation during
training). Run the arms as two processes pinned to one core each, at the same time:

    python benchmarks/translation_quality.py --arm prepare
    OMP_NUM_THREADS=1 nohup taskset -c 0 python benchmarks/translation_quality.py --arm ours &
    OMP_NUM_THREADS=1 nohup taskset -c 1 python benchmarks/translation_quality.py --arm baseline &

Each arm writes `<out>/<arm>/result.json`; `--arm report` turns those present into
`benchmarks/results/translation_quality.md`. `--smoke` shrinks the budget to 2 minutes (eole: 90 CPU
seconds after a 30-second calibration) and the validation set to 100 pairs.

A third arm, `eole` (issue 21; `benchmarks/eole_arm.py`), trains OpenNMT's successor eole 0.6.4 on the
same cleaned data pre-tokenized into the same BPE pieces, at the same model size, for `--budget_minutes`
of CPU time of the eole process (one core, one thread), with a cosine schedule sized to the budget by a
short calibration run; it decodes with the same beam and length limit. eole lives in its own venv,
never in the project's dependencies:

    python -m venv /work/venv-eole
    /work/venv-eole/bin/pip install eole==0.6.4 torch==2.13.0 aiohttp   # pin torch: else a CUDA build
    OMP_NUM_THREADS=1 nohup taskset -c 0 python benchmarks/translation_quality.py --arm eole --budget_minutes 60 &

(`--eole_bin` points elsewhere; `--core` picks the core, by default the first this process may use.)
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from transformers import (
    MarianConfig,
    MarianMTModel,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    set_seed,
)

from bigmodel_hf.batching import make_seq2seq_collator
from bigmodel_hf.configuration_bigmodel import BigModelConfig
from bigmodel_hf.data import clean_translation_dataset, load_translation_dataset
from bigmodel_hf.metrics import corpus_translation_scores
from bigmodel_hf.modeling_bigmodel import BigModelForSeq2SeqLM
from bigmodel_hf.tokenization import load_pretrained_tokenizer, tokenize_translation_dataset, train_translation_tokenizer
from bigmodel_hf.training.callbacks import WallClockStop
from bigmodel_hf.training.trainers import TranslationTrainer
import eole_arm  # benchmarks/, on sys.path when run as a script
import recipe_arm
from results_page import write_keeping_notes

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "bible_en_es"
RESULTS_MD = Path(__file__).resolve().parent / "results" / "translation_quality.md"
SHAPE = dict(d_model=256, encoder_layers=3, decoder_layers=3, num_attention_heads=4, ffn_dim=1024)

# The settings of each arm (flag-free on purpose: the benchmark compares these two setups).
OURS = dict(preset="vaswani-small", max_tokens=2048, learning_rate=1e-3, lr_scheduler_type="inverse_sqrt",
            warmup_steps=200, label_smoothing_factor=0.1, bf16=True, adam_beta2=0.98, weight_decay=0.01)
BASELINE = dict(per_device_train_batch_size=32, learning_rate=5e-4, lr_scheduler_type="linear",
                warmup_steps=0.05, label_smoothing_factor=0.0, bf16=False)
DECODING = dict(num_beams=4, max_new_tokens=160, batch_size=32)


class CountTargetTokens:
    """Mix in before a Trainer class: count the non-padding target tokens of every training batch."""

    target_tokens = 0

    def training_step(self, model, inputs, *args, **kwargs):
        self.target_tokens += int((inputs["labels"] != -100).sum())
        return super().training_step(model, inputs, *args, **kwargs)


class OursTrainer(TranslationTrainer):
    """TranslationTrainer counts its training tokens itself (`target_tokens`, as CountTargetTokens does)."""


class BaselineTrainer(CountTargetTokens, Seq2SeqTrainer):
    pass


def prepare(data_dir: Path, out: Path, vocab_size: int = 8000, seed: int = 42):
    """Cleaned train/validation pairs and the joint BPE tokenizer, shared by both arms (saved under `out`)."""
    raw = load_translation_dataset(
        {"train": str(data_dir / "train.jsonl"), "validation": str(data_dir / "validation.jsonl")},
        src_lang="en", tgt_lang="es", validation_size=None, seed=seed,
    )
    raw, _report = clean_translation_dataset(raw, report_dir=out)
    raw.save_to_disk(str(out / "data"))
    train_translation_tokenizer(raw["train"], vocab_size=vocab_size, save_dir=out / "tokenizer")
    return raw


def build_model(arm: str, tokenizer, shape: dict, **marian_overrides):
    ids = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.bos_token_id)
    if arm == "ours":
        model = BigModelForSeq2SeqLM(BigModelConfig.from_preset(OURS["preset"], **shape, **ids))
    else:
        config = MarianConfig(
            d_model=shape["d_model"], encoder_layers=shape["encoder_layers"], decoder_layers=shape["decoder_layers"],
            encoder_attention_heads=shape["num_attention_heads"], decoder_attention_heads=shape["num_attention_heads"],
            encoder_ffn_dim=shape["ffn_dim"], decoder_ffn_dim=shape["ffn_dim"], forced_eos_token_id=None,
            max_position_embeddings=512, **ids, **marian_overrides,
        )
        model = MarianMTModel(config)
    generation = model.generation_config
    generation.decoder_start_token_id, generation.forced_eos_token_id = tokenizer.bos_token_id, None
    generation.bad_words_ids = None
    return model


def train_arm(arm: str, raw, tokenizer, out: Path, budget_s: float, shape: dict = SHAPE, seed: int = 42,
              name: str | None = None,
              logging_steps: int = 50, max_steps: int = -1, overrides: dict | None = None) -> dict:
    """Train one arm for `budget_s` seconds of training time, decode validation, return the result row.

    `max_steps` only sets the length of the baseline's linear schedule (a user would size it to the
    budget); training stops by wall clock either way.
    """
    name = name or arm
    set_seed(seed)
    settings = {**(OURS if arm == "ours" else BASELINE), **(overrides or {})}
    # MarianConfig fields of the baseline's model (e.g. scale_embedding=true, as real Marian checkpoints have)
    marian = {key: settings.pop(key) for key in ("scale_embedding",) if key in settings}
    model = build_model(arm, tokenizer, shape, **marian)
    tokenized = tokenize_translation_dataset(raw, tokenizer, max_source_length=128, max_target_length=128)
    common = dict(output_dir=str(out / name), report_to=[], eval_strategy="no", save_strategy="no", seed=seed,
                  logging_steps=logging_steps, logging_first_step=True, max_grad_norm=1.0, use_cpu=True,
                  dataloader_num_workers=0, disable_tqdm=True, max_steps=max_steps,
                  num_train_epochs=1000 if max_steps < 0 else 1)
    clock = WallClockStop(budget_s, clock=time.process_time)  # CPU seconds: a shared machine's share varies
    if arm == "ours":
        max_tokens = settings.pop("max_tokens")
        settings.pop("preset")
        args = Seq2SeqTrainingArguments(**common, **settings)
        trainer = OursTrainer(model=model, args=args, train_dataset=tokenized["train"],
                              data_collator=make_seq2seq_collator(tokenizer, model), processing_class=tokenizer,
                              max_tokens=max_tokens, callbacks=[clock])
    else:
        args = Seq2SeqTrainingArguments(**common, **settings)
        trainer = BaselineTrainer(model=model, args=args, train_dataset=tokenized["train"],
                                  data_collator=make_seq2seq_collator(tokenizer, model), processing_class=tokenizer,
                                  callbacks=[clock])
    trainer.train()
    losses = [(row["step"], row["loss"]) for row in trainer.state.log_history if "loss" in row]

    started = time.perf_counter()
    predictions = translate(model.float(), tokenizer, list(raw["validation"]["source"]))
    decode_s = time.perf_counter() - started
    scores = corpus_translation_scores(predictions, list(raw["validation"]["target"]))
    result = {
        "arm": arm, "name": name, "model_class": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
        "settings": {**settings, **marian, **({"max_tokens": max_tokens} if arm == "ours" else {}),
                     "max_steps_for_schedule": max_steps},
        "clock": "cpu", "budget_s": budget_s, "training_s": clock.training_s, "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch, "target_tokens": trainer.target_tokens,
        "target_tokens_per_s": trainer.target_tokens / max(clock.training_s, 1e-9),
        "losses": losses, "train_pairs": len(raw["train"]), "validation_pairs": len(predictions), "decode_s": decode_s, "decoding": DECODING,
        **scores, "samples": [{"source": s, "output": p, "reference": r} for s, p, r in
                              list(zip(raw["validation"]["source"], predictions, raw["validation"]["target"]))[:3]],
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "affinity": sorted(os.sched_getaffinity(0)), "cpu": platform.processor() or platform.machine(),
                    "loadavg_during_training": [min(clock.loads), sum(clock.loads) / len(clock.loads), max(clock.loads)]
                    if clock.loads else None},
    }
    (out / name).mkdir(parents=True, exist_ok=True)
    (out / name / "result.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    (out / name / "validation.es").write_text("\n".join(predictions) + "\n")
    return result


def translate(model, tokenizer, texts):
    from bigmodel_hf.decoding import translate_texts

    return translate_texts(model, tokenizer, texts, num_beams=DECODING["num_beams"],
                           max_new_tokens=DECODING["max_new_tokens"], batch_size=DECODING["batch_size"])


NOTES_MARKER = "<!-- notes: kept when --arm report rewrites the tables above -->"


def sampled(rows: list, count: int) -> list:
    """About `count` evenly spaced rows, the last one always included."""
    picked = rows[:: max(1, len(rows) // (count - 1))]
    return picked + rows[-1:] if rows and picked[-1] != rows[-1] else picked


ARMS = ("recipe", "ours", "baseline", "eole")
PEER_NAMES = {"baseline": "a plain MarianMTModel + Seq2SeqTrainer", "eole": "eole"}


def training_time(row: dict) -> str:
    """The training-time cell: wall-clock minutes, or CPU minutes for arms budgeted in CPU time (eole)."""
    return f"{row['training_s'] / 60:.1f} CPU min" if row.get("clock") == "cpu" else f"{row['training_s'] / 60:.1f} min"


def arm_of(run_name: str) -> str | None:
    """The arm a run folder belongs to: its name is the arm's, plus an optional tag (`recipe_60`)."""
    return next((arm for arm in ARMS if run_name.startswith(arm)), None)


def write_report(out: Path, path: Path, arms=None, data_name: str = "bible_en_es") -> str:
    """The results page from `<out>/<name>/result.json` (by default every run there, tagged ones included,
    in the order of ARMS); hand-written notes below NOTES_MARKER are kept."""
    if not arms:
        found = sorted(path.parent.name for path in out.glob("*/result.json"))
        arms = sorted(found, key=lambda name: ARMS.index(arm_of(name)) if arm_of(name) else len(ARMS))
    rows = {arm: json.loads((out / arm / "result.json").read_text()) for arm in arms}
    present = {arm_of(name) for name in rows}
    peers = [peer for arm, peer in PEER_NAMES.items() if arm in present]  # only the peers that have a row
    lines = [
        "# Translation quality at a fixed training budget: our recipe" + (" vs. " + " and ".join(peers) if peers else ""),
        "",
        f"Data: `{data_name}` (train {rows[arms[0]].get('train_pairs', '?')} pairs after cleaning, validation "
        f"{rows[arms[0]]['validation_pairs']} pairs). Every arm: the same cleaned data, a joint BPE tokenizer of 8,000 "
        f"tokens (one shared by the arms trained here; the recipe arm cleans the raw files and trains its own, as a "
        f"user's run does), the same decoding ({DECODING['num_beams']}-beam search, at most "
        f"{DECODING['max_new_tokens']} new tokens, length penalty 1.0, float32), scored on validation by sacreBLEU.",
        "",
        "| arm | model | params | training time | steps | epochs | target tokens seen | target tokens/s "
        "| BLEU | chrF | decode time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, r in rows.items():
        lines.append(
            f"| {arm} | {r['model_class']} | {r['parameters'] / 1e6:.2f} M | {training_time(r)} | "
            f"{r['steps']:,} | {r['epochs']:.2f} | {r['target_tokens']:,} | {r['target_tokens_per_s']:.0f} | "
            f"**{r['bleu']:.2f}** | {r['chrf']:.2f} | {r['decode_s']:.0f} s |"
        )
    if any(r.get("clock") == "cpu" for r in rows.values()):
        lines += ["", "CPU min: the arm's budget and time are CPU time of its training process, one core, one thread "
                  "(eole: start-up included; the recipe: training only, its validations and data preparation "
                  "excluded); its tokens/s are per CPU second."]
    first = rows[arms[0]]
    lines += ["", f"BLEU signature: `{first['bleu_signature']}`  ", f"chrF signature: `{first['chrf_signature']}`", "",
              "## Settings of each arm", ""]
    for arm, r in rows.items():
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items())
        loads = r["machine"].get("loadavg_during_training")
        load = f"load average during training min/mean/max {loads[0]:.1f}/{loads[1]:.1f}/{loads[2]:.1f}" if loads else ""
        lines.append(f"- **{arm}** ({r['model_class']}): {settings}. Core {r['machine']['affinity']}, "
                     f"{r['machine']['threads']} thread; {load}. Training loss (step: loss) "
                     + ", ".join(f"{s}: {l:.2f}" for s, l in sampled(r["losses"], 7)))
    lines += ["", "## Sample outputs (first validation pairs)", ""]
    for arm, r in rows.items():
        for sample in r["samples"][:2]:
            lines.append(f"- {arm}: {sample['output']}")
    lines.append(f"- reference: {first['samples'][0]['reference']} / {first['samples'][1]['reference']}")
    text = "\n".join(lines) + "\n"
    return write_keeping_notes(path, text, NOTES_MARKER)


def data_name(data_dir) -> str:
    """`bible_en_es`, `l10n/en_es`: the data folder under shared/data, for the page's header."""
    path = Path(data_dir).resolve()
    return str(path.relative_to(DATA_DIR.parent)) if path.is_relative_to(DATA_DIR.parent) else path.name


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arm", choices=["prepare", *ARMS, "report"], required=True)
    parser.add_argument("--budget_minutes", type=float, default=60.0)
    parser.add_argument("--smoke", action="store_true",
                        help="2-minute budget (eole: 90 CPU seconds), 100 validation pairs")
    parser.add_argument("--max_steps", type=int, default=-1, help="baseline: length of its linear schedule")
    parser.add_argument("--data_dir", default=str(DATA_DIR))
    parser.add_argument("--out", default="outputs/translation_quality")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--logging_steps", type=int, default=50)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override an arm's setting (values read as YAML), e.g. --set learning_rate=1e-3")
    parser.add_argument("--tag", default="", help="suffix of the arm's output folder (several runs of one arm)")
    parser.add_argument("--eole_bin", default=str(eole_arm.DEFAULT_EOLE_BIN),
                        help="eole arm: the eole executable of its own venv")
    parser.add_argument("--core", type=int, default=None,
                        help="eole arm: the core eole is pinned to (default: the first this process may use)")
    parser.add_argument("--calibration_s", type=float, default=60.0,
                        help="eole arm: CPU seconds of the calibration run that sizes its schedule (smoke: 30)")
    parser.add_argument("--results_md", default=str(RESULTS_MD), help="report: the page to write")
    args = parser.parse_args(argv)
    out = Path(args.out)
    torch.set_num_threads(args.threads)
    if args.arm == "prepare":
        prepare(Path(args.data_dir), out)
        return
    if args.arm == "report":
        write_report(out, Path(args.results_md), data_name=data_name(args.data_dir))
        return
    eole_bin = eole_arm.eole_bin_or_exit(args.eole_bin) if args.arm == "eole" else None
    from datasets import load_from_disk

    raw = load_from_disk(str(out / "data"))
    tokenizer = load_pretrained_tokenizer(out / "tokenizer")
    # eole's smoke run: 90 CPU seconds after a 30-second calibration, about 3 CPU minutes with decoding
    budget_s = (90.0 if args.arm == "eole" else 120.0) if args.smoke else args.budget_minutes * 60
    if args.smoke:
        raw["validation"] = raw["validation"].select(range(100))
        out = out / "smoke"
    if args.arm == "baseline" and args.max_steps <= 0:
        parser.error("the baseline's linear schedule needs --max_steps (steps expected in the budget)")
    max_steps = args.max_steps if args.arm == "baseline" else -1
    import yaml

    overrides = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)}
    if args.arm == "recipe":
        result = recipe_arm.run_arm(raw, Path(args.data_dir), out, budget_s, translate, corpus_translation_scores,
                                    DECODING, name=args.arm + args.tag, overrides=overrides)
    elif args.arm == "eole":
        core = args.core if args.core is not None else min(os.sched_getaffinity(0))
        result = eole_arm.run_arm(raw, tokenizer, out, budget_s, eole_bin, core,
                                  calibration_s=30.0 if args.smoke else args.calibration_s,
                                  name=args.arm + args.tag, overrides=overrides)
    else:
        result = train_arm(args.arm, raw, tokenizer, out, budget_s, max_steps=max_steps, overrides=overrides,
                           name=args.arm + args.tag, logging_steps=args.logging_steps)
    print(json.dumps({k: v for k, v in result.items() if k not in ("losses", "samples")}, indent=1,
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
