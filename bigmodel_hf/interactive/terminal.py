"""`bigmodel-hf translate --interactive`: the accept / correct / approve loop on a plain terminal.

Reads commands with `input()`, so it works over ssh, in a pipe and in tests fed through stdin.
"""

import sys
from collections.abc import Callable, Iterable, Iterator

from .engine import Completion
from .session import CorrectionLog, TranslationSession

HELP = """\
Commands (then Enter):
  (nothing)   approve the proposal as shown, save it, go to the next sentence
  N           accept the first N words: the cursor '|' moves behind word N
  text        your correction after the cursor: it replaces the rest, the model completes the sentence
  text*       the same, the last word unfinished: the model finishes it (e.g. "perr*")
  #K          show alternative K instead of the proposal
  /end        approve the accepted words and your typing only, dropping the model's rest
  /skip       go to the next sentence without saving
  /quit       stop; approved translations are already saved
  /help       this text
Start a line with a space to type a correction that looks like a command (" 3", " /end").
Words marked '?' are ones the model is unsure of (probability below {threshold:g})."""


def render(session: TranslationSession, threshold: float) -> str:
    """The proposal with the cursor, word numbers (marked '?' where unsure) and the alternatives."""
    proposal = session.proposal
    cursor = len(session.accepted)
    top, bottom = ["  "], ["  "]
    for number, word in enumerate(proposal.words, 1):
        if number == cursor + 1:
            top.append("| ")
            bottom.append("  ")
        label = f"{number}{'?' if word.probability is not None and word.probability < threshold else ''}"
        width = max(len(word.text), len(label)) + 1
        top.append(word.text.ljust(width))
        bottom.append(label.ljust(width))
    if cursor >= len(proposal.words):
        top.append("|")
    lines = ["".join(top).rstrip(), "".join(bottom).rstrip()]
    for index, alternative in enumerate(proposal.alternatives[1:], 2):
        lines.append(f"  #{index} {_difference(proposal, alternative)}")
    return "\n".join(lines)


def _difference(best: Completion, other: Completion) -> str:
    """`other` from the first word where it leaves `best`, with '...' for the shared start."""
    a, b = best.text.split(), other.text.split()
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return ("... " if same else "") + (" ".join(b[same:]) or "(ends here)")


def run_terminal(engine, log: CorrectionLog, sources: Iterable[str] | None = None,
                 input_fn: Callable[[str], str] = input, out=None, threshold: float = 0.5, adapter=None) -> int:
    """Translate `sources` (or sentences typed at a `source>` prompt) one by one; returns how many
    translations were approved and appended to `log` (and handed to `adapter`, an `OnlineAdapter`, if any)."""
    out = out or sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    def ask(prompt: str) -> str | None:
        try:
            return input_fn(prompt)
        except EOFError:
            return None

    say(HELP.format(threshold=threshold))
    say(f"Approved translations are appended to {log.path}")
    saved = 0
    for number, source in enumerate(_sources(sources, ask), 1):
        session = TranslationSession(engine, source)
        say(f"\n[{number}] {source}")
        while session.approved is None:
            say(render(session, threshold))
            line = ask("> ")
            if line is None or line.rstrip() == "/quit":
                say(f"{saved} translation(s) saved to {log.path}")
                return saved
            command = line.strip()
            is_command = not line.startswith(" ")  # a leading space: whatever follows is a correction
            try:
                if not command:
                    session.approve()
                elif is_command and command == "/end":
                    session.approve_prefix()
                elif is_command and command == "/skip":
                    break
                elif is_command and command == "/help":
                    say(HELP.format(threshold=threshold))
                elif is_command and command.isdigit():
                    session.accept(int(command))
                elif is_command and command.startswith("#") and command[1:].isdigit():
                    session.choose(int(command[1:]) - 1)
                else:  # a trailing space finishes the last word; "*" leaves it for the model to finish
                    session.type(command[:-1] if command.endswith("*") else command + " ")
            except ValueError as error:
                say(f"  ! {error}")
        if session.approved is not None:
            log.append(source, session.approved)
            saved += 1
            say(f"  saved: {session.approved}")
            if adapter is not None:
                adapter.learn(source, session.approved)
                say(adapter.describe())
    say(f"{saved} translation(s) saved to {log.path}")
    return saved


def _sources(sources: Iterable[str] | None, ask) -> Iterator[str]:
    if sources is not None:
        yield from (s for s in sources if s.strip())
        return
    while (line := ask("source> ")) is not None and line.strip():
        yield line.strip()
