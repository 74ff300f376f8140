"""The budget schedule (`--budget_schedule`): with `max_train_minutes`, the decay reaches its floor when the
time budget is spent, however far `max_steps` is. Time is a fake clock that advances one second per step."""

import math

import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback, TrainingArguments

from bigmodel_hf import BigModelForCausalLM
from bigmodel_hf.training.budget_schedule import BUDGET_SCHEDULES, budget_lr_factor
from bigmodel_hf.training.callbacks import WallClockStop
from bigmodel_hf.training.trainers import CausalLMTrainer
from tiny_models import random_ids, tiny_config

PEAK, BUDGET_S, MAX_STEPS = 1e-3, 10.0, 1000


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Tick(TrainerCallback):
    """One fake second of training per optimiser step (runs before `WallClockStop` reads the clock)."""

    def __init__(self, clock):
        self.clock = clock

    def on_step_end(self, args, state, control, **kwargs):
        self.clock.now += 1.0


def train_with_fake_clock(tmp_path, schedule: str, budget_schedule: bool, warmup_steps: float = 0, bar: bool = False):
    torch.manual_seed(0)
    model = BigModelForCausalLM(tiny_config(is_encoder_decoder=False))
    ids = random_ids(64, 8)
    data = Dataset.from_dict({"input_ids": ids.tolist(), "labels": ids.tolist()})
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=MAX_STEPS, per_device_train_batch_size=4, learning_rate=PEAK,
        lr_scheduler_type=schedule, warmup_steps=warmup_steps, logging_steps=1, save_strategy="no",
        report_to="none", use_cpu=True, disable_tqdm=not bar, seed=0,
    )
    clock = FakeClock()
    trainer = CausalLMTrainer(
        model=model, args=args, train_dataset=data,
        callbacks=[Tick(clock), WallClockStop(BUDGET_S, schedule_by_budget=budget_schedule, clock=clock)],
    )
    if bar:
        return trainer
    trainer.train()
    return [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry]


@pytest.mark.parametrize("kind", BUDGET_SCHEDULES)
def test_every_schedule_runs_from_one_to_its_floor(kind):
    for floor in (0.0, 0.1):
        assert budget_lr_factor(kind, 0.0, 0.2, floor) == pytest.approx(1.0)
        assert budget_lr_factor(kind, 1.0, 0.2, floor) == pytest.approx(floor)
        assert budget_lr_factor(kind, 1.7, 0.2, floor) == pytest.approx(floor)  # past the budget: stays there
    shape = [budget_lr_factor(kind, p / 20, 0.2, 0.0) for p in range(21)]
    assert all(a >= b for a, b in zip(shape, shape[1:]))
    if kind == "warmup_stable_decay":
        assert shape[:16] == [1.0] * 16  # stable until the last 20 % of the run


def test_the_learning_rate_follows_the_time_budget_not_max_steps(tmp_path):
    rates = train_with_fake_clock(tmp_path, "linear", budget_schedule=True)
    # the budget stops the run at step 10 of 1000
    assert len(rates) == BUDGET_S
    # the rate used by step k is set from the share of the budget spent when it starts, (k-1)/10
    # (extrapolated from the time per step so far: the Trainer steps the scheduler before the callbacks
    # run), so the last step runs at a tenth of the peak and the decay ends as the budget does; exact up
    # to float rounding. The second step's rate is set before any step was timed: steps only (1/1000).
    assert rates[1] == pytest.approx(PEAK * (1 - 1 / MAX_STEPS), rel=1e-9)
    for step, rate in enumerate(rates, start=1):
        if step != 2:
            assert rate == pytest.approx(PEAK * (1 - (step - 1) / BUDGET_S), rel=1e-9)


def test_without_the_switch_the_step_schedule_is_cut_short_at_a_high_rate(tmp_path):
    rates = train_with_fake_clock(tmp_path, "linear", budget_schedule=False)
    assert len(rates) == BUDGET_S
    assert rates[-1] > 0.98 * PEAK  # what the switch is for: the step schedule never got to decay


def test_a_fractional_warmup_counts_steps_as_without_the_switch(tmp_path):
    # 0.005 of max_steps is 5 steps; as a share of the 10-step budget it would be over within the first step
    rates = train_with_fake_clock(tmp_path / "fraction", "cosine", budget_schedule=True, warmup_steps=0.005)
    assert rates == train_with_fake_clock(tmp_path / "steps", "cosine", budget_schedule=True, warmup_steps=5)
    peak_at = rates.index(max(rates))
    assert rates[:peak_at] == sorted(rates[:peak_at]) and peak_at == 4  # rising over the 5 warmup steps
    assert rates[1] == pytest.approx(PEAK / 5, rel=1e-4)  # the first update: a fifth of the way up
    assert rates[-1] < 0.05 * PEAK  # and still down to the floor when the budget is spent
    assert all(math.isfinite(r) for r in rates)


def test_the_switch_reaches_the_clock_through_the_run_settings():
    from bigmodel_hf.training.arguments import RunArguments
    from bigmodel_hf.training.callbacks import build_callbacks

    args = TrainingArguments(output_dir="unused", report_to="none", use_cpu=True)
    for switch in (True, False):
        run = RunArguments(max_train_minutes=2.0, budget_schedule=switch, plot=False, num_sample_outputs=0)
        (stop,) = [c for c in build_callbacks(run, args) if isinstance(c, WallClockStop)]
        assert stop.schedule_by_budget is switch and stop.budget_s == 120.0


def test_the_training_bar_counts_minutes_of_the_budget_not_steps(tmp_path, capsys):
    from transformers import ProgressCallback

    from bigmodel_hf.training.callbacks import BudgetProgressBar

    trainer = train_with_fake_clock(tmp_path, "linear", budget_schedule=True, bar=True)
    bars = [c for c in trainer.callback_handler.callbacks if isinstance(c, ProgressCallback)]
    assert [type(c) for c in bars] == [BudgetProgressBar]  # the Trainer's step bar was replaced, not doubled
    trainer.train()
    shown = capsys.readouterr().err.replace("\r", "\n")
    # 10 fake seconds of a 10-second budget: 0.17 of 0.17 minutes, at step 10, never a count towards max_steps
    assert "0.2/0.2 training min" in shown and "step 10]" in shown and f"/{MAX_STEPS}" not in shown
