"""Trainer classes of the recipes: the data owner's token-budget trainers, with exact multi-process metrics.

`Seq2SeqTrainer.evaluate/predict` (transformers 5.24) switch `self.gather_function` to
`accelerator.gather`, which keeps the samples Accelerate repeats to give every process a full last batch.
With N processes and a split whose size is not a multiple of N x batch size, BLEU is then computed over
duplicated sentences (25 pairs on 2 processes were scored as 128). `gather_for_metrics` drops them.
"""

import functools

from transformers import SchedulerType

from ..batching import TokenBudgetSeq2SeqTrainer, TokenBudgetTrainer
from .guards import GuardedTrainerMixin


class ExactGatherMixin:
    """Always gather evaluation outputs with `gather_for_metrics`, whatever the parent class assigns."""

    @property
    def gather_function(self):
        return functools.partial(
            self.accelerator.gather_for_metrics, use_gather_object=self.args.eval_use_gather_object
        )

    @gather_function.setter
    def gather_function(self, value):
        pass  # the parent classes' assignments (`accelerator.gather`) are ignored on purpose


class TranslationTrainer(GuardedTrainerMixin, ExactGatherMixin, TokenBudgetSeq2SeqTrainer):
    """Seq2SeqTrainer + token-budget batches (`max_tokens=`) + exact gathering across processes + the stops
    of `guards` (non-finite loss, failed checkpoint save)."""


class CausalLMTrainer(GuardedTrainerMixin, ExactGatherMixin, TokenBudgetTrainer):
    """Trainer + token-budget batches + exact gathering, and the warmup-stable-decay schedule sized by
    `wsd_decay_steps` (a float below 1 is a fraction of all steps, like `warmup_steps`)."""

    def __init__(self, *args, wsd_decay_steps: float = 0.2, **kwargs):
        super().__init__(*args, **kwargs)
        self.wsd_decay_steps = wsd_decay_steps

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        kwargs = dict(self.args.lr_scheduler_kwargs or {})
        if self.args.lr_scheduler_type == SchedulerType.WARMUP_STABLE_DECAY and "num_decay_steps" not in kwargs:
            decay = self.wsd_decay_steps
            kwargs["num_decay_steps"] = round(decay * num_training_steps) if decay < 1 else int(decay)
            self.args.lr_scheduler_kwargs = kwargs  # what the parent's create_scheduler reads
        return super().create_scheduler(num_training_steps, optimizer)
