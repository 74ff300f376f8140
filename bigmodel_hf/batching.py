"""Turning tokenized examples into batches: the collators of both recipes, token-budget batching (fairseq's
`--max-tokens`: batches of similar lengths up to a token count, so little compute goes to padding), and the
packing of LM documents into fixed-size blocks. The Trainers that use the token-budget sampler are in
`training/trainers.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Sampler
from transformers import DataCollatorForSeq2Seq
from datasets.table import InMemoryTable

from .data.errors import DataError

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Collators


def make_seq2seq_collator(tokenizer, model=None, pad_to_multiple_of: int | None = None) -> DataCollatorForSeq2Seq:
    """Dynamic padding for translation; labels padded with -100 (ignored by the loss)."""
    return Seq2SeqCollator(tokenizer, model=model, label_pad_token_id=-100, pad_to_multiple_of=pad_to_multiple_of,
                           return_tensors="pt")


class Seq2SeqCollator(DataCollatorForSeq2Seq):
    """`DataCollatorForSeq2Seq` that also makes `decoder_input_ids` for models without
    `prepare_decoder_input_ids_from_labels` (M2M100, NLLB): the Trainer takes the labels out of the batch
    when it smooths them itself, and such a model would then have no decoder input at all."""

    def __call__(self, features, return_tensors=None):
        batch = super().__call__(features, return_tensors)
        config = getattr(self.model, "config", None)
        if "labels" in batch and "decoder_input_ids" not in batch and getattr(config, "is_encoder_decoder", False):
            labels = batch["labels"]  # (batch, target length), -100 at padding
            start = torch.full_like(labels[:, :1], config.decoder_start_token_id)
            shifted = torch.cat([start, labels[:, :-1]], dim=1)
            batch["decoder_input_ids"] = shifted.masked_fill(shifted == -100, config.pad_token_id)
        return batch


class LMBlockCollator:
    """Packed LM blocks -> tensors. Training blocks all hold `block_size` tokens; the last validation block
    may be shorter and is padded on the right (labels -100, attention 0), so no position shifts.

    Labels are the blocks' own `labels` (the inputs when absent), never derived from the pad id: LM
    tokenizers often pad with EOS, and the EOS between documents must still be learned.

    Blocks with `position_ids` (`pack_lm_blocks(..., packing="documents")`) keep their documents apart: the
    position ids go to the model and no `attention_mask` does, which is how transformers' masking_utils
    recognises packed documents (as for `DataCollatorWithFlattening`) and makes attention block-diagonal.
    Padding is on the right, so causal attention never reaches it without a mask. As that collator does,
    the label of each document's first token is -100: nothing before it in its own document predicts it."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        ids = [torch.tensor(f["input_ids"]) for f in features]
        labels = [torch.tensor(f.get("labels", f["input_ids"])) for f in features]
        batch = {
            "input_ids": pad_sequence(ids, batch_first=True, padding_value=self.pad_token_id),
            "labels": pad_sequence(labels, batch_first=True, padding_value=-100),
        }
        if "position_ids" not in features[0]:
            batch["attention_mask"] = pad_sequence([torch.ones_like(i) for i in ids], batch_first=True,
                                                   padding_value=0)
            return batch
        positions = pad_sequence([torch.tensor(f["position_ids"]) for f in features], batch_first=True,
                                 padding_value=0)  # (batch, seq); each pad its own one-token "document"
        batch["labels"] = batch["labels"].masked_fill(positions == 0, -100)
        batch["position_ids"] = positions
        # masking_utils looks for packed documents only without a cache; Llama, GPT-2 (and BigModel before
        # issue 19) make an empty one whenever config.use_cache is on, training included.
        batch["use_cache"] = False
        return batch


# --------------------------------------------------------------------------------------------------
# Token-budget batching


