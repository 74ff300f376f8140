"""An English text corpus every machine has: the docstrings of Python's own standard library.

The text-generation recipe's embedded default trains on it, so it runs with no network and no data
folder. One document per documented module, class, function or method (`inspect.getdoc`), headed by
its dotted name; the same docstring inherited by several classes is kept once. The corpus depends on
the Python version (3.11: about 1,300 documents, 0.4 MB).

    write_stdlib_corpus("outputs/x/data")   # -> train.jsonl, validation.jsonl ({"text": ...} per line)
"""

import importlib
import inspect
import json
import random
from pathlib import Path

MODULES = (
    "abc argparse base64 bisect calendar collections contextlib copy csv dataclasses datetime decimal difflib "
    "enum fractions functools glob gzip hashlib heapq hmac html http.client inspect io ipaddress itertools json "
    "logging math operator os pathlib pickle pprint queue random re shlex shutil socket sqlite3 statistics "
    "string struct subprocess tarfile tempfile textwrap threading time timeit tokenize typing unittest "
    "urllib.parse uuid warnings weakref zipfile zlib"
).split()
MIN_CHARS = 40  # shorter docstrings ("Return self.") teach little


def _documented(module) -> list[tuple[str, object]]:
    """(dotted name, object) of the module, its public classes and functions, and the classes' methods."""
    items = [(module.__name__, module)]
    for name, value in sorted(vars(module).items()):
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(value):
            items.append((f"{module.__name__}.{name}", value))
            items += [(f"{module.__name__}.{name}.{member}", attribute)
                      for member, attribute in sorted(vars(value).items())
                      if not member.startswith("_") and callable(attribute)]
        elif inspect.isfunction(value) or inspect.isbuiltin(value):
            items.append((f"{module.__name__}.{name}", value))
    return items


def stdlib_documents(modules=MODULES) -> list[str]:
    """`"<dotted name>\\n\\n<docstring>"` for every documented object of `modules`, in a fixed order."""
    documents, seen = [], set()
    for module_name in modules:
        for name, value in _documented(importlib.import_module(module_name)):
            doc = inspect.getdoc(value)
            if doc and len(doc) >= MIN_CHARS and doc not in seen:
                seen.add(doc)
                documents.append(f"{name}\n\n{doc}")
    return documents


def write_stdlib_corpus(directory, validation_fraction: float = 0.05, seed: int = 0) -> dict[str, Path]:
    """Shuffle the documents with `seed`, hold out `validation_fraction`, write `train.jsonl` and
    `validation.jsonl` into `directory`; returns {split: path}."""
    documents = stdlib_documents()
    random.Random(seed).shuffle(documents)
    held_out = max(1, round(len(documents) * validation_fraction))
    splits = {"train": documents[held_out:], "validation": documents[:held_out]}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, texts in splits.items():
        paths[split] = directory / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps({"text": text}) + "\n" for text in texts), "utf-8")
    return paths
