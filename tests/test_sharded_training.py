"""FSDP2 with 2 CPU processes (`recipes/accelerate/fsdp.yaml` as shipped) against DDP with 2 processes.

Accelerate 1.16 alone would run an FSDP launch on CPU as DDP; `bigmodel_hf.training.sharding` keeps it
sharded, so these runs go through Accelerate's own `fsdp2_prepare_model`, FSDP checkpointing and full-state
gathering. The runs are tiny (d_model 32, 1+1 layers, 6 steps) because 2 shared cores run them all.
"""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM

from tiny_runs import flags
from two_processes import ROOT, accelerate_launch, logged_losses

pytestmark = pytest.mark.slow

TINY_MODEL = "d_model=32,ffn_dim=48,encoder_layers=1,decoder_layers=1,num_attention_heads=2,dropout=0.0"
# float32 on both sides: the shipped bf16 would compare FSDP's bf16 parameter casts with DDP's autocast
FP32 = ["--mixed_precision", "no"]


def tiny_run(corpus, output_dir, **overrides) -> list[str]:
    settings = dict(
        train_file=corpus, validation_file=corpus, test_file=corpus, clean_data="false", output_dir=output_dir,
        config_overrides=TINY_MODEL, vocab_size=120, tokenizer_min_frequency=1, max_steps=6, warmup_steps=1,
        learning_rate=5e-3, label_smoothing_factor=0.0, per_device_train_batch_size=4, eval_steps=3, save_steps=3,
        logging_steps=1, num_beams=2, generation_max_length=12, num_sample_outputs=2, max_predict_samples=7,
        report_to="none", seed=0, bf16="false",  # and no recipe bf16 default (on CPUs with native bf16) either
    )
    return flags(**{**settings, **overrides})


