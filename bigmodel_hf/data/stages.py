"""What each data preparation stage did and how long it took: rows in and out, seconds, rows per second.

    stages = StageLog()
    with stages.stage("clean", rows_in=len(raw["train"])) as record:
        cleaned = ...
        record["rows_out"] = len(cleaned["train"])
    stages.as_list()   # -> run_info.json's "data_stages"

Each stage is logged as it ends (one line); the long ones show `datasets`' own progress bars meanwhile.
"""

from __future__ import annotations

import logging
import sys
import time

try:
    import resource
except ImportError:  # Windows: no peak RSS in the stage records
    resource = None
from contextlib import contextmanager

logger = logging.getLogger(__name__)


class StageLog:
    def __init__(self):
        self.records: list[dict] = []

    @contextmanager
    def stage(self, name: str, rows_in: int | None = None, **facts):
        """Time the block; `rows_out` (set on the yielded record) defaults to `rows_in`."""
        record = {"stage": name, "rows_in": rows_in, **facts}
        started = time.perf_counter()
        yield record
        seconds = time.perf_counter() - started
        record.setdefault("rows_out", rows_in)
        record["seconds"] = round(seconds, 3)
        rows = record["rows_in"]
        record["rows_per_second"] = round(rows / seconds, 1) if rows and seconds > 0 else None
        record["peak_rss_mb"] = _peak_rss_mb()
        self.records.append(record)
        logger.info("data stage %s: %s -> %s rows in %.2f s (%s rows/s; peak RSS %s MB)%s", name, rows,
                    record["rows_out"], seconds, record["rows_per_second"], record["peak_rss_mb"],
                    "".join(f"; {k}={v}" for k, v in facts.items()))

    def as_list(self) -> list[dict]:
        return [dict(record) for record in self.records]


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory so far: the stage that raised it is the one that holds data per row."""
    if resource is None:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 1024), 1)  # bytes on macOS, KiB on Linux
