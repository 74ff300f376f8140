"""Stop a run cleanly when training goes wrong, instead of saving garbage or a half-written checkpoint.

`GuardedTrainerMixin` (mixed into both recipes' Trainers) adds three checks, and turns Ctrl-C during
training into `TrainingInterrupted`, which names the step reached and the checkpoint a rerun resumes from:

- a non-finite loss (or, without an fp16 loss scaler, a non-finite gradient norm) raises
  `NonFiniteLossError` naming the step, before the optimizer step: the weights never take the bad update
  and no checkpoint is saved after it. (The stock Trainer, with `logging_nan_inf_filter`, replaces NaN
  losses in its logs by the running mean and keeps training.)
- a checkpoint save that fails (disk full, quota, read-only file system) raises `CheckpointSaveError`
  saying which checkpoint, why, and which complete one a rerun resumes from; older checkpoints are only
  deleted after a save succeeds, so they stay intact.
- a folder being (re)written loses its stale `trainer_state.json` first, and a finished checkpoint is
  flushed to disk (fsync), so `integrity.checkpoint_problem` can tell complete from half-written.
"""

import errno
import math
import os
from pathlib import Path

import torch
from transformers import TrainerState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, TrainOutput

from .checkpoints import complete_checkpoints
from .integrity import STATE_FILE
from .rerun import checkpoint_state, trained_to_the_end

DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class NonFiniteLossError(FloatingPointError):
    """The training loss (or gradient norm) became NaN or infinite."""


class CheckpointSaveError(OSError):
    """Writing a checkpoint failed; the message says what happened and what survives."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during training; still a KeyboardInterrupt for callers that do not look closer."""

    def __init__(self, step: int, checkpoint: Path | None):
        self.step, self.checkpoint = step, checkpoint
        resume = (f"resume from {checkpoint.name}" if checkpoint else
                  "start again (no checkpoint was saved yet)")
        super().__init__(f"interrupted at step {step}, rerun the same command to {resume}")


def last_complete_checkpoint(output_dir) -> Path | None:
    complete = complete_checkpoints(output_dir)
    return complete[-1] if complete else None


def fsync_folder(folder: Path) -> None:
    """Flush every file of `folder`, then the folder entry itself, to disk."""
    for path in [*sorted(p for p in folder.iterdir() if p.is_file()), folder]:
        handle = os.open(path, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


class GuardedTrainerMixin:
    """Mix in before a `Trainer` class (see the module docstring)."""

    def _stop(self, what: str) -> NonFiniteLossError:
        last = last_complete_checkpoint(self.args.output_dir)
        return NonFiniteLossError(
            f"Training stopped at step {self.state.global_step + 1}: {what}. The weights did not take this update "
            f"and nothing was saved after it; the last complete checkpoint is "
            f"{last or 'none (no checkpoint was saved before this step)'}. No results or model card were written. "
            f"Usual causes: a learning rate too high (learning_rate={self.args.learning_rate:g}), fp16 overflow "
            "(try bf16), or broken training data. Fix the cause, then rerun (--resume_from_checkpoint last "
            "continues from that checkpoint)."
        )

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        try:
            if isinstance(resume_from_checkpoint, (str, os.PathLike)) and trained_to_the_end(
                    checkpoint_state(resume_from_checkpoint), self.args):
                return self._restore_trained(resume_from_checkpoint)
            return super().train(resume_from_checkpoint, *args, **kwargs)
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt:
            raise TrainingInterrupted(self.state.global_step, last_complete_checkpoint(self.args.output_dir)) from None

    def _restore_trained(self, checkpoint) -> TrainOutput:
        """A resume from a checkpoint that already reached the end (the run stopped during its final
        evaluation): the stock loop would take one step past it (transformers 5.24 runs a step before it
        checks `should_training_stop`). Load the checkpoint's weights and state instead, train nothing."""
        self.state = TrainerState.load_from_json(str(Path(checkpoint) / STATE_FILE))
        self._load_from_checkpoint(str(checkpoint))
        best = self.state.best_model_checkpoint
        if self.args.load_best_model_at_end and best is not None and Path(best).is_dir():
            self._load_best_model()
        for callback in self.callback_handler.callbacks:  # ours (the plot); transformers' own saw no train begin
            if type(callback).__module__.startswith("bigmodel_hf."):
                callback.on_train_end(self.args, self.state, self.control, model=self.model)
        losses = [entry["train_loss"] for entry in self.state.log_history if "train_loss" in entry]
        return TrainOutput(self.state.global_step, losses[-1] if losses else float("nan"), {"train_runtime": 0.0})

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss).all():
            raise self._stop(f"the training loss is {loss.item()}")
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        # With an fp16 GradScaler an infinite norm is routine: the scaler skips that step and lowers its scale.
        if norm is not None and self.accelerator.scaler is None and not math.isfinite(float(norm)):
            raise self._stop(f"the gradient norm is {float(norm)} (the loss was finite)")
        return norm

    def _save_checkpoint(self, model, trial):
        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if self.args.should_save:  # a folder re-written after a crash is incomplete until its state file is back
            (folder / STATE_FILE).unlink(missing_ok=True)
        try:
            super()._save_checkpoint(model, trial)
        except OSError as error:
            what = "Disk full" if error.errno in DISK_FULL else "Write failed"
            last = last_complete_checkpoint(self.args.output_dir)
            raise CheckpointSaveError(
                error.errno,
                f"{what} while saving {folder.name} in {folder.parent}: {error.strerror or error}. That checkpoint "
                f"is incomplete and is skipped on resume; the older checkpoints are intact, the newest complete "
                f"one is {last or 'none'}. Free space (or lower save_total_limit, or use an output_dir on a "
                "larger disk), then rerun with --resume_from_checkpoint last.",
            ) from error
        if self.args.should_save:
            fsync_folder(folder)
