"""Deduplication's memory (`HashSet`) and the vectorised verdicts of `PairRules.resolve` against the rules
applied row by row, as the cleaning module's docstring states them."""

import numpy as np
import pytest

from bigmodel_hf.data.cleaning import DUPLICATE, EVAL_OVERLAP, KEEP, PairRules
from bigmodel_hf.data.hash_set import HashSet


def test_hash_set_matches_a_python_set_batch_after_batch():
    rng = np.random.default_rng(0)
    ours, reference = HashSet(), set()
    for _ in range(60):
        # small values so batches repeat each other and themselves; the top of the uint64 range too
        batch = rng.integers(0, 3000, size=int(rng.integers(0, 400)), dtype=np.uint64)
        batch[: len(batch) // 10] += np.uint64(2**64 - 4000)
        probe = rng.integers(0, 3000, size=200, dtype=np.uint64)
        assert ours.contains(probe).tolist() == [int(key) in reference for key in probe.tolist()]
        ours.add(batch)
        reference.update(batch.tolist())
        assert len(ours) == len(reference)
    assert ours.to_array().tolist() == sorted(reference)
    assert len(ours._segments) <= 2 * int(np.log2(len(reference))) + 2  # merged, not one segment per batch
    assert HashSet(ours.to_array()).to_array().tolist() == sorted(reference)  # a checkpoint's round trip


def test_an_empty_hash_set_contains_nothing():
    assert HashSet().contains(np.array([0, 5], dtype=np.uint64)).tolist() == [False, False]
    assert HashSet({3, 2**64 - 1}).contains(np.array([2**64 - 1, 4], dtype=np.uint64)).tolist() == [True, False]


def row_by_row(codes, keys, seen, eval_hashes, drop_duplicates):
    """The rules as written: a passing pair kept before is a duplicate, else one in evaluation is an overlap."""
    out = []
    for code, key in zip(codes, keys):
        if code == KEEP:
            if drop_duplicates and key in seen:
                code = DUPLICATE
            elif key in eval_hashes:
                code = EVAL_OVERLAP
            else:
                seen.add(key)
        out.append(code)
    return out


@pytest.mark.parametrize("drop_duplicates", [True, False])
def test_vectorised_verdicts_equal_the_rules_applied_row_by_row(drop_duplicates):
    rng = np.random.default_rng(1)
    eval_hashes = set(rng.integers(0, 50, size=10).tolist())
    rules = PairRules(eval_hashes=eval_hashes, drop_duplicates=drop_duplicates)
    seen: set[int] = set()
    for _ in range(20):  # batches in order: duplicates span them
        size = int(rng.integers(1, 300))
        codes = np.where(rng.random(size) < 0.8, KEEP, rng.integers(1, 5, size=size)).astype(np.int8)
        keys = rng.integers(0, 400, size=size, dtype=np.uint64)
        expected = row_by_row(codes.tolist(), keys.tolist(), seen, eval_hashes, drop_duplicates)
        got = rules.resolve(codes, keys)
        assert got.tolist() == expected
        assert codes.dtype == np.int8 and got is not codes
    assert sorted(rules.seen.to_array().tolist()) == sorted(seen)
