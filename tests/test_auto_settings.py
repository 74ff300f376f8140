"""`--preset auto`: settings chosen from the corpus size and the device, never over what the user set."""

import logging
from pathlib import Path

import pytest
import yaml

from bigmodel_hf.training import ConfigError
from bigmodel_hf.training.auto_settings import AUTO_RULES, count_training_pairs, settle_auto_preset
from bigmodel_hf.training.text_generation import parse_text_generation_config
from bigmodel_hf.training.translation import parse_translation_config

SMALL = {"preset": "vaswani-small", "vocab_size": 4000, "max_tokens": 2048, "learning_rate": 1e-3}  # up to 50,000 pairs
MID = {**SMALL, "vocab_size": 8000}  # up to 200,000 pairs, and a corpus of unknown size


def corpus(tmp_path, pairs: int, name="train.jsonl") -> str:
    path = tmp_path / name
    path.write_text('{"translation": {"en": "a", "es": "b"}}\n' * pairs)
    return str(path)


def chosen(run_config) -> dict:
    return {"preset": run_config.model.preset, "vocab_size": run_config.tokenizer.vocab_size,
            "max_tokens": run_config.data.max_tokens, "learning_rate": run_config.training.learning_rate}


def test_a_corpus_of_the_measured_size_gets_the_measured_settings_and_records_them(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        run_config = parse_translation_config(["--train_file", corpus(tmp_path, 30_000),
                                               "--output_dir", str(tmp_path / "out")])
    assert chosen(run_config) == SMALL
    assert "preset auto: 30,000 training pairs" in caplog.text
    # run_config.yaml holds the choice, not "auto": a rerun builds the same model whatever the corpus becomes
    resolved = run_config.resolved()
    assert {key: resolved[key] for key in SMALL} == SMALL
    (tmp_path / "run_config.yaml").write_text(yaml.safe_dump(resolved))
    assert chosen(parse_translation_config(["--config", str(tmp_path / "run_config.yaml")])) == SMALL


def test_what_the_user_sets_stays(tmp_path):
    run_config = parse_translation_config(["--train_file", corpus(tmp_path, 10), "--vocab_size", "6000",
                                           "--learning_rate", "5e-4"])
    assert chosen(run_config) == {**SMALL, "vocab_size": 6000, "learning_rate": 5e-4}
    # a batch size asked for replaces the token budget, as without auto
    run_config = parse_translation_config(["--train_file", corpus(tmp_path, 10), "--per_device_train_batch_size", "16"])
    assert run_config.data.max_tokens is None and run_config.training.per_device_train_batch_size == 16
    # a preset named by the user is used as is, with the recipe's defaults (8,000 pieces, 7e-4)
    run_config = parse_translation_config(["--train_file", corpus(tmp_path, 30_000), "--preset", "modern-small"])
    assert chosen(run_config) == {**MID, "preset": "modern-small", "learning_rate": 7e-4}


def test_the_rules_follow_the_corpus_size_and_the_device(tmp_path):
    def pick(pairs, gpu):
        values = {"preset": "auto", "train_file": corpus(tmp_path, pairs)}
        settle_auto_preset(values, {"preset", "train_file"}, gpu=gpu)
        return {key: values[key] for key in SMALL}

    assert pick(50_000, gpu=False) == SMALL == pick(50_000, gpu=True)
    assert pick(50_001, gpu=False) == MID == pick(200_000, gpu=True)
    assert pick(200_001, gpu=False) == {**MID, "vocab_size": 16000}
    assert pick(200_001, gpu=True) == {"preset": "vaswani-base", "vocab_size": 32000, "max_tokens": 4096,
                                       "learning_rate": 5e-4}
    # a corpus of unknown size (a Hub dataset, Parquet) gets the 8,000-piece rule, on any device
    for gpu in (False, True):
        values = {"preset": "auto", "dataset_name": "someone/corpus"}
        settle_auto_preset(values, {"preset"}, gpu=gpu)
        assert {key: values[key] for key in MID} == MID
    assert all(rule.evidence for rule in AUTO_RULES)


def test_fine_tuning_a_checkpoint_leaves_its_model_alone():
    values = {"preset": "auto", "model_name_or_path": "some/checkpoint", "vocab_size": 8000, "learning_rate": 5e-5}
    settle_auto_preset(values, {"model_name_or_path", "learning_rate"}, gpu=False)
    assert values == {"preset": "auto", "model_name_or_path": "some/checkpoint", "vocab_size": 8000,
                      "learning_rate": 5e-5}


@pytest.mark.parametrize("text, expected", [
    ("en\tes\na\tb\nc\td\n", 2),  # a header, then two pairs
    ("en\tes\na\tb\nc\td", 2),  # no newline after the last pair
    ("", 0),
])
def test_pairs_are_counted_as_lines_less_the_header(tmp_path, text, expected):
    path = tmp_path / "train.tsv"
    path.write_text(text)
    assert count_training_pairs(str(path)) == expected


def test_several_files_add_up_and_unknown_formats_are_unknown(tmp_path):
    first, second = corpus(tmp_path, 3, "a.jsonl"), corpus(tmp_path, 4, "b.jsonl")
    assert count_training_pairs(f"{first},{second}") == 7
    (tmp_path / "c.parquet").write_bytes(b"PAR1")
    assert count_training_pairs(f"{first},{tmp_path / 'c.parquet'}") is None
    assert count_training_pairs(str(tmp_path / "missing.jsonl")) is None


def test_the_text_generation_recipe_asks_for_a_named_preset():
    with pytest.raises(ConfigError, match="--preset auto chooses a translation model's settings"):
        parse_text_generation_config(["--preset", "auto"])


def test_the_rules_are_the_ones_the_recipes_readme_documents():
    readme = (Path(__file__).resolve().parent.parent / "recipes" / "README.md").read_text("utf-8")
    rows = [line.split("|")[1:-1] for line in readme.splitlines() if line.startswith("| up to ") or
            line.startswith("| more |")]
    documented = [(cells[2].strip(" `"), int(cells[3].replace(",", "")), int(cells[4].replace(",", "")),
                   float(cells[5])) for cells in rows]
    assert documented == [(r.settings["preset"], r.settings["vocab_size"], r.settings["max_tokens"],
                           r.settings["learning_rate"]) for r in AUTO_RULES]
    assert f"up to {AUTO_RULES[0].max_pairs:,} " in readme
