"""Evaluation plumbing for the Trainer: translation metrics from generated ids, and the validation subset.

The Trainer gathers predictions from all processes before `compute_metrics`, so these numbers are the
same with 1 or N processes.
"""

import numpy as np

from ..metrics import corpus_translation_scores


class TranslationMetrics:
    """`compute_metrics` for `Seq2SeqTrainer(predict_with_generate=True)`: sacreBLEU BLEU, chrF, gen_len.

    Only numbers go to the Trainer (TensorBoard drops strings with a warning); the sacreBLEU signatures
    and the decoded outputs of the latest call are kept on the object for `eval_results.json` and the
    translations file.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.signatures: dict[str, str] = {}
        self.predictions: list[str] = []
        self.references: list[str] = []

    def decode(self, token_ids) -> list[str]:
        ids = np.asarray(token_ids)
        ids = np.where(ids < 0, self.tokenizer.pad_token_id, ids)  # -100 = padding added while gathering
        return [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def __call__(self, eval_prediction) -> dict:
        generated = eval_prediction.predictions
        generated = generated[0] if isinstance(generated, tuple) else generated
        self.predictions = self.decode(generated)
        self.references = self.decode(eval_prediction.label_ids)
        scores = corpus_translation_scores(self.predictions, self.references)
        self.signatures = {"bleu": scores.pop("bleu_signature"), "chrf": scores.pop("chrf_signature")}
        ids = np.asarray(generated)
        special = [self.tokenizer.pad_token_id, self.tokenizer.bos_token_id, self.tokenizer.eos_token_id]
        generated_tokens = ~np.isin(ids, [t for t in special if t is not None]) & (ids >= 0)
        return {**scores, "gen_len": float(generated_tokens.sum(axis=1).mean()) if len(ids) else 0.0}


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
