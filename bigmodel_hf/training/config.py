"""A run's configuration: recipe defaults < YAML file (`--config`) < command-line flags.

The YAML file is flat: its keys are the flag names (`learning_rate: 5e-4`, `eval_strategy: steps`).
Before anything is built, every key is checked: names that transformers 5 renamed or removed fail with
the new spelling, other unknown names fail with the closest known ones, and values are checked by
`setting_checks.check_values`. Parsing itself is `transformers.HfArgumentParser`, so every field of the
argument dataclasses (ours and `Seq2SeqTrainingArguments`) is a flag with its help text.
"""

import dataclasses
import difflib
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import yaml
from transformers import HfArgumentParser, TrainingArguments

from .arguments import (
    CausalLMArguments, LoraArguments, ModelArguments, RunArguments, TextDataArguments, TokenizerArguments,
    TranslationDataArguments,
)
from .defaults import ALWAYS_RECORDED, environment_defaults, settle_defaults
from .setting_checks import ConfigError, advisories, check_values

logger = logging.getLogger(__name__)

# Keys from transformers 4.x scripts and tutorials that 5.x renamed or removed, with what to write instead.
RENAMED_KEYS = {
    "evaluation_strategy": "renamed in transformers 5: use eval_strategy",
    "overwrite_output_dir": "removed in transformers 5: pick a new output_dir, or continue with resume_from_checkpoint",
    "logging_dir": "removed in transformers 5: TensorBoard logs go to <output_dir>/runs (or $TENSORBOARD_LOGGING_DIR)",
    "warmup_ratio": "removed in transformers 5: use warmup_steps with a float below 1 (a fraction of all steps)",
    "gradient_checkpointing": "renamed in transformers 5: use activation_checkpointing",
    "gradient_checkpointing_kwargs": "renamed in transformers 5: use activation_checkpointing_kwargs",
    "group_by_length": "removed in transformers 5: use max_tokens (token-budget batches of similar lengths)",
    "no_cuda": "removed: use use_cpu",
    "use_mps_device": "removed: the MPS device is used automatically when present",
    "per_gpu_train_batch_size": "removed: use per_device_train_batch_size",
    "per_gpu_eval_batch_size": "removed: use per_device_eval_batch_size",
    "save_safetensors": "removed in transformers 5: checkpoints are always safetensors",
    "push_to_hub_token": "removed: use hub_token, or better the HF_TOKEN environment variable",
    "push_to_hub_model_id": "removed: use hub_model_id",
    "tokenizer": "Trainer(tokenizer=) is processing_class in transformers 5; here use tokenizer_name",
    "torchdynamo": "removed: use torch_compile_backend",
    "split_batches": "moved into accelerator_config: accelerator_config: {split_batches: true}",
    "dispatch_batches": "moved into accelerator_config: accelerator_config: {dispatch_batches: true}",
}

# Keys that are not fields but are understood before parsing.
CONFIG_FLAG = "config"
NON_FIELD_FLAGS = {CONFIG_FLAG, "help", "h"}


