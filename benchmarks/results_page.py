"""Results pages that a rerun rewrites above a marker line, keeping the hand-written notes below it."""

from pathlib import Path


def write_keeping_notes(path: Path, text: str, marker: str) -> str:
    """Write `text` to `path`, then `marker` and whatever followed the marker in the old file; returns it all."""
    old = path.read_text("utf-8") if path.is_file() else ""
    notes = old.split(marker, 1)[1] if marker in old else "\n"
    page = text.rstrip("\n") + "\n\n" + marker + notes
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, "utf-8")
    return page
