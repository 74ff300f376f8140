"""Tiny translation model folders for the interactive-translation tests: random weights, real tokenizers.

The weights are random (the prefix constraint, probabilities and n-best must hold for any model); the
tokenizer is a real one trained on toy pairs, SentencePiece-style (`▁` marks, the recipe's) or byte-level.
"""

import json

import torch
import yaml

from bigmodel_hf import BigModelForSeq2SeqLM
from bigmodel_hf.tokenization import train_lm_tokenizer, train_translation_tokenizer
from bigmodel_hf.toy_data import toy_translation_pairs
from tiny_models import tiny_config

PAIRS = toy_translation_pairs(60, seed=5)


def make_model_dir(root, tokenizer_kind: str = "bpe", max_length: int = 20, num_beams: int = 4):
    """A saved model + tokenizer + run_config.yaml (en -> es) under `root`; returns `root`."""
    texts = [row["en"] for row in PAIRS] + [row["es"] for row in PAIRS]
    if tokenizer_kind == "bpe":
        tokenizer = train_translation_tokenizer(texts, vocab_size=300, min_frequency=1)
    else:
        tokenizer = train_lm_tokenizer(texts, vocab_size=400, min_frequency=1)
    torch.manual_seed(0)
    model = BigModelForSeq2SeqLM(tiny_config("classic", vocab_size=len(tokenizer)))
    model.generation_config.num_beams, model.generation_config.max_length = num_beams, max_length
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    (root / "run_config.yaml").write_text(yaml.safe_dump({"source_lang": "en", "target_lang": "es"}))
    return root


def write_pairs(path, rows) -> None:
    """JSON Lines in the Hub `translation` layout."""
    path.write_text("".join(json.dumps({"translation": row}, ensure_ascii=False) + "\n" for row in rows), "utf-8")
