"""Batching (bigmodel_hf.batching): collators, token-budget sampler, LM packing; the token-budget Trainer."""

import warnings

import datasets
import numpy as np
import pytest
import torch
from transformers import TrainingArguments

from bigmodel_hf.batching import (
    LMBlockCollator,
    TokenBudgetBatchSampler,
    column_lengths,
    example_lengths,
    make_seq2seq_collator,
    pack_lm_blocks,
)
from bigmodel_hf.data import DataError
from bigmodel_hf.tokenization import EOS_ID, PAD_ID, train_lm_tokenizer, train_translation_tokenizer
from bigmodel_hf.training.trainers import TokenBudgetTrainer


def padding_stats(lengths, batches) -> dict:
    """Real vs padded tokens of `batches` (lists of indices) padded to their longest member."""
    lengths = np.asarray(lengths)
    real = sum(int(lengths[b].sum()) for b in batches)
    padded = sum(int(lengths[b].max()) * len(b) for b in batches)
    return {"real_tokens": real, "padded_tokens": padded, "padding_fraction": 1 - real / padded if padded else 0.0}


@pytest.fixture(scope="module")
def lengths():
    # skewed like real sentence lengths: many short, a long tail
    rng = np.random.default_rng(0)
    return np.clip(rng.lognormal(3.3, 0.5, size=3000).astype(int), 2, 250)


@pytest.fixture(scope="module")
def tokenizer():
    words = "the a cat dog house red small sleeps runs el la gato perro casa roja duerme".split()
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(words, size=rng.integers(2, 9))) for _ in range(200)]
    return train_translation_tokenizer(texts, vocab_size=80)


def test_budget_never_exceeded_and_every_example_once(lengths):
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=1024, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert all(len(b) * lengths[b].max() <= 1024 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))


def test_padding_fraction_far_below_fixed_size_batches(lengths):
    budget = padding_stats(lengths, list(TokenBudgetBatchSampler(lengths, max_tokens=2048, seed=0)))
    order = np.random.default_rng(0).permutation(len(lengths))
    fixed = padding_stats(lengths, [order[i : i + 32] for i in range(0, len(order), 32)])
    assert budget["padding_fraction"] < 0.05 < 0.25 < fixed["padding_fraction"]
    assert budget["real_tokens"] == fixed["real_tokens"] == int(lengths.sum())


def test_per_column_lengths_keep_the_budget_and_cut_side_padding(lengths):
    rng = np.random.default_rng(2)
    pairs = np.stack([lengths, np.clip(lengths + rng.integers(-8, 9, size=len(lengths)), 1, None)], axis=1)
    two_d = TokenBudgetBatchSampler(pairs, 1024, seed=0).batches
    one_d = TokenBudgetBatchSampler(pairs.max(axis=1), 1024, seed=0).batches
    assert all(len(b) * pairs[b].max() <= 1024 for b in two_d)

    def side_padding(batches):
        real = sum(int(pairs[b].sum()) for b in batches)
        return 1 - real / sum(len(b) * int(pairs[b].max(axis=0).sum()) for b in batches)

    assert side_padding(two_d) < side_padding(one_d)


def test_max_sentences_caps_batches(lengths):
    batches = list(TokenBudgetBatchSampler(lengths, max_tokens=100_000, max_sentences=16))
    assert max(len(b) for b in batches) == 16


