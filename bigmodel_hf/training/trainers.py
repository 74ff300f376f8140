"""Trainer classes of the recipes: token-budget batches (the sampler is `batching`'s), exact multi-process
metrics, the stops of `guards`, float32 evaluation, training-token counts.

`Seq2SeqTrainer.evaluate/predict` (transformers 5.24) switch `self.gather_function` to
`accelerator.gather`, which keeps the samples Accelerate repeats to give every process a full last batch.
With N processes and a split whose size is not a multiple of N x batch size, BLEU is then computed over
duplicated sentences (25 pairs on 2 processes were scored as 128). `gather_for_metrics` drops them.
"""

import functools
from collections.abc import Sequence
from functools import partial

import datasets
from torch.utils.data import DataLoader
from transformers import ProgressCallback, SchedulerType, Seq2SeqTrainer, Trainer
from transformers.trainer_utils import seed_worker

from ..batching import TokenBudgetBatchSampler, column_lengths
from ..streaming import StreamingBatches
from .budget_schedule import BUDGET_SCHEDULES, BudgetProgress, budget_scheduler
from .callbacks import BudgetProgressBar, WallClockStop
from .guards import GuardedTrainerMixin
from .precision import Float32EvaluationMixin
from .processes import BestModelOnEveryMachineMixin, DataParallelAfterEvaluationMixin
from .sharding import ShardedTrainingMixin, SyncedShardedGenerationMixin


