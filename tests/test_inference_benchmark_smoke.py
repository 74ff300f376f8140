"""Smoke test of benchmarks/inference.py: its Marian arm computes our function, and a whole run on a toy
model writes every table (tiny counts; no timing asserts)."""

import importlib.util
import json

import pytest
import torch
from benchmark_scripts import load_benchmark
from interactive_models import PAIRS, make_model_dir, write_pairs

from bigmodel_hf import BigModelForSeq2SeqLM

needs_ct2 = pytest.mark.skipif(importlib.util.find_spec("ctranslate2") is None, reason="ctranslate2 is not installed")


@pytest.fixture(scope="module")
def inference():
    return load_benchmark("inference")


def test_marian_with_our_weights_computes_our_logits(inference, tmp_path):
    make_model_dir(tmp_path)
    model = BigModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    marian = inference.marian_with_our_weights(model)
    inputs = dict(input_ids=torch.tensor([[5, 9, 14, 2]]), decoder_input_ids=torch.tensor([[1, 7, 21]]))
    with torch.no_grad():
        difference = (marian(**inputs).logits - model(**inputs).logits).abs().max().item()
    assert difference <= 1e-5


@needs_ct2
@pytest.mark.slow
def test_a_tiny_run_writes_every_table(inference, tmp_path):
    make_model_dir(tmp_path / "model")
    write_pairs(tmp_path / "pairs.jsonl", PAIRS[:12])
    out = tmp_path / "inference.md"
    inference.main(["--model", str(tmp_path / "model"), "--pairs", str(tmp_path / "pairs.jsonl"), "--speed_sentences",
                    "4", "--latency_sentences", "1", "--interactive_sentences", "1", "--rounds", "1", "--threads",
                    "1", "--out", str(out)])
    page = out.read_text()
    for heading in ("## Throughput", "## Latency per sentence", "## Quality, memory, size", "## Exactness",
                    "## Interactive engine", "## Targets"):
        assert heading in page
    measured = json.loads(out.with_suffix(".json").read_text())
    assert measured["greedy_same"] == 12  # float32 CTranslate2 is our generate(), greedy
    assert measured["marian_same"] == 12
