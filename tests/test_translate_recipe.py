"""recipes/translate.py end to end on a tiny corpus: overfit, output layout, reload, resume, fine-tuning
ours and a stock Marian checkpoint, config errors, and the 2-process run with exact metrics."""

import json
import runpy
from pathlib import Path

import pytest
import torch
import sacrebleu
import yaml
from transformers import AutoModelForSeq2SeqLM, MarianConfig, MarianMTModel

from bigmodel_hf.tokenization import train_translation_tokenizer
from bigmodel_hf.decoding import translate_texts
from bigmodel_hf.training.translation import parse_translation_config, run_translation
from tiny_runs import flags
from two_processes import run_in_two_cpu_processes

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "translate.py"
TINY_MODEL = "d_model=64,ffn_dim=128,encoder_layers=1,decoder_layers=1,num_attention_heads=2,dropout=0.0"




def tiny_run(corpus: Path, output_dir: Path, **overrides) -> list[str]:
    """A run that overfits the tiny corpus in seconds; train, validation and test are the same pairs."""
    settings = dict(
        train_file=corpus, validation_file=corpus, test_file=corpus, clean_data="false", output_dir=output_dir,
        config_overrides=TINY_MODEL, vocab_size=200, tokenizer_min_frequency=1, max_steps=120, warmup_steps=10,
        learning_rate=5e-3, label_smoothing_factor=0.0, per_device_train_batch_size=12, eval_steps=60,
        save_steps=60, num_beams=2, generation_max_length=32, num_sample_outputs=2, seed=0,
    )
    return flags(**{**settings, **overrides})


@pytest.fixture(scope="module")
def corpus(toy_translation_jsonl) -> Path:
    return toy_translation_jsonl


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("run")
    results = run_translation(parse_translation_config(tiny_run(corpus, output_dir)))
    return output_dir, results


