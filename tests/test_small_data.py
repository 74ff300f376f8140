"""Issue 10, quality on small data: BPE-dropout (training side only), the wall-clock budget, the dropout flags,
back-translation as one command, the simulated low-resource split and the hyperparameter search.

Tiny models and the 24-pair toy corpus: seconds each.
"""

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from datasets import Dataset

from bigmodel_hf.batching import make_seq2seq_collator
from bigmodel_hf.subword_regularization import SubwordDropoutCollator, dropout_tokenizer
from bigmodel_hf.tokenization import load_pretrained_tokenizer, tokenize_translation_dataset, train_translation_tokenizer
from bigmodel_hf.training.back_translation import (
    parse_back_translation_config, run_back_translation, simulate_low_resource, write_mixed,
)
from bigmodel_hf.training.translation import (
    build_model, build_tokenizer, build_translation_trainer, load_parallel_data, parse_translation_config,
    run_translation,
)
from bigmodel_hf.training.setting_checks import ConfigError
from tiny_runs import flags

TINY_MODEL = "d_model=32,ffn_dim=64,encoder_layers=1,decoder_layers=1,num_attention_heads=2"


def tiny_run(corpus: Path, output_dir: Path, **overrides) -> list[str]:
    settings = dict(
        train_file=corpus, validation_file=corpus, test_file=corpus, clean_data="false", output_dir=output_dir,
        config_overrides=TINY_MODEL, vocab_size=200, tokenizer_min_frequency=1, max_steps=20, warmup_steps=2,
        learning_rate=5e-3, per_device_train_batch_size=12, eval_steps=10, save_steps=10, num_beams=1,
        generation_max_length=24, num_sample_outputs=0, report_to="none", seed=0, disable_tqdm="true",
    )
    return flags(**{**settings, **overrides})


@pytest.fixture(scope="module")
def tokenizer(toy_translation_jsonl):
    rows = [json.loads(line) for line in toy_translation_jsonl.read_text("utf-8").splitlines()]
    pairs = Dataset.from_dict({"source": [r["en"] for r in rows], "target": [r["es"] for r in rows]})
    return train_translation_tokenizer(pairs, vocab_size=200, min_frequency=1), pairs


# --- BPE-dropout -------------------------------------------------------------------------------------


def test_dropout_copy_resegments_and_leaves_the_original_deterministic(tokenizer, tmp_path):
    tokenizer, pairs = tokenizer
    noisy = dropout_tokenizer(tokenizer, 0.3)
    text = pairs["source"][0]
    segmentations = {tuple(noisy(text)["input_ids"]) for _ in range(20)}
    assert len(segmentations) > 1, "dropout should vary the segmentation"
    for ids in segmentations:  # pieces of the same text, still ending with EOS
        assert noisy.decode(ids, skip_special_tokens=True) == tokenizer.decode(tokenizer(text)["input_ids"],
                                                                                skip_special_tokens=True)
        assert ids[-1] == tokenizer.eos_token_id
    assert len({tuple(tokenizer(text)["input_ids"]) for _ in range(20)}) == 1
    assert tokenizer.backend_tokenizer.model.dropout is None
    tokenizer.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "tokenizer.json").read_text())["model"]["dropout"] is None


def test_collator_reencodes_training_text_and_passes_eval_features_through(tokenizer):
    tokenizer, pairs = tokenizer
    collator = SubwordDropoutCollator(make_seq2seq_collator(tokenizer), dropout_tokenizer(tokenizer, 0.5))
    eval_features = tokenize_translation_dataset(pairs, tokenizer).select(range(4)).to_list()
    plain = make_seq2seq_collator(tokenizer)(eval_features)
    passed = collator([dict(f) for f in eval_features])
    assert all((plain[key] == passed[key]).all() for key in plain)
    text_features = [{"source": s, "target": t} for s, t in zip(pairs["source"][:4], pairs["target"][:4])]
    first, second = collator(text_features), collator(text_features)
    assert first["input_ids"].shape != plain["input_ids"].shape or (first["input_ids"] != plain["input_ids"]).any()
    assert (first["input_ids"].shape != second["input_ids"].shape) or (first["input_ids"] != second["input_ids"]).any()


