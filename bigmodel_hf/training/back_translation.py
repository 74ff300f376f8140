"""Back-translation (Sennrich et al., 2016) with tagged synthetic sources (Caswell et al., 2019), as one run.

    python recipes/back_translate.py --config recipes/configs/back_translate_bible_low_resource.yaml

The settings are the translation recipe's (same flags, same YAML keys) plus `BackTranslationArguments`.
Steps, each skipped when its output already exists, so rerunning the command continues after a crash:

1. `<output_dir>/reverse/`: a target->source model trained with the same settings on the real pairs
   (`train_file`), with languages swapped (its own time budget: `reverse_max_train_minutes`).
2. `<output_dir>/synthetic.jsonl`: monolingual target-language text (`monolingual_file`) translated by
   it (greedy, beam or sampling), batched, with a progress bar.
3. `<output_dir>/mixed_train.jsonl`: the real pairs plus `synthetic_ratio` synthetic pairs per real
   pair, shuffled; synthetic sources start with `bt_tag`.
4. `<output_dir>/forward/`: the source->target model trained on the mix.

The tag is an atomic special token of the forward tokenizer (`added_special_tokens`), not plain text:
BPE would split a plain "<bt>" into pieces shared with real text, and BPE-dropout would split it
differently every epoch; as one reserved id it is a clean switch the model can learn to discount.
Real sources (and everything at evaluation and inference) carry no tag.
"""

import dataclasses
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from transformers import AutoModelForSeq2SeqLM

from ..data import load_translation_dataset
from ..data.jsonl import text_of, translation_line
from ..decoding import translate_texts
from ..output_layout import OutputLayout
from ..tokenization import load_pretrained_tokenizer
from .auto_settings import settle_auto_preset
from .config import RunConfig, parse_run_config
from .defaults import TRANSLATION_BUDGET_DEFAULTS, TRANSLATION_DEFAULTS
from .rerun import check_output_dir
from .setting_checks import ConfigError
from .translation import TRANSLATION_ARGUMENT_TYPES, parse_translation_config, run_translation

logger = logging.getLogger(__name__)


@dataclass
class BackTranslationArguments:
    monolingual_file: str | None = field(
        default=None,
        metadata={"help": "Target-language text to back-translate: .txt (one sentence a line) or .jsonl (a 'text' "
                          "field, a target-language field, or the Hub 'translation' layout)."},
    )
    synthetic_ratio: float = field(
        default=1.0, metadata={"help": "Synthetic pairs per real pair in the mix (capped by the monolingual text)."}
    )
    bt_tag: str = field(default="<bt>", metadata={"help": "Token put before every synthetic source; '' = untagged."})
    bt_num_beams: int = field(default=1, metadata={"help": "Beams when back-translating (1 = greedy)."})
    bt_do_sample: bool = field(default=False, metadata={"help": "Sample the synthetic sources instead of searching."})
    bt_top_k: int = field(default=0, metadata={"help": "With bt_do_sample: top-k (0 = unrestricted sampling)."})
    bt_top_p: float = field(default=1.0, metadata={"help": "With bt_do_sample: nucleus probability."})
    bt_temperature: float = field(default=1.0, metadata={"help": "With bt_do_sample: temperature."})
    bt_batch_size: int = field(default=64, metadata={"help": "Sentences per back-translation batch."})
    bt_max_new_tokens: int = field(default=128, metadata={"help": "Longest synthetic source, in tokens."})
    reverse_max_train_minutes: float | None = field(
        default=None, metadata={"help": "Training budget of the reverse model; unset = max_train_minutes."}
    )


BT_FIELDS = [f.name for f in dataclasses.fields(BackTranslationArguments)]


def parse_back_translation_config(argv=None, default_config=None) -> RunConfig:
    run_config = parse_run_config({**TRANSLATION_ARGUMENT_TYPES, "extra": BackTranslationArguments}, argv,
                                  TRANSLATION_DEFAULTS, default_config, budget_defaults=TRANSLATION_BUDGET_DEFAULTS,
                                  choose_settings=settle_auto_preset)
    check_back_translation_settings(run_config)
    return run_config


