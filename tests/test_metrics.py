"""The offline metrics agree with sacreBLEU itself and never touch the network."""

import math
import subprocess
import sys

import numpy as np
import pytest
import sacrebleu
import torch
import torch.nn.functional as F
from transformers import EvalPrediction

from bigmodel_hf.metrics import (
    METRIC_SCRIPTS,
    corpus_translation_scores,
    load_metric,
    perplexity_from_eval_prediction,
    sequence_nll_and_count,
    token_weighted_perplexity,
)
from bigmodel_hf.metrics.bleu import Bleu
from bigmodel_hf.metrics.chrf import Chrf

HYPS = ["the cat sat on the mat today", "a quick brown fox jumps", "hello world , how are you ?"]
REFS = ["the cat sat on a mat today", "the quick brown fox jumped", "hello world , how are you ?"]


def test_bleu_matches_sacrebleu_with_signature():
    result = load_metric("bleu").compute(predictions=HYPS, references=REFS)
    expected = sacrebleu.corpus_bleu(HYPS, [REFS])
    assert result["score"] == pytest.approx(expected.score)
    assert result["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert result["sys_len"] == expected.sys_len and result["ref_len"] == expected.ref_len


def test_chrf_and_chrf_plus_plus_match_sacrebleu():
    chrf = load_metric("chrf")
    assert chrf.compute(predictions=HYPS, references=REFS)["score"] == pytest.approx(
        sacrebleu.corpus_chrf(HYPS, [REFS]).score
    )
    plus = chrf.compute(predictions=HYPS, references=REFS, word_order=2)
    assert plus["score"] == pytest.approx(sacrebleu.metrics.CHRF(word_order=2).corpus_score(HYPS, [REFS]).score)
    assert "nw:2" in plus["signature"]


def test_multiple_references_are_transposed_into_streams():
    refs = [[r, r.upper()] for r in REFS]
    result = Bleu().compute(predictions=HYPS, references=refs, lowercase=True)
    expected = sacrebleu.metrics.BLEU(lowercase=True).corpus_score(HYPS, [REFS, [r.upper() for r in REFS]])
    assert result["score"] == pytest.approx(expected.score)
    assert "nrefs:2" in result["signature"] and "case:lc" in result["signature"]


def test_ragged_references_are_rejected():
    with pytest.raises(ValueError, match="same number of references"):
        Chrf().compute(predictions=HYPS[:2], references=[["a"], ["b", "c"]])


def test_perfect_and_copy_translations_score_as_expected():
    scores = corpus_translation_scores(REFS, REFS)
    assert scores["bleu"] == pytest.approx(100.0) and scores["chrf"] == pytest.approx(100.0)
    assert "tok:13a" in scores["bleu_signature"] and "nc:6" in scores["chrf_signature"]
    assert corpus_translation_scores(["x y z w"] * 3, REFS)["bleu"] < 1.0


def test_metric_scripts_load_offline_in_a_fresh_process(tmp_path):
    """`evaluate.load(path)` with the Hub switched off and an empty module cache."""
    code = (
        "import evaluate, sys;"
        f"m = evaluate.load({str(METRIC_SCRIPTS['bleu'])!r}, keep_in_memory=True);"
        "print(m.compute(predictions=['a b c d e'], references=['a b c d e'])['score'])"
    )
    env = {"HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1", "HF_HOME": str(tmp_path), "PATH": ""}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.strip().splitlines()[-1]) == pytest.approx(100.0)


def test_unknown_metric_name_is_rejected():
    with pytest.raises(ValueError, match="bleu"):
        load_metric("rouge")


def test_token_weighted_perplexity_weights_by_tokens_not_batches():
    # batch 1: 10 tokens with NLL 1 each; batch 2: 1 token with NLL 5.
    result = token_weighted_perplexity([10.0, 5.0], [10, 1])
    assert result["perplexity"] == pytest.approx(math.exp(15 / 11))
    assert result["tokens"] == 11
    with pytest.raises(ValueError, match="at least one"):
        token_weighted_perplexity([0.0], [0])


def test_sequence_sums_give_the_corpus_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 11)
    labels = torch.randint(0, 11, (3, 6))
    labels[0, 4:] = -100  # padding
    labels[2, 2:] = -100
    sums = sequence_nll_and_count(logits, labels)  # causal: position t predicts label t+1
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100)
    metrics = perplexity_from_eval_prediction(EvalPrediction(predictions=sums.numpy(), label_ids=None))
    assert metrics["nll"] == pytest.approx(expected.item(), rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(expected.item()), rel=1e-5)
    assert sums[:, 1].tolist() == [3.0, 5.0, 1.0]


def test_unshifted_sums_for_seq2seq_logits_accept_model_output_tuples():
    logits = torch.zeros(2, 4, 8)  # uniform distribution: NLL = log(8) per token
    labels = torch.tensor([[1, 2, 3, -100], [4, 5, -100, -100]])
    sums = sequence_nll_and_count((logits, "cache"), labels, shift=False)
    assert sums[:, 1].tolist() == [3.0, 2.0]
    assert np.allclose(sums[:, 0].numpy(), [3 * math.log(8), 2 * math.log(8)], rtol=1e-5)
