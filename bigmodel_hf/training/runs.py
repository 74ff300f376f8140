"""The steps every recipe run takes around its own training: start, tokenizer, model config, finish.

    expected = check_model_settings(model_args)   # the preset's config with the overrides, before any data work
    layout, resume = start_run(run_config, args, model_config=expected, data=data_args)  # may we continue?
    if message := completed_run(resume, args): ...  # a rerun of a finished run does nothing
    tokenizer = tokenizer_for_run(model_args, training_args, resuming, train=...)
    config = preset_config(model_args, tokenizer, is_encoder_decoder=False)
    ...                                           # the recipe's data, model, Trainer, evaluation
    finish_run(trainer, train_output, results, started, push)   # eval_results.json, run_info, card, push
"""

import logging
import time
from collections.abc import Callable
from pathlib import Path

from transformers import set_seed

from ..cards import write_model_card
from ..configuration_bigmodel import BigModelConfig
from ..hub import push_output_dir
from ..tokenization import load_pretrained_tokenizer
from .arguments import ModelArguments, RunArguments
from .checkpoints import list_checkpoints, resolve_resume_checkpoint
from .config import RunConfig
from .output import OutputLayout
from .processes import made_once_everywhere
from .rerun import (
    check_output_dir, check_same_data, check_same_model, data_fingerprint, finished_without_checkpoints,
    record_data_fingerprint,
)
from .run_info import describe_run
from .validation import ConfigError

logger = logging.getLogger(__name__)


def parse_config_overrides(overrides) -> dict:
    """`"d_model=128,encoder_layers=2"` (values read as YAML scalars) or a mapping -> dict."""
    import yaml

    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    pairs = [item.split("=", 1) for item in str(overrides).split(",") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ConfigError(f"config_overrides must look like 'd_model=128,encoder_layers=2', got {overrides!r}.")
    return {key.strip(): yaml.safe_load(value) for key, value in pairs}


def start_run(run_config: RunConfig, training_args, record: bool = True, model_config: BigModelConfig | None = None,
              data=None) -> tuple[OutputLayout, str | None]:
    """Check the output directory, seed, save the resolved run first (so even a crashed run says what it
    was), pick the checkpoint to resume from (None = fresh start; warns when a fresh start would overwrite
    checkpoints) and refuse to resume it into another model (`model_config`: the run's from-scratch config,
    see `check_model_settings`) or onto other data (`data`: the run's data arguments), see `rerun`.

    `record=False` writes nothing: the recipe calls `record_run` once its inputs (data, tokenizer, model)
    have loaded, so a bad input leaves an existing output directory untouched.
    """
    check_output_dir(training_args.output_dir)
    set_seed(training_args.seed)
    layout = OutputLayout(training_args.output_dir)
    resume = resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    held = Path(resume) if resume else finished_without_checkpoints(resume, training_args)
    if held is not None:  # the model this command would continue
        model_args = run_config.get(ModelArguments)
        check_same_model(held, model_args, model_config if not model_args.model_name_or_path else None)
        if data is not None:
            check_same_data(held, data_fingerprint(data, training_args.seed),
                            allow_change=run_config.get(RunArguments).allow_data_change)
    if record:
        record_run(run_config, training_args, data)
    if resume is None and list_checkpoints(training_args.output_dir):
        logger.warning("%s already holds checkpoints; they may be overwritten. Pass --resume_from_checkpoint last "
                       "to continue that run instead.", training_args.output_dir)
    return layout, resume


def record_run(run_config: RunConfig, training_args, data=None) -> None:
    """Main process: write the resolved run to `<output_dir>/run_config.yaml`, and the fingerprint of the
    training data (`data`: the run's data arguments) beside the checkpoints."""
    if training_args.should_save:
        OutputLayout(training_args.output_dir).write_run_config(run_config.resolved())
        if data is not None:
            record_data_fingerprint(training_args.output_dir, data_fingerprint(data, training_args.seed))


def tokenizer_for_run(model_args, training_args, resuming: bool, train: Callable[[Path], object]):
    """The checkpoint's (or `tokenizer_name`'s) tokenizer, or one trained by `train(save_dir)`.

    Trained once, by the global main process, into `<output_dir>/tokenizer`, which every machine then holds
    (`made_once_everywhere`); the other processes, and a resumed run, load that copy (so ids never change
    under a checkpoint).
    """
    name = model_args.tokenizer_name or model_args.model_name_or_path
    if name:
        return load_pretrained_tokenizer(name, trust_remote_code=model_args.trust_remote_code)
    saved = Path(training_args.output_dir) / "tokenizer"
    if resuming and (saved / "tokenizer.json").is_file():
        return load_pretrained_tokenizer(saved)
    trained = made_once_everywhere(saved, train, training_args)
    return trained if trained is not None else load_pretrained_tokenizer(saved)


DROPOUT_FIELDS = ("dropout", "attention_dropout", "activation_dropout")


def dropout_settings(model_args) -> dict:
    """The dropout flags that were given (`--dropout`, ...), as config fields; a clash with the same field
    in `config_overrides` is an error rather than a silent winner."""
    given = {name: getattr(model_args, name, None) for name in DROPOUT_FIELDS}
    given = {name: value for name, value in given.items() if value is not None}
    overrides = parse_config_overrides(model_args.config_overrides)
    clashes = [name for name in given if name in overrides and overrides[name] != given[name]]
    if clashes:
        raise ConfigError(f"{', '.join(clashes)} set twice, as a flag and in config_overrides, with different "
                          "values; keep one.")
    return given


def check_model_settings(model_args, **fixed) -> BigModelConfig | None:
    """From scratch: the preset's config with `fixed`, the overrides and the dropout flags, built once before
    any data or tokenizer work, so a bad override fails at once. None for a pretrained checkpoint."""
    if model_args.model_name_or_path:
        return None
    try:
        return BigModelConfig.from_preset(model_args.preset, **{**fixed, **parse_config_overrides(
            model_args.config_overrides), **dropout_settings(model_args)})
    except (ValueError, TypeError) as error:  # BigModelConfig names the field and the fix
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"--preset {model_args.preset} with --config_overrides {model_args.config_overrides!r}: "
                          f"{error}") from error


def preset_config(model_args, tokenizer, **fixed) -> BigModelConfig:
    """`BigModelConfig` of `model_args.preset`, sized to the tokenizer, with `fixed`, the run's
    `config_overrides` and the dropout flags over it."""
    return BigModelConfig.from_preset(
        model_args.preset,
        **{
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            **fixed,
            **parse_config_overrides(model_args.config_overrides),
            **dropout_settings(model_args),
        },
    )


def capped(dataset, max_samples):
    return dataset if max_samples is None else dataset.select(range(min(max_samples, len(dataset))))


def finish_run(trainer, train_output, results: dict, started: float, push: dict | None, card: bool = True) -> None:
    """Main process: each split's results into eval_results.json, run_info.json, the card, the push."""
    if not trainer.is_world_process_zero():
        return
    output_dir = trainer.args.output_dir
    layout = OutputLayout(output_dir)
    for split, split_results in results.items():
        layout.update_eval_results(split, split_results)
    layout.write_run_info(describe_run(trainer, train_output, time.perf_counter() - started))
    if card:
        write_model_card(output_dir, repo_id=push["repo_id"] if push else None)
    if push:
        print(f"Pushed to {push_output_dir(output_dir, **push)}")
