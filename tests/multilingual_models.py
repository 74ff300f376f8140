"""Tiny multilingual translation model folders, written to the checkpoint contract of issue 20: one added
special token per target language (`__de__`), `config.lang_to_id` and `config.language_pairs`, and the
same mapping in `generation_config.lang_to_id`. Random weights: the direction is driven by the forced first
token, whatever the model learned."""

import torch

from bigmodel_hf import BigModelForSeq2SeqLM
from bigmodel_hf.languages import language_token, parse_language_pairs, target_languages
from bigmodel_hf.tokenization import train_translation_tokenizer
from bigmodel_hf.toy_data import toy_translation_pairs
from tiny_models import tiny_config

PAIRS = toy_translation_pairs(60, seed=5)
# en<->X for three X: es-fr and fr-es were not trained (zero-shot), and pivot through en
LANGUAGE_PAIRS = "en-es,es-en,en-de,de-en,en-fr,fr-en"


def make_multilingual_dir(root, language_pairs: str = LANGUAGE_PAIRS, max_length: int = 12, num_beams: int = 1,
                          keep_generation_mapping: bool = True):
    """A saved multilingual model + tokenizer under `root`; returns `root`. `keep_generation_mapping=False`
    saves the generation config as made from the model config, so that lang_to_id is lost on reload."""
    texts = [row["en"] for row in PAIRS] + [row["es"] for row in PAIRS]
    targets = target_languages(parse_language_pairs(language_pairs))
    # added as special tokens of the tokenizers backend, as the translation recipe adds them
    tokenizer = train_translation_tokenizer(texts, vocab_size=300, min_frequency=1,
                                            added_special_tokens=[language_token(code) for code in targets])
    lang_to_id = {code: tokenizer.convert_tokens_to_ids(language_token(code)) for code in targets}
    torch.manual_seed(0)
    model = BigModelForSeq2SeqLM(tiny_config("classic", vocab_size=len(tokenizer), lang_to_id=lang_to_id,
                                             language_pairs=language_pairs.split(",")))
    model.generation_config.lang_to_id = dict(lang_to_id)
    # a generation config made from the model config is reloaded without its extra fields (transformers
    # 5.25 drops them when `_from_model_config` is true), and lang_to_id is one
    model.generation_config._from_model_config = not keep_generation_mapping
    model.generation_config.num_beams, model.generation_config.max_length = num_beams, max_length
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root
