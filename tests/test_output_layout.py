"""Output directory layout, training-curve plot, and translation metrics from generated ids."""

import json

import numpy as np
import pytest
import yaml
from transformers import EvalPrediction

from bigmodel_hf.tokenization import train_translation_tokenizer
from bigmodel_hf.training.evaluation import TranslationMetrics, length_sorted_subset
from bigmodel_hf.output_layout import OutputLayout, strip_metric_prefix
from bigmodel_hf.training.plotting import curve, plot_training_curves

LOG_HISTORY = [
    {"step": 1, "loss": 5.0},
    {"step": 10, "loss": 3.0},
    {"step": 10, "eval_loss": 3.5, "eval_bleu": 2.0},
    {"step": 20, "loss": 2.0},
    {"step": 20, "eval_loss": 2.5, "eval_bleu": 9.0},
    {"train_runtime": 3.0},  # entries without a step are ignored
]


def test_eval_results_merge_per_split(tmp_path):
    layout = OutputLayout(tmp_path / "run")
    layout.update_eval_results("validation", {"bleu": 10.0})
    layout.update_eval_results("test", {"bleu": 9.0, "signature": "nrefs:1"})
    layout.update_eval_results("validation", {"bleu": 11.0})
    assert json.loads(layout.eval_results.read_text()) == {
        "validation": {"bleu": 11.0},
        "test": {"bleu": 9.0, "signature": "nrefs:1"},
    }


def test_predictions_keep_one_line_per_input(tmp_path):
    layout = OutputLayout(tmp_path)
    path = layout.write_predictions("test", "es", ["hola", "dos\nlineas", ""])
    assert path == tmp_path / "translations" / "test.es"
    assert path.read_text().split("\n") == ["hola", "dos lineas", "", ""]


def test_run_config_round_trips_through_yaml(tmp_path):
    layout = OutputLayout(tmp_path)
    layout.write_run_config({"learning_rate": 0.0007, "report_to": ["tensorboard"], "source_lang": "en"})
    text = layout.run_config.read_text()
    assert text.startswith("# Resolved run configuration (transformers ")
    assert yaml.safe_load(text) == {"learning_rate": 0.0007, "report_to": ["tensorboard"], "source_lang": "en"}


def test_strip_metric_prefix():
    assert strip_metric_prefix({"test_bleu": 1, "test_gen_len": 2, "epoch": 3}, "test") == {
        "bleu": 1, "gen_len": 2, "epoch": 3}


def test_curves_are_read_from_log_history():
    assert curve(LOG_HISTORY, "loss") == ([1, 10, 20], [5.0, 3.0, 2.0])
    assert curve(LOG_HISTORY, "eval_bleu") == ([10, 20], [2.0, 9.0])


def test_plot_is_a_png_with_a_metric_panel(tmp_path):
    from matplotlib.image import imread

    with_metric = plot_training_curves(LOG_HISTORY, tmp_path / "a.png", metric="bleu")
    loss_only = plot_training_curves(LOG_HISTORY, tmp_path / "b.png", metric="perplexity")  # never logged
    assert with_metric.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(with_metric).shape[1] > imread(loss_only).shape[1]  # the metric panel widens the figure


@pytest.fixture(scope="module")
def tokenizer():
    texts = ["the cat sits on the mat", "el gato se sienta en la alfombra", "a dog runs", "un perro corre"] * 20
    return train_translation_tokenizer(texts, vocab_size=120, min_frequency=1)


def pad_rows(rows, value):
    width = max(len(r) for r in rows)
    return np.array([r + [value] * (width - len(r)) for r in rows])


def test_translation_metrics_decode_generated_ids_and_labels(tokenizer):
    refs = ["the cat sits on the mat", "a dog runs"]
    hyps = ["the cat sits on the mat", "a cat runs"]
    # generated ids start with the decoder start token and are padded with pad (or -100 across ranks)
    generated = pad_rows([[tokenizer.bos_token_id] + tokenizer(h)["input_ids"] for h in hyps], -100)
    labels = pad_rows([tokenizer(text_target=r)["input_ids"] for r in refs], -100)
    metrics = TranslationMetrics(tokenizer)
    result = metrics(EvalPrediction(predictions=generated, label_ids=labels))
    scored = metrics.score(generated, labels)  # what the final evaluation writes
    assert scored.predictions == hyps and scored.references == refs and scored.metrics == result
    assert 0 < result["bleu"] < 100 and 0 < result["chrf"] < 100
    assert all(isinstance(v, float) for v in result.values())  # only numbers reach the Trainer's loggers
    assert scored.signatures["bleu"].startswith("nrefs:1|") and "nc:6" in scored.signatures["chrf"]
    expected_len = np.mean([len(tokenizer(h, add_special_tokens=False)["input_ids"]) for h in hyps])
    assert result["gen_len"] == pytest.approx(expected_len)
    perfect = metrics(EvalPrediction(predictions=labels, label_ids=labels))
    assert perfect["bleu"] == pytest.approx(100.0)


def test_length_sorted_subset_is_capped_deterministic_and_longest_first():
    from datasets import Dataset

    data = Dataset.from_dict({"input_ids": [[1] * n for n in [3, 9, 1, 7, 5]], "row": list(range(5))})
    subset = length_sorted_subset(data, 4)
    assert subset["row"] == [1, 3, 0, 2]
    assert length_sorted_subset(data, None)["row"] == [1, 3, 4, 0, 2]
