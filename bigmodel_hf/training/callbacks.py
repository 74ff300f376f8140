"""Trainer callbacks shared by both recipes: curve plots, sample outputs, early stopping, wall-clock stop and its
progress bar."""

import json
import logging
import os
import time
from collections.abc import Callable, Sequence

from tqdm.auto import tqdm
from transformers import EarlyStoppingCallback, ProgressCallback, TrainerCallback

from ..output_layout import OutputLayout
from .plotting import plot_training_curves
from ..decoding import is_sharded

logger = logging.getLogger(__name__)


class TrainingCurvesCallback(TrainerCallback):
    """Redraw `training_curves.png` after every evaluation and at the end (main process only).

    Redrawing at each evaluation (a fraction of a second) keeps a useful plot even if the run is killed.
    """

    def __init__(self, metric: str | None):
        self.metric = metric

    def _draw(self, args, state):
        if state.is_world_process_zero:
            plot_training_curves(state.log_history, OutputLayout(args.output_dir).training_curves, self.metric)

    def on_evaluate(self, args, state, control, **kwargs):
        self._draw(args, state)

    def on_train_end(self, args, state, control, **kwargs):
        self._draw(args, state)


class SampleOutputsCallback(TrainerCallback):
    """After each evaluation, run `generate(model, inputs)` on a few fixed inputs and log the outputs.

    They are printed, appended to `samples.jsonl` and, when TensorBoard is on, written as text under
    `<output_dir>/runs/samples`. A whole model generates on the main process alone (no collective operation
    added to a multi-process run); a sharded one (FSDP) on every process, since each of its forwards gathers
    parameters from all of them, and the main process writes.
    """

    def __init__(
        self,
        generate: Callable[[object, list[str]], list[str]],
        inputs: Sequence[str],
        references: Sequence[str] | None = None,
    ):
        self.generate = generate
        self.inputs = list(inputs)
        self.references = list(references) if references is not None else None
        self._writer = None

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if model is None or not self.inputs or not (state.is_world_process_zero or is_sharded(model)):
            return
        outputs = self.generate(model, self.inputs)
        if not state.is_world_process_zero:
            return
        rows = [
            {"step": state.global_step, "input": text, "output": out}
            | ({"reference": self.references[i]} if self.references else {})
            for i, (text, out) in enumerate(zip(self.inputs, outputs))
        ]
        lines = [f"Samples at step {state.global_step}:"]
        for row in rows:
            lines.append(f"  > {row['input']}\n  = {row['output']}" + (f"\n  ~ {row['reference']}" if "reference" in row else ""))
        print("\n".join(lines), flush=True)
        layout = OutputLayout(args.output_dir)
        layout.root.mkdir(parents=True, exist_ok=True)
        with open(layout.samples, "a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        self._write_tensorboard(args, state, rows)

    def _write_tensorboard(self, args, state, rows):
        if "tensorboard" not in (args.report_to or []):
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(OutputLayout(args.output_dir).tensorboard / "samples"))
        table = "\n".join(  # markdown table, rendered by TensorBoard's text plugin
            ["| input | output | reference |", "|---|---|---|"]
            + [f"| {r['input']} | {r['output']} | {r.get('reference', '')} |" for r in rows]
        )
        self._writer.add_text("samples", table, global_step=state.global_step)
        self._writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class WallClockStop(TrainerCallback):
    """Stop training once `budget_s` seconds of training have passed; time inside evaluations is excluded.

    Runs compared "at equal wall-clock" then get the same training time however often each evaluates.
    The Trainer stops at the end of the step that crossed the budget and saves; whatever the recipe does
    after `train()` (checkpoint averaging, final evaluation) still runs. Under several processes each one
    decides from its own clock, so the main process's decision is broadcast to keep them in step.
    """

    def __init__(self, budget_s: float, schedule_by_budget: bool = False, clock=time.perf_counter):
        self.budget_s = budget_s
        self.schedule_by_budget = schedule_by_budget  # read by `BudgetScheduleMixin` (training/trainers.py)
        self.clock = clock
        self.spent = 0.0  # training seconds / budget, the main process's under several processes
        self.spent_at_step = 0  # the optimiser step `spent` was measured at
        self.started, self.paused, self.training_s, self._eval_started = None, 0.0, 0.0, None
        self.stopped_at_step: int | None = None
        self.loads: list[float] = []  # 1-minute load average at each log: how busy the machine was

    def on_train_begin(self, args, state, control, **kwargs):
        # a hyperparameter search reuses the callback for every trial: each gets the full budget
        self.started, self.paused, self.training_s, self._eval_started = self.clock(), 0.0, 0.0, None
        self.stopped_at_step, self.spent, self.spent_at_step = None, 0.0, 0

    def on_log(self, args, state, control, **kwargs):
        self.loads.append(os.getloadavg()[0])

    def on_prediction_step(self, args, state, control, **kwargs):
        if self._eval_started is None:
            self._eval_started = self.clock()

    def on_evaluate(self, args, state, control, **kwargs):
        if self._eval_started is not None:
            self.paused += self.clock() - self._eval_started
            self._eval_started = None

    def on_step_end(self, args, state, control, **kwargs):
        self.training_s = self.clock() - self.started - self.paused
        self.spent_at_step = state.global_step
        if self._over_budget(args):
            # as on reaching max_steps: a last evaluation and checkpoint, so the best-model choice and
            # checkpoint averaging see the final weights
            control.should_training_stop = True
            self.stopped_at_step = state.global_step
            if args.eval_strategy == "steps":
                control.should_evaluate = True
            if args.save_strategy == "steps":
                control.should_save = True

    def _over_budget(self, args) -> bool:
        # the share of the budget spent travels with the stop decision: every rank then sets the same
        # learning rate from it (a budget schedule) and stops at the same step
        spent = self.training_s / self.budget_s
        if args.world_size > 1:
            import torch
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                # on the process's own device: NCCL broadcasts only CUDA tensors
                shared = torch.tensor([spent], dtype=torch.float64, device=args.device)
                dist.broadcast(shared, src=0)
                spent = float(shared.item())
        self.spent = spent
        return spent >= 1.0

    def expected_share(self, step: int) -> float:
        """The share of the budget that will have been spent when `step` starts, extrapolated from the
        last measurement at the mean time per step so far (the scheduler runs ahead of this callback)."""
        return self.spent / self.spent_at_step * step if self.spent_at_step else 0.0