def check_back_translation_settings(run_config: RunConfig) -> None:
    bt, data = run_config.extra, run_config.data
    problems = []
    if not data.train_file:
        problems.append("back-translation needs train_file (the real pairs)")
    if not bt.monolingual_file:
        problems.append("back-translation needs monolingual_file (target-language text)")
    elif not Path(bt.monolingual_file).is_file():
        problems.append(f"monolingual_file {bt.monolingual_file} does not exist")
    if not bt.synthetic_ratio > 0:
        problems.append(f"synthetic_ratio must be positive, got {bt.synthetic_ratio}")
    if bt.bt_num_beams < 1 or bt.bt_batch_size < 1 or bt.bt_max_new_tokens < 1:
        problems.append("bt_num_beams, bt_batch_size and bt_max_new_tokens must be positive")
    if bt.bt_do_sample and bt.bt_num_beams > 1:
        problems.append("choose sampling (bt_do_sample) or beam search (bt_num_beams > 1), not both")
    if bt.bt_tag and ("," in bt.bt_tag or bt.bt_tag != bt.bt_tag.strip()):
        problems.append(f"bt_tag must be one token without commas or surrounding spaces, got {bt.bt_tag!r}")
    if problems:
        raise ConfigError("Invalid back-translation settings:\n  " + "\n  ".join(problems))


def read_monolingual(path: str | Path, lang: str) -> list[str]:
    """Non-empty sentences of a .txt file (one a line) or a .jsonl file."""
    path = Path(path)
    sentences = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            if path.suffix == ".jsonl":
                row = json.loads(line)
                text = row.get("text") or text_of(row, lang)
                if text is None:
                    raise ConfigError(f"{path}:{number} has no 'text', {lang!r} or translation.{lang} field")
                line = text.strip()
            if line:
                sentences.append(line)
    return sentences


def back_translate(model, tokenizer, texts: list[str], bt: BackTranslationArguments, seed: int = 0,
                   max_source_length: int | None = None) -> list[str]:
    """Translate `texts` (target language) into synthetic sources, in input order; inputs longer than
    `max_source_length` tokens (the run's) are cut, as training cuts them."""
    torch.manual_seed(seed)  # sampling draws from torch's generator
    sampling = dict(do_sample=True, top_k=bt.bt_top_k, top_p=bt.bt_top_p, temperature=bt.bt_temperature) \
        if bt.bt_do_sample else {}
    return translate_texts(model, tokenizer, texts, num_beams=bt.bt_num_beams, max_new_tokens=bt.bt_max_new_tokens,
                           batch_size=bt.bt_batch_size, max_source_length=max_source_length,
                           progress="back-translating", **sampling)


def write_mixed(real: list[tuple[str, str]], synthetic: list[tuple[str, str]], ratio: float, tag: str,
                source_lang: str, target_lang: str, path: Path, seed: int = 0) -> dict:
    """Real pairs plus up to `ratio` x as many tagged synthetic pairs, shuffled; returns the counts."""
    rng = random.Random(seed)
    count = min(len(synthetic), round(ratio * len(real)))
    chosen = rng.sample(synthetic, count)
    rows = [(s, t, False) for s, t in real] + [(f"{tag} {s}" if tag else s, t, True) for s, t in chosen if s]
    rng.shuffle(rows)
    path.write_text("".join(translation_line(s, t, source_lang, target_lang) for s, t, _ in rows), "utf-8")
    synthetic_count = sum(1 for *_, is_synthetic in rows if is_synthetic)
    return {"real_pairs": len(real), "synthetic_pairs": synthetic_count, "total": len(rows)}


def step_settings(run_config: RunConfig, **changes) -> dict:
    """The run's flat recipe settings (back-translation keys removed) with `changes` over them."""
    settings = {k: v for k, v in run_config.resolved().items() if k not in BT_FIELDS}
    settings.update(changes)
    return {k: v for k, v in settings.items() if v is not None}


def run_step(settings: dict, yaml_path: Path) -> dict:
    """Run a step of the translation recipe with `settings`; they are also saved as a recipe YAML, so the step
    can be rerun by hand with --config."""
    yaml_path.write_text(yaml.safe_dump(settings, sort_keys=True, allow_unicode=True), "utf-8")
    return run_translation(parse_translation_config([], values=settings))


def finished(output_dir: Path) -> bool:
    return "validation" in OutputLayout(output_dir).read_eval_results()


