"""Packing LM documents without crosstalk (issue 19): position ids that restart at each document give
block-diagonal causal attention in BigModel (SDPA and eager, classic and modern blocks), the blocks and
collator that produce them, the loss, and the recipe's `--packing` setting.

Tolerance: float32 logits and losses equal to 1e-5 (absolute), the same computation in another order."""

import datasets
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bigmodel_hf import BigModelForCausalLM
from bigmodel_hf.batching import LMBlockCollator, TokenBudgetBatchSampler, column_lengths, pack_lm_blocks
from bigmodel_hf.training.packing import check_model_separates_documents
from bigmodel_hf.training.setting_checks import ConfigError
from tiny_models import random_ids, tiny_config

ATOL = 1e-5
EOS = 2
BLOCKS = ["classic", "modern", "learned-gelu"]
ATTENTION = ["sdpa", "eager"]


def tiny_lm(block: str, attention: str) -> BigModelForCausalLM:
    torch.manual_seed(0)
    model = BigModelForCausalLM(tiny_config(block, is_encoder_decoder=False))
    model.set_attn_implementation(attention)
    assert model.config.use_cache  # the default, which used to switch packed-document detection off
    return model


def documents(lengths, seed=0) -> list[torch.Tensor]:
    return [random_ids(1, n, seed=seed + i)[0] for i, n in enumerate(lengths)]


def positions_of(lengths) -> torch.Tensor:
    return torch.cat([torch.arange(n) for n in lengths])


@pytest.mark.parametrize("attention", ATTENTION)
@pytest.mark.parametrize("block", BLOCKS)
def test_packed_row_scores_each_document_as_if_alone(block, attention):
    model = tiny_lm(block, attention).train()  # training forward (dropout 0), as the Trainer calls it
    rows = [[5, 7, 1, 3], [9, 7]]  # two rows of 16 tokens with different boundaries; a one-token document
    docs = [documents(lengths, seed=10 * r) for r, lengths in enumerate(rows)]
    input_ids = torch.stack([torch.cat(d) for d in docs])  # (2, 16)
    position_ids = torch.stack([positions_of(lengths) for lengths in rows])
    packed = model(input_ids=input_ids, position_ids=position_ids).logits
    alone = torch.stack([torch.cat([model(input_ids=doc[None]).logits[0] for doc in row]) for row in docs])
    torch.testing.assert_close(packed, alone, atol=ATOL, rtol=0)
    # without the restarting positions the same row is one sequence: later documents see earlier ones
    concat = model(input_ids=input_ids).logits
    assert (concat[0, 5:] - alone[0, 5:]).abs().max() > 1e-3


