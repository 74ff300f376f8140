"""`--data_cache_dir DIR`: a second run on the same data and settings reuses the cleaned pairs, the trained
tokenizer and the tokenised splits instead of preparing them again.

Each entry is a folder under DIR named by a hash of what decides its content: the data files' contents
(`rerun.data_fingerprint`: content hashes, not names or dates), the data settings, and for the later
stages the earlier stage's key plus the tokenizer's own settings or its serialised vocabulary. Change any
of them and the key changes: a miss, prepared and stored afresh. Hub data (whose revision is unknown before
download) is not cached. Every lookup is logged as a hit or a miss. Entries are written to a temporary
folder and renamed into place, so a crashed or concurrent run never leaves half an entry.
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from datasets import DatasetDict, load_from_disk

from .rerun import data_fingerprint

logger = logging.getLogger(__name__)

FORMAT = 1  # bump when cleaning, tokenising or the stored layout change what an entry holds

DATA_SETTINGS = ("dataset_name", "dataset_config_name", "source_lang", "target_lang", "max_train_samples",
                 "clean_data", "source_prefix")


def _digest(parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


class DataCache:
    """The cache of one run's data; `None` from `for_run` when the run has none."""

    def __init__(self, root: str | Path, data_key: dict):
        self.root = Path(root).expanduser()
        self.key = _digest({"format": FORMAT, **data_key})
        self.hits: dict[str, bool] = {}

    @classmethod
    def for_run(cls, data, seed: int) -> "DataCache | None":
        if not getattr(data, "data_cache_dir", None):
            return None
        fingerprint = data_fingerprint(data, seed)
        if not fingerprint:  # a missing file: the loader names it
            return None
        if fingerprint == {"dataset": {"name": data.dataset_name, "config": data.dataset_config_name}}:
            logger.info("data cache: not used (Hub data has no content fingerprint before it is downloaded)")
            return None
        settings = {name: getattr(data, name, None) for name in DATA_SETTINGS}
        return cls(data.data_cache_dir, {"data": _content_only(fingerprint), "settings": settings, "seed": seed})

    def stage_key(self, stage: str, **extra) -> str:
        return _digest({"base": self.key, "stage": stage, **extra})

    def datasets(self, stage: str, make: Callable[[], DatasetDict], **extra) -> DatasetDict:
        """The cached `DatasetDict` of this stage, or `make()`'s, stored."""
        folder = self.root / self.stage_key(stage, **extra)
        if (folder / "dataset_dict.json").is_file():
            self._log(stage, True, folder)
            return load_from_disk(str(folder))
        made = make()
        self._store(folder, lambda tmp: made.save_to_disk(str(tmp)))
        self._log(stage, False, folder)
        return load_from_disk(str(folder))  # memory-mapped from the cache, as a hit would be

    def files(self, stage: str, target: Path, make: Callable[[Path], object], **extra) -> Path:
        """Fill `target` with the cached files of this stage, or with what `make(target)` writes (then stored)."""
        folder = self.root / self.stage_key(stage, **extra)
        target = Path(target)
        if folder.is_dir():
            self._log(stage, True, folder)
            shutil.copytree(folder, target, dirs_exist_ok=True)
            return target
        make(target)
        self._store(folder, lambda tmp: shutil.copytree(target, tmp, dirs_exist_ok=True))
        self._log(stage, False, folder)
        return target

    def json(self, stage: str, make: Callable[[], dict], **extra) -> dict:
        folder = self.root / self.stage_key(stage, **extra)
        if (folder / "value.json").is_file():
            self._log(stage, True, folder)
            return json.loads((folder / "value.json").read_text("utf-8"))
        value = make()
        self._store(folder, lambda tmp: (tmp / "value.json").write_text(json.dumps(value), "utf-8"))
        self._log(stage, False, folder)
        return value

    def _store(self, folder: Path, write: Callable[[Path], object]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=self.root))
        try:
            write(tmp)
            os.replace(tmp, folder)
        except OSError:
            if not folder.exists():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # another run stored the same entry first: keep theirs

    def _log(self, stage: str, hit: bool, folder: Path) -> None:
        self.hits[stage] = hit
        logger.info("data cache: %s for %s (%s)", "hit, reused" if hit else "miss, prepared and stored", stage, folder)


def _content_only(fingerprint: dict) -> dict:
    """The fingerprint without file paths: moving or renaming the files keeps the cache."""
    return {split: {k: v for k, v in entry.items() if k != "path"} if isinstance(entry, dict) else entry
            for split, entry in fingerprint.items()}


def tokenizer_fingerprint(tokenizer) -> str:
    """What the tokenizer does: its serialised model, normaliser, pre-tokeniser and special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode()).hexdigest()
