"""Hyperparameter search for the translation recipe through `Trainer.hyperparameter_search` (Optuna).

    python recipes/search_hyperparameters.py --config recipes/configs/bible_en_es_small.yaml \
        --search_trials 8 --search_minutes 60 --max_train_minutes 6

Searched: preset, learning rate (log scale), warmup steps, residual dropout and the token budget per batch
(`max_tokens`). Everything else is the recipe's settings. The data and the tokenizer are prepared once;
each trial builds a fresh model (`model_init`), trains for at most `max_train_minutes` (evaluations
excluded) and is scored by its last validation BLEU (greedy, `max_eval_samples` pairs, the evaluation
the Trainer runs when the budget stops it). Optuna's TPE sampler (seeded) picks the settings and its
median pruner stops trials whose intermediate BLEU trails the others'. No new trial starts after
`search_minutes`, so the search ends within that budget plus one trial.

Written to `<output_dir>/`: `trials.csv`, `trials.md` (one row per trial: settings, BLEU, steps,
training tokens, minutes, state) and `trials.png` (BLEU per trial and against the learning rate).
"""

import csv
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..modeling_bigmodel import BigModelForSeq2SeqLM
from .auto_settings import settle_auto_preset
from .config import RunConfig, parse_run_config
from .data_cache import DataCache
from .data_spec import share_generated_data
from .defaults import TRANSLATION_BUDGET_DEFAULTS, TRANSLATION_DEFAULTS
from .runs import record_run, sized_to_tokenizer, start_run
from .setting_checks import ConfigError
from .trainers import TranslationTrainer
from .translation import (
    TRANSLATION_ARGUMENT_TYPES, build_model, build_tokenizer, build_translation_trainer, check_model_settings,
    load_parallel_data, set_evaluation_max_length, tokenize_parallel_data,
)


@dataclass
class SearchArguments:
    search_trials: int = field(default=8, metadata={"help": "Most trials to run."})
    search_minutes: float = field(default=60.0, metadata={"help": "No trial starts after this many minutes."})
    search_presets: str = field(default="vaswani-small,modern-small", metadata={"help": "Presets to choose from."})
    search_learning_rate: str = field(default="3e-4,3e-3", metadata={"help": "Learning-rate range (log scale)."})
    search_warmup_steps: str = field(default="50,400", metadata={"help": "Warmup-steps range."})
    search_dropout: str = field(default="0.0,0.3", metadata={"help": "Residual-dropout range."})
    search_max_tokens: str = field(default="1024,2048,4096", metadata={"help": "Token budgets per batch to try."})


def _numbers(text: str, kind=float) -> list:
    try:
        return [kind(float(item)) for item in str(text).split(",") if item.strip()]
    except ValueError as error:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}") from error


@dataclass(frozen=True)
class SearchSpace:
    presets: tuple
    learning_rate: tuple
    warmup_steps: tuple
    dropout: tuple
    max_tokens: tuple

    @classmethod
    def from_arguments(cls, search: SearchArguments) -> "SearchSpace":
        space = cls(tuple(p.strip() for p in search.search_presets.split(",") if p.strip()),
                    tuple(_numbers(search.search_learning_rate)), tuple(_numbers(search.search_warmup_steps, int)),
                    tuple(_numbers(search.search_dropout)), tuple(_numbers(search.search_max_tokens, int)))
        problems = [f"search_{name} needs a low,high pair" for name in ("learning_rate", "warmup_steps", "dropout")
                    if len(getattr(space, name)) != 2 or getattr(space, name)[0] > getattr(space, name)[1]]
        if not space.presets or not space.max_tokens:
            problems.append("search_presets and search_max_tokens need at least one value each")
        if space.learning_rate and space.learning_rate[0] <= 0:
            problems.append("search_learning_rate must be positive")
        if space.dropout and not 0 <= space.dropout[0] <= space.dropout[1] < 1:
            problems.append("search_dropout must lie in [0, 1)")
        if problems:
            raise ConfigError("Invalid search space:\n  " + "\n  ".join(problems))
        return space

    def suggest(self, trial) -> dict:
        """The trial's settings (Optuna returns the same value when a name is suggested twice in a trial)."""
        return {
            "preset": trial.suggest_categorical("preset", list(self.presets)),
            "learning_rate": trial.suggest_float("learning_rate", *self.learning_rate, log=True),
            "warmup_steps": trial.suggest_int("warmup_steps", *self.warmup_steps),
            "dropout": trial.suggest_float("dropout", *self.dropout),
            "max_tokens": trial.suggest_categorical("max_tokens", list(self.max_tokens)),
        }


