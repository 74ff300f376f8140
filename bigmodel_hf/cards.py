"""Model cards built from a run's output directory alone, so a card can be rebuilt at any time.

    card = build_model_card("outputs/translate_toy_en_es", repo_id="alice/bigmodel-en-es")
    write_model_card("outputs/translate_toy_en_es")          # -> outputs/translate_toy_en_es/README.md

The metadata is a `huggingface_hub.ModelCardData` (license, languages, tags, datasets, `base_model` only
when fine-tuned from a Hub model, `library_name`, and a `model-index` of `EvalResult`s with the
measured numbers); the body is one of the Jinja templates in `bigmodel_hf/model_cards/`, filled with
what `read_run` finds in the folder (the layout of `bigmodel_hf.output_layout`). What a reader must
know about the training data comes from the run (`--data_note`) or the built-in data set's registry entry.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .data.cleaning import REPORT_NAME as CLEANING_REPORT
from .data.jsonl import read_json_lines
from .generated_data import GENERATED_DATASETS
from .languages import languages_of, parse_language_pairs
from .pretrained import HUB_ID, read_run_config, safetensors_shapes, weight_files
from .redaction import local_path_prefixes, redact_local_paths
from .output_layout import OutputLayout

TEMPLATES = Path(__file__).resolve().parent / "model_cards"
RECIPES = {"translation": "recipes/translate.py", "text-generation": "recipes/generate_text.py"}
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "pt": "Portuguese"}
DATA_SUFFIXES = (".json", ".jsonl", ".tsv", ".csv", ".txt", ".parquet", ".arrow")


@dataclass
class RunRecord:
    """What an output directory says about its run; every field may be empty for an incomplete run."""

    root: Path
    config: dict
    run_config: dict = field(default_factory=dict)
    eval_results: dict = field(default_factory=dict)
    run_info: dict = field(default_factory=dict)
    cleaning: dict = field(default_factory=dict)
    tokenizer: dict = field(default_factory=dict)
    samples: list = field(default_factory=list)
    num_parameters: int = 0
    has_plot: bool = False

    @property
    def is_bigmodel(self) -> bool:
        """False for a fine-tuned stock transformers model (e.g. Marian), which needs no remote code."""
        return self.config.get("model_type") == "bigmodel"

    @property
    def task(self) -> str:
        return "translation" if self.config.get("is_encoder_decoder", True) else "text-generation"


def read_json_object(path: Path) -> dict:
    """A JSON object file of the run ({} when absent); ValueError naming the file when it is not one."""
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text("utf-8"))
    except ValueError as error:  # invalid JSON or UTF-8
        raise ValueError(f"{path}: not valid JSON ({error}); fix or delete it, then rebuild the card.") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: holds a JSON {type(values).__name__}, expected an object (a mapping); fix or "
                         "delete it, then rebuild the card.")
    return values


def count_parameters(root: Path) -> int:
    """Parameters stored in the model's safetensors weights (tied weights are stored, and counted, once).

    Only the files the model consists of count (`pretrained.weight_files`), not any `*.safetensors` lying
    in the folder."""
    total = 0
    for path in weight_files(root):
        for shape in safetensors_shapes(path).values():
            count = 1
            for size in shape:
                count *= size
            total += count
    return total


def read_run(output_dir: str | Path) -> RunRecord:
    """Read the model config, run config, results, run info, cleaning report and tokenizer of a run."""
    layout = OutputLayout(output_dir)
    root = layout.root
    if not (root / "config.json").is_file():
        raise FileNotFoundError(f"{root} has no config.json: not the output directory of a finished run.")
    samples = read_json_lines(layout.samples) if layout.samples.is_file() else []
    tokenizer = read_json_object(root / "tokenizer.json")
    return RunRecord(
        root=root,
        config=read_json_object(root / "config.json"),
        run_config=read_run_config(layout.run_config),
        eval_results=read_json_object(layout.eval_results),
        run_info=read_json_object(layout.run_info),
        cleaning=read_json_object(root / CLEANING_REPORT),
        tokenizer={"type": (tokenizer.get("model") or {}).get("type"),
                   "byte_level": "ByteLevel" in json.dumps(tokenizer.get("pre_tokenizer"))} if tokenizer else {},
        samples=[sample for sample in samples if isinstance(sample, dict)],
        num_parameters=count_parameters(root),
        has_plot=layout.training_curves.is_file(),
    )


# ---------------------------------------------------------------- names of data and base models


def hub_id_or_none(name: str | None) -> str | None:
    """`name` if it can be a Hub repo id (and is not a local folder or file here), else None."""
    if not name or name in GENERATED_DATASETS or not HUB_ID.match(name) or name.lower().endswith(DATA_SUFFIXES):
        return None
    return None if Path(name).exists() else name


def display_name(name: str) -> str:
    """A Hub id as is; a local path reduced to its last component (never a path of this machine)."""
    return name if hub_id_or_none(name) else Path(name.rstrip("/\\")).name


def dataset_names(run: RunRecord) -> tuple[str | None, str]:
    """(Hub dataset id or None, a name for readers) of the run's training data."""
    rc = run.run_config
    name = rc.get("dataset_name")
    if name in GENERATED_DATASETS:
        return None, name
    if name:
        return hub_id_or_none(name), display_name(name)
    # several files of a multilingual run come comma-separated in one setting
    files = list(dict.fromkeys(Path(part.strip()).name for key in ("train_file", "validation_file", "test_file")
                               if rc.get(key) for part in str(rc[key]).split(",") if part.strip()))
    return None, " / ".join(files) if files else "unknown data"


