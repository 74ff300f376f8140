"""Crash-safe training on the translation recipe: real SIGKILLs at several points then the same command
again, half-written checkpoints never picked, a NaN loss stops the run, a full disk keeps the old checkpoint."""

import errno
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers.modeling_utils
from safetensors.torch import load_file, save_file

from bigmodel_hf.training.checkpoints import resolve_resume_checkpoint
from bigmodel_hf.training.guards import CheckpointSaveError, NonFiniteLossError
from bigmodel_hf.training.integrity import IncompleteCheckpointError, checkpoint_problem
from bigmodel_hf.training.trainers import TranslationTrainer
from bigmodel_hf.training.translation import parse_translation_config, run_translation

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "tests" / "crash_probe.py"


@pytest.fixture(scope="module")
def corpus(toy_translation_jsonl) -> Path:
    return toy_translation_jsonl


def command(corpus: Path, output_dir: Path, **overrides) -> list[str]:
    """24 pairs in batches of 4: 6 steps per epoch, 18 steps, a checkpoint every 3 (mid-epoch and at each
    epoch's end), dropout on (so the restored RNG state matters), every step logged."""
    settings = dict(
        train_file=corpus, validation_file=corpus, test_file=corpus, clean_data="false", output_dir=output_dir,
        config_overrides="d_model=32,ffn_dim=64,encoder_layers=1,decoder_layers=1,num_attention_heads=2,dropout=0.1",
        vocab_size=120, tokenizer_min_frequency=1, max_steps=18, warmup_steps=4, learning_rate=3e-3,
        per_device_train_batch_size=4, save_steps=3, logging_steps=1, eval_strategy="no",
        load_best_model_at_end="false", report_to="none", num_sample_outputs=0, max_predict_samples=2, num_beams=1,
        generation_max_length=16, plot="false", seed=0,  # no resume flag: resuming is the default
    )
    return [item for key, value in {**settings, **overrides}.items() for item in (f"--{key}", str(value))]


def run_recipe(argv: list[str], crash_at: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "CRASH_AT": crash_at, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(PROBE), *argv], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)


def history(output_dir: Path, step: int) -> list[dict]:
    """Per-step loss, gradient norm, learning rate and epoch (timings dropped)."""
    state = json.loads((output_dir / f"checkpoint-{step}" / "trainer_state.json").read_text())
    return [{k: v for k, v in entry.items() if "runtime" not in k and "per_second" not in k}
            for entry in state["log_history"]]


@pytest.mark.slow
def test_killed_runs_resume_to_the_weights_of_an_uninterrupted_run(corpus, tmp_path):
    reference = tmp_path / "reference"  # a fresh interpreter too: other tests leave global torch state behind
    done = run_recipe(command(corpus, reference))
    assert done.returncode == 0, done.stderr[-3000:]

    run = tmp_path / "run"
    argv = command(corpus, run)  # the same command every time
    kills = [
        ("step:5", "checkpoint-3"),           # mid-epoch 1, after checkpoint-3: resumes mid-epoch
        ("save_weights:9", "checkpoint-6"),   # in epoch 2, while writing checkpoint-9's weights: resumes after epoch 1
        ("save_state:12", "checkpoint-9"),    # re-writes the half checkpoint-9, dies writing checkpoint-12's state
    ]
    for crash_at, newest_complete in kills:
        done = run_recipe(argv, crash_at)
        assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
        assert resolve_resume_checkpoint("last", run).endswith(newest_complete), crash_at
    assert "trainer_state.json is unreadable" in checkpoint_problem(run / "checkpoint-12")

    done = run_recipe(argv)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Skipping" in done.stderr and "checkpoint-12" in done.stderr  # the half-written one was passed over

    ours, theirs = load_file(run / "model.safetensors"), load_file(reference / "model.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)  # bit-identical
    # Same learning rate, loss and gradient norm at every step: same schedule, same batches in the same order.
    assert history(run, 18) == history(reference, 18)
    assert [entry["step"] for entry in history(run, 18)] == list(range(1, 19))
    assert all(checkpoint_problem(c) is None for c in run.glob("checkpoint-*"))


def make_checkpoint(folder: Path, step: int) -> Path:
    folder.mkdir(parents=True)
    save_file({"w": torch.arange(1000.0)}, folder / "model.safetensors")
    torch.save({"state": torch.zeros(3)}, folder / "optimizer.pt")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda c: (c / "trainer_state.json").unlink(), "no trainer_state.json"),
        (lambda c: truncate(c / "trainer_state.json"), "trainer_state.json is unreadable"),
        (lambda c: (c / "trainer_state.json").write_text('{"global_step": 4}'), "for step 4, not 8"),
        (lambda c: truncate(c / "model.safetensors"), "model.safetensors is truncated or corrupt"),
        (lambda c: (c / "model.safetensors").unlink(), "no safetensors weights"),
        (lambda c: truncate(c / "optimizer.pt"), "optimizer.pt is truncated or corrupt"),
        (lambda c: (c / "model.safetensors.index.json").write_text('{"weight_map": {"w": "model-2.safetensors"}}'),
         "shards ['model-2.safetensors'] are missing"),
    ],
)
def test_a_half_written_checkpoint_is_never_picked(tmp_path, damage, problem):
    make_checkpoint(tmp_path / "checkpoint-4", 4)
    newest = make_checkpoint(tmp_path / "checkpoint-8", 8)
    assert checkpoint_problem(newest) is None and resolve_resume_checkpoint("last", tmp_path) == str(newest)
    damage(newest)
    assert problem in checkpoint_problem(newest)
    assert resolve_resume_checkpoint("last", tmp_path).endswith("checkpoint-4")
    with pytest.raises(IncompleteCheckpointError, match=f"Cannot resume from .*checkpoint-8: .*{re.escape(problem)}"):
        resolve_resume_checkpoint(str(newest), tmp_path)