def load_yaml_config(path: str | os.PathLike) -> dict:
    """Read a flat YAML run file into a dict (an empty file is an empty run)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist.")
    with open(path, encoding="utf-8") as handle:
        values = yaml.safe_load(handle) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of flag names to values, got {type(values).__name__}.")
    return values


def check_known_keys(keys, known: set[str], where: str) -> None:
    """Fail on renamed/removed or unknown keys, naming the replacement or the closest known keys."""
    problems = []
    for key in keys:
        if key in RENAMED_KEYS:  # checked first: some are still accepted as deprecated aliases
            problems.append(f"{key!r}: {RENAMED_KEYS[key]}")
        elif key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.7)
            hint = f"did you mean {' or '.join(close)}?" if close else "see --help for the known keys"
            problems.append(f"{key!r} is not a known setting ({hint})")
    if problems:
        raise ConfigError(f"In {where}:\n  " + "\n  ".join(problems))


def flag_names(argv: Sequence[str], boolean_keys: set[str]) -> list[str]:
    """The setting names used in argv (`--a-b=1` -> `a_b`; `--no_plot` -> `plot` for boolean fields)."""
    names = []
    for token in argv:
        if not token.startswith("--") or token == "--":
            continue
        name = token[2:].split("=", 1)[0].replace("-", "_")
        if name.startswith("no_") and name[3:] in boolean_keys:
            name = name[3:]
        names.append(name)
    return names


def split_config_flag(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """Take `--config PATH` (or `--config=PATH`) out of argv."""
    rest, config, tokens = [], None, list(argv)
    while tokens:
        token = tokens.pop(0)
        if token == f"--{CONFIG_FLAG}":
            if not tokens:
                raise ConfigError("--config needs a YAML file path.")
            config = tokens.pop(0)
        elif token.startswith(f"--{CONFIG_FLAG}="):
            config = token.split("=", 1)[1]
        else:
            rest.append(token)
    return config, rest


def parse_run_config(
    argument_types: Mapping[str, type],
    argv: Sequence[str] | None = None,
    defaults: Mapping | None = None,
    default_config: str | os.PathLike | None = None,
    values: Mapping | None = None,
    budget_defaults: Mapping | None = None,
    choose_settings: Callable[[dict, set], None] | None = None,
) -> "RunConfig":
    """Parse a run into a `RunConfig` whose field `name` holds an instance of `argument_types[name]`.

    `defaults` are the recipe's own defaults (over the dataclasses', under `environment_defaults()`'s);
    `default_config` is the YAML used when no `--config` is given; `values` stands for that file when a
    program runs a step of its own (a mapping of the same keys); `budget_defaults` replace `defaults` in a
    run with a time budget where the user set none of their keys (see `settle_defaults`); `choose_settings(values,
    user_keys)` fills settings chosen from the run itself (`--preset auto`) before the defaults settle. Raises
    `ConfigError` for unknown, renamed or invalid settings.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(list(argument_types.values()))
    parser.add_argument(f"--{CONFIG_FLAG}", help="flat YAML file of settings; flags given here override it")  # for --help
    fields = {f.name: f for cls in argument_types.values() for f in dataclasses.fields(cls) if f.init}
    known = set(fields)
    boolean_keys = {name for name, f in fields.items() if f.type in (bool, "bool", bool | None, "bool | None")}

    config_path, argv = split_config_flag(argv)
    if values is not None and config_path is None:
        file_values, where = dict(values), "the run's settings"
    else:
        config_path = config_path or default_config
        file_values, where = load_yaml_config(config_path) if config_path else {}, str(config_path)
    check_known_keys(defaults or {}, known, "the recipe defaults")
    check_known_keys(budget_defaults or {}, known, "the recipe's budget defaults")
    check_known_keys(file_values, known, where)
    check_known_keys([n for n in flag_names(argv, boolean_keys) if n not in NON_FIELD_FLAGS], known, "the command line")

    # Lowest layer: how we were launched (e.g. CPU processes under torchrun need use_cpu to be joined).
    # argparse converts string defaults with the flag's type, so YAML's "5e-4" (a str to PyYAML) is a float.
    parser.set_defaults(**{**environment_defaults(), **(defaults or {}), **file_values})
    namespace = vars(parser.parse_args(argv))
    user_keys = set(file_values) | set(flag_names(argv, boolean_keys))
    if choose_settings is not None:
        choose_settings(namespace, user_keys)
    settle_defaults(namespace, user_keys, budget_defaults)
    explicit = set(defaults or {}) | user_keys | (ALWAYS_RECORDED & known)
    check_values(namespace)
    for note in advisories(namespace):
        logger.warning(note)
    instances = {}
    for name, cls in argument_types.items():
        init_values = {f.name: namespace[f.name] for f in dataclasses.fields(cls) if f.init}
        try:
            instances[name] = cls(**init_values)
        except ConfigError:  # our own arguments' checks name the flag already
            raise
        except ValueError as error:  # TrainingArguments' own consistency checks
            raise ConfigError(f"Invalid {cls.__name__}: {error}") from error
    return RunConfig(**instances, explicit_keys=frozenset(explicit),
                     config_path=str(config_path) if config_path else None)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A parsed run: one argument dataclass per field, and which keys the recipe, the file or the command line
    set. Each field means the same in every recipe; the ones a recipe does not use are None."""

    training: TrainingArguments  # Seq2SeqTrainingArguments for translation
    model: ModelArguments | None = None
    data: TranslationDataArguments | TextDataArguments | None = None
    run: RunArguments | None = None
    tokenizer: TokenizerArguments | None = None  # the translation recipe's tokenizer settings
    lm: CausalLMArguments | None = None  # the text-generation recipe's own settings (LoRA's included)
    lora: LoraArguments | None = None  # the translation recipe's LoRA settings
    extra: object = None  # the arguments of a program built on a recipe (back-translation, the search)
    explicit_keys: frozenset = frozenset()
    config_path: str | None = None

    def parts(self) -> list:
        """The argument dataclasses of this run, in field order."""
        return [value for f in dataclasses.fields(self) if dataclasses.is_dataclass(value := getattr(self, f.name))]

    def resolved(self) -> dict:
        """Flat dict that reproduces the run as a `--config` file.

        All of our own settings, and the `TrainingArguments` fields that the recipe, file or command line
        set (the rest are transformers' defaults). Secrets (`hub_token`) are never included, nor
        `allow_data_change`, a permission for one command rather than a setting of the run.
        """
        values = {}
        for instance in self.parts():
            if isinstance(instance, TrainingArguments):
                as_dict = instance.to_dict()  # enums as strings, tokens redacted
                values.update({k: as_dict[k] for k in sorted(self.explicit_keys) if k in as_dict})
            else:
                values.update(dataclasses.asdict(instance))
        values.pop("hub_token", None)
        values.pop("allow_data_change", None)
        return values
