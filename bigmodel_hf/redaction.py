"""What must never leave the machine with a shared model: access tokens and local paths.

`find_leaks` scans bytes (a card, a config, a weights file) for the user's Hugging Face tokens, anything
shaped like one, and absolute paths of this machine (home, working directory, the output directory).
`redact_local_paths` rewrites the values of a settings mapping (the resolved run config) so absolute
paths become their last component: `/home/alice/data/train.jsonl` -> `train.jsonl`.
"""

import mmap
import os
import re
from collections.abc import Iterable
from pathlib import Path

from huggingface_hub import get_token

TOKEN_PATTERN = re.compile(rb"hf_[A-Za-z0-9]{30,}")  # user access tokens are `hf_` + 34 letters and digits


def known_tokens(*extra: str | None) -> list[str]:
    """The Hugging Face tokens this machine would use (`HF_TOKEN`, the stored login) and any given ones."""
    tokens = [*extra, os.environ.get("HF_TOKEN"), get_token()]
    return sorted({token for token in tokens if token and len(token) >= 8})


def local_path_prefixes(*paths: str | os.PathLike | None) -> list[str]:
    """Absolute paths that identify this machine: the home and working directories and `paths`.

    Both the given and the resolved form of each (symlinks), longest first so a scan names the most
    specific one. The file-system root alone is never a prefix.
    """
    prefixes = set()
    for path in (Path.home(), Path.cwd(), *paths):
        if path is None:
            continue
        path = Path(path).expanduser()
        for form in (path.absolute(), path.resolve()):
            if len(form.parts) >= 2:
                prefixes.add(str(form))
    return sorted(prefixes, key=len, reverse=True)


def _path_pattern(prefixes: Iterable[str]) -> re.Pattern | None:
    """A prefix as a whole path: `/home/al` must not match inside `/home/alice`."""
    alternatives = [re.escape(p.encode()) for p in prefixes]
    if not alternatives:
        return None
    return re.compile(rb"(?:" + rb"|".join(alternatives) + rb")(?![A-Za-z0-9_.-])")


def find_leaks(data: bytes | mmap.mmap, tokens: Iterable[str], prefixes: Iterable[str]) -> list[str]:
    """Descriptions of the secrets and local paths found in `data` (empty when clean)."""
    found = []
    if any(token.encode() in data for token in tokens) or TOKEN_PATTERN.search(data):
        found.append("a Hugging Face access token")
    pattern = _path_pattern(prefixes)
    if pattern is not None:
        paths = sorted({match.group().decode(errors="replace") for match in pattern.finditer(data)})
        found += [f"the local path {path}" for path in paths]
    return found


def find_leaks_in_file(path: str | os.PathLike, tokens: Iterable[str], prefixes: Iterable[str]) -> list[str]:
    """`find_leaks` over a file, memory-mapped so multi-gigabyte weights are not read into memory."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return []
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return find_leaks(data, tokens, prefixes)


def redact_local_paths(values, prefixes: Iterable[str] = ()):
    """A copy of `values` (nested dicts/lists of settings) with local paths reduced to their last component.

    A string that is an absolute path (or starts with `~`) becomes its name; any other string that
    contains one of `prefixes` gets it replaced by `<local>`.
    """
    prefixes = list(prefixes)
    if isinstance(values, dict):
        return {key: redact_local_paths(value, prefixes) for key, value in values.items()}
    if isinstance(values, (list, tuple)):
        return [redact_local_paths(value, prefixes) for value in values]
    if not isinstance(values, str):
        return values
    if os.path.isabs(values) or values.startswith("~") or re.match(r"^[A-Za-z]:[\\/]", values):
        return Path(values.replace("\\", "/").rstrip("/")).name or values
    for prefix in prefixes:
        values = values.replace(prefix, "<local>")
    return values