class BudgetProgressBar(ProgressCallback):
    """The training bar of a run with a time budget: minutes of the budget spent, with the step beside them.

    The Trainer's bar counts steps towards `max_steps`, which the clock cuts short (or, with the epoch cap lifted,
    never reaches), so its total and time left would be wrong. Evaluation bars and the printed logs are the
    parent's. Must be added after its `WallClockStop`, whose `on_step_end` updates the minutes it shows."""

    def __init__(self, stop: WallClockStop):
        super().__init__()
        self.stop = stop

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            clock = "CPU " if self.stop.clock is time.process_time else ""
            self.training_bar = tqdm(total=round(self.stop.budget_s / 60, 2), dynamic_ncols=True,
                                     bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} " + clock +
                                                "training min [{elapsed}<{remaining}{postfix}]")
        self.current_step = 0

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None:
            spent = min(self.stop.training_s / 60, self.training_bar.total)
            self.training_bar.set_postfix_str(f"step {state.global_step}", refresh=False)
            self.training_bar.update(spent - self.training_bar.n)  # redraws at tqdm's own pace
        self.current_step = state.global_step


def wall_clock_report(trainer) -> dict:
    """Training minutes and whether the budget stopped the run, when a `WallClockStop` is attached."""
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, WallClockStop):
            return {"training_minutes": callback.training_s / 60, "max_train_minutes": callback.budget_s / 60,
                    "stopped_by_wall_clock": callback.stopped_at_step is not None,
                    "train_clock": "cpu" if callback.clock is time.process_time else "wall"}
    return {}


def build_callbacks(
    run_args,
    training_args,
    generate: Callable | None = None,
    sample_inputs: Sequence[str] = (),
    sample_references: Sequence[str] | None = None,
) -> list[TrainerCallback]:
    """The callbacks a run asks for (`RunArguments`): plot, samples, early stopping, wall-clock stop."""
    callbacks: list[TrainerCallback] = []
    if run_args.plot:
        callbacks.append(TrainingCurvesCallback(training_args.metric_for_best_model))
    if generate is not None and run_args.num_sample_outputs > 0 and sample_inputs:
        count = run_args.num_sample_outputs
        references = list(sample_references)[:count] if sample_references is not None else None
        callbacks.append(SampleOutputsCallback(generate, list(sample_inputs)[:count], references))
    if run_args.early_stopping_patience > 0:
        callbacks.append(
            EarlyStoppingCallback(
                early_stopping_patience=run_args.early_stopping_patience,
                early_stopping_threshold=run_args.early_stopping_threshold,
            )
        )
    minutes = getattr(run_args, "max_train_minutes", None)
    if minutes:
        # CPU time of the whole process: with one torch thread, the computation a run got on a shared machine
        clock = time.process_time if getattr(run_args, "train_clock", "wall") == "cpu" else time.perf_counter
        callbacks.append(WallClockStop(minutes * 60, schedule_by_budget=getattr(run_args, "budget_schedule", False),
                                       clock=clock))
    return callbacks
