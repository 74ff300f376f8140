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

from ..data.errors import DataError
from ..data.jsonl import read_json_lines, text_of, translation_line
from .api_fields import MAX_TEXT_CHARS as MAX_SOURCE_CHARS
from .engine import Completion, CompletionEngine


class TranslationSession:
    def __init__(self, engine: CompletionEngine, source: str, target_lang: str | None = None):
        """`target_lang`: the language a multilingual engine completes in (None: the engine's own)."""
        self.engine = engine
        self.source = source
        self.target_lang = target_lang
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
        direction = {"target_lang": self.target_lang} if self.target_lang else {}
        completion = self.engine.complete(self.source, self.prefix, **direction)
        self.completions += 1  # counted once it succeeded: a failed edit leaves the session as it was
        return completion

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
        previous, self.typed = self.typed, text.lstrip()
        try:
            self.proposal = self._complete()
        except BaseException:  # the session stays as it was shown, whatever the model did
            self.typed = previous
            raise
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
        self._check_appendable()

    def _check_appendable(self) -> None:
        """Refuse at start-up what would make every later append fail or corrupt the file: a folder in the
        way, a path under a regular file, no write permission, or a last line cut short (JSON Lines only)."""
        path = self.path
        if path.is_dir():
            raise ValueError(f"corrections file {path} is a folder; give a file path (e.g. {path}/corrections.jsonl)")
        ancestor = path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise ValueError(f"corrections file {path} would be under {ancestor}, which is a file, not a folder; "
                             "give another --corrections path")
        writable = path if path.exists() else ancestor
        if not os.access(writable, os.W_OK):
            raise ValueError(f"corrections file {path}: {writable} is not writable; give another --corrections path")
        if path.is_file() and path.stat().st_size:
            try:
                read_json_lines(path)
            except UnicodeDecodeError:
                raise ValueError(f"corrections file {path} is not UTF-8 text; give another --corrections path") \
                    from None
            except DataError as error:
                raise ValueError(f"corrections file {error} Fix or remove that line before appending to it.") \
                    from None
            with path.open("rb") as file:
                file.seek(-1, os.SEEK_END)
                if file.read(1) != b"\n":
                    raise ValueError(f"corrections file {path} does not end with a newline (cut short?); "
                                     "fix its last line before appending to it")

    def append(self, source: str, translation: str, target_lang: str | None = None) -> None:
        """`target_lang`: the language of this translation, when not the log's own (a multilingual model)."""
        target_lang = target_lang or self.target_lang
        if target_lang == self.source_lang:
            raise ValueError(f"source and target language are both {target_lang!r}")
        line = translation_line(source, translation, self.source_lang, target_lang)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(line)
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
    if path.is_dir():
        raise ValueError(f"--source_file {path} is a folder; give a text or JSON Lines file")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[:error.start].count(b"\n") + 1
        raise ValueError(f"{path}: line {line}: bytes are not valid UTF-8; convert the file to UTF-8") from None
    json_lines = path.suffix in (".jsonl", ".json")
    sources = []
    for number, line in enumerate(text.split("\n"), 1):  # numbered as an editor shows them
        if not line.strip():
            continue
        source = _source_of(line, path, number, source_lang) if json_lines else line
        sources.append(clean_source(source, f"{path}: line {number}"))
    return sources


def clean_source(text: str, where: str) -> str:
    """A queued source sentence with its whitespace collapsed, or ValueError naming `where` it came from:
    too long for the model's inputs, or not valid Unicode (a JSON escape of half a surrogate pair)."""
    source = " ".join(text.split())
    if len(source) > MAX_SOURCE_CHARS:
        raise ValueError(f"{where}: the sentence is {len(source)} characters long; at most {MAX_SOURCE_CHARS} "
                         "(split it)")
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: the sentence holds a lone surrogate; give valid Unicode") from None
    return source


def _source_of(line: str, path: Path, number: int, source_lang: str) -> str:
    """The source text of one JSON Lines row of `read_sources`."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: line {number}, column {error.colno}: not valid JSON ({error.msg})") from None
    text = text_of(row, source_lang, "source")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{path}: line {number}: expected an object with a {source_lang!r} (or 'source', or "
                         f"'translation.{source_lang}') text, got {line.strip()[:60]}")
    return text
