"""`recipes/translate.py --streaming` end to end: trains from the stream, reports it, refuses what it cannot
do, and a run stopped at a checkpoint continues the stream where it was (same weights as one unbroken run)."""

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from bigmodel_hf.toy_data import toy_translation_pairs
from bigmodel_hf.training.setting_checks import ConfigError
from bigmodel_hf.training.translation import parse_translation_config, run_translation
from tiny_runs import flags

WEIGHTS = "model.safetensors"  # of checkpoint-8: the final model is the best checkpoint by BLEU
TINY_MODEL = "d_model=32,ffn_dim=64,encoder_layers=1,decoder_layers=1,num_attention_heads=2,dropout=0.0"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("stream")
    rows = toy_translation_pairs(120, seed=5)
    (folder / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    (folder / "valid.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:8]), "utf-8")
    return folder


def streamed_run(corpus: Path, output_dir: Path, **overrides) -> list[str]:
    settings = dict(
        train_file=corpus / "train.jsonl", validation_file=corpus / "valid.jsonl", output_dir=output_dir,
        streaming="true", streaming_buffer_size=12, streaming_tokenizer_sample=50, config_overrides=TINY_MODEL,
        vocab_size=150, tokenizer_min_frequency=1, max_steps=8, learning_rate=3e-3, lr_scheduler_type="constant",
        warmup_steps=0, per_device_train_batch_size=6, eval_steps=4, save_steps=4, max_eval_samples=4, num_beams=1,
        generation_max_length=24, num_sample_outputs=0, max_predict_samples=4, plot="false", seed=0,
    )
    return flags(**{**settings, **overrides})


def test_a_streamed_run_trains_reports_and_resumes_where_it_stopped(corpus, tmp_path):
    whole = tmp_path / "whole"
    results = run_translation(parse_translation_config(streamed_run(corpus, whole)))
    assert results["training"]["steps"] == 8
    assert results["streaming"]["tokenizer_sample_pairs"] == 50
    report = json.loads((whole / "cleaning_report.json").read_text("utf-8"))
    assert report["splits"]["train"]["rows_in"] >= 40
    position = json.loads((whole / "checkpoint-8" / "stream_position.json").read_text("utf-8"))
    assert position["chunk"] >= 2 and position["row"] > 0  # several chunks in

    stopped = tmp_path / "stopped"  # the same run, stopped after its checkpoint at step 4 ...
    run_translation(parse_translation_config(streamed_run(corpus, stopped, max_steps=4)))
    run_translation(parse_translation_config(  # ... and continued
        streamed_run(corpus, stopped, resume_from_checkpoint="last")))
    assert json.loads((stopped / "checkpoint-8" / "stream_position.json").read_text("utf-8")) == position
    continued, unbroken = load_file(stopped / "checkpoint-8" / WEIGHTS), load_file(whole / "checkpoint-8" / WEIGHTS)
    assert all((continued[name] - unbroken[name]).abs().max() <= 1e-5 for name in unbroken)

    restarted = tmp_path / "restarted"  # the control: continuing from the stream's start trains on other data
    run_translation(parse_translation_config(streamed_run(corpus, restarted, max_steps=4)))
    (restarted / "checkpoint-4" / "stream_position.json").unlink()
    run_translation(parse_translation_config(streamed_run(corpus, restarted, resume_from_checkpoint="last")))
    other = load_file(restarted / "checkpoint-8" / WEIGHTS)
    assert any((other[name] - unbroken[name]).abs().max() > 1e-4 for name in unbroken)


@pytest.mark.parametrize("change, message", [
    (dict(max_steps=-1), "--streaming needs --max_steps"),
    (dict(validation_file=""), "--streaming needs --validation_file"),
    (dict(bpe_dropout=0.1), "--bpe_dropout re-encodes"),
])
def test_streaming_refuses_what_it_cannot_do(corpus, tmp_path, change, message):
    argv = streamed_run(corpus, tmp_path / "out", **change)
    with pytest.raises(ConfigError, match=message):
        run_translation(parse_translation_config(argv))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_two_processes_train_on_distinct_shares_of_the_stream_in_sync(corpus, tmp_path):
    from two_processes import run_in_two_cpu_processes

    # the helper asserts: one job of 2 processes, different first batches, equal weights at the end
    run_in_two_cpu_processes("translate.py", streamed_run(
        corpus, tmp_path, max_steps=6, save_steps=6, eval_steps=6, report_to="none"), tmp_path)
    position = json.loads((tmp_path / "checkpoint-6" / "stream_position.json").read_text("utf-8"))
    assert position["chunk"] >= 1  # both ranks read through the same chunks, each taking its share
