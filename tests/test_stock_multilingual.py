"""Stock multilingual checkpoints (M2M100, NLLB, mBART-50) fine-tuned on several directions at once: each
row's own language tokens, the first decoded token forced per direction, LoRA. Tiny random checkpoints
built in `stock_checkpoints` (no downloads)."""

from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from bigmodel_hf.languages import parse_language_pairs, route_translations
from bigmodel_hf.training import ConfigError
from bigmodel_hf.training.stock_multilingual import (
    checkpoint_code, forcing_first_token, stock_family, target_token_id, tokenize_by_direction,
)
from stock_checkpoints import FAMILIES, ROWS, build_checkpoint

PAIRS = parse_language_pairs("en-es,de-en")
# what the encoder input starts with and the labels start with, per family, for each data code
OWN_CODES = {"m2m100": {"en": "__en__", "es": "__es__", "de": "__de__"},
             "nllb": {"en": "eng_Latn", "es": "spa_Latn", "de": "deu_Latn"},
             "mbart50": {"en": "en_XX", "es": "es_XX", "de": "de_DE"}}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stock")
    return {family: build_checkpoint(family, root / family) for family in FAMILIES}


def routed_rows() -> Dataset:
    rows = Dataset.from_dict({"translation": ROWS})
    return rows.map(route_translations, batched=True, fn_kwargs={"pairs": PAIRS}, remove_columns=["translation"])


@pytest.mark.parametrize("family", FAMILIES)
def test_each_row_carries_its_own_source_and_target_language_tokens(checkpoints, family):
    tokenizer = AutoTokenizer.from_pretrained(checkpoints[family])
    assert stock_family(tokenizer) == family
    before = tokenizer.src_lang, tokenizer.tgt_lang
    routed = routed_rows()
    tokenized = tokenize_by_direction(routed, tokenizer, max_source_length=32, max_target_length=32)
    assert len(tokenized) == len(routed) == 2 * len(ROWS) and tokenized.column_names == [
        "input_ids", "attention_mask", "labels"]
    codes = OWN_CODES[family]
    directions = set()
    for row, encoded in zip(routed, tokenized):
        source_token, target_token = codes[row["source_lang"]], codes[row["target_lang"]]
        directions.add((row["source_lang"], row["target_lang"]))
        assert tokenizer.convert_ids_to_tokens(encoded["input_ids"][0]) == source_token
        assert tokenizer.convert_ids_to_tokens(encoded["labels"][0]) == target_token
        assert encoded["input_ids"][-1] == encoded["labels"][-1] == tokenizer.eos_token_id
        # the text between is the row's own, as the tokenizer encodes it alone
        assert tokenizer.decode(encoded["labels"], skip_special_tokens=True) == row["target"]
        assert tokenizer.decode(encoded["input_ids"], skip_special_tokens=True) == row["source"]
    assert directions == {("en", "es"), ("de", "en")}
    assert (tokenizer.src_lang, tokenizer.tgt_lang) == before  # the tokenizer is left as it was found


def test_the_data_codes_map_to_each_family_and_an_unknown_one_is_one_line(checkpoints):
    tokenizers = {family: AutoTokenizer.from_pretrained(checkpoints[family]) for family in FAMILIES}
    assert [checkpoint_code(tokenizers[f], "pt_BR") for f in FAMILIES] == ["pt", "por_Latn", "pt_XX"]
    assert [checkpoint_code(tokenizers[f], "zh_CN") for f in FAMILIES] == ["zh", "zho_Hans", "zh_CN"]
    assert [checkpoint_code(tokenizers[f], "ja") for f in FAMILIES] == ["ja", "jpn_Jpan", "ja_XX"]
    assert checkpoint_code(tokenizers["nllb"], "ron_Latn") == "ron_Latn"  # its own spelling is taken as is
    assert target_token_id(tokenizers["m2m100"], "pt_BR") == tokenizers["m2m100"].get_lang_id("pt")
    with pytest.raises(ConfigError) as error:
        checkpoint_code(tokenizers["mbart50"], "tlh")
    message = str(error.value)
    assert "\n" not in message and "'tlh'" in message and "mBART-50" in message and "en_XX" in message


@pytest.mark.parametrize("family", FAMILIES)
def test_generation_is_forced_to_each_directions_target_token_and_restored(checkpoints, family):
    tokenizer = AutoTokenizer.from_pretrained(checkpoints[family])
    model = AutoModelForSeq2SeqLM.from_pretrained(checkpoints[family]).eval()
    routed = routed_rows()
    tokenized = tokenize_by_direction(routed, tokenizer)
    for target in ("es", "en"):
        rows = [i for i, lang in enumerate(routed["target_lang"]) if lang == target][:3]
        batch = tokenizer.pad({"input_ids": [tokenized[i]["input_ids"] for i in rows]}, return_tensors="pt")
        with forcing_first_token(model, target_token_id(tokenizer, target)):
            assert model.generation_config.forced_bos_token_id == target_token_id(tokenizer, target)
            generated = model.generate(**batch, max_new_tokens=4, do_sample=False, num_beams=1)
        # position 0 is the decoder start (eos); the first generated token is the target language's
        assert generated[:, 0].tolist() == [model.config.decoder_start_token_id] * len(rows)
        assert generated[:, 1].tolist() == [target_token_id(tokenizer, target)] * len(rows)
    assert model.generation_config.forced_bos_token_id is None
