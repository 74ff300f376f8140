"""Offline evaluation metrics: sacreBLEU BLEU and chrF as local `evaluate` modules, token-weighted perplexity.

`load_metric("bleu")` / `load_metric("chrf")` return `evaluate` modules loaded from the scripts in this
folder, so nothing is fetched from the Hub. `corpus_translation_scores` is what the recipes report.
"""

from pathlib import Path

from .perplexity import perplexity_from_eval_prediction, sequence_nll_and_count, token_weighted_perplexity

METRICS_DIR = Path(__file__).resolve().parent
METRIC_SCRIPTS = {"bleu": METRICS_DIR / "bleu.py", "chrf": METRICS_DIR / "chrf.py"}


def load_metric(name: str, **kwargs):
    """`evaluate.load` of one of our local metric scripts ("bleu" or "chrf"); works with no network."""
    import evaluate  # heavy import, only when a metric is wanted

    if name not in METRIC_SCRIPTS:
        raise ValueError(f"Unknown metric {name!r}; local metrics are {sorted(METRIC_SCRIPTS)}.")
    # In memory: no arrow cache files or file locks, so concurrent ranks and test runs cannot collide.
    kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(str(METRIC_SCRIPTS[name]), **kwargs)


def bleu_tokenization(target_lang: str | None) -> str:
    """sacreBLEU's tokenizer for text in `target_lang`: Japanese and Chinese are written without spaces, so
    BLEU splits them into words (`ja-mecab`, MeCab with the IPA dictionary) or characters (`zh`); every other
    language (and an unknown one) gets the default `13a`."""
    code = (target_lang or "").lower().replace("-", "_")
    if code == "ja" or code.startswith("ja_"):
        return "ja-mecab"
    if code == "zh" or code.startswith("zh_"):
        return "zh"
    return "13a"


def corpus_translation_scores(predictions: list[str], references: list, target_lang: str | None = None) -> dict:
    """BLEU and chrF of a corpus, with their sacreBLEU signatures (the numbers the recipes report); BLEU
    tokenised for `target_lang` (`bleu_tokenization`)."""
    bleu = load_metric("bleu").compute(predictions=predictions, references=references,
                                       tokenize=bleu_tokenization(target_lang))
    chrf = load_metric("chrf").compute(predictions=predictions, references=references)
    return {
        "bleu": bleu["score"],
        "chrf": chrf["score"],
        "bleu_signature": bleu["signature"],
        "chrf_signature": chrf["signature"],
    }


__all__ = [
    "METRIC_SCRIPTS",
    "bleu_tokenization",
    "corpus_translation_scores",
    "load_metric",
    "perplexity_from_eval_prediction",
    "sequence_nll_and_count",
    "token_weighted_perplexity",
]
