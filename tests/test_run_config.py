"""The run configuration by name: each field means the same in every recipe, config_overrides parsed once,
the model config built once, nothing written before the inputs load."""

import pytest
from transformers import Seq2SeqTrainingArguments, TrainingArguments

from bigmodel_hf.training import (
    CausalLMArguments, ConfigError, ModelArguments, TextDataArguments, TokenizerArguments, TranslationDataArguments,
)
from bigmodel_hf.training.runs import check_model_settings, start_run
from bigmodel_hf.training.text_generation import parse_text_generation_config
from bigmodel_hf.training.translation import build_model, parse_translation_config


def test_fields_mean_the_same_in_both_recipes(tmp_path):
    translation = parse_translation_config(["--train_file", "x.jsonl", "--output_dir", str(tmp_path / "t")])
    lm = parse_text_generation_config(["--train_file", "x.jsonl", "--output_dir", str(tmp_path / "l")])
    for run_config in (translation, lm):
        assert isinstance(run_config.model, ModelArguments) and isinstance(run_config.training, TrainingArguments)
    assert isinstance(translation.data, TranslationDataArguments) and isinstance(lm.data, TextDataArguments)
    assert isinstance(translation.tokenizer, TokenizerArguments) and translation.lm is None
    assert isinstance(lm.lm, CausalLMArguments) and lm.tokenizer is None
    assert isinstance(translation.training, Seq2SeqTrainingArguments)


def test_config_overrides_are_parsed_once_with_the_flags():
    assert ModelArguments(config_overrides="d_model=64, dropout=0.1").model_overrides == {"d_model": 64, "dropout": 0.1}
    assert ModelArguments().model_overrides == {}
    for parse in (parse_translation_config, parse_text_generation_config):
        with pytest.raises(ConfigError, match="^config_overrides must look like 'd_model=128,encoder_layers=2', "
                                              "got 'd_model'.$"):
            parse(["--train_file", "x.jsonl", "--config_overrides", "d_model"])


def test_the_model_config_is_built_once(tmp_path):
    from bigmodel_hf.tokenization import train_translation_tokenizer

    model_args = ModelArguments(config_overrides="d_model=32,ffn_dim=64,encoder_layers=1,decoder_layers=1,"
                                                  "num_attention_heads=2,vocab_size=300")
    tokenizer = train_translation_tokenizer(["the cat sat", "el gato"] * 10, vocab_size=60, min_frequency=1)
    expected = check_model_settings(model_args)
    model = build_model(model_args, tokenizer, expected)
    assert model.config is expected  # the early check's config, completed, not a second one
    assert model.config.vocab_size == 300  # an override wins over the tokenizer's size, as before
    assert model.config.pad_token_id == tokenizer.pad_token_id and model.config.d_model == 32


def test_start_run_writes_nothing(tmp_path):
    out = tmp_path / "out"
    run_config = parse_translation_config(["--train_file", "x.jsonl", "--output_dir", str(out)])
    layout, resume = start_run(run_config)
    assert resume is None and not out.exists()  # run_config.yaml comes with record_run, once inputs loaded


def test_a_search_with_a_bad_input_leaves_run_config_yaml_alone(tmp_path):
    """The search recorded its run at once (start_run(record=True)), so a missing data file overwrote the
    run_config.yaml of the folder; now every program records once its inputs have loaded."""
    from bigmodel_hf.data import DataError
    from bigmodel_hf.training.hyperparameter_search import parse_search_config, run_search

    out = tmp_path / "search"
    out.mkdir()
    (out / "run_config.yaml").write_text("# an earlier run's settings\n")
    run_config = parse_search_config(["--train_file", str(tmp_path / "missing.jsonl"), "--output_dir", str(out),
                                      "--max_train_minutes", "1"])
    with pytest.raises(DataError, match="missing.jsonl"):
        run_search(run_config)
    assert (out / "run_config.yaml").read_text() == "# an earlier run's settings\n"