def epoch_sequences(loader) -> Counter:
    """The training sequences of one pass, padding removed, as a multiset (order does not matter)."""
    seen = Counter()
    for batch in loader:
        for ids, mask in zip(batch["input_ids"], batch["attention_mask"]):
            seen[tuple(ids[mask.bool()].tolist())] += 1
    return seen


@pytest.mark.parametrize("bpe_dropout", [0.0, 0.3])
def test_training_batches_differ_across_epochs_only_with_bpe_dropout(toy_translation_jsonl, tmp_path, bpe_dropout):
    run_config = parse_translation_config(tiny_run(toy_translation_jsonl, tmp_path, bpe_dropout=bpe_dropout,
                                                   max_tokens=200))
    model_args, tok_args, data, args = run_config.model, run_config.tokenizer, run_config.data, run_config.training
    raw = load_parallel_data(data, args.output_dir, args.seed)
    tokenizer = build_tokenizer(model_args, tok_args, raw, args, resuming=False)
    tokenized = tokenize_translation_dataset(raw, tokenizer)
    trainer = build_translation_trainer(run_config, build_model(model_args, tokenizer), tokenizer, raw, tokenized)
    loader = trainer.get_train_dataloader()
    epochs = [epoch_sequences(loader) for _ in range(2)]
    deterministic = Counter(tuple(ids) for ids in tokenized["train"]["input_ids"])
    assert sum(epochs[0].values()) == len(raw["train"])  # every pair once per epoch, with or without dropout
    if bpe_dropout:
        assert epochs[0] != epochs[1] and epochs[0] != deterministic
    else:
        assert epochs[0] == epochs[1] == deterministic
    eval_batch = next(iter(trainer.get_eval_dataloader()))  # validation: the deterministic encoding
    assert {tuple(ids[m.bool()].tolist()) for ids, m in zip(eval_batch["input_ids"], eval_batch["attention_mask"])} \
        <= set(deterministic)


def test_recipe_with_bpe_dropout_saves_a_deterministic_tokenizer(toy_translation_jsonl, tmp_path):
    results = run_translation(parse_translation_config(tiny_run(toy_translation_jsonl, tmp_path, bpe_dropout=0.2)))
    assert json.loads((tmp_path / "tokenizer.json").read_text())["model"]["dropout"] is None
    saved = load_pretrained_tokenizer(tmp_path)
    text = "The women watch the house."
    assert len({tuple(saved(text)["input_ids"]) for _ in range(10)}) == 1
    training = results["training"]
    assert training["steps"] == 20 and training["tokens"] == training["source_tokens"] + training["target_tokens"] > 0


# --- wall clock, dropout flags, errors ---------------------------------------------------------------


def test_wall_clock_budget_stops_training_then_evaluates(toy_translation_jsonl, tmp_path):
    results = run_translation(parse_translation_config(tiny_run(
        toy_translation_jsonl, tmp_path, max_steps=100_000, max_train_minutes=0.002, eval_steps=100_000,
        save_steps=100_000, average_last_checkpoints=2)))
    training = results["training"]
    assert training["stopped_by_wall_clock"] and 0 < training["steps"] < 100_000
    assert training["training_minutes"] >= 0.002
    assert (tmp_path / f"checkpoint-{training['steps']}").is_dir(), "the stop saves a last checkpoint"
    assert "bleu" in results["test"] and "bleu" in results["validation"]  # the final evaluation still ran
    assert results["checkpoint_averaging"]["kept"] == "best"  # one checkpoint: nothing to average, no crash


def test_dropout_flags_reach_the_model_config(toy_translation_jsonl, tmp_path):
    run_translation(parse_translation_config(tiny_run(toy_translation_jsonl, tmp_path, max_steps=3, dropout=0.25,
                                                      attention_dropout=0.15, activation_dropout=0.05)))
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["dropout"], config["attention_dropout"], config["activation_dropout"]) == (0.25, 0.15, 0.05)


