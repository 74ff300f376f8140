"""Token-budget batches of a multilingual run, with the language pairs drawn by temperature sampling.

Each pair's examples are cut into token-budget batches of their own (`batching._make_batches`: similar
lengths, at most `max_tokens` tokens with padding), so a batch holds one direction. An epoch is as many
batches as the data makes; each is taken from a pair drawn with the probabilities of
`languages.sampling_probabilities`, cycling through that pair's batches (reshuffled each pass). A small pair
is then seen more often than its share, a large one less, as fairseq and M2M-100 do with T=5.

`drawn` counts what was actually handed out (batches, examples, tokens per pair), so a run reports the mix it
trained on rather than the one it aimed at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from torch.utils.data import Sampler

from .batching import IndexBatches, _make_batches


class LanguageMixBatchSampler(Sampler):
    """Batches of one pair each, pairs drawn with `probabilities` ({pair: p}; pairs absent or p=0 are never
    drawn). `groups[i]` is example i's pair; `lengths` as for `TokenBudgetBatchSampler` ((n,) or (n, columns))."""

    def __init__(self, lengths, groups: Sequence[str], max_tokens: int, probabilities: Mapping[str, float], *,
                 max_sentences: int | None = None, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        columns = np.asarray(lengths, dtype=np.int64)
        columns = columns[:, None] if columns.ndim == 1 else columns
        groups = np.asarray(groups)
        if len(groups) != len(columns):
            raise ValueError(f"{len(groups)} group labels for {len(columns)} examples")
        self.tokens = columns.sum(axis=1)  # what the example costs, padding aside
        self.pairs = [pair for pair, p in probabilities.items() if p > 0 and (groups == pair).any()]
        if not self.pairs:
            raise ValueError("no pair with examples has a positive sampling probability")
        weights = np.array([probabilities[pair] for pair in self.pairs], dtype=np.float64)
        self.probabilities = weights / weights.sum()
        self.batches_of: dict[str, IndexBatches] = {}
        for pair in self.pairs:
            members = np.flatnonzero(groups == pair)
            local = _make_batches(columns[members], int(max_tokens), max_sentences, seed)
            self.batches_of[pair] = IndexBatches(members[local.indices], local.starts, local.ends)
        total = sum(len(batches) for batches in self.batches_of.values())
        self.num_batches = max(num_replicas, total - total % num_replicas)  # every rank gets as many
        self.seed, self.num_replicas, self.rank, self.epoch = seed, num_replicas, rank, 0
        self.drawn = {pair: {"batches": 0, "examples": 0, "tokens": 0} for pair in self.pairs}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches // self.num_replicas

    def plan(self, epoch: int) -> list[tuple[str, list[int]]]:
        """The epoch's batches, in order, for all ranks: (pair, example indices)."""
        rng = np.random.default_rng([self.seed, epoch])
        choices = rng.choice(len(self.pairs), size=self.num_batches, p=self.probabilities)
        queues: dict[str, list[int]] = {pair: [] for pair in self.pairs}
        out = []
        for choice in choices.tolist():
            pair = self.pairs[choice]
            if not queues[pair]:  # a new pass over this pair's batches, in a new order
                queues[pair] = rng.permutation(len(self.batches_of[pair])).tolist()
            out.append((pair, self.batches_of[pair][queues[pair].pop()]))
        return out

    def __iter__(self):
        for pair, batch in self.plan(self.epoch)[self.rank :: self.num_replicas]:
            counts = self.drawn[pair]
            counts["batches"] += 1
            counts["examples"] += len(batch)
            counts["tokens"] += int(self.tokens[batch].sum())
            yield list(batch)

    def mix(self) -> dict:
        """The aimed and the drawn mix: {pair: {probability, batches, examples, tokens, share_examples,
        share_tokens}} (shares of what this process drew so far)."""
        examples = sum(c["examples"] for c in self.drawn.values()) or 1
        tokens = sum(c["tokens"] for c in self.drawn.values()) or 1
        return {pair: {"probability": round(float(p), 4), **self.drawn[pair],
                       "share_examples": round(self.drawn[pair]["examples"] / examples, 4),
                       "share_tokens": round(self.drawn[pair]["tokens"] / tokens, 4)}
                for pair, p in zip(self.pairs, self.probabilities)}
