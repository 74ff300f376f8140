"""What each token id adds to the text, as bytes: the alphabet of prefix-constrained decoding.

A token's surface is the UTF-8 text it contributes when a sequence is decoded, its word-boundary mark
turned into a space: `▁gato` -> b" gato" (SentencePiece / Metaspace), `Ġgato` -> b" gato" (byte-level BPE).
Bytes, not str, because a byte-level token may hold half of a multi-byte character; concatenating the
surfaces of a sequence and decoding once gives the decoded text (up to a leading space).
Special tokens (pad, BOS, EOS, unk, language tokens) have an empty surface: decoding skips them.
"""

import json
from functools import lru_cache

METASPACE = "▁"


@lru_cache(maxsize=1)
def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's reversible map from bytes to printable characters, inverted (character -> byte)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:  # bytes without a printable look-alike are shifted past 255, in order
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


def _decoder_kinds(tokenizer) -> set[str]:
    """The types of the fast tokenizer's decoder (a Sequence counts as all of its parts)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return set()
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    parts = decoder.get("decoders", [decoder]) if decoder.get("type") == "Sequence" else [decoder]
    return {part.get("type") for part in parts}


def token_surfaces(tokenizer) -> list[bytes]:
    """`surfaces[id]` = the bytes token `id` contributes to decoded text; b"" for special tokens."""
    kinds = _decoder_kinds(tokenizer)
    alphabet = _byte_level_alphabet() if "ByteLevel" in kinds else None
    # also the tokens added as special in the tokenizers backend (a multilingual model's `__de__`), which
    # transformers 5 does not list in all_special_ids but decoding skips all the same
    special = set(tokenizer.all_special_ids) | {index for index, token in
                                                getattr(tokenizer, "added_tokens_decoder", {}).items() if token.special}
    surfaces = [b""] * len(tokenizer)
    for token, index in tokenizer.get_vocab().items():
        if index in special or index >= len(surfaces):
            continue
        if alphabet is not None and all(char in alphabet for char in token):
            surfaces[index] = bytes(alphabet[char] for char in token)
        elif "ByteFallback" in kinds and len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
            surfaces[index] = bytes([int(token[3:5], 16)])
        else:  # Metaspace, SentencePiece-style Replace, WordPiece-free BPE: the mark is the space
            surfaces[index] = token.replace(METASPACE, " ").encode("utf-8")
    return surfaces
