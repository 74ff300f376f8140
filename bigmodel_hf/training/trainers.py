"""Trainer classes of the recipes: the data owner's token-budget trainers, with exact multi-process metrics.

`Seq2SeqTrainer.evaluate/predict` (transformers 5.24) switch `self.gather_function` to
`accelerator.gather`, which keeps the samples Accelerate repeats to give every process a full last batch.
With N processes and a split whose size is not a multiple of N x batch size, BLEU is then computed over
duplicated sentences (25 pairs on 2 processes were scored as 128). `gather_for_metrics` drops them.
"""

import functools

from ..batching import TokenBudgetSeq2SeqTrainer


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


class TranslationTrainer(ExactGatherMixin, TokenBudgetSeq2SeqTrainer):
    """Seq2SeqTrainer + token-budget batches (`max_tokens=`) + exact gathering across processes."""