class TokenBudgetTrainerMixin:
    """Mix in before a `Trainer` class: `max_tokens=N` switches training batches to a token budget.
    `length_multiple`: lengths are counted padded to this multiple, as the collator pads them."""

    def __init__(self, *args, max_tokens: int | None = None, max_sentences: int | None = None,
                 length_columns: Sequence[str] = ("input_ids", "labels"), length_multiple: int | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if self.args.device.type == "cpu":
            # Pinned memory only speeds copies to an accelerator; without one torch warns at every loader.
            # (transformers turns it off only under `use_cpu`, which a machine without bf16 does not get.)
            self.args.dataloader_pin_memory = False
        self.max_tokens, self.max_sentences, self.length_columns = max_tokens, max_sentences, tuple(length_columns)
        self.length_multiple = length_multiple

    def get_train_dataloader(self) -> DataLoader:
        if isinstance(self.train_dataset, StreamingBatches):
            return self._streaming_dataloader()
        if self.max_tokens is None:
            return super().get_train_dataloader()
        dataset = self.train_dataset
        if dataset is None:
            raise ValueError("Trainer: training requires a train_dataset.")
        if not isinstance(dataset, datasets.Dataset):
            raise TypeError("max_tokens batching needs a datasets.Dataset train_dataset")
        args = self.args
        sampler = self.train_batch_sampler(dataset)
        dataset = self._remove_unused_columns(dataset, description="Training")
        loader = DataLoader(
            dataset, batch_sampler=sampler, collate_fn=self.data_collator,
            num_workers=args.dataloader_num_workers, pin_memory=args.dataloader_pin_memory,
            persistent_workers=args.dataloader_persistent_workers,
            prefetch_factor=args.dataloader_prefetch_factor,
            multiprocessing_context=args.dataloader_multiprocessing_context,
            worker_init_fn=partial(seed_worker, num_workers=args.dataloader_num_workers, rank=args.process_index),
        )
        loader = self.accelerator.prepare(loader)
        # Our sampler already shards by rank; under several processes accelerate wraps it in a
        # BatchSamplerShard that would shard again. Make that wrapper a pass-through (as Trainer does
        # for its own rank-aware BatchRebalanceSampler). `set_epoch` still reaches our sampler: Trainer
        # calls it on `loader.batch_sampler.batch_sampler`.
        shard = getattr(loader, "batch_sampler", None)
        if shard is not None and shard is not sampler and getattr(shard, "batch_sampler", None) is sampler:
            shard.num_processes, shard.process_index = 1, 0
        return loader

    def train_batch_sampler(self, dataset):
        """The token-budget batch sampler over `dataset` (all its columns still there); a subclass may draw
        batches another way (`training.multilingual` samples language pairs)."""
        args = self.args
        return TokenBudgetBatchSampler(
            column_lengths(dataset, self.length_columns, self.length_multiple), self.max_tokens,
            max_sentences=self.max_sentences,
            seed=args.data_seed if args.data_seed is not None else args.seed,
            num_replicas=max(1, args.world_size), rank=args.process_index if args.world_size > 1 else 0,
        )

    def _streaming_dataloader(self) -> DataLoader:
        # The stream yields whole batches, already this process's share (see `streaming`): no sampler, no
        # accelerate sharding, read in this process (its position is what a checkpoint saves).
        args = self.args
        return DataLoader(self.train_dataset, batch_size=None, collate_fn=self.data_collator, num_workers=0,
                          pin_memory=args.dataloader_pin_memory)

    def get_resumed_dataloader(self, dataloader: DataLoader, num_batches: int) -> DataLoader:
        if isinstance(self.train_dataset, StreamingBatches):
            return dataloader  # the stream was put back to its saved position instead (`restore_position`)
        return super().get_resumed_dataloader(dataloader, num_batches)


class TokenBudgetTrainer(TokenBudgetTrainerMixin, Trainer):
    """`transformers.Trainer` with `max_tokens=` token-budget training batches."""


class TokenBudgetSeq2SeqTrainer(TokenBudgetTrainerMixin, Seq2SeqTrainer):
    """`transformers.Seq2SeqTrainer` with `max_tokens=` token-budget training batches."""


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


class BudgetProgressMixin:
    """With a `WallClockStop` attached, the training bar counts minutes of the budget (`BudgetProgressBar`)
    instead of steps towards a `max_steps` the run will not reach."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stop = next((c for c in self.callback_handler.callbacks if isinstance(c, WallClockStop)), None)
        if stop is not None and self.pop_callback(ProgressCallback) is not None:
            self.add_callback(BudgetProgressBar(stop))


class BudgetScheduleMixin:
    """With a `WallClockStop(schedule_by_budget=True)` attached and a schedule that has an end, size the decay
    by the time budget as well as by `max_steps` (see `budget_schedule`). Overrides the public
    `create_scheduler`; the parent's is used in every other case."""

    wsd_decay_steps: float = 0.2

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        stop = next((c for c in self.callback_handler.callbacks if isinstance(c, WallClockStop)), None)
        kind = str(getattr(self.args.lr_scheduler_type, "value", self.args.lr_scheduler_type))
        if self.lr_scheduler is not None or stop is None or not stop.schedule_by_budget or kind not in BUDGET_SCHEDULES:
            return super().create_scheduler(num_training_steps, optimizer)
        kwargs = self.args.lr_scheduler_kwargs or {}
        decay = self.wsd_decay_steps
        decay_fraction = decay if decay < 1 else decay / max(num_training_steps, 1)
        self.lr_scheduler = budget_scheduler(
            optimizer if optimizer is not None else self.optimizer, kind,
            BudgetProgress(num_training_steps, stop.expected_share), self.args.get_warmup_steps(num_training_steps),
            decay_fraction, floor=float(kwargs.get("min_lr_rate", 0.0)),
        )
        return self.lr_scheduler


class TranslationTrainer(BestModelOnEveryMachineMixin, DataParallelAfterEvaluationMixin, ShardedTrainingMixin,
                         SyncedShardedGenerationMixin, BudgetScheduleMixin, BudgetProgressMixin, GuardedTrainerMixin,
                         Float32EvaluationMixin, ExactGatherMixin, KeepColumnsMixin, TrainingTokensMixin,
                         TokenBudgetSeq2SeqTrainer):
    """Seq2SeqTrainer + token-budget batches (`max_tokens=`) + exact gathering across processes + the stops
    of `guards` (non-finite loss, failed checkpoint save) + float32 evaluation under autocast + training-token
    counts + extra kept columns + FSDP2 (also on CPU processes) + several machines (`processes`) + a schedule and a
    training bar that follow a time budget."""


class CausalLMTrainer(BestModelOnEveryMachineMixin, DataParallelAfterEvaluationMixin, ShardedTrainingMixin,
                      BudgetScheduleMixin, BudgetProgressMixin, GuardedTrainerMixin, Float32EvaluationMixin,
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