def base_model_id(run: RunRecord, base_model: str | None = None) -> str | None:
    """The Hub id of the fine-tuned model: `base_model` if given, else the run's checkpoint when it is one."""
    return base_model or hub_id_or_none(run.run_config.get("model_name_or_path"))


# ---------------------------------------------------------------- metadata


def _split_label(run: RunRecord, split: str, evaluated: int | None) -> str:
    """`test`, or `test[:500]` (datasets' slice syntax) when only the first 500 rows were scored (of each
    direction, for a multilingual run: capped by max_predict_samples)."""
    if run.run_config.get("language_pairs"):
        cap = run.run_config.get("max_predict_samples")
        return f"{split}[:{cap}]" if cap else split
    rows = (run.cleaning.get("splits") or {}).get(split, {}).get("rows_out")
    if evaluated is not None and rows is not None and evaluated < rows:
        return f"{split}[:{evaluated}]"
    return split


def scored_splits(run: RunRecord) -> list[tuple[str, dict]]:
    """(split, metrics) of the evaluation splits that hold a BLEU or perplexity."""
    key = "bleu" if run.task == "translation" else "perplexity"
    order = {"validation": 0, "test": 1}
    return sorted(((split, m) for split, m in run.eval_results.items() if isinstance(m, dict) and key in m),
                  key=lambda item: (order.get(item[0], 2), item[0]))


def eval_results_for_card(run: RunRecord) -> list[EvalResult]:
    """One `EvalResult` per measured number and split: sacreBLEU (with its signature) and chrF, or perplexity."""
    hub_id, name = dataset_names(run)
    common = dict(dataset_type=hub_id or name, dataset_name=name,
                  dataset_config=run.run_config.get("dataset_config_name"))
    results = []
    for split, totals in scored_splits(run):
        label = _split_label(run, split, totals.get("num_samples"))
        if run.task == "translation":
            pair = f"{run.run_config.get('source_lang', '?')}-{run.run_config.get('target_lang', '?')}"
            # a multilingual run: one result per direction, named by the pair as --language_pairs wrote it
            for pair, metrics in (totals["directions"].items() if "directions" in totals else [(pair, totals)]):
                task = dict(task_type="translation", task_name=f"Translation {pair}", dataset_split=label, **common)
                if "directions" in totals:  # the model-index groups results by dataset: a direction is a config
                    task["dataset_config"] = pair
                results.append(EvalResult(**task, metric_type="bleu", metric_name="sacreBLEU",
                                          metric_value=round(metrics["bleu"], 2),
                                          metric_config=metrics.get("bleu_signature")))
                if "chrf" in metrics:
                    results.append(EvalResult(**task, metric_type="chrf", metric_name="chrF",
                                              metric_value=round(metrics["chrf"], 2),
                                              metric_config=metrics.get("chrf_signature")))
        else:
            task = dict(task_type="text-generation", task_name="Text generation", dataset_split=label, **common)
            results.append(EvalResult(**task, metric_type="perplexity", metric_name="Perplexity",
                                      metric_value=round(totals["perplexity"], 3)))
    return results


