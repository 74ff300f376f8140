"""JSON Lines read one way everywhere: records split at "\\n" only.

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
