"""Callbacks under a real (tiny) Trainer: early stopping stops, samples are logged, curves are drawn."""

import json

import torch
from torch import nn
from transformers import Trainer, TrainingArguments

from bigmodel_hf.training import RunArguments
from bigmodel_hf.training.callbacks import (
    SampleOutputsCallback,
    TrainingCurvesCallback,
    build_callbacks,
)




class TinyRegressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x, labels=None):
        prediction = self.linear(x).squeeze(-1)
        return {"loss": ((prediction - labels) ** 2).mean(), "logits": prediction}


class Rows(torch.utils.data.Dataset):
    def __init__(self, n=32):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 2, generator=generator)
        self.y = self.x.sum(dim=1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def trainer_for(tmp_path, callbacks, compute_metrics=None, **overrides):
    settings = dict(
        output_dir=str(tmp_path), max_steps=40, per_device_train_batch_size=8, learning_rate=0.05,
        eval_strategy="steps", eval_steps=5, save_strategy="steps", save_steps=5, logging_steps=5,
        load_best_model_at_end=True, metric_for_best_model="score", greater_is_better=True,
        report_to=["tensorboard"], use_cpu=True, disable_tqdm=True, save_total_limit=1,
    )
    args = TrainingArguments(**{**settings, **overrides})
    return Trainer(model=TinyRegressor(), args=args, train_dataset=Rows(), eval_dataset=Rows(8),
                   compute_metrics=compute_metrics or (lambda _: {"score": 1.0}), callbacks=callbacks)


def test_early_stopping_ends_the_run_after_patience_evaluations(tmp_path):
    run = RunArguments(early_stopping_patience=2, plot=False, num_sample_outputs=0)
    trainer = trainer_for(tmp_path, [])
    for callback in build_callbacks(run, trainer.args):
        trainer.add_callback(callback)
    trainer.train()
    # the score never improves after the first evaluation (step 5): stops at the 3rd, step 15, not 40
    assert trainer.state.global_step == 15


def test_samples_are_printed_saved_and_sent_to_tensorboard(tmp_path, capsys):
    def describe(model, inputs):
        return [f"{text}->{model.linear.weight.shape[1]}" for text in inputs]

    callback = SampleOutputsCallback(describe, ["a", "b"], references=["A", "B"])
    trainer = trainer_for(tmp_path, [callback], max_steps=10)
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [(r["step"], r["input"], r["output"], r["reference"]) for r in rows] == [
        (5, "a", "a->2", "A"), (5, "b", "b->2", "B"), (10, "a", "a->2", "A"), (10, "b", "b->2", "B")]
    assert "Samples at step 10:" in capsys.readouterr().out
    events = list((tmp_path / "runs" / "samples").glob("events.out.tfevents*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(events[0].parent), size_guidance={"tensors": 0})
    accumulator.Reload()
    assert [e.step for e in accumulator.Tensors("samples/text_summary")] == [5, 10]


def test_curves_are_redrawn_with_the_metric(tmp_path):
    scores = iter(range(100))
    trainer = trainer_for(tmp_path, [TrainingCurvesCallback("score")], max_steps=10,
                          compute_metrics=lambda _: {"score": float(next(scores))})
    trainer.train()
    png = tmp_path / "training_curves.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    logged = [e["eval_score"] for e in trainer.state.log_history if "eval_score" in e]
    assert logged == [0.0, 1.0]  # evaluations at steps 5 and 10


def test_build_callbacks_follows_the_run_arguments(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), metric_for_best_model="bleu")
    generate = lambda model, texts: texts  # noqa: E731
    names = lambda run: [type(c).__name__ for c in build_callbacks(run, args, generate, ["x"] * 9)]  # noqa: E731
    assert names(RunArguments()) == ["TrainingCurvesCallback", "SampleOutputsCallback"]
    assert names(RunArguments(plot=False, num_sample_outputs=0, early_stopping_patience=3)) == ["EarlyStoppingCallback"]
    samples = build_callbacks(RunArguments(num_sample_outputs=4), args, generate, ["x"] * 9, ["y"] * 9)[1]
    assert len(samples.inputs) == 4 and len(samples.references) == 4


def test_cpu_clock_counts_computation_not_waiting(tmp_path):
    """`--train_clock cpu` stops on this process's CPU time: a second of sleep spends none of the budget."""
    import time

    from bigmodel_hf.training.callbacks import WallClockStop

    args = TrainingArguments(output_dir=str(tmp_path))
    stops = {clock: [c for c in build_callbacks(RunArguments(plot=False, max_train_minutes=1 / 60, train_clock=clock),
                                                args) if isinstance(c, WallClockStop)][0]
             for clock in ("wall", "cpu")}
    for stop in stops.values():
        stop.on_train_begin(args, None, None)
    time.sleep(1.1)
    state = type("State", (), {"global_step": 1})()
    control = type("Control", (), {"should_training_stop": False})()
    stops["wall"].on_step_end(args, state, control)
    assert control.should_training_stop
    control.should_training_stop = False
    stops["cpu"].on_step_end(args, state, control)
    assert not control.should_training_stop and stops["cpu"].training_s < 0.5