def column_lengths(dataset, columns: Sequence[str] = ("input_ids", "labels"),
                   pad_to_multiple_of: int | None = None) -> np.ndarray:
    """Lengths of the present `columns`, shape (n_examples, n_columns), read from Arrow (no Python loop); int32,
    as Arrow keeps them: 4 bytes a column per example at millions of examples."""
    present = [c for c in columns if c in dataset.column_names]
    if not present:
        raise DataError(f"none of the columns {list(columns)} is in the dataset (has {dataset.column_names}).")
    table = dataset.with_format("arrow")
    lengths = np.stack([pc.list_value_length(table[c]).to_numpy(zero_copy_only=False).astype(np.int32)
                        for c in present], axis=1)
    if pad_to_multiple_of:
        lengths = -(-lengths // pad_to_multiple_of) * pad_to_multiple_of
    return lengths


def example_lengths(dataset, columns: Sequence[str] = ("input_ids", "labels"),
                    pad_to_multiple_of: int | None = None) -> np.ndarray:
    """Longest of the present `columns`, per example: the size a token budget counts."""
    return column_lengths(dataset, columns, pad_to_multiple_of).max(axis=1)


class IndexBatches(Sequence):
    """Batches of example indices as three arrays (every index in batch order, each batch's start and end):
    8 bytes per example and 16 per batch, where a list of Python int lists costs about 40 per example.
    `batches[i]` is batch i as a list."""

    def __init__(self, indices: np.ndarray, starts: np.ndarray, ends: np.ndarray):
        self.indices, self.starts, self.ends = indices, starts, ends

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.indices[self.starts[i] : self.ends[i]].tolist()

    def __iter__(self):
        for start, end in zip(self.starts.tolist(), self.ends.tolist()):
            yield self.indices[start:end].tolist()


def _make_batches(columns: np.ndarray, max_tokens: int, max_sentences: int | None, seed: int) -> IndexBatches:
    """Greedy fill over indices sorted by size, then by each column from the last (ties: random by `seed`).

    The secondary keys put pairs whose shorter side is alike together, which cuts the padding of that
    side (on the shared en-es corpus: 5.5% -> 3.8% of tokens).
    """
    lengths = columns.max(axis=1)
    too_long = np.flatnonzero(lengths > max_tokens)
    if too_long.size:
        raise DataError(
            f"{too_long.size} examples are longer than max_tokens={max_tokens} (longest {int(lengths.max())} "
            f"tokens, e.g. example {int(too_long[0])}). Raise max_tokens, truncate (max_source_length / "
            "max_target_length), or drop long pairs when cleaning (max_tokens=...)."
        )
    # int32 positions (an example costs 4 bytes in each array below, not 8) while they fit
    order = np.random.default_rng(seed).permutation(len(lengths)).astype(np.int32 if len(lengths) < 2**31 else np.int64)
    keys = tuple(columns[order, j] for j in range(columns.shape[1])) + (lengths[order],)
    order = order[np.lexsort(keys)]  # the last key is the primary one; lexsort is stable
    sizes = lengths[order]
    starts: list[int] = [0]
    start, longest = 0, 0
    for offset in range(0, len(sizes), 1 << 16):  # a slice at a time: no Python int per example at once
        for pos, size in enumerate(sizes[offset : offset + (1 << 16)].tolist(), offset):
            longest_if_added = max(longest, size)
            count = pos - start + 1
            if count > 1 and (longest_if_added * count > max_tokens or (max_sentences and count > max_sentences)):
                starts.append(pos)
                start, longest_if_added = pos, size
            longest = longest_if_added
    bounds = np.array(starts + [len(order)], dtype=np.int64)
    return IndexBatches(order, bounds[:-1], bounds[1:])


def _even_out(batches: IndexBatches, replicas: int) -> IndexBatches:
    """Split the largest batches in two until the count divides by `replicas` (repeat only if impossible)."""
    originals, starts, ends = len(batches), batches.starts, batches.ends
    while len(starts) % replicas:
        sizes = ends - starts
        largest = int(np.argmax(sizes))  # the first of the largest
        if sizes[largest] < 2:
            logger.warning("fewer examples than ranks: repeating batches so every rank gets one")
            again = len(starts) % originals
            starts, ends = np.append(starts, starts[again]), np.append(ends, ends[again])
            continue
        middle = starts[largest] + sizes[largest] // 2
        starts, ends = np.insert(starts, largest + 1, middle), np.insert(ends, largest, middle)
    return IndexBatches(batches.indices, starts, ends)


class TokenBudgetBatchSampler(Sampler):
    """Length-bucketed batches of at most `max_tokens` tokens (padding included); see module docstring."""

    def __init__(self, lengths, max_tokens: int, *, max_sentences: int | None = None, shuffle: bool = True,
                 seed: int = 0, num_replicas: int | None = None, rank: int | None = None):
        if num_replicas is None:
            dist = torch.distributed.is_available() and torch.distributed.is_initialized()
            num_replicas = torch.distributed.get_world_size() if dist else 1
            rank = torch.distributed.get_rank() if dist else 0
        rank = 0 if rank is None else rank
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        columns = np.asarray(lengths)
        columns = columns.astype(np.int32 if columns.dtype == np.int32 else np.int64, copy=False)
        columns = columns[:, None] if columns.ndim == 1 else columns
        if columns.ndim != 2 or columns.size == 0:
            raise ValueError("lengths must be a non-empty sequence of sizes, or an (n, columns) array of them")
        self.lengths = columns.max(axis=1)
        self.max_tokens, self.max_sentences = int(max_tokens), max_sentences
        self.shuffle, self.seed = shuffle, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self.batches = _even_out(_make_batches(columns, self.max_tokens, max_sentences, seed), num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.batches) // self.num_replicas

    def __iter__(self):
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.batches))
        else:
            order = np.arange(len(self.batches))
        for position in order[self.rank :: self.num_replicas].tolist():
            yield self.batches[position]