def test_a_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(corpus, tmp_path, monkeypatch):
    compute_loss = TranslationTrainer.compute_loss

    def nan_at_step_5(self, model, inputs, *args, **kwargs):  # test hook: step 5's loss is NaN
        loss = compute_loss(self, model, inputs, *args, **kwargs)
        return loss * float("nan") if self.state.global_step == 4 else loss

    monkeypatch.setattr(TranslationTrainer, "compute_loss", nan_at_step_5)
    with pytest.raises(NonFiniteLossError) as stop:
        run_translation(parse_translation_config(command(corpus, tmp_path, resume_from_checkpoint="none")))
    message = str(stop.value)
    assert "Training stopped at step 5: the training loss is nan" in message
    assert f"the last complete checkpoint is {tmp_path / 'checkpoint-3'}" in message
    assert checkpoint_problem(tmp_path / "checkpoint-3") is None and not (tmp_path / "checkpoint-6").exists()
    # no results and no card claiming any; the final model was never saved
    for name in ("README.md", "eval_results.json", "model.safetensors", "run_info.json"):
        assert not (tmp_path / name).exists(), name


def test_an_infinite_gradient_with_a_finite_loss_stops_the_run_too(corpus, tmp_path, monkeypatch):
    compute_loss = TranslationTrainer.compute_loss

    def infinite_gradient_at_step_2(self, model, inputs, *args, **kwargs):  # test hook
        loss = compute_loss(self, model, inputs, *args, **kwargs)
        if self.state.global_step == 1:
            loss.register_hook(lambda grad: grad * float("inf"))
        return loss

    monkeypatch.setattr(TranslationTrainer, "compute_loss", infinite_gradient_at_step_2)
    with pytest.raises(NonFiniteLossError, match=r"step 2: the gradient norm is nan \(the loss was finite\)"):
        run_translation(parse_translation_config(command(corpus, tmp_path, resume_from_checkpoint="none")))
    assert not list(tmp_path.glob("checkpoint-*"))


@pytest.mark.slow
def test_an_absurd_learning_rate_exits_non_zero_with_the_step(corpus, tmp_path):
    done = run_recipe(command(corpus, tmp_path, learning_rate=1e12, max_grad_norm=0))
    assert done.returncode == 1, done.stderr[-2000:]
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("translate.py: Training stopped at step ") and "learning_rate=1e+12" in last_line
    assert "Traceback" not in done.stderr and not (tmp_path / "README.md").exists()


def test_disk_full_while_saving_keeps_the_previous_checkpoint(corpus, tmp_path, monkeypatch):
    save_file_ = transformers.modeling_utils.safe_save_file

    def no_space_in_checkpoint_6(tensors, filename, *args, **kwargs):
        if Path(filename).parent.name == "checkpoint-6":
            Path(filename).write_bytes(b"\0" * 100)  # what got written before the disk filled up
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        return save_file_(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", no_space_in_checkpoint_6)
    argv = command(corpus, tmp_path, resume_from_checkpoint="none", save_total_limit=1)
    with pytest.raises(CheckpointSaveError) as failure:
        run_translation(parse_translation_config(argv))
    message = str(failure.value)
    assert failure.value.errno == errno.ENOSPC
    assert f"Disk full while saving checkpoint-6 in {tmp_path}: No space left on device" in message
    assert f"the newest complete one is {tmp_path / 'checkpoint-3'}" in message
    # save_total_limit=1 would have deleted checkpoint-3 after a successful save; it survives, complete
    assert checkpoint_problem(tmp_path / "checkpoint-3") is None
    assert resolve_resume_checkpoint("last", tmp_path).endswith("checkpoint-3")