def card_metadata(run: RunRecord, model_name: str, license: str, base_model: str | None = None,
                  language: list[str] | None = None) -> ModelCardData:
    hub_dataset, _ = dataset_names(run)
    rc = run.run_config
    if language is None and rc.get("language_pairs"):
        language = languages_of(parse_language_pairs(rc["language_pairs"]))
    if language is None:
        language = [rc[k] for k in ("source_lang", "target_lang") if rc.get(k)] if run.task == "translation" else []
    return ModelCardData(
        model_name=model_name,
        license=license,
        language=language or None,
        library_name="transformers",
        pipeline_tag=run.task,
        tags=["bigmodel_hf", run.task] + (["custom_code"] if run.is_bigmodel else []),
        datasets=[hub_dataset] if hub_dataset else None,
        base_model=base_model_id(run, base_model),
        metrics=sorted({r.metric_type for r in eval_results_for_card(run)}) or None,
        eval_results=eval_results_for_card(run) or None,
    )


# ---------------------------------------------------------------- body


def _human_count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K" if n >= 1e3 else str(n)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes else f"{secs} s"


NAMES = {"layernorm": "LayerNorm", "rmsnorm": "RMSNorm", "relu": "ReLU", "gelu": "GELU", "swiglu": "SwiGLU",
         "rope": "rotary (RoPE)"}


def describe_architecture(config: dict) -> str:
    if config.get("model_type") != "bigmodel":
        architecture = (config.get("architectures") or ["?"])[0]
        return f"`{architecture}`, transformers' own `{config.get('model_type')}` architecture"
    layers = (f"{config.get('encoder_layers')} encoder + {config.get('decoder_layers')} decoder layers"
              if config.get("is_encoder_decoder", True) else f"decoder-only, {config.get('decoder_layers')} layers")
    heads, kv = config.get("num_attention_heads"), config.get("num_key_value_heads")
    heads_text = f"{heads} attention heads" + (f" ({kv} key/value heads)" if kv and kv != heads else "")
    name = lambda key: NAMES.get(config.get(key), config.get(key))  # noqa: E731
    block = (f"{name('norm_position')}-norm {name('norm_type')}, {name('position_embedding')} positions, "
             f"{name('activation')}")
    return (f"Transformer, {layers}; d_model {config.get('d_model')}, feed-forward {config.get('ffn_dim')}, "
            f"{heads_text}; {block}")


def describe_origin(run: RunRecord, base_model: str | None) -> str:
    rc = run.run_config
    source = base_model or rc.get("model_name_or_path")
    if source:
        return f"fine-tuned from `{display_name(source)}`"
    preset = rc.get("preset")
    overrides = rc.get("config_overrides")
    text = "trained from scratch" + (f" from the `{preset}` preset" if preset else "")
    return text + (f" with `{overrides}`" if overrides else "")


def describe_data(run: RunRecord) -> dict:
    _, name = dataset_names(run)
    rc = run.run_config
    if name in GENERATED_DATASETS:
        name += f" ({GENERATED_DATASETS[name].description})"
    if run.task == "translation":
        name += f" ({rc.get('source_lang', '?')} → {rc.get('target_lang', '?')})"
    splits = (run.cleaning.get("splits") or {})
    rows = [f"{split}: {s['rows_out']:,} rows after cleaning ({s['rows_in']:,} before)"
            for split, s in splits.items() if "rows_out" in s]
    if not splits and run.task == "translation":
        rows = ["row counts after cleaning: not recorded (no cleaning report in the output directory)"]
    elif not splits:  # the LM recipe packs documents into blocks and does not clean them
        block = rc.get("block_size")
        rows = [f"{split}: {m['blocks']:,} blocks of {block} tokens (the last may be shorter), "
                f"{m['tokens']:,} tokens scored" for split, m in scored_splits(run) if "blocks" in m and block]
    if rc.get("max_train_samples"):
        rows.append(f"training rows capped at {rc['max_train_samples']:,} before cleaning")
    return {"description": name, "rows": rows}