@pytest.mark.parametrize("overrides, message", [
    (dict(dropout=1.5), "dropout must be a probability"),
    (dict(bpe_dropout=-0.1), "bpe_dropout must be a probability"),
    (dict(bpe_dropout=0.1, tokenizer_type="unigram"), "bpe_dropout needs tokenizer_type bpe"),
    (dict(max_train_minutes=0), "max_train_minutes must be a positive"),
])
def test_bad_regularization_settings_fail_at_parse(toy_translation_jsonl, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        parse_translation_config(tiny_run(toy_translation_jsonl, tmp_path, **overrides))


def test_dropout_flag_clashing_with_config_overrides_fails_before_training(toy_translation_jsonl, tmp_path):
    argv = tiny_run(toy_translation_jsonl, tmp_path, dropout=0.3, config_overrides=TINY_MODEL + ",dropout=0.1")
    with pytest.raises(ConfigError, match="set twice"):
        run_translation(parse_translation_config(argv))
    assert not (tmp_path / "run_config.yaml").exists()


# --- back-translation ---------------------------------------------------------------------------------


def test_simulated_low_resource_split_keeps_pairs_for_a_subset(toy_translation_jsonl, tmp_path):
    info = simulate_low_resource(toy_translation_jsonl, tmp_path, parallel_fraction=0.25, seed=1)
    assert (info["parallel_pairs"], info["monolingual_sentences"]) == (6, 18)
    pairs = [json.loads(line)["translation"] for line in (tmp_path / "parallel.jsonl").read_text("utf-8").splitlines()]
    spanish = (tmp_path / "monolingual.es.txt").read_text("utf-8").splitlines()
    assert len(pairs) == 6 and len(spanish) == 18
    assert not {p["es"] for p in pairs} & set(spanish), "a verse is either a pair or monolingual, not both"


def test_mix_tags_only_synthetic_sources_at_the_ratio(tmp_path):
    real = [(f"real {i}", f"real es {i}") for i in range(10)]
    synthetic = [(f"synthetic {i}", f"mono es {i}") for i in range(30)]
    counts = write_mixed(real, synthetic, 2.0, "<bt>", "en", "es", tmp_path / "mix.jsonl", seed=0)
    assert counts == {"real_pairs": 10, "synthetic_pairs": 20, "total": 30}
    rows = [json.loads(line)["translation"] for line in (tmp_path / "mix.jsonl").read_text().splitlines()]
    assert sum(r["en"].startswith("<bt> synthetic") for r in rows) == 20
    assert sum(r["en"].startswith("real") for r in rows) == 10


def test_back_translation_runs_all_steps_and_resumes(toy_translation_jsonl, tmp_path):
    split = simulate_low_resource(toy_translation_jsonl, tmp_path / "split", parallel_fraction=0.5)
    argv = tiny_run(Path(split["parallel_file"]), tmp_path / "bt", max_steps=6, eval_steps=3, save_steps=3,
                    monolingual_file=split["monolingual_file"], synthetic_ratio=1.0, bt_max_new_tokens=12,
                    bt_do_sample="true", bt_top_k=10)
    summary = run_back_translation(parse_back_translation_config(argv))
    out = tmp_path / "bt"
    reverse = yaml.safe_load((out / "reverse.yaml").read_text())
    assert (reverse["source_lang"], reverse["target_lang"]) == ("es", "en")
    assert summary["mix"] == {"real_pairs": 12, "synthetic_pairs": summary["mix"]["synthetic_pairs"], "total":
                              12 + summary["mix"]["synthetic_pairs"]} and summary["mix"]["synthetic_pairs"] > 0
    assert summary["generation"]["sentences"] == 12 and "bleu" in summary["forward"]["validation"]
    forward_tokenizer = load_pretrained_tokenizer(out / "forward")
    tag_ids = forward_tokenizer("<bt> The cat.")["input_ids"]
    assert forward_tokenizer.convert_ids_to_tokens(tag_ids[:1]) == ["<bt>"], "the tag is one atomic token"
    mixed = [json.loads(line)["translation"]["en"] for line in (out / "mixed_train.jsonl").read_text().splitlines()]
    assert sum(s.startswith("<bt> ") for s in mixed) == summary["mix"]["synthetic_pairs"]
    # rerun: every step's output exists, nothing is retrained
    before = (out / "forward" / "model.safetensors").stat().st_mtime_ns
    run_back_translation(parse_back_translation_config(argv))
    assert (out / "forward" / "model.safetensors").stat().st_mtime_ns == before


def test_back_translation_settings_are_checked(toy_translation_jsonl, tmp_path):
    with pytest.raises(ConfigError, match="monolingual_file"):
        parse_back_translation_config(tiny_run(toy_translation_jsonl, tmp_path))
    with pytest.raises(ConfigError, match="not both"):
        parse_back_translation_config(tiny_run(toy_translation_jsonl, tmp_path, monolingual_file=toy_translation_jsonl,
                                               bt_do_sample="true", bt_num_beams=4))


# --- hyperparameter search ------------------------------------------------------------------------------


def test_hyperparameter_search_runs_two_trials_and_writes_table_and_plot(toy_translation_jsonl, tmp_path):
    pytest.importorskip("optuna")
    from bigmodel_hf.training.hyperparameter_search import parse_search_config, run_search

    argv = tiny_run(toy_translation_jsonl, tmp_path, max_steps=8, eval_steps=4, save_steps=4, max_train_minutes=0.5,
                    search_trials=2, search_minutes=1, search_presets="vaswani-small,modern-small",
                    search_max_tokens="128,256", search_warmup_steps="1,3")
    best = run_search(parse_search_config(argv))
    rows = (tmp_path / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("trial,state,preset,learning_rate,warmup_steps,dropout,max_tokens,bleu") and len(rows) == 3
    table = (tmp_path / "trials.md").read_text()
    assert table.count("\n| ") == 2 and "COMPLETE" in table  # two trial rows under the header
    assert (tmp_path / "trials.png").stat().st_size > 1000
    assert best["preset"] in ("vaswani-small", "modern-small") and best["max_tokens"] in (128, 256)
    assert json.loads((tmp_path / "best_trial.json").read_text())["trial"] == best["trial"]


def test_a_second_search_reuses_the_data_cache(toy_translation_jsonl, tmp_path, caplog):
    pytest.importorskip("optuna")
    from bigmodel_hf.training.hyperparameter_search import parse_search_config, run_search

    def search(name):
        argv = tiny_run(toy_translation_jsonl, tmp_path / name, max_steps=4, eval_steps=4, save_steps=4,
                        max_train_minutes=0.5, search_trials=1, search_minutes=1, search_presets="vaswani-small",
                        search_max_tokens="128", data_cache_dir=tmp_path / "cache")
        caplog.clear()
        with caplog.at_level("INFO", logger="bigmodel_hf.training.data_cache"):
            run_search(parse_search_config(argv))
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("data cache:")]

    first = search("one")
    assert first and all("miss, prepared and stored" in m for m in first)
    second = search("two")
    assert len(second) == len(first) and all("hit, reused" in m for m in second)
    assert any("tokenized" in m for m in second)  # the tokenised splits too, not only the cleaned pairs


@pytest.mark.parametrize("flag, value, named", [("streaming", "true", "--streaming"),
                                                ("language_pairs", "en-es,es-en", "--language_pairs")])
def test_the_search_refuses_what_it_cannot_honour(toy_translation_jsonl, tmp_path, flag, value, named):
    from bigmodel_hf.training.hyperparameter_search import parse_search_config

    argv = tiny_run(toy_translation_jsonl, tmp_path / "out", max_train_minutes=0.5, **{flag: value})
    with pytest.raises(ConfigError, match=named):
        parse_search_config(argv)
    assert not (tmp_path / "out").exists()
