"""Training pairs streamed instead of prepared up front (`--streaming`): read lazily, cleaned and tokenised
on the fly, batched by token budget from a buffer of length buckets, shared between processes, resumable.

    stream = TranslationStream("train.jsonl")            # or a Hub name that `datasets` can stream
    sample = sample_pairs(stream, 100_000, eval_hashes)  # the first cleaned pairs: the tokenizer's sample
    batches = StreamingBatches(stream, tokenizer, max_tokens=2048, eval_hashes=eval_hashes, rank=r, world_size=w)
    for features in batches: ...                         # lists of tokenised examples, one batch each, forever

How batches are made: the cleaned pairs of the stream are cut into chunks of `buffer_size` pairs; each chunk
is tokenised and batched exactly as the map-style `TokenBudgetBatchSampler` batches a whole data set
(sorted by length with random tie-breaks by `seed + chunk`, greedy fill to the budget, evened out to a
multiple of the process count), and its batches are shuffled. Every process reads and cleans the whole
stream (so duplicates are caught across all of it and every process agrees on the chunks) and trains on
every `world_size`-th batch of each chunk: distinct data, the same number of steps, no process left short at
the end. When the stream ends the next epoch starts, so the iterable never ends (`max_steps` stops training).

The position (`state_dict`) is the epoch, the chunk, the stream row the chunk starts at, the batches this
process took from it, and the cleaner's memory at the chunk's start (8-byte hashes of the pairs kept): a
resumed run skips the rows already read and rebuilds the same chunk, so it continues with the next batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import chain
from pathlib import Path

import datasets
import numpy as np
import torch

from .batching import _even_out, _make_batches
from .data.cleaning import KEEP, PairRules, SplitTally, cleaning_settings, normalize_pairs, pair_hash
from .data.errors import DataError, check_utf8, jsonl_line_of_row
from .data.loading import MissingDataFileError, _has_text, _raise_bad_json_line

logger = logging.getLogger(__name__)

_READ_BATCH = 1000
_NO_BUDGET = 1 << 40  # fixed-count batches: a token budget no batch reaches


class TranslationStream:
    """The raw pairs of a local JSON Lines file or a streamable Hub dataset's train split, in order, from any
    row on. Records are `{"translation": {src: ..., tgt: ...}}`, `{src: ..., tgt: ...}` or
    `{"source": ..., "target": ...}`; a missing or null side is a `DataError` naming the line."""

    def __init__(self, spec: str, *, src_lang: str = "en", tgt_lang: str = "es", config_name: str | None = None,
                 max_rows: int | None = None):
        self.spec, self.src_lang, self.tgt_lang, self.config_name = str(spec), src_lang, tgt_lang, config_name
        self.max_rows = max_rows
        path = Path(self.spec).expanduser()
        self.path = path if path.is_file() else None
        if self.path is not None:
            if path.suffix.lower() not in (".jsonl", ".json"):
                raise DataError(f"{path}: --streaming reads JSON Lines files (.jsonl); convert it, or train "
                                "without --streaming.")
            check_utf8(path)
            if not _has_text(path):
                raise DataError(f"{path} is empty (no rows). Give a file with at least one record.")
        elif path.suffix.lower() in (".jsonl", ".json") or self.spec.startswith((".", "/", "~")):
            raise MissingDataFileError(f"{self.spec}: no such file. Give an existing JSON Lines file or a Hub "
                                       "dataset name.")

    def _open(self):
        if self.path is not None:
            return datasets.load_dataset("json", data_files=str(self.path), split="train", streaming=True)
        try:
            return datasets.load_dataset(self.spec, self.config_name, split="train", streaming=True)
        except Exception as err:  # noqa: BLE001 - any failure here means "cannot stream this dataset"
            raise DataError(f"{self.spec!r} could not be streamed from the Hub (config {self.config_name!r}): "
                            f"{type(err).__name__}: {err}. Check the name and network access, or give a local "
                            "JSON Lines file.") from err

    def batches(self, start_row: int = 0, batch_size: int = _READ_BATCH) -> Iterator[tuple[list[str], list[str]]]:
        """(sources, targets) of up to `batch_size` rows each, from row `start_row` (0-based) on."""
        rows = self._open()
        if start_row:
            rows = rows.skip(start_row)
        row = start_row
        try:
            for batch in rows.iter(batch_size=batch_size):
                sources, targets = self._pairs(batch, row)
                if self.max_rows is not None and row + len(sources) > self.max_rows:
                    sources, targets = sources[: self.max_rows - row], targets[: self.max_rows - row]
                if sources:
                    yield sources, targets
                row += len(sources)
                if self.max_rows is not None and row >= self.max_rows:
                    return
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001 - the reader's own errors say nothing about lines
            if self.path is not None:
                _raise_bad_json_line(self.path)
            raise DataError(f"{self.spec}: could not be read near row {row}: {type(err).__name__}: {err}") from err

    def _pairs(self, batch: dict, first_row: int) -> tuple[list, list]:
        src, tgt = self.src_lang, self.tgt_lang
        if "translation" in batch:
            sources = [(record or {}).get(src) for record in batch["translation"]]
            targets = [(record or {}).get(tgt) for record in batch["translation"]]
            names = (f"translation.{src}", f"translation.{tgt}")
        else:
            names = next(((a, b) for a, b in ((src, tgt), ("source", "target"), ("src", "tgt"))
                          if a in batch and b in batch), None)
            if names is None:
                raise DataError(f"{self.spec}: cannot find source/target text among fields {sorted(batch)}. "
                                f"Expected 'translation' ({{{src!r}: ..., {tgt!r}: ...}}), {src!r}/{tgt!r} or "
                                "'source'/'target'.")
            sources, targets = batch[names[0]], batch[names[1]]
        for name, values in zip(names, (sources, targets)):
            bad = next((i for i, value in enumerate(values) if not isinstance(value, str)), None)
            if bad is not None:
                row = first_row + bad
                where = (f"{self.path}: line {jsonl_line_of_row(self.path, row)}" if self.path is not None
                         else f"{self.spec}: row {row}")
                raise DataError(f"{where}: field {name!r} is missing, null or not text. Fix or delete that record.")
        return list(sources), list(targets)


class StreamCleaner:
    """The map-style cleaning (`clean_translation_dataset`'s train rules, default limits) applied to a stream
    batch by batch, with its report so far."""

    def __init__(self, eval_hashes=frozenset(), normalization: str | None = "NFC", state: dict | None = None,
                 enabled: bool = True):
        state = state or {}
        self.normalization, self.enabled = normalization, enabled
        self.rules = PairRules(eval_hashes=eval_hashes, seen=np.asarray(state.get("seen", ()), dtype=np.uint64))
        self.tally = SplitTally(state.get("tally"))

    def clean(self, sources, targets) -> tuple[list[str], list[str]]:
        if not self.enabled:  # --no_clean_data: the pairs as read, only counted
            self.tally.add(sources, targets, np.full(len(sources), KEEP, dtype=np.int8))
            return list(sources), list(targets)
        src, tgt = normalize_pairs(sources, targets, self.normalization)
        codes = self.rules.codes(src, tgt)
        self.tally.add(src, tgt, codes)
        keep = np.flatnonzero(codes == KEEP).tolist()
        return [src[i] for i in keep], [tgt[i] for i in keep]

    def state(self) -> dict:
        return {"seen": self.rules.seen.to_array(),
                "tally": self.tally.as_dict()}

    def report(self) -> dict:
        return {"settings": cleaning_settings(normalization=self.normalization), "splits": {"train": self.tally.as_dict()}}


def eval_pair_hashes(splits: dict) -> set[int]:
    """`pair_hash`es of the normalised pairs of every split but train: the `eval_overlap` rule's memory."""
    return {pair_hash(*pair) for name, split in splits.items() if name != "train"
            for pair in zip(*normalize_pairs(split["source"], split["target"]))}


def sample_pairs(stream: TranslationStream, size: int, eval_hashes=frozenset(), clean: bool = True) -> datasets.Dataset:
    """The first `size` cleaned pairs of the stream (what a tokenizer is trained on), as a small Dataset."""
    cleaner, sources, targets = StreamCleaner(eval_hashes, enabled=clean), [], []
    for raw_src, raw_tgt in stream.batches():
        src, tgt = cleaner.clean(raw_src, raw_tgt)
        sources += src
        targets += tgt
        if len(sources) >= size:
            break
    if not sources:
        raise DataError(f"{stream.spec}: no training pair is left after cleaning; check the data.")
    logger.info("tokenizer sample: the first %d cleaned pairs of the stream (asked for %d)",
                min(size, len(sources)), size)
    return datasets.Dataset.from_dict({"source": sources[:size], "target": targets[:size]})


class StreamingBatches(torch.utils.data.IterableDataset):
    """Endless token-budget batches (lists of tokenised examples) of a `TranslationStream`; see the module
    docstring. `max_tokens=None` makes batches of `max_sentences` examples of similar length instead."""

    def __init__(self, stream: TranslationStream, tokenizer, *, max_tokens: int | None, max_sentences: int | None = None,
                 max_source_length: int | None = None, max_target_length: int | None = None, source_prefix: str | None = None,
                 buffer_size: int = 100_000, seed: int = 0, rank: int = 0, world_size: int = 1, eval_hashes=frozenset(),
                 clean: bool = True):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        if max_tokens is None and not max_sentences:
            raise ValueError("give max_tokens or max_sentences")
        self.stream, self.tokenizer = stream, tokenizer
        self.max_tokens, self.max_sentences = max_tokens or _NO_BUDGET, max_sentences
        self.max_source_length, self.max_target_length, self.source_prefix = max_source_length, max_target_length, source_prefix
        self.buffer_size, self.seed, self.rank, self.world_size = buffer_size, seed, rank, world_size
        self.eval_hashes, self.clean = eval_hashes, clean
        self._position = {"epoch": 0, "chunk": 0, "row": 0, "taken": 0, "cleaner": None, "first_pass": None}
        self.first_pass_report: dict | None = None  # the cleaning report, once the stream has been read through
        self._cleaner: StreamCleaner | None = None

    # ---- position

    def state_dict(self) -> dict:
        """Where this process stands: restore it with `load_state_dict` to continue with the next batch."""
        return dict(self._position)

    def load_state_dict(self, state: dict) -> None:
        self._position = dict(state)
        self.first_pass_report = state.get("first_pass")

    def cleaning_report(self) -> dict:
        """The whole first pass's report once read through; before that, the rows read so far (`complete`)."""
        if self.first_pass_report is not None:
            return {**self.first_pass_report, "complete": True}
        report = self._cleaner.report() if self._cleaner is not None else StreamCleaner().report()
        return {**report, "complete": False}

    # ---- batches

    def __iter__(self):
        position = self._position
        while True:
            yield from self._epoch(position)
            position.update(epoch=position["epoch"] + 1, chunk=0, row=0, taken=0, cleaner=None)

    def _epoch(self, position: dict):
        cleaner = StreamCleaner(self.eval_hashes, state=position["cleaner"], enabled=self.clean)
        self._cleaner = cleaner
        row, chunk = position["row"], position["chunk"]
        reader = self.stream.batches(start_row=row, batch_size=min(_READ_BATCH, self.buffer_size))
        ended = False
        while not ended:
            # a chunk: the cleaned pairs of whole read batches, at least `buffer_size` of them (unless the
            # stream ends), so the next chunk starts at a row number a resumed run can skip to
            sources: list[str] = []
            targets: list[str] = []
            while len(sources) < self.buffer_size:
                raw = next(reader, None)
                if raw is None:
                    ended = True
                    break
                row += len(raw[0])
                src, tgt = cleaner.clean(*raw)
                sources += src
                targets += tgt
            if sources:  # the chunk takes the lists over: it empties them once tokenised
                yield from self._chunk(sources, targets, position, chunk)
            chunk += 1
            position.update(chunk=chunk, taken=0, row=row, cleaner=cleaner.state())
        if self.first_pass_report is None:
            report = cleaner.report()
            report["splits"]["train"] = cleaner.tally.finish("train (streamed)")
            self.first_pass_report = position["first_pass"] = report

    def _chunk(self, sources: list[str], targets: list[str], position, chunk: int):
        prefixed = [self.source_prefix + s for s in sources] if self.source_prefix else sources
        features = self._tokenize(prefixed, targets)
        del prefixed
        sources.clear()  # the texts are not needed once tokenised: the chunk's memory is its token ids
        targets.clear()
        lengths = features.lengths
        batches = _even_out(_make_batches(lengths, self.max_tokens, self.max_sentences, self.seed + chunk),
                            self.world_size)
        order = np.random.default_rng([self.seed, position["epoch"], chunk]).permutation(len(batches))
        mine = order[self.rank :: self.world_size].tolist()
        for number in range(position["taken"], len(mine)):
            position["taken"] = number + 1
            yield [features[i] for i in batches[mine[number]]]

    def _tokenize(self, sources, targets) -> TokenizedChunk:
        tok, parts = self.tokenizer, {"input_ids": [], "labels": []}
        for start in range(0, len(sources), _READ_BATCH):  # packed a read batch at a time
            inputs = tok(sources[start : start + _READ_BATCH], truncation=self.max_source_length is not None,
                         max_length=self.max_source_length)["input_ids"]
            labels = tok(text_target=targets[start : start + _READ_BATCH],
                         truncation=self.max_target_length is not None, max_length=self.max_target_length)["input_ids"]
            for name, rows in (("input_ids", inputs), ("labels", labels)):
                parts[name].append((np.fromiter(chain.from_iterable(rows), dtype=np.int32),
                                    np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))))
        return TokenizedChunk(parts)


class TokenizedChunk:
    """A chunk's token ids as flat int32 arrays with offsets: 4 bytes a token, where a list of Python ints
    per example costs over 8 plus the list and dict around it. `chunk[i]` is example i as the tokenizer
    gave it (ids, an all-ones attention mask, labels); `lengths` is (examples, 2): source and target tokens."""

    def __init__(self, parts: dict[str, list[tuple[np.ndarray, np.ndarray]]]):
        self.flat, self.starts, sizes = {}, {}, []
        for name in ("input_ids", "labels"):
            lengths = np.concatenate([size for _, size in parts[name]])
            self.flat[name] = np.concatenate([ids for ids, _ in parts[name]])
            self.starts[name] = np.concatenate([[0], np.cumsum(lengths)])
            sizes.append(lengths)
        self.lengths = np.stack(sizes, axis=1)

    def __len__(self) -> int:
        return len(self.lengths)

    def _ids(self, name: str, i: int) -> list[int]:
        return self.flat[name][self.starts[name][i] : self.starts[name][i + 1]].tolist()

    def __getitem__(self, i: int) -> dict:
        ids = self._ids("input_ids", i)
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": self._ids("labels", i)}
