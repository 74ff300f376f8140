"""Smoke test of benchmarks/translation_quality.py: both arms train, decode and score a tiny synthetic corpus.

Seconds, tiny models; no quality assertion beyond "it runs and produces scores".
"""

import pytest
from benchmark_scripts import load_benchmark

from bigmodel_hf.tokenization import load_pretrained_tokenizer
from bigmodel_hf.toy_data import write_toy_translation_corpus

TINY = dict(d_model=32, encoder_layers=1, decoder_layers=1, num_attention_heads=2, ffn_dim=64)


@pytest.fixture(scope="module")
def quality():
    return load_benchmark("translation_quality")


def test_both_arms_train_decode_and_report(quality, tmp_path, monkeypatch):
    monkeypatch.setitem(quality.DECODING, "max_new_tokens", 12)
    write_toy_translation_corpus(tmp_path / "corpus", train=300, validation=12, test=1)
    raw = quality.prepare(tmp_path / "corpus", tmp_path / "out", vocab_size=200)
    tokenizer = load_pretrained_tokenizer(tmp_path / "out" / "tokenizer")
    settings = {"ours": {"max_tokens": 256, "warmup_steps": 2}, "baseline": {"per_device_train_batch_size": 8}}
    for arm, overrides in settings.items():
        result = quality.train_arm(arm, raw, tokenizer, tmp_path / "out", budget_s=2.0, shape=TINY,
                                   logging_steps=1, max_steps=10 if arm == "baseline" else -1, overrides=overrides)
        assert result["steps"] > 0 and result["target_tokens"] > 0 and result["training_s"] >= 0
        assert result["validation_pairs"] == 12 and 0 <= result["bleu"] <= 100 and 0 <= result["chrf"] <= 100
        assert result["bleu_signature"].startswith("nrefs:1")
        assert (tmp_path / "out" / arm / "result.json").is_file()
    report = tmp_path / "report.md"
    text = quality.write_report(tmp_path / "out", report)
    assert "| ours | BigModelForSeq2SeqLM |" in text and "| baseline | MarianMTModel |" in text
    report.write_text(report.read_text() + "a hand-written note\n")
    assert "a hand-written note" in quality.write_report(tmp_path / "out", report)


def test_recipe_arm_runs_the_recipe_as_a_user_does_and_scores_its_model(quality, tmp_path, monkeypatch):
    monkeypatch.setitem(quality.DECODING, "max_new_tokens", 12)
    write_toy_translation_corpus(tmp_path / "corpus", train=300, validation=12, test=1)
    raw = quality.prepare(tmp_path / "corpus", tmp_path / "out", vocab_size=200)
    # with a budget and no epoch count the budget ends the run (the old cap of 10 epochs of 300 pairs took a fast
    # machine under 3 s, and the run then stopped short of its budget)
    overrides = {"max_tokens": 256, "warmup_steps": 2, "config_overrides": "d_model=32,ffn_dim=64",
                 "lr_scheduler_type": "cosine", "budget_schedule": True, "report_to": "none", "plot": False}
    result = quality.recipe_arm.run_arm(raw, tmp_path / "corpus", tmp_path / "out", 3.0, quality.translate,
                                        quality.corpus_translation_scores, quality.DECODING, overrides=overrides)
    # the budget is CPU seconds of training, reported by the recipe itself, and the flags reached it
    assert result["clock"] == "cpu" and result["stopped_by_budget"] and result["training_s"] >= 3.0
    assert result["steps"] > 0 and result["target_tokens"] > 0 and result["losses"]
    assert "--budget_schedule true" in result["settings"]["command"]
    assert result["validation_pairs"] == 12 and 0 <= result["bleu"] <= 100
    assert result["recipe_own_validation"]["bleu"] is not None
    assert "| recipe | BigModelForSeq2SeqLM |" in quality.write_report(tmp_path / "out", tmp_path / "report.md")
    with pytest.raises(SystemExit, match="not empty"):  # a second run into the same folder would resume it
        quality.recipe_arm.run_arm(raw, tmp_path / "corpus", tmp_path / "out", 3.0, quality.translate,
                                   quality.corpus_translation_scores, quality.DECODING, overrides=overrides)
