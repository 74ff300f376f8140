"""Tiny random M2M100, NLLB and mBART-50 checkpoints built here (no weights can be downloaded): the real
model classes and tokenizer classes, with a character vocabulary of the test sentences and 1+1 layers of
width 16, saved as `save_pretrained` writes them."""

import io
import json
from pathlib import Path

from transformers import (
    M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer, MBart50Tokenizer, MBartConfig,
    MBartForConditionalGeneration, NllbTokenizer,
)
from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

FAMILIES = ("m2m100", "nllb", "mbart50")
M2M100_CODES = FAIRSEQ_LANGUAGE_CODES["m2m100"]

# one message in three languages per row, as in ../shared/data/l10n
ROWS = [
    {"en": "open the file", "es": "abre el archivo", "de": "öffne die Datei"},
    {"en": "save the file", "es": "guarda el archivo", "de": "speichere die Datei"},
    {"en": "close the window", "es": "cierra la ventana", "de": "schließe das Fenster"},
    {"en": "delete the file", "es": "borra el archivo", "de": "lösche die Datei"},
    {"en": "open the window", "es": "abre la ventana", "de": "öffne das Fenster"},
    {"en": "save the window", "es": "guarda la ventana", "de": "speichere das Fenster"},
    {"en": "close the file", "es": "cierra el archivo", "de": "schließe die Datei"},
    {"en": "delete the window", "es": "borra la ventana", "de": "lösche das Fenster"},
]
TEXTS = [text for row in ROWS for text in row.values()]
CHARACTERS = sorted({char for text in TEXTS for char in text if char != " "})


def write_rows(path: Path, rows=ROWS) -> Path:
    path.write_text("".join(json.dumps({"translation": row}, ensure_ascii=False) + "\n" for row in rows), "utf-8")
    return path


def m2m100_tokenizer(folder: Path) -> M2M100Tokenizer:
    """A sentencepiece BPE trained on the test sentences (ids <s>=0 <pad>=1 </s>=2 <unk>=3, as fairseq's)."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXTS * 4), model_writer=model, vocab_size=80, model_type="bpe",
        character_coverage=1.0, bos_id=0, pad_id=1, eos_id=2, unk_id=3, hard_vocab_limit=False, minloglevel=2)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sentencepiece.bpe.model").write_bytes(model.getvalue())
    processor = sentencepiece.SentencePieceProcessor(model_file=str(folder / "sentencepiece.bpe.model"))
    vocab = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
    (folder / "vocab.json").write_text(json.dumps(vocab), "utf-8")
    # the language tokens listed as special, as the published checkpoints' tokenizer_config.json lists them
    # (the class alone does not mark them, and decoding would then keep `__es__` in the text)
    return M2M100Tokenizer(vocab_file=str(folder / "vocab.json"), spm_file=str(folder / "sentencepiece.bpe.model"),
                           additional_special_tokens=[f"__{code}__" for code in M2M100_CODES])


def nllb_tokenizer() -> NllbTokenizer:
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "▁": 4}
    vocab.update({char: 5 + i for i, char in enumerate(CHARACTERS)})
    return NllbTokenizer(vocab=vocab, merges=[])


def mbart50_tokenizer() -> MBart50Tokenizer:
    # sentencepiece order (<unk>, <s>, </s>, pieces); the class reorders to fairseq's and appends the codes
    pieces = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0), ("▁", -1.0)] + [(char, -2.0) for char in CHARACTERS]
    return MBart50Tokenizer(vocab=pieces)


def build_checkpoint(family: str, folder: Path) -> Path:
    """Save a tiny random checkpoint of `family` (model + tokenizer) in `folder`; returns the folder."""
    folder = Path(folder)
    tokenizer = {"m2m100": lambda: m2m100_tokenizer(folder / "spm"), "nllb": nllb_tokenizer,
                 "mbart50": mbart50_tokenizer}[family]()
    # M2M100's language tokens and "made-up words" come after its sentencepiece vocabulary, outside len()
    vocab_size = (max(tokenizer.lang_code_to_id.values()) + 1 + tokenizer.num_madeup_words if family == "m2m100"
                  else len(tokenizer))
    shape = dict(vocab_size=vocab_size, d_model=16, encoder_layers=1, decoder_layers=1,
                 encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                 max_position_embeddings=64, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                 decoder_start_token_id=2, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    if family == "mbart50":
        model = MBartForConditionalGeneration(MBartConfig(**shape))
    else:
        model = M2M100ForConditionalGeneration(M2M100Config(**shape))
    model.generation_config.max_length = 24
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
