"""Run configuration: defaults < YAML < flags, renamed/unknown keys and bad values fail at start."""

import dataclasses

import pytest
import torch
import yaml
from transformers import Seq2SeqTrainingArguments, TrainingArguments

from bigmodel_hf.training import (
    RENAMED_KEYS,
    TRANSLATION_DEFAULTS,
    ConfigError,
    ModelArguments,
    RunArguments,
    TokenizerArguments,
    TranslationDataArguments,
    environment_defaults,
    parse_run_config,
)
from bigmodel_hf.training import config as config_module
from bigmodel_hf.training import defaults as defaults_module
from bigmodel_hf.training.translation import parse_translation_config

TYPES = dict(model=ModelArguments, tokenizer=TokenizerArguments, data=TranslationDataArguments, run=RunArguments,
             training=Seq2SeqTrainingArguments)


def parse(argv, tmp_path, **kwargs):
    kwargs.setdefault("defaults", {**TRANSLATION_DEFAULTS, "output_dir": str(tmp_path / "out")})
    return parse_run_config(TYPES, argv, **kwargs)


def write_yaml(tmp_path, values) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_recipe_defaults_apply_and_differ_from_transformers(tmp_path):
    run_config = parse([], tmp_path)
    model, train = run_config.model, run_config.training
    assert train.report_to == ["tensorboard"]  # transformers 5 alone logs nowhere
    assert train.label_smoothing_factor == 0.1 and train.predict_with_generate
    assert train.lr_scheduler_type.value == "inverse_sqrt" and train.warmup_steps == 0.05
    assert train.load_best_model_at_end and train.metric_for_best_model == "bleu" and train.greater_is_better
    assert train.eval_strategy.value == "steps" and train.save_total_limit == 5
    assert model.preset == "auto" and model.model_name_or_path is None


def test_yaml_overrides_defaults_and_flags_override_yaml(tmp_path):
    config = write_yaml(tmp_path, {"learning_rate": "5e-4", "max_steps": 300, "source_lang": "de", "plot": False})
    run_config = parse(["--config", config, "--max_steps", "200", "--target-lang=fr", "--no_plot"], tmp_path)
    data, run, train = run_config.data, run_config.run, run_config.training
    assert train.learning_rate == pytest.approx(5e-4)  # PyYAML reads 5e-4 as a str; the flag type converts it
    assert train.max_steps == 200 and data.source_lang == "de" and data.target_lang == "fr" and run.plot is False
    assert isinstance(train, Seq2SeqTrainingArguments) and isinstance(run_config.tokenizer, TokenizerArguments)
    assert run_config.config_path == config


def test_default_config_used_without_config_flag(tmp_path):
    config = write_yaml(tmp_path, {"num_beams": 2})
    data = parse([], tmp_path, default_config=config).data
    assert data.num_beams == 2


@pytest.mark.parametrize(
    "key, hint",
    [
        ("evaluation_strategy", "use eval_strategy"),
        ("overwrite_output_dir", "removed in transformers 5"),
        ("logging_dir", "runs"),
        ("warmup_ratio", "warmup_steps with a float"),
        ("gradient_checkpointing", "activation_checkpointing"),
        ("group_by_length", "max_tokens"),
    ],
)
def test_renamed_keys_fail_with_hint_in_yaml_and_on_command_line(tmp_path, key, hint):
    with pytest.raises(ConfigError, match=hint):
        parse(["--config", write_yaml(tmp_path, {key: "steps"})], tmp_path)
    with pytest.raises(ConfigError, match=hint):
        parse([f"--{key}", "1"], tmp_path)


def test_renamed_keys_are_really_gone_from_transformers():
    """The hint table stays honest: none of these is a live TrainingArguments field (two are aliases)."""
    fields = {f.name for f in dataclasses.fields(Seq2SeqTrainingArguments)}
    deprecated_aliases = {"gradient_checkpointing", "gradient_checkpointing_kwargs"}
    assert (set(RENAMED_KEYS) & fields) == deprecated_aliases