@pytest.mark.parametrize("block", ["classic", "modern"])
def test_generation_and_padded_batches_are_unchanged(block):
    model = tiny_lm(block, "sdpa").eval()
    prompt = random_ids(1, 5, seed=3)
    generated = model.generate(prompt, max_new_tokens=6, do_sample=False, min_new_tokens=6)
    ids = prompt
    for _ in range(6):  # greedy without a cache: the full sequence recomputed at each step
        next_id = model(input_ids=ids, use_cache=False).logits[0, -1].argmax()
        ids = torch.cat([ids, next_id.view(1, 1)], dim=1)
    assert torch.equal(generated, ids)
    # an unpacked, left-padded batch with a 2D mask: each row as it scores alone
    short, full = random_ids(1, 4, seed=4), random_ids(1, 7, seed=5)
    batch = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long), short], 1), full])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [1] * 7])
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=batch, attention_mask=mask, position_ids=position_ids).logits
    torch.testing.assert_close(logits[0, 3:], model(input_ids=short).logits[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(logits[1], model(input_ids=full).logits[0], atol=ATOL, rtol=0)


def test_documents_packing_restarts_positions_at_documents_and_blocks():
    docs = datasets.Dataset.from_dict({"input_ids": [[5, 6, 7], [8, 9], [], [10, 11, 12, 13, EOS], [14]]})
    concat = pack_lm_blocks(docs, 4, eos_token_id=EOS, drop_remainder=False)
    packed = pack_lm_blocks(docs, 4, eos_token_id=EOS, drop_remainder=False, packing="documents")
    assert packed["input_ids"] == concat["input_ids"] == [[5, 6, 7, 2], [8, 9, 2, 2], [10, 11, 12, 13], [2, 14, 2]]
    assert "position_ids" not in concat.column_names
    # an empty document is its EOS alone; a document cut by a block boundary restarts at the next block
    assert packed["position_ids"] == [[0, 1, 2, 3], [0, 1, 2, 0], [0, 1, 2, 3], [0, 0, 1]]
    with pytest.raises(ValueError, match="packing must be one of"):
        pack_lm_blocks(docs, 4, eos_token_id=EOS, packing="none")


def test_collator_hides_document_starts_from_the_loss_and_sends_no_mask():
    docs = datasets.Dataset.from_dict({"input_ids": [[5, 6, 7], [8, 9], [10, 11, 12, 13, 14]]})
    packed = pack_lm_blocks(docs, 6, eos_token_id=EOS, drop_remainder=False, packing="documents")
    batch = LMBlockCollator(pad_token_id=0)(list(packed))
    assert set(batch) == {"input_ids", "labels", "position_ids", "use_cache"} and batch["use_cache"] is False
    assert batch["input_ids"].tolist() == [[5, 6, 7, 2, 8, 9], [2, 10, 11, 12, 13, 14], [2, 0, 0, 0, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1], [0, 0, 1, 2, 3, 4], [0, 0, 0, 0, 0, 0]]
    # like DataCollatorWithFlattening: a document's first token is never a target (nor is padding)
    assert batch["labels"].tolist() == [[-100, 6, 7, 2, -100, 9], [-100, -100, 11, 12, 13, 14],
                                        [-100, -100, -100, -100, -100, -100]]
    assert "attention_mask" in LMBlockCollator(0)(list(pack_lm_blocks(docs, 6, eos_token_id=EOS)))


@pytest.mark.parametrize("block", ["classic", "modern"])
def test_loss_of_a_packed_batch_is_the_documents_loss_alone(block):
    model = tiny_lm(block, "sdpa").train()
    lengths = [6, 9, 4, 12, 5, 3, 9]
    docs = [torch.cat([d, torch.tensor([EOS])]) for d in documents(lengths, seed=7)]  # each ends with EOS
    blocks = pack_lm_blocks(datasets.Dataset.from_dict({"input_ids": [d.tolist() for d in docs]}), 16,
                            eos_token_id=EOS, drop_remainder=False, packing="documents")
    loss = model(**LMBlockCollator(pad_token_id=0)(list(blocks))).loss
    # the same tokens scored piece by piece (pieces: documents cut at block boundaries), first tokens unscored
    stream = torch.cat(docs)
    owner = torch.cat([torch.full((len(d),), i) for i, d in enumerate(docs)])
    nll, count = 0.0, 0
    for start in range(0, len(stream), 16):
        ids, owners = stream[start:start + 16], owner[start:start + 16]
        for number in owners.unique():
            piece = ids[owners == number]
            if len(piece) > 1:
                logits = model(input_ids=piece[None]).logits[0, :-1]
                nll = nll + F.cross_entropy(logits, piece[1:], reduction="sum")
                count += len(piece) - 1
    torch.testing.assert_close(loss, nll / count, atol=ATOL, rtol=0)


def test_token_budget_batches_of_documents_blocks():
    docs = datasets.Dataset.from_dict({"input_ids": [list(range(4, 4 + n)) for n in (5, 9, 3, 14, 7, 6)]})
    blocks = pack_lm_blocks(docs, 8, eos_token_id=EOS, drop_remainder=False, packing="documents")
    sampler = TokenBudgetBatchSampler(column_lengths(blocks), max_tokens=16, shuffle=False)
    collate = LMBlockCollator(pad_token_id=0)
    for indices in sampler:
        batch = collate([blocks[i] for i in indices])
        assert batch["input_ids"].numel() <= 16 and batch["position_ids"].shape == batch["input_ids"].shape


class IgnoresPositions(nn.Module):
    """A causal LM whose attention ignores restarting position ids (it drops them): packing leaks."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.config = model, model.config

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()

    def forward(self, input_ids, position_ids=None, use_cache=None):
        return self.inner(input_ids=input_ids, use_cache=use_cache)


def test_probe_passes_bigmodel_and_refuses_a_model_that_leaks_across_documents():
    model = tiny_lm("modern", "sdpa").train()
    check_model_separates_documents(model)
    assert model.training  # the probe puts the mode back
    with pytest.raises(ConfigError, match=r"--packing documents: IgnoresPositions \(sdpa attention\) lets a packed "
                                          r"document attend to the one before it .*use --packing concat\.$"):
        check_model_separates_documents(IgnoresPositions(model))


def test_packing_benchmark_scores_both_views_and_writes_its_page():
    from types import SimpleNamespace

    from benchmark_scripts import load_benchmark

    bench = load_benchmark("packing")
    model = tiny_lm("modern", "sdpa")
    lengths = [6, 9, 4, 12]
    docs = datasets.Dataset.from_dict({"input_ids": [d.tolist() + [EOS] for d in documents(lengths, seed=2)]})
    tokenizer = SimpleNamespace(eos_token_id=EOS, pad_token_id=0)
    views = {view: bench.score(model, docs, tokenizer, 16, view) for view in bench.MODES}
    total = sum(lengths) + len(lengths)  # 35 tokens: 3 blocks of 16, 16, 3
    assert views["concat"]["tokens"] == total - 3  # block starts unscored
    assert views["documents"]["tokens"] == total - 6  # piece starts: 4 documents, 2 of them cut by a block end
    assert views["documents"]["perplexity"] != pytest.approx(views["concat"]["perplexity"], rel=1e-4)
    rows = [{"packing": mode, "seed": 0, "steps": 5, "train_cpu_s": 2.0, "train_tokens_per_cpu_s": 100.0,
             "recipe_perplexity": views[mode]["perplexity"],
             **{f"{view}_perplexity": views[view]["perplexity"] for view in bench.MODES},
             **{f"{view}_tokens": views[view]["tokens"] for view in bench.MODES}} for mode in bench.MODES]
    speed = {"rounds": 1, "batch": "2 x 16", "pieces_per_row": 1.5, "documents_tokens_per_s": 90.0,
             "concat_tokens_per_s": 100.0, "ratio": 0.9}
    args = SimpleNamespace(argv=[], data=bench.ROOT, vocab_size=300, block_size=16, batch_size=2,
                           learning_rate=1e-3, warmup_steps=1)
    page = bench.report(rows, speed, args, wall=60.0)
    assert "| **documents, mean** |" in page and "0.900x" in page and "to 0.0e+00 (relative)" in page