def describe_tokenizer(run: RunRecord) -> str:
    rc = run.run_config
    vocab = run.config.get("vocab_size") or 0
    source = rc.get("tokenizer_name") or rc.get("model_name_or_path")
    if source:
        return f"the tokenizer of `{display_name(source)}` ({vocab:,} tokens)"
    kind = run.tokenizer.get("type") or rc.get("tokenizer_type") or "subword"
    kind = f"byte-level {kind}" if run.tokenizer.get("byte_level") else kind
    minimum = rc.get("tokenizer_min_frequency")
    return (f"{kind}, {vocab:,} tokens, trained on the training split with `tokenizers`"
            + (f" (minimum merge frequency {minimum})" if minimum else ""))


HYPERPARAMETERS = [  # (run config key, label)
    ("learning_rate", "learning rate"), ("lr_scheduler_type", "schedule"), ("warmup_steps", "warm-up steps"),
    ("max_steps", "max steps"), ("num_train_epochs", "epochs"),
    ("per_device_train_batch_size", "batch size per device"), ("max_tokens", "token budget per batch per device"),
    ("gradient_accumulation_steps", "gradient accumulation"),
    ("weight_decay", "weight decay"), ("adam_beta2", "Adam β2"), ("label_smoothing_factor", "label smoothing"),
    ("max_grad_norm", "gradient clipping"), ("seed", "seed"),
]


def describe_hyperparameters(run: RunRecord) -> list[tuple[str, str]]:
    rc = run.run_config
    items = [(label, str(rc[key])) for key, label in HYPERPARAMETERS if rc.get(key) not in (None, -1)]
    if rc.get("max_steps") not in (None, -1):  # epochs are only the limit when max_steps is unset
        items = [item for item in items if item[0] != "epochs"]
    if "dropout" in run.config:
        items.append(("dropout", str(run.config["dropout"])))
    if run.run_info.get("global_step") is not None:
        items.append(("optimizer steps run", f"{run.run_info['global_step']:,}"))
    return items


def describe_hardware(info: dict) -> str:
    if not info:
        return "not recorded (no run_info.json in the output directory)"
    processes = info.get("num_processes", 1)
    device, name = info.get("device"), info.get("device_name")
    text = f"{processes} process{'es' if processes != 1 else ''} on {device}"
    text += f" ({name})" if name and name != device else ""
    if info.get("device") == "cpu" and info.get("cpu_count"):
        text += f", {info['cpu_count']} CPU cores"
    text += (f"; wall-clock {_duration(info.get('wall_clock_seconds'))} in all, training "
             f"{_duration(info.get('train_runtime_seconds'))}")
    libraries = (("torch", "torch_version"), ("transformers", "transformers_version"))
    versions = [f"{lib} {info[key]}" for lib, key in libraries if info.get(key)]
    return text + (f"; {', '.join(versions)}" if versions else "")


