"""Decode consistently with a target prefix the person typed, including a half-typed last word.

The prefix is split in two. Its complete words are tokenised and forced through the decoder as
`decoder_input_ids` (words tokenise the same alone as in context with our word-splitting pre-tokenizers).
The rest - the characters of an unfinished word, or just the word boundary after a finished one - is a
byte string the next generated tokens must spell: a token is allowed while its surface and what is
still required agree on their common length. Forcing the tokens of a half word instead ("▁v" for "v")
would push the model off the segmentation it was trained on ("▁ve"); spelling lets it pick "▁ve" itself.
"""

import bisect
import unicodedata
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor


@dataclass(frozen=True)
class PrefixPlan:
    text: str            # the prefix as it will be shown: NFC, single spaces, trailing space kept
    forced_ids: list[int]  # tokens of the complete words, forced after the decoder start token
    required: bytes      # what the generated tokens must spell first (b"" = nothing, plain decoding)


def normalize_prefix(prefix: str) -> str:
    """NFC (as our tokenizers normalise) with runs of whitespace made one space; a trailing one is kept."""
    prefix = unicodedata.normalize("NFC", prefix)
    words = prefix.split()
    if not words:
        return ""
    return " ".join(words) + (" " if prefix[-1].isspace() else "")


def plan_prefix(tokenizer, surfaces: list[bytes], prefix: str) -> PrefixPlan:
    """Split `prefix` into forced tokens and required bytes (see the module docstring)."""
    text = normalize_prefix(prefix)
    if not text:
        return PrefixPlan("", [], b"")
    complete, _, partial = text.rpartition(" ") if not text.endswith(" ") else (text.rstrip(), " ", "")

    def encode(words: str) -> list[int]:
        return tokenizer(text_target=words, add_special_tokens=False)["input_ids"] if words else []

    forced = encode(complete)
    # with no half word, a stand-in letter shows how the next word starts (b" a", or b"a" at the very start)
    stand_in = partial or _spellable_letter(tokenizer)
    probe = encode(f"{complete} {stand_in}".lstrip())
    spelled = b"".join(surfaces[i] for i in probe)
    forced_spelling = b"".join(surfaces[i] for i in forced)
    unknown = tokenizer.unk_token_id is not None and tokenizer.unk_token_id in probe[len(forced):]
    if probe[:len(forced)] != forced or not spelled.startswith(forced_spelling) or unknown \
            or not spelled.endswith(stand_in.encode("utf-8")):
        # a character the vocabulary cannot spell, a normaliser that changes the typed text (lowercasing),
        # or a tokenizer that merges across words: force the whole prefix as tokens instead
        return PrefixPlan(text, encode(text.strip()), b"")
    required = spelled[len(forced_spelling):]
    if not partial:
        required = required[: -len(stand_in.encode("utf-8"))]  # keep only the word boundary
    return PrefixPlan(text, forced, required)


def _spellable_letter(tokenizer) -> str:
    """A letter the vocabulary spells without `<unk>` (toy vocabularies lack some)."""
    for letter in "aeosnirx":
        if tokenizer.unk_token_id not in tokenizer(text_target=letter, add_special_tokens=False)["input_ids"]:
            return letter
    return "a"


class SpellingIndex:
    """Which tokens may come next when the bytes `rest` are still to be spelled (cached per `rest`)."""

    def __init__(self, surfaces: list[bytes], eos_token_id: int | None):
        self.surfaces = surfaces
        self.eos_token_id = eos_token_id
        self._sorted = sorted((surface, index) for index, surface in enumerate(surfaces) if surface)
        self._keys = [surface for surface, _ in self._sorted]
        self._by_surface: dict[bytes, list[int]] = {}
        for surface, index in self._sorted:
            self._by_surface.setdefault(surface, []).append(index)
        self._masks: dict[bytes, torch.Tensor] = {}

    def allowed(self, rest: bytes) -> torch.Tensor:
        """Boolean mask over the vocabulary: surfaces that start with `rest` or are a start of it."""
        mask = self._masks.get(rest)
        if mask is None:
            ids = []
            start = bisect.bisect_left(self._keys, rest)
            for surface, index in self._sorted[start:]:
                if not surface.startswith(rest):
                    break
                ids.append(index)
            for cut in range(1, len(rest)):
                ids.extend(self._by_surface.get(rest[:cut], ()))
            if (not rest.strip() or not ids) and self.eos_token_id is not None:
                # only a word boundary left: ending here is fine; nothing spells the rest: end rather
                # than leave the beam without any token (the prefix is shown from the typed text anyway)
                ids.append(self.eos_token_id)
            mask = torch.zeros(len(self.surfaces), dtype=torch.bool)
            mask[ids] = True
            self._masks[rest] = mask
        return mask


class SpellPrefix(LogitsProcessor):
    """Masks, per beam, every token that would disagree with the required bytes, until they are spelled.

    `start` is where generated tokens begin in `input_ids` (after the start token and forced tokens).
    """

    def __init__(self, index: SpellingIndex, required: bytes, start: int):
        self.index, self.required, self.start = index, required, start

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        surfaces, needed = self.index.surfaces, len(self.required)
        for row, ids in enumerate(input_ids[:, self.start:].tolist()):
            spelled = 0
            for token in ids:
                spelled += len(surfaces[token])
                if spelled >= needed:
                    break
            if spelled >= needed:
                continue  # this beam has spelled the prefix: decoding is free
            mask = self.index.allowed(self.required[spelled:])
            scores[row] = scores[row].masked_fill(~mask, float("-inf"))
        return scores
