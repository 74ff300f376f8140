"""Token-weighted perplexity, computed in-process (`evaluate`'s perplexity metric loads a Hub model).

Perplexity is exp(total NLL / total target tokens). Averaging per-batch perplexities, or per-batch mean
losses as `Trainer`'s `eval_loss` does, over-weights short batches; these helpers keep sums instead.

With `Trainer`: pass `preprocess_logits_for_metrics=sequence_nll_and_count` (reduces the logits of each
batch to two numbers per sequence, so evaluation never holds a vocab-sized array) and
`compute_metrics=perplexity_from_eval_prediction`. The Trainer gathers the per-sequence sums across
processes, so the result is the same with 1 or N processes.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def token_weighted_perplexity(nll_sums, token_counts) -> dict:
    """exp(sum of summed NLLs / sum of token counts), from per-batch or per-sequence sums."""
    total_nll = float(np.sum(np.asarray(nll_sums, dtype=np.float64)))
    total_tokens = int(np.sum(np.asarray(token_counts, dtype=np.int64)))
    if total_tokens <= 0:
        raise ValueError("Perplexity needs at least one target token; every label was ignored.")
    nll = total_nll / total_tokens
    return {"perplexity": math.exp(nll), "nll": nll, "tokens": total_tokens}


def sequence_nll_and_count(logits, labels, shift: bool = True) -> torch.Tensor:
    """Per-sequence (summed NLL, number of scored tokens) as a float tensor of shape [batch, 2].

    `shift=True` for causal LMs, whose labels are the inputs (the model predicts token t+1 at t);
    `shift=False` for seq2seq models, whose logits are already aligned with their labels.
    """
    if isinstance(logits, (tuple, list)):  # model outputs beyond the logits (e.g. cache) come along
        logits = logits[0]
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    # [batch, seq, vocab] -> [batch, seq] NLL; ignored positions contribute 0.
    nll = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
    counted = labels != IGNORE_INDEX
    return torch.stack([nll.sum(dim=1), counted.sum(dim=1).float()], dim=1)


def perplexity_from_eval_prediction(eval_prediction) -> dict:
    """`compute_metrics` for the Trainer, fed by `sequence_nll_and_count` as `preprocess_logits_for_metrics`."""
    sums = np.asarray(eval_prediction.predictions, dtype=np.float64).reshape(-1, 2)
    result = token_weighted_perplexity(sums[:, 0], sums[:, 1].round().astype(np.int64))
    # The Trainer prefixes keys with "eval_"; keep token counts out of the logged floats.
    return {"perplexity": result["perplexity"], "nll": result["nll"]}
