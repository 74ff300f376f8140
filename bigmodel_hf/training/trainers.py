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
from .precision import Float32EvaluationMixin
from .processes import BestModelOnEveryMachineMixin
from .sharding import ShardedTrainingMixin, SyncedShardedGenerationMixin


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


class KeepColumnsMixin:
    """`keep_columns=(...)`: training-data columns the model's forward does not take but the collator needs
    (the raw text BPE-dropout re-encodes); the stock Trainer would drop them."""

    def __init__(self, *args, keep_columns=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.keep_columns = tuple(keep_columns)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns += [c for c in self.keep_columns if c not in self._signature_columns]


class TrainingTokensMixin:
    """Count the non-padding source and target tokens of every training batch (this process, this session).

    `training_tokens()` sums them over processes; the ablation compares runs by the tokens they saw.
    """

    source_tokens = target_tokens = 0

    def training_step(self, model, inputs, *args, **kwargs):
        if "attention_mask" in inputs:
            self.source_tokens += int(inputs["attention_mask"].sum())
        if "labels" in inputs:
            self.target_tokens += int((inputs["labels"] != -100).sum())
        return super().training_step(model, inputs, *args, **kwargs)

    def training_tokens(self) -> dict:
        import torch

        counts = torch.tensor([self.source_tokens, self.target_tokens], device=self.args.device)
        if self.args.world_size > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
        source, target = (int(c) for c in counts.tolist())
        return {"source_tokens": source, "target_tokens": target, "tokens": source + target}


class TranslationTrainer(BestModelOnEveryMachineMixin, ShardedTrainingMixin, SyncedShardedGenerationMixin,
                         GuardedTrainerMixin, Float32EvaluationMixin, ExactGatherMixin, KeepColumnsMixin,
                         TrainingTokensMixin, TokenBudgetSeq2SeqTrainer):
    """Seq2SeqTrainer + token-budget batches (`max_tokens=`) + exact gathering across processes + the stops
    of `guards` (non-finite loss, failed checkpoint save) + float32 evaluation under autocast + training-token
    counts + extra kept columns + FSDP2 (also on CPU processes) + several machines (`processes`)."""


class CausalLMTrainer(BestModelOnEveryMachineMixin, ShardedTrainingMixin, GuardedTrainerMixin, Float32EvaluationMixin,
                      ExactGatherMixin, TokenBudgetTrainer):
    """Trainer + token-budget batches + exact gathering + float32 evaluation + FSDP2 + several machines, and the
    warmup-stable-decay schedule sized by `wsd_decay_steps` (a float below 1 is a fraction of all steps, like
    `warmup_steps`)."""

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