def test_unknown_keys_suggest_the_closest_known(tmp_path):
    with pytest.raises(ConfigError, match="did you mean learning_rate"):
        parse(["--learnig_rate", "1e-3"], tmp_path)
    with pytest.raises(ConfigError, match="'max_token' is not a known setting.*max_tokens"):
        parse(["--config", write_yaml(tmp_path, {"max_token": 100})], tmp_path)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--per_device_train_batch_size", "0"], "per_device_train_batch_size must be a positive"),
        (["--learning_rate=-1e-3"], "learning_rate must be a positive"),
        (["--max_tokens", "-5"], "max_tokens must be a positive"),
        (["--max_steps", "0"], "max_steps must be a positive"),
        (["--max_steps", "50", "--warmup_steps", "100"], r"max_steps \(50\) must exceed warmup_steps"),
        (["--label_smoothing_factor", "1.5"], "label_smoothing_factor"),
        (["--early_stopping_patience", "2", "--eval_strategy", "no"], "needs evaluations"),
        (["--average_last_checkpoints", "4", "--save_total_limit", "2"], "save_total_limit >= 4"),
    ],
)
def test_bad_values_fail_with_clear_message(tmp_path, argv, message):
    with pytest.raises(ConfigError, match=message):
        parse(argv, tmp_path)


def test_all_problems_are_reported_together(tmp_path):
    with pytest.raises(ConfigError) as error:
        parse(["--per_device_train_batch_size", "-1", "--learning_rate", "0"], tmp_path)
    assert "per_device_train_batch_size" in str(error.value) and "learning_rate" in str(error.value)


def test_fractional_warmup_is_fine_with_short_runs(tmp_path):
    train = parse(["--max_steps", "10", "--warmup_steps", "0.5"], tmp_path).training
    assert train.max_steps == 10 and train.warmup_steps == 0.5


def test_transformers_own_consistency_errors_become_config_errors(tmp_path):
    # load_best_model_at_end needs save and eval strategies to match
    with pytest.raises(ConfigError, match="Seq2SeqTrainingArguments"):
        parse(["--save_strategy", "epoch"], tmp_path)


def test_resolved_config_reproduces_the_run_and_hides_secrets(tmp_path):
    first = parse(["--max_steps", "123", "--hub_token", "hf_secret", "--num_beams", "3"], tmp_path)
    resolved = first.resolved()
    assert resolved["max_steps"] == 123 and resolved["num_beams"] == 3 and resolved["lr_scheduler_type"] == "inverse_sqrt"
    assert "hub_token" not in resolved and "hf_secret" not in yaml.safe_dump(resolved)
    assert "adafactor" not in resolved  # transformers' own defaults are left out
    again = parse_run_config(TYPES, ["--config", write_yaml(tmp_path, resolved)])
    assert again.resolved() == resolved


def test_missing_config_file_and_non_mapping_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        parse(["--config", str(tmp_path / "nope.yaml")], tmp_path)
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        parse(["--config", str(bad)], tmp_path)