def run_back_translation(run_config: RunConfig) -> dict:
    """All four steps; returns a summary (also written to `<output_dir>/back_translation.json`)."""
    data, run, args, bt = run_config.data, run_config.run, run_config.training, run_config.extra
    check_output_dir(args.output_dir)  # before the folder is made: a file there is named in one line
    root = Path(args.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    src, tgt = data.source_lang, data.target_lang

    reverse_dir = root / "reverse"
    if not finished(reverse_dir):
        run_step(step_settings(run_config, source_lang=tgt, target_lang=src, output_dir=str(reverse_dir),
                               max_train_minutes=bt.reverse_max_train_minutes or run.max_train_minutes,
                               push_to_hub=False), root / "reverse.yaml")
    reverse_results = OutputLayout(reverse_dir).read_eval_results()

    real_data = load_translation_dataset({"train": data.train_file}, src_lang=src, tgt_lang=tgt, validation_size=None)
    real = list(zip(real_data["train"]["source"], real_data["train"]["target"]))
    synthetic_path = root / "synthetic.jsonl"
    if not synthetic_path.is_file():
        monolingual = read_monolingual(bt.monolingual_file, tgt)
        wanted = min(len(monolingual), round(bt.synthetic_ratio * len(real)))
        monolingual = random.Random(args.seed).sample(monolingual, wanted)
        model = AutoModelForSeq2SeqLM.from_pretrained(reverse_dir, use_safetensors=True, trust_remote_code=False)
        tokenizer = load_pretrained_tokenizer(reverse_dir)
        started = time.perf_counter()
        sources = back_translate(model, tokenizer, monolingual, bt, seed=args.seed,
                                 max_source_length=data.max_source_length)
        (root / "synthetic_info.json").write_text(json.dumps(
            {"sentences": len(monolingual), "seconds": time.perf_counter() - started, "threads": torch.get_num_threads()}))
        partial = synthetic_path.with_suffix(".partial")
        partial.write_text("".join(translation_line(s, t, src, tgt) for s, t in zip(sources, monolingual) if s),
                           "utf-8")
        partial.rename(synthetic_path)  # complete or absent, never half-written
    synthetic_data = load_translation_dataset({"train": str(synthetic_path)}, src_lang=src, tgt_lang=tgt,
                                              validation_size=None)
    synthetic = list(zip(synthetic_data["train"]["source"], synthetic_data["train"]["target"]))
    mixed_path = root / "mixed_train.jsonl"
    counts = write_mixed(real, synthetic, bt.synthetic_ratio, bt.bt_tag, src, tgt, mixed_path, seed=args.seed)

    added = [t for t in (run_config.tokenizer.added_special_tokens or "").split(",") if t.strip()]
    added += [bt.bt_tag] if bt.bt_tag and bt.bt_tag not in added else []
    forward_dir = root / "forward"
    if not finished(forward_dir):
        run_step(step_settings(run_config, train_file=str(mixed_path), output_dir=str(forward_dir),
                               added_special_tokens=",".join(added) or None), root / "forward.yaml")
    summary = {
        "mix": counts, "synthetic_ratio": bt.synthetic_ratio, "tag": bt.bt_tag,
        "decoding": {"num_beams": bt.bt_num_beams, "do_sample": bt.bt_do_sample, "top_k": bt.bt_top_k,
                     "top_p": bt.bt_top_p, "temperature": bt.bt_temperature},
        "generation": json.loads(info.read_text()) if (info := root / "synthetic_info.json").is_file() else None,
        "reverse": reverse_results, "forward": OutputLayout(forward_dir).read_eval_results(),
    }
    (root / "back_translation.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return summary


def simulate_low_resource(train_file: str | Path, out_dir: str | Path, parallel_fraction: float = 0.25,
                          source_lang: str = "en", target_lang: str = "es", seed: int = 0) -> dict:
    """Split a parallel corpus by verse (row): keep the pairs of a random `parallel_fraction` of them
    (`parallel.jsonl`) and only the target side of the rest (`monolingual.<target_lang>.txt`)."""
    if not 0 < parallel_fraction < 1:
        raise ConfigError(f"parallel_fraction must be in (0, 1), got {parallel_fraction}")
    raw = load_translation_dataset({"train": str(train_file)}, src_lang=source_lang, tgt_lang=target_lang,
                                   validation_size=None)["train"]
    order = list(range(len(raw)))
    random.Random(seed).shuffle(order)
    keep = set(order[:round(parallel_fraction * len(raw))])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources, targets = raw["source"], raw["target"]
    parallel = out_dir / "parallel.jsonl"
    parallel.write_text("".join(translation_line(sources[i], targets[i], source_lang, target_lang)
                                for i in sorted(keep)), "utf-8")
    monolingual = out_dir / f"monolingual.{target_lang}.txt"
    monolingual.write_text("".join(targets[i].replace("\n", " ") + "\n" for i in range(len(raw)) if i not in keep),
                           "utf-8")
    return {"parallel_pairs": len(keep), "monolingual_sentences": len(raw) - len(keep),
            "parallel_file": str(parallel), "monolingual_file": str(monolingual)}