class SearchTrainer(TranslationTrainer):
    """Applies the trial's token budget, counts each trial's tokens from zero, and records every trial."""

    space: SearchSpace
    records: list

    def _hp_search_setup(self, trial):
        super()._hp_search_setup(trial)  # learning_rate and warmup_steps, through hp_space
        if trial is not None and not isinstance(trial, dict):
            self.max_tokens = self.space.suggest(trial)["max_tokens"]
            self.args.warmup_steps = int(self.args.warmup_steps)
        self.source_tokens = self.target_tokens = 0

    def train(self, *args, trial=None, **kwargs):
        started = time.perf_counter()
        try:
            return super().train(*args, trial=trial, **kwargs)
        finally:  # also when Optuna prunes the trial (an exception out of train)
            if trial is not None and not isinstance(trial, dict):
                self.records.append({"trial": trial.number, "steps": self.state.global_step,
                                     "epochs": self.state.epoch or 0.0, **self.training_tokens(),
                                     "wall_clock_minutes": (time.perf_counter() - started) / 60})


def parse_search_config(argv=None, default_config=None) -> RunConfig:
    run_config = parse_run_config({**TRANSLATION_ARGUMENT_TYPES, "extra": SearchArguments}, argv,
                                  TRANSLATION_DEFAULTS, default_config, budget_defaults=TRANSLATION_BUDGET_DEFAULTS,
                                  choose_settings=settle_auto_preset)
    search = run_config.extra
    if search.search_trials < 1 or not search.search_minutes > 0:
        raise ConfigError("search_trials and search_minutes must be positive")
    if run_config.model.model_name_or_path:
        raise ConfigError("the search builds models from presets; leave model_name_or_path unset")
    # Trials share one in-memory copy of the data, so the search cannot stream it or route language pairs.
    if run_config.data.streaming:
        raise ConfigError("--streaming: the search loads the training data once for all trials; "
                          "leave out --streaming (cap the pairs with --max_train_samples instead)")
    if run_config.data.language_pairs:
        raise ConfigError("--language_pairs: the search tunes one direction; "
                          "give --source_lang and --target_lang instead")
    SearchSpace.from_arguments(search)
    return run_config


