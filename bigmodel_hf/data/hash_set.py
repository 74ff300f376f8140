"""A growing set of 64-bit pair hashes at 8 bytes a member, checked and extended a batch at a time.

Deduplication remembers every pair it keeps. A Python `set` of ints costs about 70 bytes a member (the int
object and its slot), 200 MB at 3 million pairs; sorted numpy arrays cost 8. Members live in a few sorted,
disjoint segments: a batch becomes a new segment, and the newest segments merge while the older one is not
more than twice as long (the rule of a log-structured merge tree), so there are O(log n) segments and each
hash is copied O(log n) times.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def as_hashes(values) -> np.ndarray:
    """`values` (an array, or any iterable of ints below 2**64) as a uint64 array."""
    if isinstance(values, np.ndarray):
        return values.astype(np.uint64, copy=False)
    return np.fromiter(values, dtype=np.uint64)


class HashSet:
    def __init__(self, members: Iterable[int] | np.ndarray = ()):
        self._segments: list[np.ndarray] = []
        self.add(as_hashes(members))

    def __len__(self) -> int:
        return sum(len(segment) for segment in self._segments)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """A boolean array: which of `keys` are members."""
        keys = as_hashes(keys)
        found = np.zeros(len(keys), dtype=bool)
        for segment in self._segments:
            where = np.minimum(np.searchsorted(segment, keys), len(segment) - 1)
            found |= segment[where] == keys
        return found

    def add(self, keys: np.ndarray) -> None:
        new = np.unique(as_hashes(keys))
        new = new[~self.contains(new)]
        if not len(new):
            return
        self._segments.append(new)
        while len(self._segments) > 1 and len(self._segments[-2]) <= 2 * len(self._segments[-1]):
            newest = self._segments.pop()
            self._segments[-1] = np.union1d(self._segments[-1], newest)

    def to_array(self) -> np.ndarray:
        """The members, sorted (what a checkpoint saves)."""
        return np.sort(np.concatenate(self._segments)) if self._segments else np.zeros(0, dtype=np.uint64)
