"""Trainer callbacks shared by both recipes: curve plots, sample outputs, early stopping."""

import json
import logging
from collections.abc import Callable, Sequence

from transformers import EarlyStoppingCallback, TrainerCallback

from .output import OutputLayout
from .plotting import plot_training_curves

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
    `<output_dir>/runs/samples`. Runs on the main process with the unwrapped model, so it adds no
    collective operation to a multi-process run (but is unsuitable for sharded FSDP models).
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
        if not state.is_world_process_zero or model is None or not self.inputs:
            return
        outputs = self.generate(model, self.inputs)
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


def build_callbacks(
    run_args,
    training_args,
    generate: Callable | None = None,
    sample_inputs: Sequence[str] = (),
    sample_references: Sequence[str] | None = None,
) -> list[TrainerCallback]:
    """The callbacks a run asks for (`RunArguments`): plot, samples, early stopping."""
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
    return callbacks