@pytest.fixture(scope="module")
def ddp_run(toy_translation_jsonl, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("ddp")
    accelerate_launch("cpu_2proc.yaml", tiny_run(toy_translation_jsonl, output_dir))
    return output_dir


@pytest.fixture(scope="module")
def fsdp_run(toy_translation_jsonl, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("fsdp")
    done = accelerate_launch("fsdp.yaml", tiny_run(toy_translation_jsonl, output_dir), launch_flags=FP32)
    return output_dir, done.stdout + done.stderr


def test_fsdp_trains_like_ddp(ddp_run, fsdp_run):
    """Same per-step losses and final weights. Tolerance: both sum the same 2 gradients (a 2-operand sum is
    exact in either order), but FSDP computes the clipping norm from per-shard partial sums and Adam divides
    by sqrt of second moments that are ~0 early on, so float32 rounding (1e-7 relative) may grow to ~1e-5 in
    6 steps; a real difference (a missed all-reduce, a wrong shard) shows up at 1e-2 or more."""
    fsdp_dir, _ = fsdp_run
    assert json.loads((fsdp_dir / "run_info.json").read_text())["distributed_type"] == "FSDP"
    assert json.loads((ddp_run / "run_info.json").read_text())["distributed_type"] == "MULTI_CPU"
    ddp_losses, fsdp_losses = logged_losses(ddp_run), logged_losses(fsdp_dir)
    assert len(fsdp_losses) == 6
    assert fsdp_losses == pytest.approx(ddp_losses, rel=1e-5, abs=1e-6)
    ddp_weights, fsdp_weights = load_file(ddp_run / "model.safetensors"), load_file(fsdp_dir / "model.safetensors")
    assert fsdp_weights.keys() == ddp_weights.keys()
    for name, tensor in ddp_weights.items():
        torch.testing.assert_close(fsdp_weights[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def test_validation_and_samples_run_under_sharding(ddp_run, fsdp_run):
    """BLEU at each evaluation and the sample outputs, decoded by both ranks of the sharded model (a callback
    on the main process alone would hang on the first all-gather), equal DDP's; written once."""
    fsdp_dir, log = fsdp_run
    evals = lambda d: [e["eval_bleu"] for e in json.loads(  # noqa: E731
        (d / "checkpoint-6" / "trainer_state.json").read_text())["log_history"] if "eval_bleu" in e]
    assert len(evals(fsdp_dir)) == 2 and evals(fsdp_dir) == pytest.approx(evals(ddp_run), abs=1e-6)
    samples = [json.loads(line) for line in (fsdp_dir / "samples.jsonl").read_text().splitlines()]
    assert [row["step"] for row in samples] == [3, 3, 6, 6]  # 2 inputs x 2 evaluations, not once per rank
    assert log.count("Samples at step 3:") == 1
    ddp_samples = [json.loads(line) for line in (ddp_run / "samples.jsonl").read_text().splitlines()]
    assert [r["output"] for r in samples] == [r["output"] for r in ddp_samples]
    results = json.loads((fsdp_dir / "eval_results.json").read_text())["test"]
    assert results["num_samples"] == 7
    assert (fsdp_dir / "translations" / "test.es").read_text() == (ddp_run / "translations" / "test.es").read_text()


def test_output_folder_is_the_usual_one(ddp_run, fsdp_run):
    """The files a DDP run leaves, no torch `_fsdp_*.py` code copied in as the model's code, auto_map naming our
    classes, one card; loads with and without this package's classes (remote code)."""
    fsdp_dir, _ = fsdp_run
    top = lambda d: sorted(p.name for p in d.iterdir() if not p.name.startswith("checkpoint-"))  # noqa: E731
    assert top(fsdp_dir) == top(ddp_run)
    assert not list(fsdp_dir.rglob("_fsdp*.py"))
    config = json.loads((fsdp_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSeq2SeqLM"] == "modeling_bigmodel.BigModelForSeq2SeqLM"
    assert config["architectures"] == ["BigModelForSeq2SeqLM"]
    assert (fsdp_dir / "README.md").read_text().count("\n# ") <= 1
    model = AutoModelForSeq2SeqLM.from_pretrained(fsdp_dir)
    remote = AutoModelForSeq2SeqLM.from_pretrained(fsdp_dir, trust_remote_code=True)
    for (name, a), (_, b) in zip(model.state_dict().items(), remote.state_dict().items()):
        assert torch.equal(a, b), name


def test_killed_fsdp_run_resumes_from_its_checkpoint(toy_translation_jsonl, fsdp_run, tmp_path):
    """Both ranks SIGKILLed after step 4 (checkpoint-3 saved, sharded optimizer state included); the same
    command again resumes from checkpoint-3 and ends where the uninterrupted run ended (tolerance as above:
    the same arithmetic, float32 rounding only)."""
    fsdp_dir, _ = fsdp_run
    args = tiny_run(toy_translation_jsonl, tmp_path)
    killed = accelerate_launch("fsdp.yaml", args, launch_flags=FP32, script=ROOT / "tests" / "crash_probe.py",
                               env={"CRASH_AT": "step:4"}, check=False)
    assert killed.returncode != 0 and (tmp_path / "checkpoint-3").is_dir() and not (tmp_path / "checkpoint-6").exists()
    resumed = accelerate_launch("fsdp.yaml", args, launch_flags=FP32)
    assert resumed.stdout.count("{'loss': ") == 3  # steps 4-6 only: it continued from checkpoint-3
    assert logged_losses(tmp_path)[-3:] == pytest.approx(logged_losses(fsdp_dir)[-3:], rel=1e-5, abs=1e-6)
    final, uninterrupted = load_file(tmp_path / "model.safetensors"), load_file(fsdp_dir / "model.safetensors")
    for name, tensor in uninterrupted.items():
        torch.testing.assert_close(final[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def test_multi_gpu_config_launches_on_cpu_like_the_cpu_config(toy_translation_jsonl, ddp_run, tmp_path):
    """`multi_gpu.yaml` (float32 here: bf16 autocast is what it adds on GPUs) runs the same DDP job on CPU
    processes: the recipe joins them over gloo itself. Same arithmetic as `cpu_2proc.yaml`: equal exactly."""
    accelerate_launch("multi_gpu.yaml", tiny_run(toy_translation_jsonl, tmp_path), launch_flags=FP32)
    assert json.loads((tmp_path / "run_info.json").read_text())["distributed_type"] == "MULTI_CPU"
    assert logged_losses(tmp_path) == logged_losses(ddp_run)
    ours, reference = load_file(tmp_path / "model.safetensors"), load_file(ddp_run / "model.safetensors")
    assert all(torch.equal(ours[name], tensor) for name, tensor in reference.items())


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory):
    """The LM recipe on the generated stdlib corpus (made by rank 0 and shared), under DDP and FSDP2."""
    root = tmp_path_factory.mktemp("lm")

    def lm_run(output_dir):
        return flags(dataset_name="stdlib_docs", max_train_samples=40, output_dir=output_dir, vocab_size=300,
                     config_overrides="d_model=32,ffn_dim=64,decoder_layers=1,num_attention_heads=2,"
                     "num_key_value_heads=1,dropout=0.0", tokenizer_min_frequency=1, block_size=32, max_steps=4,
                     warmup_steps=1, learning_rate=5e-3, per_device_train_batch_size=4, eval_steps=4, save_steps=4,
                     logging_steps=1, max_eval_samples=9, num_sample_outputs=1, max_new_tokens=6, report_to="none",
                     seed=0, bf16="false")
    script = ROOT / "recipes" / "generate_text.py"
    accelerate_launch("cpu_2proc.yaml", lm_run(root / "ddp"), script=script)
    done = accelerate_launch("fsdp.yaml", lm_run(root / "fsdp"), script=script, launch_flags=FP32)
    return root / "ddp", root / "fsdp", done.stdout + done.stderr


def test_text_generation_recipe_runs_sharded(lm_runs):
    """Trains, evaluates perplexity and samples (every rank decoding, the main one writing) under FSDP2, with
    a normal output folder; the first update (lr 0 at step 1) leaves both runs' step-2 loss equal."""
    ddp, fsdp, log = lm_runs
    assert json.loads((fsdp / "run_info.json").read_text())["distributed_type"] == "FSDP"
    assert log.count("Samples at step 4:") == 1 and (fsdp / "generations" / "validation.txt").is_file()
    assert logged_losses(fsdp)[:2] == pytest.approx(logged_losses(ddp)[:2], rel=1e-5)
    perplexity = json.loads((fsdp / "eval_results.json").read_text())["validation"]["perplexity"]
    assert 1 < perplexity < 1000
    assert load_file(fsdp / "model.safetensors").keys() == load_file(ddp / "model.safetensors").keys()


def test_text_generation_recipe_under_fsdp_like_ddp(lm_runs):
    """Per-step losses and final weights equal DDP's (tolerances and reasons as in `test_fsdp_trains_like_ddp`).
    The LM recipe evaluates before training (`perplexity_at_start`); under DDP that once left the model unwrapped,
    each rank stepping on its own gradients, which the rank-averaged losses logged hid until step 3
    (`DataParallelAfterEvaluationMixin`); both runs now apply the same all-process average gradient."""
    ddp, fsdp, _ = lm_runs
    assert len(logged_losses(fsdp)) == 4
    assert logged_losses(fsdp) == pytest.approx(logged_losses(ddp), rel=1e-5, abs=1e-6)
    ddp_weights, fsdp_weights = load_file(ddp / "model.safetensors"), load_file(fsdp / "model.safetensors")
    for name, tensor in ddp_weights.items():
        torch.testing.assert_close(fsdp_weights[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