def test_deterministic_for_seed_and_reshuffled_per_epoch(lengths):
    a, b = TokenBudgetBatchSampler(lengths, 1024, seed=7), TokenBudgetBatchSampler(lengths, 1024, seed=7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    assert second != first and sorted(map(tuple, second)) == sorted(map(tuple, first))  # same batches, new order
    b.set_epoch(1)
    assert list(b) == second
    assert list(TokenBudgetBatchSampler(lengths, 1024, seed=8)) != first
    fixed = TokenBudgetBatchSampler(lengths, 1024, shuffle=False)
    fixed.set_epoch(3)
    assert [len(x) for x in fixed] == [len(x) for x in fixed.batches]


@pytest.mark.parametrize("replicas", [2, 3])
def test_ranks_get_disjoint_batches_and_equal_counts(lengths, replicas):
    # a budget whose single-process batch count the ranks do not divide, so evening-out is exercised
    budget = next(b for b in range(900, 1300, 7) if len(TokenBudgetBatchSampler(lengths, b, seed=1).batches) % replicas)
    for epoch in (0, 1):
        per_rank = []
        for rank in range(replicas):
            sampler = TokenBudgetBatchSampler(lengths, budget, seed=1, num_replicas=replicas, rank=rank)
            sampler.set_epoch(epoch)
            per_rank.append(list(sampler))
            assert len(per_rank[-1]) == len(sampler)
        assert len({len(batches) for batches in per_rank}) == 1
        seen = [i for batches in per_rank for b in batches for i in b]
        assert sorted(seen) == list(range(len(lengths)))  # disjoint, nothing dropped or repeated
        assert all(len(b) * lengths[b].max() <= budget for batches in per_rank for b in batches)


def test_too_long_example_is_an_error():
    with pytest.raises(DataError, match="1 examples are longer than max_tokens=10.*example 1"):
        TokenBudgetBatchSampler([3, 11, 4], max_tokens=10)


def test_seq2seq_collator_pads_labels_with_minus_100(tokenizer):
    collate = make_seq2seq_collator(tokenizer)
    features = [tokenizer("the cat", text_target="el gato duerme"), tokenizer("the red small house", text_target="la")]
    batch = collate([dict(f) for f in features])
    n0 = len(features[0]["input_ids"])
    assert batch["input_ids"].shape[0] == 2 and (batch["input_ids"][0, n0:] == PAD_ID).all()
    assert (batch["attention_mask"][0, n0:] == 0).all()
    short = len(features[1]["labels"])
    assert (batch["labels"][1, short:] == -100).all() and batch["labels"][1, short - 1] == EOS_ID


def test_lm_collator_masks_padding():
    tok = train_lm_tokenizer(["the cat sat on the mat"] * 5, vocab_size=270)
    batch = LMBlockCollator(tok.pad_token_id)([{"input_ids": [5, 6, 7]}, {"input_ids": [8]}])
    assert batch["labels"].tolist() == [[5, 6, 7], [8, -100, -100]]


def test_example_lengths_takes_the_longer_side():
    ds = datasets.Dataset.from_dict({"input_ids": [[1, 2, 3], [1]], "labels": [[1], [1, 2, 3, 4]]})
    assert example_lengths(ds).tolist() == [3, 4]
    assert example_lengths(ds, pad_to_multiple_of=8).tolist() == [8, 8]
    assert example_lengths(ds.select([1])).tolist() == [4]  # follows the indices mapping
    assert column_lengths(ds).tolist() == [[3, 1], [1, 4]]


def test_pack_lm_blocks_inserts_eos_between_documents():
    docs = datasets.Dataset.from_dict({"input_ids": [[5, 6, 7], [8, EOS_ID], [9, 10, 11, 12]]})
    packed = pack_lm_blocks(docs, block_size=4, eos_token_id=EOS_ID)
    # stream: 5 6 7 </s> 8 </s> 9 10 11 12 </s>  (EOS added only where missing); last 3 tokens dropped
    assert packed["input_ids"] == [[5, 6, 7, EOS_ID], [8, EOS_ID, 9, 10]]
    assert packed["labels"] == packed["input_ids"]
    kept = pack_lm_blocks(docs, block_size=4, eos_token_id=EOS_ID, drop_remainder=False, with_labels=False)
    assert kept.column_names == ["input_ids"] and kept["input_ids"][-1] == [11, 12, EOS_ID]
    with pytest.raises(DataError, match="fewer than block_size=64"):
        pack_lm_blocks(docs, block_size=64, eos_token_id=EOS_ID)
    dd = pack_lm_blocks(datasets.DatasetDict({"train": docs}), block_size=2, eos_token_id=EOS_ID)
    assert all(len(b) == 2 for b in dd["train"]["input_ids"])


class Recorder(torch.nn.Module):
    """Smallest model the Trainer can train; records what each step received."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(128, 4)
        self.seen = []

    def forward(self, input_ids, attention_mask=None, labels=None, idx=None):
        if self.training:
            self.seen.append((tuple(input_ids.shape), tuple(labels.shape), idx.tolist()))
        return {"loss": self.embed(input_ids).pow(2).mean()}


def tokenized_pairs(tokenizer, seed: int) -> datasets.Dataset:
    """120 tokenised pairs of 1-29 words a side, each with its index (`idx`)."""
    rng = np.random.default_rng(seed)
    src = [" ".join(["cat"] * int(n)) for n in rng.integers(1, 30, size=120)]
    tgt = [" ".join(["gato"] * int(n)) for n in rng.integers(1, 30, size=120)]
    ds = datasets.Dataset.from_dict({"source": src, "target": tgt, "idx": list(range(120))})
    return ds.map(lambda b: {**tokenizer(b["source"]), "labels": tokenizer(text_target=b["target"])["input_ids"]},
                  batched=True, remove_columns=["source", "target"])


def test_trainer_uses_token_budget_batches(tmp_path, tokenizer):
    ds = tokenized_pairs(tokenizer, seed=3)
    model = Recorder()
    args = TrainingArguments(output_dir=str(tmp_path), num_train_epochs=2, per_device_train_batch_size=4,
                             report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True, seed=5,
                             logging_strategy="no", learning_rate=0.0)
    trainer = TokenBudgetTrainer(model=model, args=args, train_dataset=ds,
                                 data_collator=make_seq2seq_collator(tokenizer), max_tokens=128)
    loader = trainer.get_train_dataloader()
    trainer.train()
    steps = len(loader)
    assert len(model.seen) == 2 * steps
    for in_shape, label_shape, _ in model.seen:
        assert in_shape[0] * in_shape[1] <= 128 and label_shape[0] * label_shape[1] <= 128
    epochs = [model.seen[:steps], model.seen[steps:]]
    for epoch in epochs:
        assert sorted(i for *_, idx in epoch for i in idx) == list(range(120))
    assert [idx for *_, idx in epochs[0]] != [idx for *_, idx in epochs[1]]  # reshuffled between epochs
    assert steps < 120 / 4  # bigger batches than the fixed per_device_train_batch_size would give


def test_cpu_bf16_training_pads_lengths_to_multiples_of_8_within_the_budget(tmp_path, tokenizer):
    # under CPU bf16, free lengths make oneDNN keep kernels per shape (gigabytes over a run): the recipe pads
    # to multiples of 8, and the sampler counts the padded lengths so the budget still holds
    from bigmodel_hf.training.precision import training_length_multiple

    common = dict(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    assert training_length_multiple(TrainingArguments(**common)) is None
    bf16 = TrainingArguments(**common, bf16=True, num_train_epochs=1, save_strategy="no", disable_tqdm=True,
                             logging_strategy="no", learning_rate=0.0)
    multiple = training_length_multiple(bf16)
    assert multiple == 8
    ds = tokenized_pairs(tokenizer, seed=4)
    model = Recorder()
    trainer = TokenBudgetTrainer(model=model, args=bf16, train_dataset=ds, max_tokens=128, length_multiple=multiple,
                                 data_collator=make_seq2seq_collator(tokenizer, pad_to_multiple_of=multiple))
    trainer.train()
    assert sorted(i for *_, idx in model.seen for i in idx) == list(range(120))
    for in_shape, label_shape, _ in model.seen:
        assert in_shape[1] % 8 == 0 and label_shape[1] % 8 == 0
        assert in_shape[0] * in_shape[1] <= 128 and label_shape[0] * label_shape[1] <= 128
    assert len({shape for shape, *_ in model.seen}) < len(model.seen)  # shapes repeat: few kernels to keep


DDP_SCRIPT = '''
import json, sys
import datasets, numpy as np, torch
from transformers import TrainingArguments
sys.path.insert(0, sys.argv[2])
from bigmodel_hf.training.trainers import TokenBudgetTrainer
from test_batching import Recorder

rng = np.random.default_rng(3)
ds = datasets.Dataset.from_dict({"input_ids": [[5] * int(k) for k in rng.integers(1, 30, size=101)],
                                 "labels": [[6] * int(k) for k in rng.integers(1, 30, size=101)],
                                 "idx": list(range(101))})

def collate(feats):
    pad = lambda key, value: [f[key] + [value] * (max(len(g[key]) for g in feats) - len(f[key])) for f in feats]
    return {"input_ids": torch.tensor(pad("input_ids", 0)), "labels": torch.tensor(pad("labels", -100)),
            "idx": torch.tensor([f["idx"] for f in feats])}

model = Recorder()
args = TrainingArguments(output_dir=sys.argv[1], num_train_epochs=2, report_to="none", save_strategy="no",
                         use_cpu=True, disable_tqdm=True, logging_strategy="no", learning_rate=0.0, seed=5)
TokenBudgetTrainer(model=model, args=args, train_dataset=ds, data_collator=collate, max_tokens=128).train()
with open(f"{sys.argv[1]}/rank{args.process_index}.json", "w") as out:
    json.dump({"world": args.world_size, "seen": model.seen}, out)
'''


@pytest.mark.slow
def test_trainer_token_budget_under_two_processes(tmp_path):
    """A real 2-process (gloo, CPU) run: ranks see disjoint batches, same step count, all data each epoch."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script), str(tmp_path),
           str(Path(__file__).parent)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]
    steps = len(ranks[0]["seen"]) // 2
    assert len(ranks[1]["seen"]) == 2 * steps and steps > 0
    for epoch in range(2):
        seen = [i for r in ranks for *_, idx in r["seen"][epoch * steps : (epoch + 1) * steps] for i in idx]
        assert sorted(seen) == list(range(101))  # disjoint across ranks, nothing lost to double sharding
    assert all(s[0][0] * s[0][1] <= 128 and s[1][0] * s[1][1] <= 128 for r in ranks for s in r["seen"])


def test_no_pinned_memory_and_no_warning_on_a_machine_without_accelerator(tmp_path, tokenizer):
    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only path")
    ds = tokenized_pairs(tokenizer, seed=3)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", disable_tqdm=True)  # no use_cpu
    assert args.dataloader_pin_memory  # transformers' default, which torch warns about without an accelerator
    trainer = TokenBudgetTrainer(model=Recorder(), args=args, train_dataset=ds, eval_dataset=ds,
                                 data_collator=make_seq2seq_collator(tokenizer), max_tokens=128)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        next(iter(trainer.get_train_dataloader()))
        next(iter(trainer.get_eval_dataloader()))
    assert not trainer.args.dataloader_pin_memory
    assert not [w for w in caught if "pin_memory" in str(w.message)]