def describe_results(run: RunRecord) -> dict:
    rows, notes = [], []
    for split, m in scored_splits(run):
        label = _split_label(run, split, m.get("num_samples"))
        if run.task == "translation":
            parts = [(f"{label} {pair}", part) for pair, part in m["directions"].items()] if "directions" in m else []
            for name, part in [*parts, (label + (" (mean of directions)" if parts else ""), m)]:
                rows.append({"split": name, "pairs": part.get("num_samples", "?"), "bleu": f"{part['bleu']:.2f}",
                             "chrf": f"{part['chrf']:.2f}" if "chrf" in part else "-",
                             "copy_source_bleu": f"{part['copy_source_bleu']:.2f}" if "copy_source_bleu" in part else "-",
                             "beam": part.get("num_beams", next(iter(m.get("directions", {}).values()), {}).get("num_beams", "?"))})
        else:
            loss, tokens = m.get("nll", m.get("loss")), m.get("tokens")
            rows.append({"split": label, "perplexity": f"{m['perplexity']:.3f}",
                         "loss": f"{loss:.4f}" if loss is not None else "-",
                         "tokens": f"{tokens:,}" if isinstance(tokens, int) else "?"})
    for key, label in (("bleu_signature", "BLEU"), ("chrf_signature", "chrF")):
        signatures = sorted({part[key] for _, m in scored_splits(run) for part in [m, *m.get("directions", {}).values()]
                             if part.get(key)})
        notes += [f"sacreBLEU {label} signature: `{s}`" for s in signatures]
    splits = [split for split, _ in scored_splits(run)]
    if run.run_config.get("load_best_model_at_end") and "validation" in splits:
        notes.append("The validation split also chose the checkpoint kept (best validation score), so its score is "
                     "optimistic" + ("; the test split took no part in training or selection." if "test" in splits
                                     else "; there is no held-out test score."))
    averaging = run.eval_results.get("checkpoint_averaging")
    if isinstance(averaging, dict) and "kept" in averaging:
        averaged, best = (averaging.get(key, float("nan")) for key in ("bleu_averaged", "bleu_before"))
        notes.append(f"Averaging the last {len(averaging.get('checkpoints', []))} checkpoints gave validation BLEU "
                     f"{averaged:.2f} vs {best:.2f} for the best one; the {averaging['kept']} weights were kept.")
    return {"rows": rows, "notes": notes}


def describe_adaptation(run: RunRecord) -> str | None:
    """A sentence on online adaptation (`bigmodel-hf serve --adapt`) when the folder holds its record."""
    info = read_json_object(run.root / "adaptation.json")
    if not info.get("adapted_online"):
        return None
    settings = info.get("settings") or {}
    moves = {"all": "all weights", "decoder": "the decoder's weights",
             "lora": f"LoRA adapters of rank {settings.get('lora_rank')} (merged in)"}.get(settings.get("moves"), "?")
    originals = (f"{settings.get('replay_original')} of its {info.get('original_pairs'):,} original training pairs"
                 if info.get("original_pairs") else "no original training pairs (none at hand)")
    return (f"This model was adapted online from `{display_name(str(info.get('base_model', '?')))}` while a person "
            f"translated with it: it learned from {info.get('pairs_learned')} approved pairs, one after another, "
            f"taking {settings.get('steps_per_approval')} AdamW step(s) per approval with learning rate "
            f"{settings.get('learning_rate')} on {moves}, each batch mixing the new pair with up to "
            f"{settings.get('replay_approved')} earlier approved pairs and {originals} (seed {settings.get('seed')}; "
            f"last update {info.get('last_update')}). The scores above, if any, are the base model's run, not "
            "this adapted model's.")


def describe_limitations(run: RunRecord, language_description: str) -> list[str]:
    rc = run.run_config
    generated = GENERATED_DATASETS.get(rc.get("dataset_name") or "")
    items = [note for note in (generated.note if generated else None, rc.get("data_note")) if note]
    if run.task == "translation":
        items.append(f"Translates {language_description} only, one direction; quality outside the domain of the "
                     "training data will be much lower than the scores above.")
    else:
        items.append("Generates text in the style and domain of its training data; outputs can be false, "
                     "repetitive or nonsensical, and were not filtered for safety.")
    items.append("The scores above compare with other systems only on the same split, scored with the same metric "
                 "signature.")
    return items


def example_inputs(run: RunRecord) -> list[str]:
    """Two inputs the model saw logged as samples (so the snippet shows its domain), or a generic one;
    without the source prefix the logged inputs carry (the snippet puts it back)."""
    prefix = run.run_config.get("source_prefix") or ""
    texts = [sample["input"] for sample in run.samples if isinstance(sample.get("input"), str) and sample["input"]]
    texts = list(dict.fromkeys(text.removeprefix(prefix) if prefix else text for text in texts))[:2]
    return texts or (["The cat sees a red house."] if run.task == "translation" else ["Once upon a time"])


