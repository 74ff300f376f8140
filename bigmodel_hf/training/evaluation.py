"""Evaluation plumbing for the Trainer: translation metrics from generated ids, and the validation subset.

The Trainer gathers predictions from all processes before `compute_metrics`, so these numbers are the
same with 1 or N processes.
"""

from dataclasses import dataclass

import numpy as np

from ..metrics import corpus_translation_scores


@dataclass(frozen=True)
class TranslationScores:
    metrics: dict  # numbers only (TensorBoard drops strings with a warning): bleu, chrf, gen_len
    signatures: dict  # sacreBLEU signatures of BLEU and chrF
    predictions: list  # the decoded outputs, in input order
    references: list


class TranslationMetrics:
    """`compute_metrics` for `Seq2SeqTrainer(predict_with_generate=True)`: sacreBLEU BLEU, chrF, gen_len.

    The Trainer gets the numbers; `score` gives a caller that writes results (the final evaluation) the
    signatures and decoded outputs too. Nothing is kept between calls.
    """

    def __init__(self, tokenizer, target_lang: str | None = None):
        self.tokenizer, self.target_lang = tokenizer, target_lang  # target_lang: how BLEU tokenises

    def decode(self, token_ids) -> list[str]:
        ids = np.asarray(token_ids)
        ids = np.where(ids < 0, self.tokenizer.pad_token_id, ids)  # -100 = padding added while gathering
        return [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def score(self, generated, label_ids) -> TranslationScores:
        generated = generated[0] if isinstance(generated, tuple) else generated
        predictions, references = self.decode(generated), self.decode(label_ids)
        scores = corpus_translation_scores(predictions, references, self.target_lang)
        signatures = {"bleu": scores.pop("bleu_signature"), "chrf": scores.pop("chrf_signature")}
        ids = np.asarray(generated)
        special = [self.tokenizer.pad_token_id, self.tokenizer.bos_token_id, self.tokenizer.eos_token_id]
        generated_tokens = ~np.isin(ids, [t for t in special if t is not None]) & (ids >= 0)
        scores["gen_len"] = float(generated_tokens.sum(axis=1).mean()) if len(ids) else 0.0
        return TranslationScores(scores, signatures, predictions, references)

    def __call__(self, eval_prediction) -> dict:
        return self.score(eval_prediction.predictions, eval_prediction.label_ids).metrics


def length_sorted_subset(dataset, max_samples: int | None, length_column: str = "input_ids"):
    """The first `max_samples` rows, longest first, so greedy decoding at each evaluation stays cheap.

    Deterministic (same rows every evaluation, so scores are comparable across steps); longest first so
    batches pad little and an out-of-memory shows up on the first batch, not the last.
    """
    if max_samples is not None and max_samples < len(dataset):
        dataset = dataset.select(range(max_samples))
    lengths = [len(row) for row in dataset[length_column]]
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return dataset.select(order)
