"""A simulated translator, to measure how much typing interactive translation saves.

The simulated person wants exactly the reference. Shown a proposal, they accept its longest prefix of
correct words and type the next reference word in full (a word with its trailing space: finished), and
the model completes again; when the accepted words are the whole reference they approve, cutting off
anything the model added after it. Words typed / reference words is the word-stroke ratio: 1.0 means the
model saved nothing (everything typed), 0.0 means the first proposal was right.

`simulate_keystrokes` is the same person typing character by character instead: after every keystroke
the model re-completes the half-typed word, and the person accepts as soon as the proposal is right
again. Keystrokes / reference characters is then the keystroke ratio (a click to accept is free in both).
"""

import time
import unicodedata
from dataclasses import dataclass, field


@dataclass
class SimulatedSentence:
    reference_words: int
    reference_chars: int = 0   # the reference with single spaces, as typing it all would cost
    words_typed: int = 0
    chars_typed: int = 0       # the typed words' characters, a space after each
    completions: int = 0
    cut_overrun: bool = False  # the last proposal went on past the reference and the person cut it
    latencies_ms: list[float] = field(default_factory=list)


def propose(engine, source: str, prefix: str, target: list[str], result: SimulatedSentence, on_completion) -> int:
    """One completion, timed and counted in `result`; returns how many leading words of it are right.
    When all of the reference is right, records whether the proposal ran on past it."""
    started = time.perf_counter()
    proposal = engine.complete(source, prefix, num_alternatives=1).text.split()
    ms = (time.perf_counter() - started) * 1000
    result.completions += 1
    result.latencies_ms.append(ms)
    if on_completion is not None:
        on_completion(prefix, ms)
    correct = 0
    while correct < min(len(proposal), len(target)) and proposal[correct] == target[correct]:
        correct += 1
    if correct == len(target):
        result.cut_overrun = len(proposal) > len(target)
    return correct


def simulate_sentence(engine, source: str, reference: str, on_completion=None) -> SimulatedSentence:
    """Drive `engine` as the simulated translator on one pair; `on_completion(prefix, ms)` sees each call."""
    target = unicodedata.normalize("NFC", reference).split()  # as the prefix is normalised
    result = SimulatedSentence(reference_words=len(target), reference_chars=len(" ".join(target)))
    prefix = ""
    for _ in range(len(target) + 1):  # each round types one word, so at most one round per word (+ the first)
        correct = propose(engine, source, prefix, target, result, on_completion)
        if correct == len(target):
            return result
        result.words_typed += 1
        result.chars_typed += len(target[correct]) + 1
        prefix = " ".join(target[:correct + 1]) + " "
    raise AssertionError(f"the prefix constraint failed: {prefix!r} did not stay in the proposal")


def summarize(sentences: list[SimulatedSentence]) -> dict:
    """Totals and per-sentence means over simulated sentences."""
    count = len(sentences)
    typed = sum(s.words_typed for s in sentences)
    words = sum(s.reference_words for s in sentences)
    return {
        "sentences": count,
        "reference_words": words,
        "words_typed": typed,
        "word_stroke_ratio": typed / words if words else 0.0,
        "chars_typed": sum(s.chars_typed for s in sentences),
        "reference_chars": sum(s.reference_chars for s in sentences),
        "char_ratio": sum(s.chars_typed for s in sentences) / max(1, sum(s.reference_chars for s in sentences)),
        "words_typed_per_sentence": typed / count if count else 0.0,
        "reference_words_per_sentence": words / count if count else 0.0,
        "completions_per_sentence": sum(s.completions for s in sentences) / count if count else 0.0,
        "first_proposal_right": sum(s.words_typed == 0 for s in sentences),
        "cut_overruns": sum(s.cut_overrun for s in sentences),
    }


def simulate_keystrokes(engine, source: str, reference: str, on_completion=None) -> SimulatedSentence:
    """Like `simulate_sentence`, typing one character at a time; `chars_typed` counts the keystrokes
    (characters and the spaces that finish words) and `words_typed` the words that needed any."""
    target = unicodedata.normalize("NFC", reference).split()
    result = SimulatedSentence(reference_words=len(target), reference_chars=len(" ".join(target)))
    accepted, typed, prefix = 0, "", ""
    for _ in range(result.reference_chars + len(target) + 2):  # one keystroke or one acceptance per round
        correct = propose(engine, source, prefix, target, result, on_completion)
        if correct == len(target):
            return result
        if correct > accepted:  # the model finished the word (and maybe more) right: accept up to there
            accepted, typed = correct, ""
        word = target[accepted]
        if len(typed) < len(word):
            result.words_typed += not typed
            typed += word[len(typed)]
            prefix = " ".join(target[:accepted] + [typed])  # no trailing space: the word is unfinished
        else:  # all of it typed, yet the model would go on with it ("casa" -> "casas"): finish it
            accepted, typed = accepted + 1, ""
            prefix = " ".join(target[:accepted]) + " "
        result.chars_typed += 1
    raise AssertionError(f"the prefix constraint failed: {prefix!r} did not stay in the proposal")
