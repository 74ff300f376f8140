"""One sentence's human-in-the-loop loop, independent of any interface, and the log of approved translations.

    session = TranslationSession(engine, "The cat sees a dog.")
    session.proposal.text          # the model's full proposal
    session.accept(2)              # the first two words are right: the cursor moves behind them
    session.type("ve")             # what the person is typing after the cursor (a half word is fine)
    session.type("ve un ")         # ...and more; a trailing space closes the last word
    log.append(session.source, session.approve())   # the proposal as shown; approve_prefix() drops the model's rest

The terminal and the web page only translate key presses into these calls, so both behave the same.
"""

import json
import os
from pathlib import Path

import yaml

from ..data.jsonl import read_json_lines
from .engine import Completion, CompletionEngine


class TranslationSession:
    def __init__(self, engine: CompletionEngine, source: str):
        self.engine = engine
        self.source = source
        self.accepted: list[str] = []   # words before the cursor, taken as final
        self.typed = ""                 # the person's text after the cursor, possibly ending mid-word
        self.completions = 0            # how many times the model was asked (one per edit)
        self.approved: str | None = None
        self.proposal = self._complete()

    @property
    def prefix(self) -> str:
        accepted = " ".join(self.accepted)
        return f"{accepted} {self.typed}" if accepted and self.typed else (accepted + " " if accepted else self.typed)

    def _complete(self) -> Completion:
        self.completions += 1
        return self.engine.complete(self.source, self.prefix)

    def accept(self, count: int) -> None:
        """Take the first `count` words of the proposal as final (fewer than before moves the cursor back).

        The proposal already agrees with them, so the model is not asked again.
        """
        words = self.proposal.text.split()
        if not 0 <= count <= len(words):
            raise ValueError(f"the proposal has {len(words)} words; cannot accept {count}")
        self.accepted, self.typed = words[:count], ""

    def type(self, text: str) -> Completion:
        """The person's correction after the cursor, replacing the rest of the proposal; the model completes
        it. Text that does not end in a space may end in an unfinished word the model finishes."""
        self.typed = text.lstrip()
        self.proposal = self._complete()
        return self.proposal

    def choose(self, index: int) -> None:
        """Show alternative `index` (0 = best) of the current proposal instead; the prefix is the same."""
        alternatives = self.proposal.alternatives or [self.proposal]
        if not 0 <= index < len(alternatives):
            raise ValueError(f"there are {len(alternatives)} alternatives; no number {index + 1}")
        chosen = alternatives[index]
        self.proposal = Completion(chosen.prefix, chosen.text, chosen.words, chosen.token_ids,
                                   chosen.token_probabilities, chosen.score, self.proposal.alternatives)

    def approve(self, text: str | None = None) -> str:
        """The final translation: `text` if given, else the whole proposal as shown."""
        final = " ".join((text if text is not None else self.proposal.text).split())
        if not final:
            raise ValueError("an empty translation cannot be approved")
        self.approved = final
        return final

    def approve_prefix(self) -> str:
        """Approve the accepted words and the person's typing, dropping the model's continuation (it ran on)."""
        return self.approve(self.prefix)


class CorrectionLog:
    """Appends approved pairs as `{"translation": {src_lang: ..., tgt_lang: ...}}` lines, the Hub layout
    `recipes/translate.py --train_file` reads. Each line is flushed to disk at once: it is a person's work."""

    def __init__(self, path: str | os.PathLike, source_lang: str, target_lang: str):
        if source_lang == target_lang:
            raise ValueError(f"source and target language are both {source_lang!r}")
        self.path, self.source_lang, self.target_lang = Path(path), source_lang, target_lang

    def append(self, source: str, translation: str) -> None:
        row = {"translation": {self.source_lang: source, self.target_lang: translation}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(row, ensure_ascii=False) + "\n")
            file.flush()
            os.fsync(file.fileno())

    def __len__(self) -> int:
        if not self.path.is_file():
            return 0
        # records end at "\n" only (see data.jsonl); counted, not parsed, so one bad line never breaks the page
        return sum(1 for line in self.path.read_text("utf-8").split("\n") if line.strip())


def model_languages(model_dir, source_lang: str | None = None, target_lang: str | None = None) -> tuple[str, str]:
    """Language codes for the log: the flags if given, else the run's run_config.yaml."""
    run_config = Path(model_dir) / "run_config.yaml"
    saved = (yaml.safe_load(run_config.read_text("utf-8")) or {}) if run_config.is_file() else {}
    source, target = source_lang or saved.get("source_lang"), target_lang or saved.get("target_lang")
    if not source or not target:
        raise ValueError(f"{model_dir} has no run_config.yaml naming its languages; "
                         "give --source_lang and --target_lang")
    return source, target


def read_sources(path: str | os.PathLike, source_lang: str) -> list[str]:
    """Sentences to translate: a plain text file (one per line) or JSON Lines in any layout the recipe
    reads (`translation.<lang>`, `<lang>`, or `source`)."""
    path = Path(path)
    if path.suffix not in (".jsonl", ".json"):
        return [line.strip() for line in path.read_text("utf-8").split("\n") if line.strip()]
    sources = []
    for number, row in enumerate(read_json_lines(path), 1):
        row = row.get("translation", row)
        text = row.get(source_lang, row.get("source"))
        if not isinstance(text, str):
            raise ValueError(f"{path}:{number}: no {source_lang!r} or 'source' text")
        sources.append(text)
    return sources