def run_search(run_config: RunConfig) -> dict:
    """Run the search; returns the best trial (also in `<output_dir>/best_trial.json`) and writes the tables."""
    import optuna

    model_args, data, run, args = run_config.model, run_config.data, run_config.run, run_config.training
    search = run_config.extra
    space = SearchSpace.from_arguments(search)
    expected = check_model_settings(model_args)
    if run.max_train_minutes is None:
        raise ConfigError("set max_train_minutes, the training budget of each trial")
    # One score per trial, from the evaluation at the end of its budget: no checkpoints, no best-model reload.
    args.save_strategy, args.load_best_model_at_end = "no", False
    start_run(run_config)
    share_generated_data(data, "translation", args)
    cache = DataCache.for_run(data, args.seed)  # None without --data_cache_dir
    raw = load_parallel_data(data, args.output_dir, args.seed, write_files=args.should_save, cache=cache)
    tokenizer = build_tokenizer(model_args, run_config.tokenizer, raw, args, resuming=False, cache=cache)
    record_run(run_config)
    tokenized = tokenize_parallel_data(raw, tokenizer, data, cache=cache)

    def model_init(trial=None):
        settings = space.suggest(trial) if trial is not None else {"preset": model_args.preset}
        trial_args = dataclasses.replace(model_args, preset=settings["preset"],
                                         dropout=settings.get("dropout", model_args.dropout))
        model = BigModelForSeq2SeqLM(sized_to_tokenizer(check_model_settings(trial_args), tokenizer, trial_args))
        set_evaluation_max_length(model, args, data)
        return model

    trainer = build_translation_trainer(run_config, build_model(model_args, tokenizer, expected), tokenizer, raw,
                                        tokenized,
                                        trainer_class=SearchTrainer)
    trainer.model_init, trainer.space, trainer.records = model_init, space, []
    storage, name = optuna.storages.InMemoryStorage(), "translation"
    trainer.hyperparameter_search(
        hp_space=lambda trial: {k: v for k, v in space.suggest(trial).items() if k in ("learning_rate", "warmup_steps")},
        compute_objective=lambda metrics: metrics["eval_bleu"], n_trials=search.search_trials, direction="maximize",
        backend="optuna", timeout=search.search_minutes * 60, storage=storage, study_name=name,
        sampler=optuna.samplers.TPESampler(seed=args.seed),
    )
    study = optuna.load_study(study_name=name, storage=storage)
    rows = trial_rows(study, trainer.records)
    out = Path(args.output_dir)
    write_trials(rows, out)
    best = {"trial": study.best_trial.number, "bleu": study.best_value, **study.best_trial.params}
    (out / "best_trial.json").write_text(json.dumps(best, indent=1) + "\n")
    return best


TRIAL_COLUMNS = ["trial", "state", "preset", "learning_rate", "warmup_steps", "dropout", "max_tokens", "bleu",
                 "steps", "epochs", "tokens", "wall_clock_minutes"]


def trial_rows(study, records: list) -> list[dict]:
    by_trial = {record["trial"]: record for record in records}
    rows = []
    for trial in study.trials:
        value = trial.value if trial.value is not None else (
            list(trial.intermediate_values.values())[-1] if trial.intermediate_values else None)
        rows.append({"trial": trial.number, "state": trial.state.name, **trial.params, "bleu": value,
                     **{k: v for k, v in by_trial.get(trial.number, {}).items() if k != "trial"}})
    return rows


def write_trials(rows: list[dict], out: Path) -> None:
    """`trials.csv`, `trials.md` and `trials.png` under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "trials.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=TRIAL_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    def cell(value, column):
        if value is None:
            return ""
        if column == "learning_rate":
            return f"{value:.2e}"
        if isinstance(value, float):
            return f"{value:.2f}" if column != "dropout" else f"{value:.3f}"
        return f"{value:,}" if isinstance(value, int) and column in ("tokens", "steps") else str(value)

    lines = ["| " + " | ".join(TRIAL_COLUMNS) + " |", "|" + "---|" * len(TRIAL_COLUMNS)]
    lines += ["| " + " | ".join(cell(row.get(c), c) for c in TRIAL_COLUMNS) + " |" for row in rows]
    (out / "trials.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot_trials(rows, out / "trials.png")


def plot_trials(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [row for row in rows if row.get("bleu") is not None]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    presets = sorted({row.get("preset", "?") for row in scored})
    for preset in presets:
        mine = [row for row in scored if row.get("preset", "?") == preset]
        left.scatter([r["trial"] for r in mine], [r["bleu"] for r in mine], label=preset)
        right.scatter([r["learning_rate"] for r in mine], [r["bleu"] for r in mine],
                      s=[20 + 20 * r["max_tokens"] / 1024 for r in mine], label=preset)
    left.set(xlabel="trial", ylabel="validation BLEU (greedy)", title="BLEU per trial")
    right.set(xlabel="learning rate", ylabel="validation BLEU (greedy)", xscale="log",
              title="BLEU vs learning rate (size: max_tokens)")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        if presets:
            axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
