"""A learning-rate schedule that ends when the time budget does.

With `--max_train_minutes` the Trainer sizes its schedule by `max_steps`, a step count the clock usually
cuts short, so a cosine or warmup-stable-decay schedule is stopped while the rate is still high and the
last minutes are never spent annealing. Here progress is the larger of the two fractions spent
(steps of `max_steps`, training seconds of the budget), so the decay reaches its floor at whichever limit
comes first. The seconds come from `WallClockStop`, which already excludes evaluation time and, under
several processes, broadcasts the main process's clock, so every rank uses the same rate.
"""

import math

import torch

# schedules whose shape is defined over progress in [0, 1]; the others (inverse_sqrt, constant) have no end
BUDGET_SCHEDULES = ("linear", "cosine", "warmup_stable_decay")


def budget_lr_factor(kind: str, progress: float, decay_fraction: float, floor: float) -> float:
    """The decay multiplier of the peak learning rate at `progress` (0 = start, 1 = budget spent), from 1
    down to `floor`; `decay_fraction` is the share of the run the warmup-stable-decay schedule decays over."""
    progress = min(max(progress, 0.0), 1.0)
    if kind == "linear":
        shape = 1.0 - progress
    elif kind == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif kind == "warmup_stable_decay":
        decay_start = 1.0 - decay_fraction
        shape = 1.0 if progress < decay_start else 1.0 - (progress - decay_start) / max(decay_fraction, 1e-12)
    else:
        raise ValueError(f"budget schedule {kind!r} is not one of {', '.join(BUDGET_SCHEDULES)}")
    return floor + (1.0 - floor) * max(shape, 0.0)


class BudgetProgress:
    """The fraction of the run spent when a step starts: max(step / max_steps, share of the time budget)."""

    def __init__(self, max_steps: int, budget_share):
        self.max_steps = max(int(max_steps), 1)
        self.budget_share = budget_share  # step -> share of the time budget spent when that step starts

    def __call__(self, step: int) -> float:
        return max(step / self.max_steps, self.budget_share(step))


def budget_scheduler(optimizer, kind: str, progress: BudgetProgress, warmup_steps: int,
                     decay_fraction: float, floor: float = 0.0):
    """A `LambdaLR`: linear warmup over `warmup_steps` steps times the decay over `progress`. The warmup counts
    steps, as it does without the budget: it is there for the optimiser's first updates, whatever the budget
    (a warmup of 5 % of a 10-minute budget, about 30 steps, left the model repeating one phrase:
    benchmarks/results/quality_vs_eole_bible_en_es.md). Multiplying (rather than switching from one to the
    other) keeps the rate continuous where the warmup ends at an unknown share of the budget."""

    def factor(step: int) -> float:
        warm = min(step / warmup_steps, 1.0) if warmup_steps > 0 else 1.0
        return warm * budget_lr_factor(kind, progress(step), decay_fraction, floor)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
