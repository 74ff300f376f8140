"""Corpus chrF / chrF++ through sacreBLEU, as an `evaluate` metric that loads offline.

Loadable with `evaluate.load("/path/to/bigmodel_hf/metrics/chrf.py")` or `bigmodel_hf.metrics.load_metric
("chrf")`, and usable directly as `Chrf().compute(...)`. Imports nothing from `bigmodel_hf`, for the same reason as `bleu.py`.
"""

import datasets
import evaluate
import sacrebleu

from ._sacrebleu_inputs import reference_streams

_DESCRIPTION = "Corpus-level chrF (word_order=0) or chrF++ (word_order=2) computed by sacreBLEU, with its signature."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of hypothesis strings.
    references: one reference string per prediction, or a list of references per prediction.
    char_order: character n-gram order (6).
    word_order: word n-gram order (0 = chrF, 2 = chrF++).
    beta: recall weight (2).
    lowercase: compare lowercased text.
    whitespace: keep whitespace in character n-grams.
Returns:
    score (0-100), signature, char_order, word_order, beta.
"""


class Chrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Popovic, 2015. chrF: character n-gram F-score for automatic MT evaluation.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions, references, char_order=6, word_order=0, beta=2, lowercase=False, whitespace=False):
        chrf = sacrebleu.metrics.CHRF(
            char_order=char_order, word_order=word_order, beta=beta, lowercase=lowercase, whitespace=whitespace
        )
        result = chrf.corpus_score(list(predictions), reference_streams(references))
        return {
            "score": result.score,
            "signature": str(chrf.get_signature()),
            "char_order": char_order,
            "word_order": word_order,
            "beta": beta,
        }
