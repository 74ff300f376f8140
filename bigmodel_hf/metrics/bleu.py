"""Corpus BLEU through sacreBLEU, as an `evaluate` metric that loads offline.

`evaluate.load("sacrebleu")` downloads its script from the Hub at run time; this file is the local
equivalent: `evaluate.load("/path/to/bigmodel_hf/metrics/bleu.py")` (or `bigmodel_hf.metrics.load_metric
("bleu")`) imports it from disk. It is also a plain module: `Bleu().compute(...)` works without a path.
`evaluate` copies the script to its module cache together with the sibling module it imports relatively,
so it must not import `bigmodel_hf` itself.
"""

import datasets
import evaluate
import sacrebleu

from ._sacrebleu_inputs import reference_streams

_DESCRIPTION = "Corpus-level BLEU computed by sacreBLEU, returned with the sacreBLEU signature."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of hypothesis strings.
    references: one reference string per prediction, or a list of references per prediction
        (all predictions must have the same number of references).
    tokenize: sacreBLEU tokenizer ("13a" by default, "intl", "char", "zh", "none", ...).
    lowercase: compare lowercased text.
    smooth_method: "exp" (default), "floor", "add-k" or "none".
Returns:
    score (0-100), signature, counts, totals, precisions, bp, sys_len, ref_len.
"""


class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Post, 2018. A Call for Clarity in Reporting BLEU Scores.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions, references, tokenize="13a", lowercase=False, smooth_method="exp"):
        bleu = sacrebleu.metrics.BLEU(tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method)
        result = bleu.corpus_score(list(predictions), reference_streams(references))
        return {
            "score": result.score,
            "signature": str(bleu.get_signature()),
            "counts": list(result.counts),
            "totals": list(result.totals),
            "precisions": list(result.precisions),
            "bp": result.bp,
            "sys_len": result.sys_len,
            "ref_len": result.ref_len,
        }

