"""Smoke test of benchmarks/compile_speed.py: both arms train the same batches to the same losses (no timing
asserts; the compiled arm uses inductor as the benchmark does, on a tiny model)."""

import pytest
import torch
from benchmark_scripts import load_benchmark

from bigmodel_hf import BigModelConfig, BigModelForSeq2SeqLM


@pytest.mark.slow
def test_compiled_and_eager_arms_measure_the_same_training():
    bench = load_benchmark("compile_speed")
    torch._dynamo.reset()
    config = BigModelConfig.from_preset("vaswani-small", vocab_size=64, d_model=16, ffn_dim=32, encoder_layers=1,
                                        decoder_layers=1, num_attention_heads=2, dropout=0.0)
    torch.manual_seed(0)
    result = bench.measure(BigModelForSeq2SeqLM(config), bench.synthetic_batches(config, 1), rounds=1,
                           log=lambda _: None)
    assert result["eager_tok_s"] > 0 and result["compiled_tok_s"] > 0
    assert result["first_round_loss_gap"] < 1e-4  # float32 reassociation by inductor only
    assert "| eager (the recipe's default) |" in bench.page({**result, "rounds_to_break_even": 3.0}, config)
