"""JSON Lines read and written one way everywhere: records split at "\\n" only; translation pairs in the Hub
layout `{"translation": {src_lang: ..., tgt_lang: ...}}`, which `data.load_translation_dataset` reads.

`str.splitlines()` also splits at U+2028, U+2029, \\x85, \\x0b, \\x0c and \\x1c-\\x1e, which JSON allows
unescaped inside strings: a sentence holding one would be cut into two invalid lines.
"""

import json
from pathlib import Path

from .errors import DataError


def read_json_lines(path: str | Path) -> list:
    """The records of a JSON Lines file, blank lines skipped; DataError naming the file and line if one
    is not JSON."""
    path = Path(path)
    records = []
    for number, line in enumerate(path.read_text("utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: line {number}, column {error.colno}: not valid JSON ({error.msg}). "
                            "JSON Lines need one complete JSON value per line.") from None
    return records


def translation_line(source: str, target: str, source_lang: str, target_lang: str) -> str:
    """One translation pair as a JSON Lines record in the Hub layout, newline included."""
    return json.dumps({"translation": {source_lang: source, target_lang: target}}, ensure_ascii=False) + "\n"


def text_of(record, *fields: str):
    """The first of `fields` that a record holds, read inside `record["translation"]` when it has that Hub
    layout; None when it holds none (or is no object)."""
    if not isinstance(record, dict):
        return None
    pair = record.get("translation")
    holder = pair if isinstance(pair, dict) else record
    return next((holder[field] for field in fields if field in holder), None)
