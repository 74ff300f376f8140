"""`DataError`: the one exception type for bad training data, and helpers that locate the problem.

Every message names the file (and line / column / split where known) and says what to do about it.
"""

from __future__ import annotations

import codecs
from pathlib import Path


class DataError(ValueError):
    """Bad input data: missing file, wrong column, undecodable bytes, null field, empty split..."""


def check_utf8(path: str | Path, chunk_bytes: int = 1 << 22) -> None:
    """Raise `DataError` naming line and byte column of the first byte sequence that is not UTF-8.

    Streams the file in chunks (constant memory); only on failure is the file re-read to locate the error.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(chunk_bytes):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        data = Path(path).read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
            bad = data[err.start : err.end].hex(" ")
            raise DataError(
                f"{path}: line {line}, byte column {column}: bytes [{bad}] are not valid UTF-8 ({err.reason}). "
                "Re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 in > out`, or fix that line."
            ) from None
        raise  # pragma: no cover - incremental and whole-file decoding disagree


def jsonl_line_of_row(path: str | Path, row: int) -> int:
    """1-based line number of the `row`-th (0-based) non-blank line of a JSON Lines file."""
    seen = -1
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                seen += 1
                if seen == row:
                    return number
    return row + 1