def test_cpu_processes_under_a_launcher_get_use_cpu(tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only launch path")
    monkeypatch.setattr(defaults_module, "fast_bf16_device", lambda: None)  # the bf16 default is tested apart
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert environment_defaults() == {"use_cpu": True}  # this machine has no GPU
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert environment_defaults() == {}
    # Parsing under a launcher would join a process group; check the layering with the value alone.
    monkeypatch.setattr(config_module, "environment_defaults", lambda: {"use_cpu": True})
    run_config = parse_run_config({"training": TrainingArguments}, ["--output_dir", str(tmp_path)])
    assert run_config.training.use_cpu is True
    assert "use_cpu" not in run_config.resolved()  # environment-specific, not part of the reproducible run


def test_config_overrides_from_flag_string_or_yaml_mapping():
    from bigmodel_hf.training.translation import parse_config_overrides

    assert parse_config_overrides("d_model=128, encoder_layers=2,dropout=0.1,activation=gelu") == {
        "d_model": 128, "encoder_layers": 2, "dropout": 0.1, "activation": "gelu"}
    assert parse_config_overrides({"d_model": 64}) == {"d_model": 64}
    assert parse_config_overrides(None) == {}
    with pytest.raises(ConfigError, match="d_model=128"):
        parse_config_overrides("d_model")


def test_lm_recipe_arguments_parse_with_lm_defaults(tmp_path):
    from bigmodel_hf.training import LM_DEFAULTS, TextDataArguments

    run_config = parse_run_config(
        dict(model=ModelArguments, data=TextDataArguments, run=RunArguments, training=TrainingArguments),
        ["--block_size", "128", "--output_dir", str(tmp_path)], defaults=LM_DEFAULTS)
    data, train = run_config.data, run_config.training
    assert data.block_size == 128 and train.lr_scheduler_type.value == "cosine"
    assert train.metric_for_best_model == "perplexity" and train.greater_is_better is False


def test_runs_too_short_to_evaluate_are_warned_about(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="bigmodel_hf.training.config"):
        parse(["--max_steps", "100", "--eval_steps", "200", "--save_steps", "200"], tmp_path)
    assert "eval_steps (200) exceeds max_steps (100)" in caplog.text and "save_steps (200)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="bigmodel_hf.training.config"):
        parse(["--max_steps", "100", "--eval_steps", "50", "--save_steps", "50"], tmp_path)
    assert "exceeds max_steps" not in caplog.text


def test_the_default_token_budget_gives_way_to_an_asked_for_batch_size(tmp_path):
    def data_args(*flags):
        return parse_translation_config(["--train_file", "x.jsonl", *flags]).data

    assert data_args().max_tokens == TRANSLATION_DEFAULTS["max_tokens"]
    assert data_args("--per_device_train_batch_size", "16").max_tokens is None
    assert data_args("--per_device_train_batch_size", "16", "--max_tokens", "512").max_tokens == 512
    assert data_args("--max_tokens", "0").max_tokens is None
    config = tmp_path / "run.yaml"
    config.write_text("per_device_train_batch_size: 8\n")
    assert data_args("--config", str(config)).max_tokens is None


def test_a_time_budget_gets_a_schedule_that_ends_with_it_unless_one_is_chosen(tmp_path):
    def schedule(*flags):
        run_config = parse_translation_config(["--train_file", "x.jsonl", *flags])
        return run_config.training.lr_scheduler_type.value, run_config.run.budget_schedule

    assert schedule() == ("inverse_sqrt", False)  # no budget: the step count decides, as before
    assert schedule("--max_train_minutes", "10") == ("warmup_stable_decay", True)
    assert schedule("--max_train_minutes", "10", "--lr_scheduler_type", "inverse_sqrt") == ("inverse_sqrt", False)
    assert schedule("--max_train_minutes", "10", "--budget_schedule", "false") == ("inverse_sqrt", False)
    assert schedule("--config", write_yaml(tmp_path, {"lr_scheduler_type": "cosine"}),
                    "--max_train_minutes", "10") == ("cosine", False)
    # the saved settings rerun the same schedule
    resolved = parse_translation_config(["--train_file", "x.jsonl", "--max_train_minutes", "10"]).resolved()
    assert resolved["lr_scheduler_type"] == "warmup_stable_decay" and resolved["budget_schedule"] is True
    assert parse_translation_config(["--config", write_yaml(tmp_path, resolved)]).resolved() == resolved


def test_a_time_budget_ends_the_run_unless_its_length_is_set(tmp_path):
    def length(*flags):
        training = parse_translation_config(["--train_file", "x.jsonl", *flags]).training
        return training.num_train_epochs, training.warmup_steps, training.max_steps

    assert length() == (10, 0.05, -1)  # no budget: the default epoch count, as before
    epochs, warmup, max_steps = length("--max_train_minutes", "10")
    assert epochs == defaults_module.BUDGET_EPOCH_CEILING and max_steps == -1
    # the fractional warmup keeps its length in steps: the same share of 10 epochs as before
    assert warmup * epochs == pytest.approx(0.05 * 10)
    assert length("--max_train_minutes", "10", "--num_train_epochs", "3") == (3, 0.05, -1)
    assert length("--max_train_minutes", "10", "--max_steps", "500") == (10, 0.05, 500)
    assert length("--max_train_minutes", "10", "--warmup_steps", "400") == (defaults_module.BUDGET_EPOCH_CEILING, 400, -1)
    assert length("--config", write_yaml(tmp_path, {"num_train_epochs": 4}), "--max_train_minutes", "10")[0] == 4
    # the saved settings rerun the same length and warmup, not lifted twice
    resolved = parse_translation_config(["--train_file", "x.jsonl", "--max_train_minutes", "10"]).resolved()
    assert parse_translation_config(["--config", write_yaml(tmp_path, resolved)]).resolved() == resolved
