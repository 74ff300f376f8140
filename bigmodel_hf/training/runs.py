"""The steps every recipe run takes around its own training: start, tokenizer, model config, finish.

    expected = check_model_settings(model_args)   # the preset's config with the overrides, before any data work
    layout, resume = start_run(run_config, model_config=expected, data=data_args)  # may we continue?
    if message := completed_run(resume, args): ...  # a rerun of a finished run does nothing
    tokenizer = tokenizer_for_run(model_args, training_args, resuming, train=...)
    config = sized_to_tokenizer(expected, tokenizer, model_args)
    record_run(run_config, data_args)             # run_config.yaml, once the inputs have loaded
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
from ..output_layout import OutputLayout
from ..tokenization import load_pretrained_tokenizer
from .checkpoints import list_checkpoints, resolve_resume_checkpoint
from .config import RunConfig
from .processes import made_once_everywhere
from .rerun import (
    check_output_dir, check_same_data, check_same_model, data_fingerprint, finished_without_checkpoints,
    record_data_fingerprint,
)
from .run_info import describe_run
from .setting_checks import ConfigError

logger = logging.getLogger(__name__)


def start_run(run_config: RunConfig, model_config: BigModelConfig | None = None,
              data=None) -> tuple[OutputLayout, str | None]:
    """Check the output directory, seed, pick the checkpoint to resume from (None = fresh start; warns when a
    fresh start would overwrite checkpoints) and refuse to resume it into another model (`model_config`: the
    run's from-scratch config, see `check_model_settings`) or onto other data (`data`: the run's data
    arguments), see `rerun`.

    Writes nothing: every recipe calls `record_run` once its inputs (data, tokenizer, model) have loaded, so
    a bad input leaves an existing output directory untouched.
    """
    training_args = run_config.training
    check_output_dir(training_args.output_dir)
    set_seed(training_args.seed)
    layout = OutputLayout(training_args.output_dir)
    resume = resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    held = Path(resume) if resume else finished_without_checkpoints(resume, training_args)
    if held is not None:  # the model this command would continue
        model_args = run_config.model
        check_same_model(held, model_args, model_config if not model_args.model_name_or_path else None)
        if data is not None:
            check_same_data(held, data_fingerprint(data, training_args.seed),
                            allow_change=run_config.run.allow_data_change)
    if resume is None and list_checkpoints(training_args.output_dir):
        logger.warning("%s already holds checkpoints; they may be overwritten. Pass --resume_from_checkpoint last "
                       "to continue that run instead.", training_args.output_dir)
    return layout, resume


def record_run(run_config: RunConfig, data=None) -> None:
    """Main process: write the resolved run to `<output_dir>/run_config.yaml`, and the fingerprint of the
    training data (`data`: the run's data arguments) beside the checkpoints. Recipes call it once the run's
    inputs have loaded (so a bad input changes nothing on disk), before training."""
    training_args = run_config.training
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
    overrides = model_args.model_overrides
    clashes = [name for name in given if name in overrides and overrides[name] != given[name]]
    if clashes:
        raise ConfigError(f"{', '.join(clashes)} set twice, as a flag and in config_overrides, with different "
                          "values; keep one.")
    return given


def check_model_settings(model_args, **fixed) -> BigModelConfig | None:
    """From scratch: the run's model config, the preset's with `fixed`, the overrides and the dropout flags,
    built once before any data or tokenizer work, so a bad override fails at once (`sized_to_tokenizer`
    completes it later). None for a pretrained checkpoint."""
    if model_args.model_name_or_path:
        return None
    try:
        return BigModelConfig.from_preset(model_args.preset, **{**fixed, **model_args.model_overrides,
                                                                **dropout_settings(model_args)})
    except (ValueError, TypeError) as error:  # BigModelConfig names the field and the fix
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"--preset {model_args.preset} with --config_overrides {model_args.config_overrides!r}: "
                          f"{error}") from error


def sized_to_tokenizer(config: BigModelConfig, tokenizer, model_args) -> BigModelConfig:
    """The run's config (from `check_model_settings`) given the tokenizer's vocabulary size and special ids,
    except those `config_overrides` sets; checked again. The tokenizer is only known after the data loaded."""
    ids = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
           "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    if config.is_encoder_decoder:  # BigModelConfig derives the decoder start from BOS when it is not given
        ids["decoder_start_token_id"] = tokenizer.bos_token_id
    config.update({key: value for key, value in ids.items() if key not in model_args.model_overrides})
    config._validate()  # our config's own consistency check (ids inside the vocabulary)
    return config


def capped(dataset, max_samples):
    return dataset if max_samples is None else dataset.select(range(min(max_samples, len(dataset))))


def take_over_trainer_push(training_args) -> dict | None:
    """For the recipes: if the run asked for `--push_to_hub`, turn the Trainer's own push off and return
    the keyword arguments of `push_output_dir` for after the final evaluation (None otherwise).

    The Trainer would upload the whole output directory as it goes (data copies, predictions,
    `training_args.bin`); `push_output_dir` sends only what `hub.plan_upload` lists, once, with the card.
    Call before building the Trainer.
    """
    if not training_args.push_to_hub:
        return None
    training_args.push_to_hub = False
    return dict(repo_id=training_args.hub_model_id or Path(training_args.output_dir).resolve().name,
                token=training_args.hub_token, private=training_args.hub_private_repo,
                revision=training_args.hub_revision)


def finish_run(trainer, train_output, results: dict, started: float, push: dict | None, card: bool = True,
               run_info: dict | None = None) -> None:
    """Main process: each split's results into eval_results.json, run_info.json (with `run_info`'s entries,
    e.g. the data stages), the card, the push."""
    if not trainer.is_world_process_zero():
        return
    output_dir = trainer.args.output_dir
    layout = OutputLayout(output_dir)
    for split, split_results in results.items():
        layout.update_eval_results(split, split_results)
    layout.write_run_info({**describe_run(trainer, train_output, time.perf_counter() - started), **(run_info or {})})
    if card:
        write_model_card(output_dir, repo_id=push["repo_id"] if push else None)
    if push:  # the card just written is already the one for push["repo_id"]
        print(f"Pushed to {push_output_dir(output_dir, **push, rebuild_card=not card)}")