# --------------------------------------------------------------------------------------------------
# LM packing


PACKING_MODES = ("documents", "concat")


def pack_lm_blocks(dataset, block_size: int, *, eos_token_id: int, drop_remainder: bool = True,
                   with_labels: bool = True, packing: str = "concat"):
    """Concatenate documents' `input_ids` with EOS between them and cut `block_size`-token blocks.

    Each document gets EOS appended unless it already ends with it. With `drop_remainder` the last
    partial block is dropped (logged with its token count); otherwise it is kept, shorter.

    `packing="concat"` is `run_clm.py`'s grouping: a block is one sequence, so a token attends to the end of
    the previous, unrelated document. `packing="documents"` adds `position_ids` that restart at 0 at each
    document and at each block start (a document cut by a block boundary goes on in the next block as if
    it began there); `LMBlockCollator` turns them into block-diagonal attention.
    """
    if packing not in PACKING_MODES:
        raise ValueError(f"packing must be one of {list(PACKING_MODES)}, got {packing!r}")
    if isinstance(dataset, datasets.DatasetDict):
        return datasets.DatasetDict({split: pack_lm_blocks(ds, block_size, eos_token_id=eos_token_id,
                                                           drop_remainder=drop_remainder, with_labels=with_labels,
                                                           packing=packing)
                                     for split, ds in dataset.items()})
    if block_size < 2:
        raise ValueError("block_size must be at least 2")
    column = dataset.with_format("arrow")["input_ids"].combine_chunks()
    offsets = column.offsets.to_numpy()
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.int32)
    offsets = offsets - offsets[0]
    ends = offsets[1:]
    nonempty = ends > offsets[:-1]
    needs_eos = np.ones(len(ends), dtype=bool)
    needs_eos[nonempty] = values[ends[nonempty] - 1] != eos_token_id
    stream = np.insert(values, ends[needs_eos], eos_token_id) if needs_eos.any() else values
    blocks = len(stream) // block_size
    rest = len(stream) - blocks * block_size
    keep_rest = bool(rest) and not drop_remainder
    if rest and drop_remainder:
        logger.info("pack_lm_blocks: dropped the last %d of %d tokens (a partial block)", rest, len(stream))
    if blocks == 0 and not keep_rest:
        raise DataError(f"only {len(stream)} tokens in the dataset, fewer than block_size={block_size}; "
                        "lower block_size or add text.")
    bounds = list(range(0, blocks * block_size + 1, block_size)) + ([len(stream)] if keep_rest else [])
    used = len(stream) if keep_rest else blocks * block_size
    offsets_array = pa.array(bounds, pa.int32())
    ids = pa.ListArray.from_arrays(offsets_array, pa.array(stream[:used], pa.int32()))
    columns = {"input_ids": ids, "labels": ids} if with_labels else {"input_ids": ids}
    if packing == "documents":
        document_ends = ends + np.cumsum(needs_eos)  # one past each document's EOS, in `stream`
        positions = _document_positions(used, document_ends, block_size)
        columns["position_ids"] = pa.ListArray.from_arrays(offsets_array, pa.array(positions, pa.int32()))
    return datasets.Dataset(InMemoryTable(pa.table(columns)))


def _document_positions(length: int, document_ends: np.ndarray, block_size: int) -> np.ndarray:
    """Each token's index within its document piece: 0 where a document or a block starts, then counting up."""
    starts = np.zeros(length, dtype=bool)
    starts[::block_size] = True
    starts[document_ends[document_ends < length]] = True
    index = np.arange(length, dtype=np.int64)
    return (index - np.maximum.accumulate(np.where(starts, index, 0))).astype(np.int32)