def language_description(run: RunRecord) -> str:
    rc = run.run_config
    if run.task == "translation" and rc.get("language_pairs"):
        pairs = parse_language_pairs(rc["language_pairs"])
        return f"{len(pairs)} directions: " + ", ".join(
            f"{LANGUAGE_NAMES.get(p.source, p.source)} → {LANGUAGE_NAMES.get(p.target, p.target)}" for p in pairs)
    if run.task == "translation":
        src, tgt = (rc.get(k, "?") for k in ("source_lang", "target_lang"))
        return f"{LANGUAGE_NAMES.get(src, src)} → {LANGUAGE_NAMES.get(tgt, tgt)}"
    language = rc.get("language")
    return LANGUAGE_NAMES.get(language, language) if language else ""


PUSH_SETTINGS = ("push_to_hub", "hub_model_id", "hub_token", "hub_private_repo", "hub_strategy", "hub_always_push",
                 "hub_revision")


def shareable_run_config(run_config: dict, output_dir: str | Path) -> dict:
    """The run config as published: local paths reduced to their last component, push settings dropped
    (rerunning someone's shared config must not push to their repository)."""
    kept = {key: value for key, value in run_config.items() if key not in PUSH_SETTINGS}
    return redact_local_paths(kept, local_path_prefixes(output_dir))


def build_model_card(output_dir: str | Path, repo_id: str | None = None, license: str = "apache-2.0",
                     base_model: str | None = None, language: list[str] | None = None) -> ModelCard:
    """The model card of a run, from its output directory alone.

    `repo_id` is where the model is (or will be) on the Hub; the usage snippet and the model name use it
    (the output directory's name otherwise). `base_model` overrides the Hub id of the fine-tuned model.
    """
    run = read_run(output_dir)
    model_name = repo_id.split("/")[-1] if repo_id else run.root.resolve().name
    languages = language_description(run)
    src, tgt = (LANGUAGE_NAMES.get(code, code) for code in map(run.run_config.get, ("source_lang", "target_lang")))
    resolved = shareable_run_config(run.run_config, run.root)
    prefix = resolved.get("source_prefix")  # redacted as in the published run_config.yaml
    return ModelCard.from_template(
        card_data=card_metadata(run, model_name, license, base_model, language),
        template_path=str(TEMPLATES / ("translation.md" if run.task == "translation" else "text_generation.md")),
        model_name=model_name,
        repo_id=repo_id or model_name,
        is_bigmodel=run.is_bigmodel,
        remote_code=", trust_remote_code=True" if run.is_bigmodel else "",
        source_language=src,
        target_language=tgt,
        language_description=languages,
        architecture=describe_architecture(run.config),
        size=f"{run.num_parameters:,} parameters ({_human_count(run.num_parameters)}), vocabulary "
             f"{run.config.get('vocab_size', 0):,} tokens",
        origin=describe_origin(run, base_model),
        data=describe_data(run),
        tokenizer=describe_tokenizer(run),
        hyperparameters=describe_hyperparameters(run),
        hardware=describe_hardware(run.run_info),
        results=describe_results(run),
        plot=OutputLayout(run.root).training_curves.name if run.has_plot else None,
        example_inputs=json.dumps(example_inputs(run), ensure_ascii=False),
        source_prefix=json.dumps(prefix, ensure_ascii=False) if isinstance(prefix, str) and prefix else None,
        recipe=RECIPES[run.task],
        limitations=describe_limitations(run, languages),
        adaptation=describe_adaptation(run),
        run_config_yaml=yaml.safe_dump(resolved, sort_keys=True, allow_unicode=True).strip()
        if resolved else "# no run_config.yaml in the output directory",
    )


def write_model_card(output_dir: str | Path, repo_id: str | None = None, **kwargs) -> Path:
    """Build the card and save it as `<output_dir>/README.md` (the file the Hub shows); return its path."""
    path = Path(output_dir) / "README.md"
    build_model_card(output_dir, repo_id, **kwargs).save(path)
    return path