def test_overfits_a_tiny_corpus(trained):
    _, results = trained
    test = results["test"]
    assert test["bleu"] >= 30, test
    assert test["bleu"] > test["copy_source_bleu"] + 25
    assert test["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert test["num_samples"] == 24 and test["num_beams"] == 2


def test_output_directory_layout(trained):
    output_dir, results = trained
    config = json.loads((output_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSeq2SeqLM"].endswith("BigModelForSeq2SeqLM")
    for name in ["model.safetensors", "modeling_bigmodel.py", "configuration_bigmodel.py", "tokenizer.json",
                 "training_curves.png", "run_info.json"]:
        assert (output_dir / name).is_file(), name
    generation = json.loads((output_dir / "generation_config.json").read_text())
    assert generation["num_beams"] == 2 and generation["max_length"] == 32
    assert json.loads((output_dir / "eval_results.json").read_text()) == json.loads(json.dumps(results))
    assert len((output_dir / "translations" / "test.es").read_text("utf-8").splitlines()) == 24
    assert list((output_dir / "runs").rglob("events.out.tfevents*")), "TensorBoard is on by default"
    samples = [json.loads(line) for line in (output_dir / "samples.jsonl").read_text("utf-8").splitlines()]
    assert {row["step"] for row in samples} == {60, 120} and all(row["output"] for row in samples)
    resolved = yaml.safe_load((output_dir / "run_config.yaml").read_text())
    assert resolved["max_steps"] == 120 and resolved["config_overrides"] == TINY_MODEL
    assert json.loads((output_dir / "run_info.json").read_text())["num_processes"] == 1
    card = (output_dir / "README.md").read_text("utf-8")  # built by bigmodel_hf.cards from this folder
    assert "model-index:" in card and f"value: {round(results['test']['bleu'], 2)}" in card


def test_saved_model_reloads_and_reproduces_the_test_translations(trained, corpus):
    output_dir, _ = trained
    from transformers import AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    sources = [json.loads(line)["en"] for line in corpus.read_text("utf-8").splitlines()]
    again = translate_texts(model, tokenizer, sources, num_beams=2, max_new_tokens=31)
    assert again == (output_dir / "translations" / "test.es").read_text("utf-8").splitlines()


def test_resume_continues_from_the_last_checkpoint(corpus, tmp_path):
    quick = dict(eval_strategy="no", load_best_model_at_end="false", save_steps=10, num_beams=1,
                 max_predict_samples=4, report_to="none", num_sample_outputs=0)
    run_translation(parse_translation_config(tiny_run(corpus, tmp_path, max_steps=20, **quick)))
    first_state = json.loads((tmp_path / "checkpoint-20" / "trainer_state.json").read_text())
    run_translation(parse_translation_config(
        tiny_run(corpus, tmp_path, max_steps=30, resume_from_checkpoint="last", **quick)))
    state = json.loads((tmp_path / "checkpoint-30" / "trainer_state.json").read_text())
    assert state["global_step"] == 30
    # the resumed run carries the first run's history instead of starting over
    assert state["log_history"][0] == first_state["log_history"][0]


def test_fine_tunes_our_pretrained_checkpoint(trained, corpus, tmp_path):
    pretrained, _ = trained
    results = run_translation(parse_translation_config(
        tiny_run(corpus, tmp_path, model_name_or_path=pretrained, max_steps=10, warmup_steps=2, learning_rate=1e-4, eval_steps=10,
                 save_steps=10, report_to="none", num_sample_outputs=0)))
    assert results["test"]["bleu"] >= 30  # starts from the overfit model and stays there
    assert not (tmp_path / "tokenizer").exists()  # the checkpoint's tokenizer was used, not a new one


def test_fine_tunes_a_stock_marian_checkpoint(corpus, tmp_path):
    rows = [json.loads(line) for line in corpus.read_text("utf-8").splitlines()]
    tokenizer = train_translation_tokenizer([r["en"] for r in rows] + [r["es"] for r in rows], vocab_size=150,
                                            min_frequency=1)
    config = MarianConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                          max_position_embeddings=64, pad_token_id=0, eos_token_id=2, decoder_start_token_id=0)
    MarianMTModel(config).save_pretrained(tmp_path / "marian")
    tokenizer.save_pretrained(tmp_path / "marian")
    results = run_translation(parse_translation_config(
        tiny_run(corpus, tmp_path / "out", model_name_or_path=tmp_path / "marian", max_steps=6, warmup_steps=2, eval_steps=6,
                 save_steps=6, report_to="none", num_sample_outputs=0)))
    assert results["test"]["loss"] > 0 and 0 <= results["test"]["bleu"] <= 100
    assert json.loads((tmp_path / "out" / "config.json").read_text())["model_type"] == "marian"


@pytest.mark.parametrize(
    "argv, hint",
    [(["--evaluation_strategy", "steps"], "use eval_strategy"),
     (["--per_device_train_batch_size", "0"], "per_device_train_batch_size must be a positive")],
)
def test_config_errors_stop_the_recipe_at_start(argv, hint):
    recipe = runpy.run_path(str(RECIPE))  # the script's own main(), without paying a fresh interpreter
    with pytest.raises(SystemExit) as stop:
        recipe["main"](argv)
    assert str(stop.value.code).startswith("translate.py: ") and hint in str(stop.value.code)


@pytest.mark.slow
def test_two_cpu_processes_train_in_sync_and_score_like_one(corpus, tmp_path):
    run_in_two_cpu_processes("translate.py", tiny_run(
        corpus, tmp_path, max_steps=40, eval_steps=20, save_steps=20, per_device_train_batch_size=6,
        max_predict_samples=23, report_to="none", num_sample_outputs=0), tmp_path)
    # Metrics gathered across ranks = metrics of one process over the same 23 pairs (odd: not split evenly).
    results = json.loads((tmp_path / "eval_results.json").read_text())["test"]
    hypotheses = (tmp_path / "translations" / "test.es").read_text("utf-8").splitlines()
    assert results["num_samples"] == 23 and len(hypotheses) == 23
    from transformers import AutoTokenizer

    rows = [json.loads(line) for line in corpus.read_text("utf-8").splitlines()][:23]
    model, tokenizer = AutoModelForSeq2SeqLM.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)
    single = translate_texts(model, tokenizer, [r["en"] for r in rows], num_beams=2, max_new_tokens=31)
    single_bleu = sacrebleu.corpus_bleu(single, [[r["es"] for r in rows]]).score
    assert single_bleu == pytest.approx(results["bleu"], abs=1e-9)


def test_activation_checkpointing_and_bf16_autocast_options(corpus, tmp_path):
    run_config = parse_translation_config(tiny_run(
        corpus, tmp_path, max_steps=4, warmup_steps=1, eval_steps=4, save_steps=4, max_predict_samples=4,
        num_beams=1, report_to="none", num_sample_outputs=0, activation_checkpointing="true", bf16="true",
        use_cpu="true"))
    args = run_config.training
    assert args.activation_checkpointing and args.bf16
    results = run_translation(run_config)
    assert results["test"]["loss"] > 0


def test_checkpoint_averaging_and_token_budget_batches(corpus, tmp_path):
    from safetensors.torch import load_file

    from bigmodel_hf.training.checkpoints import average_checkpoints

    results = run_translation(parse_translation_config(tiny_run(
        corpus, tmp_path, max_steps=30, warmup_steps=2, eval_steps=10, save_steps=10, average_last_checkpoints=2,
        max_tokens=120, max_predict_samples=4, report_to="none", num_sample_outputs=0)))
    averaging = results["checkpoint_averaging"]
    assert averaging["checkpoints"] == ["checkpoint-20", "checkpoint-30"]
    assert averaging["kept"] == ("averaged" if averaging["bleu_averaged"] >= averaging["bleu_before"] else "best")
    saved = load_file(tmp_path / "model.safetensors")
    averaged = average_checkpoints([tmp_path / "checkpoint-20", tmp_path / "checkpoint-30"])
    name = "model.encoder.layers.0.self_attn.q_proj.weight"
    assert torch.equal(saved[name], averaged[name]) == (averaging["kept"] == "averaged")
    state = json.loads((tmp_path / "checkpoint-30" / "trainer_state.json").read_text())
    # 120-token batches hold fewer than the 12 sentences of a fixed batch: more steps per epoch
    assert state["epoch"] < 30 / (24 / 12)


def test_the_source_prefix_is_saved_with_the_model_and_used_by_translate(corpus, tmp_path, capsys):
    """Issue 15: the prefix lived only in run_config.yaml, so transformers-only users and `bigmodel-hf
    translate` never applied it."""
    from bigmodel_hf.cli import main as cli_main
    from bigmodel_hf.translator import Translator

    quick = dict(eval_strategy="no", load_best_model_at_end="false", save_steps=4, num_beams=1, max_steps=4,
                 warmup_steps=1, max_predict_samples=2, report_to="none", num_sample_outputs=0)
    run_translation(parse_translation_config(tiny_run(corpus, tmp_path, source_prefix="en2es: ", **quick)))
    expected = {"translation_en_to_es": {"prefix": "en2es: "}}
    assert json.loads((tmp_path / "config.json").read_text())["task_specific_params"] == expected
    assert json.loads((tmp_path / "checkpoint-4" / "config.json").read_text())["task_specific_params"] == expected
    assert Translator.from_pretrained(tmp_path, device="cpu").source_prefix == "en2es: "
    assert 'prefix = "en2es: "' in (tmp_path / "README.md").read_text("utf-8")
    # fine-tuned on without a prefix, the model no longer carries one
    run_translation(parse_translation_config(tiny_run(corpus, tmp_path / "plain", model_name_or_path=tmp_path, **quick)))
    assert not json.loads((tmp_path / "plain" / "config.json").read_text()).get("task_specific_params")
    assert Translator.from_pretrained(tmp_path / "plain", device="cpu").source_prefix == ""


def test_run_info_reports_each_data_stage(trained):
    output_dir, _ = trained
    stages = json.loads((output_dir / "run_info.json").read_text("utf-8"))["data_stages"]
    assert [s["stage"] for s in stages] == ["load", "tokenizer", "tokenize"]  # clean_data false: no cleaning stage
    assert stages[0]["rows_in"] == stages[0]["rows_out"] == 72  # train, validation, test: 24 pairs each
    assert all(s["seconds"] >= 0 and (s["rows_per_second"] is None or s["rows_per_second"] > 0) for s in stages)
