"""Smoke test of benchmarks/speed.py: its core functions run end to end on a tiny shape (no timing asserts)."""

import pytest
import torch
from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def speed():
    return load_benchmark("speed")


def test_matmul_peak_is_a_rate(speed):
    assert speed.matmul_peak(torch.float32, size=64, repeats=2) > 0


@pytest.mark.parametrize("group", ["seq2seq classic", "causal modern", "causal gpt2-style"])
def test_benchmark_group_measures_every_row(speed, group):
    shape = speed.SHAPES["tiny"]
    rows = speed.benchmark_group(group, shape, repeats=1, peaks={"fp32": 1e11, "bf16": 2e11}, log=lambda _: None)
    assert [r["model"] for r in rows] == [name for name, _ in speed.GROUPS[group][1]]
    for row in rows:
        for key in ("train_fp32", "train_bf16", "greedy", "beam4", "mfu_fp32", "mfu_bf16"):
            assert row[key] > 0, (row["model"], key)
        assert row["mem_fp32"] > 0 and row["mem_bf16"] > 0
        assert row["flops"] > 6 * shape.d_model * shape.d_model  # counted, not zero
    table = speed.markdown_tables("tiny", shape, rows)
    assert table.count("\n| " + group) == len(rows)


def test_flop_count_matches_the_formula(speed):
    """Counted training FLOPs of the tiny LM are 3x the forward matmuls (forward + two backward products)."""
    shape = speed.SHAPES["tiny"]
    model = speed.ours_gpt2_style_lm(shape)
    batch = speed.training_batch("causal", shape, torch.Generator().manual_seed(0))
    tokens, d, f, v, L = shape.lm_batch * shape.lm_len, shape.d_model, shape.ffn, shape.vocab, shape.lm_len
    per_layer = 2 * tokens * (4 * d * d + 2 * d * f) + 2 * 2 * shape.lm_batch * L * L * d
    forward = shape.layers * per_layer + 2 * tokens * d * v
    assert speed.training_flops(model, batch) == 3 * forward
